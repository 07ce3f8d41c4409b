"""Login throttling that decays on its own: no permanent ban, no file to edit to get back in.

Each key (an account name, a client address) carries a failure score that halves every
`half_life` seconds. Past `free` failures, each further failure blocks the key for a delay
that doubles, up to `cap`. A blocked key is answered 429 with Retry-After without the
password even being checked; once the delay has passed, a right password works.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    score: float
    at: float  # when score was last brought up to date
    blocked_until: float = 0.0


class Throttle:
    """Failure scores per key; bounded (the least recently touched keys are forgotten first)."""

    def __init__(self, *, free: int = 5, base: float = 1.0, cap: float = 900.0, half_life: float = 600.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.half_life = half_life
        self.max_keys = max_keys
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _decayed(self, entry: _Entry, now: float) -> float:
        return entry.score * 0.5 ** (max(0.0, now - entry.at) / self.half_life)

    def retry_after(self, *keys: str) -> int:
        """Whole seconds until every key may try again; 0 when all may try now."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None:
                wait = max(wait, entry.blocked_until - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            entry = self._entries.pop(key, None) or _Entry(0.0, now)
            entry.score = self._decayed(entry, now) + 1.0
            entry.at = now
            over = entry.score - self.free
            if over > 0:
                entry.blocked_until = now + min(self.cap, self.base * 2 ** (math.ceil(over) - 1))
            self._entries[key] = entry  # most recently touched last
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """A right password clears its account's score (not the address's: one valid login
        must not let an address go on guessing other accounts' passwords)."""
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
