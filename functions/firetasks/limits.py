"""A handler's limits, as values the registry holds: at most N attempts at once (`concurrency`),
starts at most at a rate (`Rate`), optionally per value of a key. firetasks.flow enforces them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from firebase_functions import options

from firetasks.handler import Task

MAX_DISPATCHES_PER_SECOND = 500.0  # Cloud Tasks' ceiling per queue
MAX_CONCURRENT_DISPATCHES = 5000  # Cloud Tasks' ceiling per queue (and the emulator's)
MAX_KEY_CONCURRENCY = 100  # slots per key, read by each take (firetasks.key_slots)
UNLIMITED_CONCURRENCY = 1000  # Cloud Tasks' default when only a rate is set
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"\s*(\d+)\s*/\s*([smh])\s*")


@dataclass(frozen=True)
class Rate:
    """At most `count` starts per `per` seconds: `Rate.parse("10/s")`, `Rate.parse("600/m")`."""

    count: int
    per: float = 1.0

    def __post_init__(self) -> None:
        if self.count < 1 or self.per <= 0:
            raise ValueError(f"a rate needs a count >= 1 and a period > 0, got {self}")
        if self.per_second > MAX_DISPATCHES_PER_SECOND:
            raise ValueError(f"{self} exceeds Cloud Tasks' {MAX_DISPATCHES_PER_SECOND:.0f} "
                             "dispatches per second per queue")

    @classmethod
    def parse(cls, text: str | Rate) -> Rate:
        if isinstance(text, Rate):
            return text
        match = _RATE.fullmatch(text)
        if match is None:
            raise ValueError(f"rate {text!r} is not like '10/s', '600/m' or '100/h'")
        return cls(int(match[1]), UNITS[match[2]])

    @property
    def per_second(self) -> float:
        return self.count / self.per

    def __str__(self) -> str:
        unit = {seconds: name for name, seconds in UNITS.items()}.get(self.per)
        return f"{self.count}/{unit}" if unit else f"{self.count} per {self.per:g}s"


@dataclass(frozen=True)
class Limits:
    """A handler's limits: at most `concurrency` attempts at once, starts at most at `rate`;
    with a `key`, for each value it gives a task (`key=lambda task: task.data["merchantId"]`)."""

    concurrency: int | None = None
    rate: Rate | None = None
    key: Callable[[Task], object] | None = field(default=None, compare=False)
    shared: bool = False
    """With a key: the limits hold for the handler as a whole, and its waiting tasks start in
    turn between the key's values (fair shares, firetasks.fair_shares), not per key."""

    def __post_init__(self) -> None:
        if self.shared and self.key is None:
            raise ValueError("shared=True shares the limits between the values of a key: give key=")
        most = MAX_KEY_CONCURRENCY if self.per_key else MAX_CONCURRENT_DISPATCHES
        if self.concurrency is not None and not 1 <= self.concurrency <= most:
            raise ValueError(f"concurrency{' per key' if self.per_key else ''} must be from 1 to "
                             f"{most}, got {self.concurrency}")

    @property
    def per_key(self) -> bool:
        """Whether the limits hold for each value of the key (Firestore's key slots)."""
        return self.key is not None and not self.shared

    @classmethod
    def of(cls, concurrency: int | None, rate: str | Rate | None,
           key: Callable[[Task], object] | None = None, shared: bool = False) -> Limits | None:
        """The limits of a registration; None for a handler without any."""
        if concurrency is None and rate is None:
            if key is not None:
                raise ValueError("a key needs a concurrency or a rate to apply per key")
            return None
        return cls(concurrency, None if rate is None else Rate.parse(rate), key, shared)

    def rate_limits(self) -> options.RateLimits:
        """The Cloud Tasks queue's limits that enforce these (none, per key: Firestore holds
        per-key limits, firetasks.key_slots)."""
        per_second = self.rate.per_second if self.rate and not self.per_key else (
            MAX_DISPATCHES_PER_SECOND)
        concurrency = None if self.per_key else self.concurrency
        return options.RateLimits(
            max_concurrent_dispatches=concurrency or UNLIMITED_CONCURRENCY,
            # Cloud Tasks takes a double ("600/m" is 10, "100/m" 1.67); firebase-functions
            # annotates an int but passes the value on as it is.
            max_dispatches_per_second=cast(int, per_second))

    def __str__(self) -> str:
        parts = ([f"concurrency {self.concurrency}"] if self.concurrency else []) + (
            [f"rate {self.rate}"] if self.rate else [])
        return ", ".join(parts) + (" per key" if self.per_key else " shared between keys"
                                   if self.shared else "")


