"""Reconnect delays: exponential with jitter, capped."""

from __future__ import annotations

import random


class Backoff:
    """Exponential reconnect delay with jitter, capped; reset after a good connection."""

    def __init__(self, base: float = 0.5, cap: float = 15.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return delay * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0
