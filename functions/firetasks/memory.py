"""The test kit's store: task documents (and any other) in a dict, with versions, written as
Firestore writes them (firetasks.memory_writes); every write of a document queued as the trigger
event MemoryQueue delivers. It implements firetasks.store.TaskStore, so the real processor,
sweeper, prune and tick run on it."""

from __future__ import annotations

import copy
import datetime
import itertools
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.conditional import Write
from firetasks.errors import TaskChanged, TaskNotFound
from firetasks.memory_client import MemoryClient
from firetasks.memory_faults import FaultPlan
from firetasks.memory_writes import applied, array_contains, batch_applied
from firetasks.record import TaskRecord
from firetasks.store import FirestoreStore, new_refs
from firetasks.task import LIMIT_KEY, WAIT_RANK, WAKE_STATES

START = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
VERSIONS = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)  # versions count up from here


class FakeClock:
    """The time, moved only by `advance` (and by MemoryQueue.run, to the next wake-up)."""

    def __init__(self, start: datetime.datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


class MemoryStore(FirestoreStore):
    """Documents in a dict, each with a version (a timestamp, as in Firestore) that every write
    moves on, written as Firestore writes them (firetasks.memory_writes: what it refuses raises
    ValueError naming it). Every write of a document is queued as a trigger event. Conditional
    writes go through FirestoreStore's (firetasks.conditional) to `commit`, where `faults`
    (firetasks.memory_faults) can fail them."""

    def __init__(self, clock: FakeClock, database: str = "(default)") -> None:
        self.clock = clock
        self.client = MemoryClient(self, database=database)  # refs that read and write here
        self.documents: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, datetime.datetime] = {}
        self._writes = itertools.count(1)
        self.created: dict[str, datetime.datetime] = {}
        self.audit: list[dict[str, Any]] = []
        self.sweep_marks: dict[str, dict[str, Any]] = {}  # the sweeper's (firetasks.recovery)
        self.events: list[tuple[str, object]] = []  # what triggers would deliver, in order:
        # the paths written, each with its document's state before the write
        self.faults = FaultPlan()

    def read(self, ref: DocumentReference) -> TaskRecord | None:
        if ref.path not in self.documents:
            return None
        return TaskRecord(ref, copy.deepcopy(self.documents[ref.path]), self.versions[ref.path],
                          self.created[ref.path])

    def commit(self, writes: Sequence[Write]) -> datetime.datetime:
        """A batch of writes, all or nothing (firetasks.memory_writes.batch_applied), each
        document written queued as a trigger event (a delete is not); `faults` may fail it."""
        fault = self.faults.before()
        after = batch_applied(writes, self.documents.get, self.versions.get, self.clock())
        version = self._versioned(list(after), self._apply(after) or self.clock())
        self.faults.after(fault)
        return version

    def _apply(self, after: Mapping[str, dict[str, Any] | None]) -> datetime.datetime | None:
        version = None
        for path, document in after.items():
            if document is None:
                self._delete(path)
            else:
                version = self._store(path, document)
        return version

    def _versioned(self, paths: Sequence[str], version: datetime.datetime) -> datetime.datetime:
        """Give each written document of a commit the commit's version, as Firestore does."""
        for path in paths:
            if path in self.documents:
                self.versions[path] = version
        return version

    def read_all(self, refs: Sequence[DocumentReference]) -> list[TaskRecord | None]:
        return [self.read(ref) for ref in refs]

    def count_in(self, refs: Sequence[DocumentReference], states: Collection[str]) -> int:
        return sum(record is not None and record.state in states for record in self.read_all(refs))

    def dependents(
        self, ref: DocumentReference, states: Collection[str] | None = None
    ) -> list[TaskRecord]:
        collection = ref.path.rsplit("/", 1)[0]
        siblings = (self.read(self.client.document(path)) for path in list(self.documents)
                    if path.rsplit("/", 1)[0] == collection)
        return [record for record in siblings if record is not None
                and (states is None or record.state in states)
                and array_contains(record.fields.get("after"), ref.id)]

    def oldest_waiting(
        self, beside: DocumentReference, limit_key: str, count: int = 1
    ) -> list[TaskRecord]:
        waiting = [record for record in map(self.read, _group(self, beside.parent.id))
                   if record is not None and record.state in WAKE_STATES
                   and record.fields.get(LIMIT_KEY) == limit_key]
        ranked = [record for record in waiting if WAIT_RANK in record.fields]  # as Firestore's
        return sorted(ranked, key=lambda record: record.fields[WAIT_RANK])[:count]  # order_by

    def transition(
        self, record: TaskRecord, changes: Mapping[str, Any], audit_entry: Mapping[str, Any] | None
    ) -> None:
        if record.path not in self.documents:
            raise TaskNotFound(f"no task at {record.path}")
        if self.versions[record.path] != record.version:
            raise TaskChanged(f"another write changed {record.path} first: reload it")
        entry = None if audit_entry is None else self._applied("create", None, audit_entry)
        self.put(record.path, changes)
        if entry is not None:
            self.audit.append(entry)

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
        refs = new_refs(parent.collection(collection), ids or [None] * len(documents))
        paths = [*refs, *locks.values(), *([parent] if parent_fields is not None else [])]
        taken = [ref.path for ref in paths if ref.path in self.documents]
        if taken:
            raise exceptions.Conflict(  # type: ignore[no-untyped-call]
                f"document already exists: {taken[0]}")
        writes = [(ref.path, self._applied("create", None, document), True)
                  for ref, document in zip(refs, documents, strict=True)]
        if parent_fields is not None:
            writes.insert(0, (parent.path, self._applied("create", None, parent_fields), False))
        writes += [(lock.path, {"task": refs[index].path}, False) for index, lock in locks.items()]
        for path, document, event in writes:
            self._store(path, document, event)
        return refs

    def scan(
        self, client: firestore.Client, group: str, state: str, field: str,
        before: datetime.datetime, start_after: tuple[Any, str] | None = None,
    ) -> Iterator[list[TaskRecord]]:
        found = [record for record in map(self.read, _group(self, group))
                 if record is not None and record.state == state
                 and isinstance(record.fields.get(field), datetime.datetime)
                 and record.fields[field] < before]
        found.sort(key=lambda record: (record.fields[field], record.path))
        if start_after is not None:
            found = [record for record in found
                     if (record.fields[field], record.path) > start_after]
        yield found

    def create_task(self, ref: DocumentReference, fields: Mapping[str, Any]) -> bool:
        if ref.path in self.documents:
            return False
        self._store(ref.path, self._applied("create", None, fields))
        return True

    def delete_all_if_unchanged(
        self, records: Sequence[TaskRecord], audit_entries: Sequence[Mapping[str, Any]]
    ) -> bool:
        if any(self.versions.get(record.path) != record.version for record in records):
            return False
        for record in records:
            self._delete(record.path)
        self.audit += [self._applied("create", None, entry) or {} for entry in audit_entries]
        return True

    def marks(self, client: firestore.Client, name: str) -> dict[str, Any]:
        return dict(self.sweep_marks.get(name, {}))

    def save_marks(self, client: firestore.Client, name: str, marks: Mapping[str, Any]) -> None:
        self.sweep_marks.setdefault(name, {}).update(copy.deepcopy(dict(marks)))

    def put(self, path: str, fields: Mapping[str, Any], event: bool = True) -> datetime.datetime:
        """Update the document at `path` (creating it if missing) as Firestore's update does: each
        name is a field path. Its new version."""
        return self._store(path, self._applied("update", self.documents.get(path), fields), event)

    def _store(self, path: str, document: dict[str, Any] | None,
               event: bool = True) -> datetime.datetime:
        assert document is not None  # only a delete makes None
        before = self.documents.get(path, {}).get("state")
        self.documents[path] = document
        self.created.setdefault(path, self.clock())
        self.versions[path] = db.as_version(  # as Firestore gives it
            VERSIONS + datetime.timedelta(microseconds=next(self._writes)))
        if event:
            self.events.append((path, before))
        return self.versions[path]

    def _delete(self, path: str) -> None:
        for table in (self.documents, self.versions, self.created):
            table.pop(path, None)

    def _applied(self, operation: str, document: Mapping[str, Any] | None,
                 fields: Mapping[str, Any], merge: bool = False) -> dict[str, Any] | None:
        return applied(operation, document, fields, self.clock(), merge=merge)


def _group(store: MemoryStore, group: str) -> Iterator[DocumentReference]:
    """The documents of a collection group (every collection named `group`)."""
    for path in list(store.documents):
        if path.rsplit("/", 2)[-2] == group:
            yield store.client.document(path)
