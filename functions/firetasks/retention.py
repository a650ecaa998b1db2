"""How long finished tasks are kept: each handler's RetentionPolicy gives a finished task an
`expireAt`, on which Firestore's TTL policy (firestore.indexes.json) deletes it.

`expireAt` is set only with a final state (`completed`, `failed`, `cancelled`) and removed with any
other, so a task that waits, runs or retries is never deleted. `firetasks prune`
(operations.prune) does the same deletes where TTL does not run: the emulator.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from firetasks.task import FINAL_STATES

EXPIRE_AT = "expireAt"


@dataclass(frozen=True)
class RetentionPolicy:
    """How long a finished task is kept, by its final state; None keeps it for ever.

    >>> RetentionPolicy(completed=datetime.timedelta(days=1))  # failures kept the default 30 days
    """

    completed: datetime.timedelta | None = datetime.timedelta(days=7)
    failed: datetime.timedelta | None = datetime.timedelta(days=30)
    cancelled: datetime.timedelta | None = datetime.timedelta(days=30)

    def __post_init__(self) -> None:
        for state in FINAL_STATES:
            kept = self.kept(state)
            if kept is not None and kept <= datetime.timedelta():
                raise ValueError(f"retention of {state} tasks must be positive, got {kept}")

    def kept(self, state: object) -> datetime.timedelta | None:
        """How long a task is kept once `state`; None for ever, or for a state not final."""
        if not isinstance(state, str) or state not in FINAL_STATES:
            return None
        kept: datetime.timedelta | None = getattr(self, state)
        return kept


DEFAULT_RETENTION = RetentionPolicy()


def expire_at(
    policy: RetentionPolicy, state: object, now: datetime.datetime
) -> datetime.datetime | None:
    """When a task that is `state` from `now` on expires; None for a task that is not finished
    (or that the policy keeps for ever)."""
    kept = policy.kept(state)
    return None if kept is None else now + kept


def retained(
    fields: Mapping[str, Any], policy: RetentionPolicy, now: datetime.datetime
) -> dict[str, Any]:
    """A write's `fields` (which set `state`) with the `expireAt` that state has under `policy`:
    the time, or a delete of the field."""
    expiry = expire_at(policy, fields["state"], now)
    return {**fields, EXPIRE_AT: firestore.DELETE_FIELD if expiry is None else expiry}
