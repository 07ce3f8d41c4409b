"""Simulation time: wall time at start, then real elapsed time times a speed factor."""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """Simulation time in seconds: wall time at start, then real elapsed time times `speed`."""

    def __init__(self, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.speed = speed
        self._monotonic = monotonic
        self._origin_real = monotonic()
        self._origin_sim = wall()

    def now(self) -> float:
        return self._origin_sim + (self._monotonic() - self._origin_real) * self.speed

    def real_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed
