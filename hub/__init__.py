"""hub: a local-first hub for a connected home and its networked pico-projector."""

__version__ = "0.1.0"
