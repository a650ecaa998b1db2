"""Creating tasks: a parent document with its tasks in one atomic batch, or tasks for a parent."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.config import DEFAULT_COLLECTIONS
from firetasks.task import State, validate

MAX_BATCH_WRITES = 500  # Firestore's limit on the writes of one batch or transaction


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
    batch, refs = _batch_of_tasks(parent, tasks, other_writes=1, collection=collection)
    batch.create(parent, dict(fields))
    batch.commit()
    return refs


def add_tasks(
    parent: DocumentReference,
    tasks: Iterable[NewTask],
    *,
    collection: str = DEFAULT_COLLECTIONS[0],
) -> list[DocumentReference]:
    """Add tasks under `parent` (which need not exist) atomically."""
    batch, refs = _batch_of_tasks(parent, tasks, collection=collection)
    batch.commit()
    return refs


def _batch_of_tasks(
    parent: DocumentReference,
    tasks: Iterable[NewTask],
    other_writes: int = 0,
    collection: str = DEFAULT_COLLECTIONS[0],
) -> tuple[firestore.WriteBatch, list[DocumentReference]]:
    documents = [task.document() for task in tasks]  # validate them all before writing any
    if len(documents) + other_writes > MAX_BATCH_WRITES:
        raise ValueError(
            f"{len(documents)} tasks do not fit one atomic batch "
            f"(at most {MAX_BATCH_WRITES - other_writes})"
        )
    batch = db.client_of(parent).batch()
    refs = [parent.collection(collection).document() for _ in documents]
    for ref, document in zip(refs, documents, strict=True):
        batch.create(ref, document)
    return batch, refs
