"""A task to create: `NewTask`, its document and its id (a unique key fixes the id)."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from google.cloud import firestore

from firetasks import transitions
from firetasks.errors import InvalidTask
from firetasks.task import TASK_ID_PATTERN, validate


@dataclass(frozen=True)
class NewTask:
    type: str
    action: str
    data: Mapping[str, Any] = field(default_factory=dict)
    run_at: datetime.datetime | None = None  # not before this time (a delayed task)
    max_attempts: int | None = None  # overrides the handler's retry policy
    after: Sequence[str] = ()
    """The tasks (beside this one) it runs after, by id or by the key of a task in the same batch:
    created `waiting` until they complete."""
    on_dependency_failure: Literal["fail", "run", "skip"] = "fail"
    """What a failed dependency does to it: fail it, run it anyway, or skip it (`cancelled`)."""
    key: str | None = None
    """Makes the task unique: its id derives from the key, and a second enqueue finds the first."""
    unique: Literal["parent", "global"] = "parent"
    """The key's scope: the tasks collection under one parent, or every parent (a lock document)."""
    debounce: datetime.timedelta | None = None
    """With a key: run once after this quiet period since the key's last enqueue; each enqueue
    before the start replaces the data (firetasks.debounce)."""
    max_wait: datetime.timedelta | None = None
    """With debounce: start at the latest this long after the burst's first enqueue."""
    priority: int | None = None
    """0 (the default) to 9: among the tasks waiting for their handler's limits (or a key's),
    higher priorities start first, then the oldest (firetasks.task.PRIORITY_STEP: aging)."""

    @property
    def id(self) -> str | None:
        """The task's id if its key fixes one (else Firestore picks a random one)."""
        return None if self.key is None else task_id(self.key)

    def __post_init__(self) -> None:
        """Refuse at once what would fail later, less clearly: a `data` that is no map, a naive
        `run_at` (compared with the aware clock, it raised TypeError in the processor), an
        `after` given as one string (read as a list of its letters)."""
        found = []
        if not isinstance(self.data, Mapping):
            found.append(f"'data' must be a map, got {_describe(self.data)}")
        if self.run_at is not None and not isinstance(self.run_at, datetime.datetime):
            found.append(f"'run_at' must be a datetime, got {_describe(self.run_at)}")
        elif self.run_at is not None and self.run_at.utcoffset() is None:
            found.append(f"'run_at' must be timezone-aware (e.g. datetime.now(datetime.UTC) + "
                         f"delay), got the naive {self.run_at.isoformat()}")
        for name in ("debounce", "max_wait"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime.timedelta)
                                      or value <= datetime.timedelta()):
                found.append(f"'{name}' must be a positive timedelta, got {_describe(value)}")
        if self.debounce is not None and (self.key is None or self.after or self.run_at):
            found.append("'debounce' needs a key (the burst's), and takes no after= or run_at=")
        if self.max_wait is not None and self.debounce is None:
            found.append("'max_wait' needs debounce=")
        if isinstance(self.after, str | bytes) or not isinstance(self.after, Sequence):
            found.append(f"'after' must be a list of task ids or keys, got {_describe(self.after)}")
        if found:
            raise InvalidTask(found)

    def document(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "type": self.type,
            "action": self.action,
            "state": transitions.created(waits=bool(self.after)).value,
            "data": dict(self.data),
        }
        if self.run_at is not None:
            fields["runAt"] = self.run_at
        if self.max_attempts is not None:
            fields["maxAttempts"] = self.max_attempts
        if self.after:
            fields["after"] = list(self.after)
            fields["onDependencyFailure"] = self.on_dependency_failure
        if self.key is not None:
            fields["key"] = self.key
        if self.priority is not None:
            fields["priority"] = self.priority
        validate(fields)
        if self.unique == "global" and self.key is None:
            raise InvalidTask(["unique='global' needs a key"])
        return fields | {
            "attempts": 0,
            "createdAt": firestore.SERVER_TIMESTAMP,
            "updatedAt": firestore.SERVER_TIMESTAMP,
        }


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def task_id(key: str) -> str:
    """The id of the task with unique `key`: the key itself if it is a valid id, else a digest."""
    if TASK_ID_PATTERN.fullmatch(key) and not key.startswith("__") and key not in (".", ".."):
        return key
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:40]


