"""Fault switches of the simulated cloud: which misbehaviour to apply to which request.

A switch is `NAME[=VALUE][*COUNT]` (CLI `--fault`, admin `POST /_admin/faults`, or
`FaultSet.set` from tests). COUNT bounds how many requests it fires on; without it the
switch stays on until cleared. `random=FRACTION[:SEED]` fires one eligible fault, with
random parameters, on that fraction of requests, reproducibly for a given seed.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger(__name__)

# name -> (scopes it applies to, default value, help)
FAULTS: dict[str, tuple[frozenset[str], float | None, str]] = {
    "drop_after": (frozenset({"content"}), 0, "close the connection after N body bytes"),
    "short_body": (frozenset({"content"}), 1,
                   "announce the full Content-Length but withhold the last N bytes"),
    "ignore_range": (frozenset({"content"}), None, "ignore Range and send 200 with everything"),
    "mutate": (frozenset({"content"}), None,
               "rewrite the file on disk after N bytes were sent (default: half)"),
    "trickle": (frozenset({"content"}), 65536, "send the body at N bytes per second"),
    "429": (frozenset({"content", "changes", "wait", "manifest"}), 1,
            "answer 429 with Retry-After: N seconds"),
    "503": (frozenset({"content", "changes", "wait", "manifest"}), 1,
            "answer 503 with Retry-After: N seconds"),
    "retry_after_date": (frozenset(), None, "send Retry-After as an HTTP-date, not seconds"),
    "reset": (frozenset({"changes", "wait"}), None, "answer 410 reset to any cursor"),
    "backoff": (frozenset({"wait"}), 5, "long-poll answers carry backoff: N seconds"),
    "slow_down": (frozenset({"token"}), None, "the token endpoint answers slow_down"),
    "invalid_grant": (frozenset({"refresh"}), None, "refresh answers invalid_grant"),
}
# faults random mode may pick (not mutate: it rewrites files; not trickle: it only slows)
RANDOM_ELIGIBLE = ("drop_after", "short_body", "ignore_range", "429", "503", "reset", "backoff")


class FaultError(ValueError):
    """A fault spec that cannot be parsed."""


@dataclass(frozen=True)
class Switch:
    name: str
    value: float | None
    remaining: int | None  # None = until cleared


def parse_spec(spec: str) -> tuple[str, Switch | tuple[float, int | None]]:
    """Parse `NAME[=VALUE][*COUNT]` (or `random=FRACTION[:SEED]`)."""
    text = spec.strip()
    count: int | None = None
    name, _, value_text = text.partition("=")
    name = name.strip().lower()
    if name == "random":
        frac_text, _, seed_text = value_text.partition(":")
        try:
            fraction = float(frac_text or "0.1")
            seed = int(seed_text) if seed_text else None
        except ValueError as exc:
            raise FaultError(f"bad random spec {spec!r}: want random=FRACTION[:SEED]") from exc
        if not 0.0 <= fraction <= 1.0:
            raise FaultError(f"random fraction must be within 0..1, got {fraction}")
        return "random", (fraction, seed)
    if "*" in value_text or "*" in name:
        if "*" in name:
            name, _, count_text = name.partition("*")
        else:
            value_text, _, count_text = value_text.partition("*")
        try:
            count = int(count_text)
        except ValueError as exc:
            raise FaultError(f"bad count in {spec!r}") from exc
        if count < 1:
            raise FaultError(f"count must be >= 1 in {spec!r}")
    if name not in FAULTS:
        raise FaultError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}, random")
    value: float | None = FAULTS[name][1]
    if value_text.strip():
        try:
            value = float(value_text)
        except ValueError as exc:
            raise FaultError(f"fault {name} wants a number, got {value_text!r}") from exc
        if value < 0:
            raise FaultError(f"fault {name} wants a value >= 0")
    return name, Switch(name, value, count)


class FaultSet:
    """The switches now on, and the decision of which fire on a given request."""

    def __init__(self, seed: int | None = None) -> None:
        self._switches: dict[str, Switch] = {}
        self.random_fraction = 0.0
        self._rng = random.Random(seed)
        self.fired: Counter[str] = Counter()

    def set(self, spec: str) -> None:
        """Turn on one switch from its text spec (raises FaultError on a bad spec)."""
        name, parsed = parse_spec(spec)
        if name == "random":
            fraction, seed = parsed  # type: ignore[misc]
            self.random_fraction = fraction
            if seed is not None:
                self._rng = random.Random(seed)
        else:
            self._switches[name] = parsed  # type: ignore[assignment]
        log.info("fault on: %s", spec)

    def clear(self, name: str | None = None) -> None:
        """Turn one switch off, or all of them (and random mode)."""
        if name is None:
            self._switches.clear()
            self.random_fraction = 0.0
        elif name == "random":
            self.random_fraction = 0.0
        else:
            self._switches.pop(name, None)

    def is_on(self, name: str) -> bool:
        return name in self._switches

    def snapshot(self) -> dict[str, object]:
        return {"switches": {s.name: {"value": s.value, "remaining": s.remaining}
                             for s in self._switches.values()},
                "random": self.random_fraction, "fired": dict(self.fired)}

    def pick(self, scope: str, size: int = 0) -> dict[str, float | None]:
        """The faults that fire on one request of `scope`; consumes counted switches."""
        chosen: dict[str, float | None] = {}
        for switch in list(self._switches.values()):
            if scope not in FAULTS[switch.name][0]:
                continue
            chosen[switch.name] = switch.value
            if switch.remaining is not None:
                if switch.remaining <= 1:
                    del self._switches[switch.name]
                else:
                    self._switches[switch.name] = Switch(switch.name, switch.value,
                                                         switch.remaining - 1)
        if self.random_fraction and self._rng.random() < self.random_fraction:
            eligible = [n for n in RANDOM_ELIGIBLE if scope in FAULTS[n][0]]
            if eligible:
                name = self._rng.choice(eligible)
                chosen.setdefault(name, self._random_value(name, size))
        for name in chosen:
            self.fired[name] += 1
        if chosen:
            log.info("faults firing on %s: %s", scope, chosen)
        return chosen

    def retry_after_as_date(self) -> bool:
        return "retry_after_date" in self._switches

    def _random_value(self, name: str, size: int) -> float | None:
        if name == "drop_after":
            return float(self._rng.randrange(0, max(1, size)))
        if name == "short_body":
            return float(self._rng.randint(1, max(1, size)))
        if name in ("429", "503", "backoff"):
            return 1.0
        return FAULTS[name][1]
