"""Sync progress in bytes and files, with a moving-average ETA (rclone#379, #6381)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    """Mutable counters the engine updates; `snapshot(now)` is what the UI and CLI show."""

    bytes_total: int = 0
    bytes_done: int = 0
    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    current: dict[str, int] = field(default_factory=dict)  # cloud path -> bytes done
    window: float = 10.0
    _samples: deque = field(default_factory=lambda: deque(maxlen=256))

    def sample(self, now: float) -> None:
        self._samples.append((now, self.bytes_done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Bytes per second over the recent window."""
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        if t1 - t0 <= 0:
            return None
        return max(0.0, (b1 - b0) / (t1 - t0))

    def snapshot(self, now: float, phase: str) -> dict[str, Any]:
        self.sample(now)
        rate = self.rate()
        left = max(0, self.bytes_total - self.bytes_done)
        eta = (left / rate) if rate else None
        return {
            "phase": phase,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "files_done": self.files_done,
            "files_total": self.files_total,
            "files_failed": self.files_failed,
            "rate_bps": rate,
            "eta_s": eta,
            "current": sorted(self.current),
        }
