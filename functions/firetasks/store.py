"""Every read and write of task documents, behind one interface: `FirestoreStore` in production
and in the emulator suite, `firetasks.testing.MemoryStore` in users' unit tests.

Writes are conditional on the version read (the document's update time), never transactions: the
Firestore emulator (and, less readily, production) aborts transactions that contend on one
document, so contenders could all fail. A conditional write never aborts; of several writers of
one version exactly one wins. Only transient errors are retried, with jittered backoff.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import audit, db
from firetasks.errors import TaskChanged, TaskNotFound
from firetasks.record import TaskRecord

T = TypeVar("T")
TRANSIENT = (exceptions.Aborted, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded,
             exceptions.InternalServerError, exceptions.TooManyRequests)
ATTEMPTS = 6
BACKOFF = 0.05  # seconds; doubled per attempt, fully jittered so contenders spread out
MAX_BATCH_WRITES = 500  # Firestore's limit on the writes of one batch


class TaskStore(Protocol):
    def read(self, ref: DocumentReference) -> TaskRecord | None:
        """The task as it is now, None if there is none."""

    def write_if_unchanged(
        self, ref: DocumentReference, version: Any, fields: Mapping[str, Any]
    ) -> Any | None:
        """Update the task only if it is still at `version`: its new version, or None if it
        changed meanwhile or is gone."""

    def transition(
        self, record: TaskRecord, changes: Mapping[str, Any], audit_entry: Mapping[str, Any] | None
    ) -> None:
        """An operator's change to the version read, with its audit record, atomically; raises
        TaskChanged if another write came first, TaskNotFound if the task is gone."""

    def create(
        self,
        parent: DocumentReference,
        documents: Sequence[Mapping[str, Any]],
        collection: str,
        parent_fields: Mapping[str, Any] | None = None,
    ) -> list[DocumentReference]:
        """New tasks under `parent`, and the parent itself if `parent_fields` are given (failing
        if it exists), atomically: all of them or none."""


class FirestoreStore:
    """Tasks in Firestore, through the client of the references it is given."""

    def read(self, ref: DocumentReference) -> TaskRecord | None:
        return TaskRecord.from_snapshot(with_backoff(ref.get))

    def write_if_unchanged(
        self, ref: DocumentReference, version: Any, fields: Mapping[str, Any]
    ) -> Any | None:
        option = _unchanged_since(version)
        try:
            result = with_backoff(lambda: ref.update(dict(fields), option=option))
        except (exceptions.FailedPrecondition, exceptions.NotFound):
            return None
        return result.update_time

    def transition(
        self, record: TaskRecord, changes: Mapping[str, Any], audit_entry: Mapping[str, Any] | None
    ) -> None:
        client = db.client_of(record.ref)

        def commit() -> None:
            batch = client.batch()
            batch.update(record.ref, dict(changes), option=_unchanged_since(record.version))
            if audit_entry is not None:
                batch.create(audit.entry_ref(client), dict(audit_entry))
            batch.commit()

        try:
            with_backoff(commit)
        except exceptions.FailedPrecondition as exc:
            raise TaskChanged(f"another write changed {record.path} first: reload it") from exc
        except exceptions.NotFound as exc:
            raise TaskNotFound(f"no task at {record.path}") from exc

    def create(
        self,
        parent: DocumentReference,
        documents: Sequence[Mapping[str, Any]],
        collection: str,
        parent_fields: Mapping[str, Any] | None = None,
    ) -> list[DocumentReference]:
        writes = len(documents) + (parent_fields is not None)
        if writes > MAX_BATCH_WRITES:
            raise ValueError(f"{len(documents)} tasks do not fit one atomic batch (at most "
                             f"{MAX_BATCH_WRITES - (parent_fields is not None)})")
        batch = db.client_of(parent).batch()
        if parent_fields is not None:
            batch.create(parent, dict(parent_fields))
        refs = [parent.collection(collection).document() for _ in documents]
        for ref, document in zip(refs, documents, strict=True):
            batch.create(ref, dict(document))
        batch.commit()
        return refs


def with_backoff(call: Callable[[], T]) -> T:
    """`call()`, tried again after a transient error, ATTEMPTS times in all."""
    for attempt in range(ATTEMPTS - 1):
        try:
            return call()
        except TRANSIENT:
            time.sleep(random.uniform(0, BACKOFF * 2 ** attempt))
    return call()


def _unchanged_since(version: Any) -> Any:
    """A precondition: the document's update time is still `version`."""
    return firestore.Client.write_option(last_update_time=version)
