"""Retry policies: how often and how soon a failed attempt is tried again."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a failed attempt is tried again.

    The delay after attempt n is `min_delay * factor ** (n - 1)`, capped at `max_delay`, less a
    random part of up to `jitter` of it (so that failures in a burst do not retry in lockstep), and
    never below `min_delay`. A task's `maxAttempts` field overrides `max_attempts`.
    """

    max_attempts: int = 5
    min_delay: float = 1.0
    max_delay: float = 3600.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.min_delay <= self.max_delay:
            raise ValueError("delays must satisfy 0 < min_delay <= max_delay")
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("factor must be >= 1 and jitter in [0, 1)")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_delay, self.min_delay * self.factor ** (attempt - 1))
        draw = (rng or random).random()
        return max(self.min_delay, base * (1 - self.jitter * draw))


DEFAULT_RETRY = RetryPolicy()
