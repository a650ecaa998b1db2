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
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import audit, db
from firetasks.errors import TaskChanged, TaskNotFound
from firetasks.record import TaskRecord
from firetasks.staging import StagedWrites
from firetasks.task import LIMIT_KEY, WAKE_STATES

T = TypeVar("T")
TRANSIENT = (exceptions.Aborted, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded,
             exceptions.InternalServerError, exceptions.TooManyRequests)
ATTEMPTS = 6
BACKOFF = 0.05  # seconds; doubled per attempt, fully jittered so contenders spread out
MAX_BATCH_WRITES = 500  # Firestore's limit on the writes of one batch
IN_LIMIT = 30  # Firestore's limit on the values of a query's `in` clauses (their product)


class TaskStore(Protocol):
    def read(self, ref: DocumentReference) -> TaskRecord | None:
        """The task as it is now, None if there is none."""

    def write_if_unchanged(
        self, ref: DocumentReference, version: Any, fields: Mapping[str, Any]
    ) -> Any | None:
        """Update the task only if it is still at `version`: its new version, or None if it
        changed meanwhile or is gone."""

    def commit_if_unchanged(
        self, ref: DocumentReference, version: Any, fields: Mapping[str, Any],
        staged: StagedWrites,
    ) -> Any | None:
        """Update the task and apply the staged writes in one batch, only if the task is still at
        `version`: its new version, or None if it changed meanwhile or is gone. Raises the error
        of a staged write that cannot apply (a create of an existing document, say)."""

    def write_all_if_unchanged(
        self, changes: Sequence[tuple[TaskRecord, Mapping[str, Any]]]
    ) -> bool:
        """Update each task with its fields, all in one batch, only if none changed since it was
        read: False (and nothing written) if one did."""

    def read_all(self, refs: Sequence[DocumentReference]) -> list[TaskRecord | None]:
        """The tasks at `refs`, in their order; None where there is none."""

    def count_in(self, refs: Sequence[DocumentReference], states: Collection[str]) -> int:
        """How many of the tasks at `refs` are in one of `states`: cheaper than reading them."""

    def dependents(
        self, ref: DocumentReference, states: Collection[str] | None = None
    ) -> list[TaskRecord]:
        """The tasks beside `ref` (same collection, same parent) that name it in `after` and are
        in one of `states` (in any state if None)."""

    def oldest_waiting(
        self, beside: DocumentReference, limit_key: str, count: int = 1
    ) -> list[TaskRecord]:
        """Of the tasks in the collection group of `beside`, the `count` that have waited the
        longest (by `createdAt`) for the limits `limit_key` (their `limitKey`; firetasks.limits),
        oldest first."""

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
        ids: Sequence[str | None] | None = None,
        locks: Mapping[int, DocumentReference] | None = None,
    ) -> list[DocumentReference]:
        """New tasks under `parent`, with the given ids (None: a random one), and the parent
        itself if `parent_fields` are given, and for the tasks numbered in `locks` a lock
        document naming the task: atomically, all of them or none. Raises
        google.api_core.exceptions.Conflict if any of them exists."""


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

    def commit_if_unchanged(
        self, ref: DocumentReference, version: Any, fields: Mapping[str, Any],
        staged: StagedWrites,
    ) -> Any | None:
        if not len(staged):
            return self.write_if_unchanged(ref, version, fields)

        def commit() -> Any:
            batch = db.client_of(ref).batch()
            batch.update(ref, dict(fields), option=_unchanged_since(version))
            staged.apply(batch)
            return batch.commit()

        try:
            results = with_backoff(commit)
        except (exceptions.FailedPrecondition, exceptions.NotFound):
            current = self.read(ref)  # the task's precondition, or a staged update's target?
            if current is None or current.version != version:
                return None
            raise
        return results[0].update_time

    def write_all_if_unchanged(
        self, changes: Sequence[tuple[TaskRecord, Mapping[str, Any]]]
    ) -> bool:
        if len(changes) > MAX_BATCH_WRITES:
            raise ValueError(f"{len(changes)} tasks do not fit one atomic batch")
        if not changes:
            return True

        def commit() -> None:
            batch = db.client_of(changes[0][0].ref).batch()
            for record, fields in changes:
                batch.update(record.ref, dict(fields), option=_unchanged_since(record.version))
            batch.commit()

        try:
            with_backoff(commit)
        except (exceptions.FailedPrecondition, exceptions.NotFound):
            return False
        return True

    def read_all(self, refs: Sequence[DocumentReference]) -> list[TaskRecord | None]:
        if not refs:
            return []
        found = {snapshot.reference.path: TaskRecord.from_snapshot(snapshot)
                 for snapshot in with_backoff(
                     lambda: list(db.client_of(refs[0]).get_all(list(refs))))}
        return [found.get(ref.path) for ref in refs]

    def count_in(self, refs: Sequence[DocumentReference], states: Collection[str]) -> int:
        """Count aggregations over document ids: one read per query, `in` clauses of at most
        IN_LIMIT values in all (ids times states)."""
        chunk = max(1, IN_LIMIT // len(states))
        total = 0
        for start in range(0, len(refs), chunk):
            part = refs[start:start + chunk]
            query = (part[0].parent
                     .where(filter=firestore.FieldFilter("__name__", "in", list(part)))
                     .where(filter=firestore.FieldFilter("state", "in", list(states))))
            total += int(with_backoff(query.count().get)[0][0].value)
        return total

    def oldest_waiting(
        self, beside: DocumentReference, limit_key: str, count: int = 1
    ) -> list[TaskRecord]:
        query = (db.client_of(beside).collection_group(beside.parent.id)
                 .where(filter=firestore.FieldFilter(LIMIT_KEY, "==", limit_key))
                 .where(filter=firestore.FieldFilter("state", "in", list(WAKE_STATES)))
                 .order_by("createdAt").limit(count))
        found = with_backoff(lambda: list(query.stream()))
        return [record for record in map(TaskRecord.from_snapshot, found) if record is not None]

    def dependents(
        self, ref: DocumentReference, states: Collection[str] | None = None
    ) -> list[TaskRecord]:
        query = ref.parent.where(filter=firestore.FieldFilter("after", "array_contains", ref.id))
        if states is not None:
            query = query.where(filter=firestore.FieldFilter("state", "in", list(states)))
        records = (TaskRecord.from_snapshot(snapshot)
                   for snapshot in with_backoff(lambda: list(query.stream())))
        return [record for record in records if record is not None]

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
        ids: Sequence[str | None] | None = None,
        locks: Mapping[int, DocumentReference] | None = None,
    ) -> list[DocumentReference]:
        locks = locks or {}
        writes = len(documents) + (parent_fields is not None) + len(locks)
        if writes > MAX_BATCH_WRITES:
            raise ValueError(f"{len(documents)} tasks do not fit one atomic batch (at most "
                             f"{MAX_BATCH_WRITES} writes, parent and key locks included)")
        batch = db.client_of(parent).batch()
        if parent_fields is not None:
            batch.create(parent, dict(parent_fields))
        refs = new_refs(parent.collection(collection), ids or [None] * len(documents))
        for ref, document in zip(refs, documents, strict=True):
            batch.create(ref, dict(document))
        for index, lock in locks.items():
            batch.create(lock, {"task": refs[index].path})
        batch.commit()
        return refs


def new_refs(
    collection: firestore.CollectionReference, ids: Sequence[str | None]
) -> list[DocumentReference]:
    return [collection.document(id) if id else collection.document() for id in ids]


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
