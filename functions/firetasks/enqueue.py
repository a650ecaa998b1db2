"""Creating tasks: a parent document with its tasks in one atomic batch, or tasks for a parent."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks.config import DEFAULT_COLLECTIONS
from firetasks.store import FirestoreStore
from firetasks.task import State, validate


@dataclass(frozen=True)
class NewTask:
    type: str
    action: str
    data: Mapping[str, Any] = field(default_factory=dict)
    run_at: datetime.datetime | None = None  # not before this time (a delayed task)
    max_attempts: int | None = None  # overrides the handler's retry policy

    def document(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "type": self.type,
            "action": self.action,
            "state": State.SCHEDULED.value,
            "data": dict(self.data),
        }
        if self.run_at is not None:
            fields["runAt"] = self.run_at
        if self.max_attempts is not None:
            fields["maxAttempts"] = self.max_attempts
        validate(fields)
        return fields | {
            "attempts": 0,
            "createdAt": firestore.SERVER_TIMESTAMP,
            "updatedAt": firestore.SERVER_TIMESTAMP,
        }


def create_with_tasks(
    parent: DocumentReference,
    fields: Mapping[str, Any],
    tasks: Iterable[NewTask],
    *,
    collection: str = DEFAULT_COLLECTIONS[0],
) -> list[DocumentReference]:
    """Create `parent` (failing if it exists) and its tasks atomically: all of them or none."""
    documents = [task.document() for task in tasks]  # validate them all before writing any
    return FirestoreStore().create(parent, documents, collection, parent_fields=fields)


def add_tasks(
    parent: DocumentReference,
    tasks: Iterable[NewTask],
    *,
    collection: str = DEFAULT_COLLECTIONS[0],
) -> list[DocumentReference]:
    """Add tasks under `parent` (which need not exist) atomically."""
    documents = [task.document() for task in tasks]  # validate them all before writing any
    return FirestoreStore().create(parent, documents, collection)
