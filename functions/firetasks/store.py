"""Every read and write of task documents, behind one interface: `FirestoreStore` in production
and in the emulator suite, `firetasks.testing.MemoryStore` in users' unit tests.

Writes are conditional on the version read (firetasks.conditional): of several writers of one
version exactly one wins. The sweeper's scans, pruning and periodic ticks go through it too, so
the test kit runs the real sweeper, prune and tick on its own store.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, Protocol

from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import audit, db
from firetasks.conditional import (
    MAX_BATCH_WRITES,
    Write,
    commit,
    read_all,
    with_backoff,
    write_if_unchanged,
)
from firetasks.errors import TaskChanged, TaskNotFound
from firetasks.record import TaskRecord
from firetasks.staging import StagedWrites
from firetasks.task import LIMIT_KEY, WAIT_RANK, WAKE_STATES

PAGE = 300  # documents per page of a scan
SWEEP_COLLECTION = "firetasksSweeper"  # one document per tasks collection: the sweeper's marks
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
        """Of the tasks in the collection group of `beside`, the `count` first in line (by
        `waitRank`: priority, then age) for the limits `limit_key` (their `limitKey`;
        firetasks.limits), first first."""

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

    def scan(
        self, client: firestore.Client, group: str, state: str, field: str,
        before: datetime.datetime, start_after: tuple[Any, str] | None = None,
    ) -> Iterator[list[TaskRecord]]:
        """In the database of `client`, pages of the tasks of collection group `group` in
        `state` whose `field` is before `before`, by `field` then path, after `start_after` (a
        value of `field` and a path)."""

    def create_task(self, ref: DocumentReference, fields: Mapping[str, Any]) -> bool:
        """Create the task document unless it exists: whether it was created."""

    def delete_all_if_unchanged(
        self, records: Sequence[TaskRecord], audit_entries: Sequence[Mapping[str, Any]]
    ) -> bool:
        """Delete the tasks, with an audit record each, in one batch, only if none changed
        since it was read: False (and nothing written) if one did."""

    def marks(self, client: firestore.Client, name: str) -> dict[str, Any]:
        """The sweeper's scan marks for the tasks collection `name` (firetasks.recovery)."""

    def save_marks(self, client: firestore.Client, name: str, marks: Mapping[str, Any]) -> None:
        """Keep the sweeper's marks that moved."""


class FirestoreStore:
    """Tasks in Firestore, through the client of the references it is given."""

    def read(self, ref: DocumentReference) -> TaskRecord | None:
        return TaskRecord.from_snapshot(with_backoff(ref.get))

    def write_if_unchanged(
        self, ref: DocumentReference, version: Any, fields: Mapping[str, Any]
    ) -> Any | None:
        return write_if_unchanged(ref, version, fields)

    def commit_if_unchanged(
        self, ref: DocumentReference, version: Any, fields: Mapping[str, Any],
        staged: StagedWrites,
    ) -> Any | None:
        versions = commit([Write("update", ref, fields, if_version=version), *staged])
        if versions is not None:
            return versions[0]
        current = self.read(ref)  # the task's precondition, or a staged write's?
        if current is None or current.version != version:
            return None
        raise exceptions.FailedPrecondition(  # type: ignore[no-untyped-call]
            "a staged write could not apply: a document to create exists, one to update is "
            "missing, or one changed since its version was read")

    def write_all_if_unchanged(
        self, changes: Sequence[tuple[TaskRecord, Mapping[str, Any]]]
    ) -> bool:
        return commit([Write("update", record.ref, fields, if_version=record.version)
                       for record, fields in changes]) is not None

    def read_all(self, refs: Sequence[DocumentReference]) -> list[TaskRecord | None]:
        if not refs:
            return []
        return [TaskRecord.from_snapshot(snapshot)
                for snapshot in read_all(db.client_of(refs[0]), refs)]

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
                 .order_by(WAIT_RANK).limit(count))
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
        writes = [Write("update", record.ref, changes, if_version=record.version)]
        if audit_entry is not None:
            writes.append(Write("create", audit.entry_ref(client), audit_entry))
        if commit(writes) is None:
            if self.read(record.ref) is None:
                raise TaskNotFound(f"no task at {record.path}")
            raise TaskChanged(f"another write changed {record.path} first: reload it")

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
        db.check_emulator()  # an enqueue against an emulator that is down says so at once
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


    def scan(
        self, client: firestore.Client, group: str, state: str, field: str,
        before: datetime.datetime, start_after: tuple[Any, str] | None = None,
    ) -> Iterator[list[TaskRecord]]:
        query = (client.collection_group(group)
                 .where(filter=firestore.FieldFilter("state", "==", state))
                 .where(filter=firestore.FieldFilter(field, "<", before))
                 .order_by(field).order_by("__name__"))
        if start_after is not None:
            query = query.start_after({field: start_after[0],
                                       "__name__": client.document(start_after[1])})
        while True:
            page = with_backoff(lambda: list(query.limit(PAGE).stream()))  # noqa: B023
            yield [record for record in map(TaskRecord.from_snapshot, page) if record]
            if len(page) < PAGE:
                return
            query = query.start_after(page[-1])

    def create_task(self, ref: DocumentReference, fields: Mapping[str, Any]) -> bool:
        try:
            with_backoff(lambda: ref.create(dict(fields)))
        except exceptions.AlreadyExists:
            return False
        return True

    def delete_all_if_unchanged(
        self, records: Sequence[TaskRecord], audit_entries: Sequence[Mapping[str, Any]]
    ) -> bool:
        if not records:
            return True
        client = db.client_of(records[0].ref)
        return commit([
            *(Write("delete", record.ref, if_version=record.version) for record in records),
            *(Write("create", audit.entry_ref(client), entry) for entry in audit_entries),
        ]) is not None

    def marks(self, client: firestore.Client, name: str) -> dict[str, Any]:
        snapshot = with_backoff(client.collection(SWEEP_COLLECTION).document(name).get)
        return snapshot.to_dict() or {}

    def save_marks(self, client: firestore.Client, name: str, marks: Mapping[str, Any]) -> None:
        ref = client.collection(SWEEP_COLLECTION).document(name)
        with_backoff(lambda: ref.set(dict(marks), merge=True))


def new_refs(
    collection: firestore.CollectionReference, ids: Sequence[str | None]
) -> list[DocumentReference]:
    return [collection.document(id) if id else collection.document() for id in ids]
