"""An in-memory queue for users' unit tests: no Java, no emulators, no network.

`MemoryQueue(registry)` runs tasks through the real processor (validation, claim, handler, retries,
cancel, leases) with a `MemoryStore` in place of Firestore and a fake clock: a retry's back-off
passes at once, and the outcomes are there to assert on.

    queue = MemoryQueue(registry)
    ref = queue.enqueue("orders/o-1", NewTask("order", "sendConfirmationEmail", {"orderId": "o-1"}))
    queue.run()
    assert queue.get(ref).state == "completed"

Handlers get a `Task` whose `ref` and `client` name the task but reach no database: a handler that
reads or writes Firestore itself needs the emulator suite. An atomic handler's staged writes
(`task.writes`) do land in the store, with the task's outcome: `queue.document(path)` shows them.
"""

from __future__ import annotations

import copy
import datetime
import heapq
import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import operations, periodic
from firetasks.config import DEFAULT_COLLECTIONS, TaskQueue
from firetasks.enqueue import NewTask, add_tasks
from firetasks.errors import TaskChanged, TaskNotFound
from firetasks.processor import TaskProcessor
from firetasks.record import TaskRecord
from firetasks.registry import HandlerRegistry
from firetasks.staging import StagedWrites
from firetasks.store import new_refs
from firetasks.task import LIMIT_KEY, WAKE_STATES

START = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
VERSIONS = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)  # versions count up from here
MAX_STEPS = 10_000  # events and wake-ups in one run(): beyond, a task loops


class FakeClock:
    """The time, moved only by `advance` (and by MemoryQueue.run, to the next wake-up)."""

    def __init__(self, start: datetime.datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


class MemoryStore:
    """Documents in a dict, each with a version (a timestamp, as in Firestore) that every write
    moves on. Server timestamps become the clock's time; every write of a document is queued as a
    trigger event for MemoryQueue."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.client = firestore.Client(project="firetasks-memory",
                                       credentials=AnonymousCredentials())
        self.documents: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, datetime.datetime] = {}
        self._writes = itertools.count(1)
        self.created: dict[str, datetime.datetime] = {}
        self.audit: list[dict[str, Any]] = []
        self.events: list[tuple[str, object]] = []  # what triggers would deliver, in order:
        # the paths written, each with its document's state before the write

    def read(self, ref: DocumentReference) -> TaskRecord | None:
        if ref.path not in self.documents:
            return None
        return TaskRecord(ref, copy.deepcopy(self.documents[ref.path]), self.versions[ref.path],
                          self.created[ref.path])

    def write_if_unchanged(
        self, ref: DocumentReference, version: Any, fields: Mapping[str, Any]
    ) -> Any | None:
        if self.versions.get(ref.path) != version:
            return None
        return self.put(ref.path, fields)

    def commit_if_unchanged(
        self, ref: DocumentReference, version: Any, fields: Mapping[str, Any],
        staged: StagedWrites,
    ) -> Any | None:
        if self.versions.get(ref.path) != version:
            return None
        exists = {path: True for path in self.documents}
        for write in staged:  # all or nothing: check every write before applying any
            if write.operation == "create" and exists.get(write.ref.path):
                raise exceptions.Conflict(  # type: ignore[no-untyped-call]
                    f"document already exists: {write.ref.path}")
            if write.operation == "update" and not exists.get(write.ref.path):
                raise exceptions.NotFound(  # type: ignore[no-untyped-call]
                    f"no document to update: {write.ref.path}")
            if write.if_version is not None and self.versions.get(write.ref.path) != (
                    write.if_version):
                raise exceptions.FailedPrecondition(  # type: ignore[no-untyped-call]
                    f"changed since it was read: {write.ref.path}")
            exists[write.ref.path] = write.operation != "delete"
        written = [ref.path]
        for write in staged:
            if write.operation == "delete" or (write.operation == "set" and not write.merge):
                self.documents.pop(write.ref.path, None)
            if write.operation != "delete":
                self.put(write.ref.path, write.fields or {})
                written.append(write.ref.path)
        committed = self.put(ref.path, fields)
        for path in written:  # as Firestore gives every write of a commit its time
            self.versions[path] = committed
        return committed

    def write_all_if_unchanged(
        self, changes: Sequence[tuple[TaskRecord, Mapping[str, Any]]]
    ) -> bool:
        if any(self.versions.get(record.path) != record.version for record, _ in changes):
            return False
        for record, fields in changes:
            self.put(record.path, fields)
        return True

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
                and ref.id in (record.fields.get("after") or [])]

    def oldest_waiting(
        self, beside: DocumentReference, limit_key: str, count: int = 1
    ) -> list[TaskRecord]:
        group = beside.parent.id
        waiting = [record for record in (self.read(self.client.document(path))
                                         for path in list(self.documents)
                                         if path.rsplit("/", 2)[-2] == group)
                   if record is not None and record.state in WAKE_STATES
                   and record.fields.get(LIMIT_KEY) == limit_key]
        return sorted(waiting, key=lambda record: record.fields["createdAt"])[:count]

    def transition(
        self, record: TaskRecord, changes: Mapping[str, Any], audit_entry: Mapping[str, Any] | None
    ) -> None:
        if record.path not in self.documents:
            raise TaskNotFound(f"no task at {record.path}")
        if self.versions[record.path] != record.version:
            raise TaskChanged(f"another write changed {record.path} first: reload it")
        self.put(record.path, changes)
        if audit_entry is not None:
            self.audit.append(self._resolved(audit_entry))

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
        if parent_fields is not None:
            self.put(parent.path, parent_fields, event=False)
        for ref, document in zip(refs, documents, strict=True):
            self.put(ref.path, document)
        for index, lock in locks.items():
            self.put(lock.path, {"task": refs[index].path}, event=False)
        return refs

    def put(self, path: str, fields: Mapping[str, Any], event: bool = True) -> datetime.datetime:
        """Write fields to the document at `path`; its new version."""
        before = self.documents.get(path, {}).get("state")
        document = self.documents.setdefault(path, {})
        self.created.setdefault(path, self.clock())
        for name, value in self._resolved(fields).items():
            if value is firestore.DELETE_FIELD:
                document.pop(name, None)
            else:
                document[name] = value
        self.versions[path] = self.next_version()
        if event:
            self.events.append((path, before))
        return self.versions[path]

    def next_version(self) -> datetime.datetime:
        return VERSIONS + datetime.timedelta(microseconds=next(self._writes))

    def _resolved(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self.clock() if value is firestore.SERVER_TIMESTAMP else copy.deepcopy(value)
                for name, value in fields.items()}


class RecordingWaker:
    """Keeps wake-ups in time order, for MemoryQueue.run to deliver."""

    def __init__(self) -> None:
        self.pending: list[tuple[datetime.datetime, int, DocumentReference]] = []
        self._order = itertools.count()

    def wake_at(self, ref: DocumentReference, at: datetime.datetime) -> bool:
        heapq.heappush(self.pending, (at, next(self._order), ref))
        return True


class RecordingDispatcher:
    """Keeps the limited handlers' dispatches in order (a duplicate id once), for MemoryQueue.run
    to deliver one at a time: concurrency 1, whatever a handler's limit; rates are not paced."""

    def __init__(self) -> None:
        self.pending: list[DocumentReference] = []
        self.ids: set[str] = set()

    def dispatch(self, ref: DocumentReference, function: str, id: str, timeout_sec: int) -> bool:
        if id not in self.ids:
            self.ids.add(id)
            self.pending.append(ref)
        return True


class MemoryQueue:
    """A TaskQueue run inline: the real processor over a MemoryStore, on a fake clock."""

    def __init__(
        self, registry: HandlerRegistry, *, collections: tuple[str, ...] = DEFAULT_COLLECTIONS
    ) -> None:
        self.clock = FakeClock()
        self.store = MemoryStore(self.clock)
        self.waker = RecordingWaker()
        self.queue = TaskQueue(registry, collections=collections)
        self.dispatcher = RecordingDispatcher()
        self.processor = TaskProcessor(self.queue, waker=self.waker, store=self.store,
                                       clock=self.clock, dispatcher=self.dispatcher)

    def enqueue(
        self, parent: str, task: NewTask, *, collection: str | None = None
    ) -> DocumentReference:
        """Add a task under the document at `parent` (a path), as `add_tasks` does."""
        [ref] = self.add(parent, [task], collection=collection)
        return ref

    def add(
        self, parent: str, tasks: Sequence[NewTask], *, collection: str | None = None
    ) -> list[DocumentReference]:
        """Add tasks under `parent` atomically, as `add_tasks` does: keys, dependencies."""
        return add_tasks(self.store.client.document(parent), tasks,
                         collection=collection or self.queue.collections[0], store=self.store)

    def write(self, path: str, fields: Mapping[str, Any]) -> DocumentReference:
        """Write a task document as a client SDK would, with the fields given."""
        self.store.put(path, fields)
        return self.store.client.document(path)

    def run(self, *, until: datetime.datetime | None = None) -> int:
        """Deliver every trigger event and every wake-up, moving the clock to each wake-up's time
        (up to `until`, if given), until nothing is left; the number delivered."""
        for step in range(MAX_STEPS):
            if self.store.events:
                path, before = self.store.events.pop(0)
                record = self.store.read(self.store.client.document(path))
                if record is not None and path.split("/")[-2] in self.queue.collections:
                    self.processor.handle(record, before)
            elif self.dispatcher.pending:
                self.processor.run_admitted(self.dispatcher.pending.pop(0))
            elif self.waker.pending and (until is None or self.waker.pending[0][0] <= until):
                at, _, ref = heapq.heappop(self.waker.pending)
                self.clock.now = max(self.clock.now, at)
                self.processor.wake(ref)
            else:
                return step
        raise RuntimeError(f"tasks still running after {MAX_STEPS} steps: a handler loops")

    def get(self, ref: DocumentReference | str) -> TaskRecord:
        path = ref if isinstance(ref, str) else ref.path
        record = self.store.read(self.store.client.document(path))
        if record is None:
            raise TaskNotFound(f"no task at {path}")
        return record

    def document(self, path: str) -> dict[str, Any] | None:
        """The fields of any document in the store (an atomic handler's writes, say)."""
        return copy.deepcopy(self.store.documents.get(path))

    def tasks(self, states: Iterable[str] | None = None) -> list[TaskRecord]:
        """Every task of the queue's collections, in the order written (optionally only those in
        `states`)."""
        wanted = set(states) if states is not None else None
        found = [self.get(path) for path in self.store.documents
                 if path.split("/")[-2] in self.queue.collections]
        return [record for record in found if wanted is None or record.state in wanted]

    def retry(self, ref: DocumentReference, **options: Any) -> dict[str, Any]:
        """What an operator's Retry does (firetasks.operations.retry)."""
        return operations.retry(ref, store=self.store, **options)

    def cancel(self, ref: DocumentReference, **options: Any) -> dict[str, Any]:
        """What an operator's Cancel does (firetasks.operations.cancel)."""
        return operations.cancel(ref, store=self.store, queue=self.queue, now=self.clock(),
                                 **options)

    def tick(self, type: str, action: str) -> DocumentReference | None:
        """What a periodic handler's scheduled function does at the clock's time
        (firetasks.periodic.tick): the task of its latest firing, None if that exists already."""
        fire = periodic.firing(self.queue, type, action, self.clock())
        path = fire.path(self.queue)
        if path in self.store.documents:
            return None
        return self.write(path, fire.document())

    def expire_leases(self) -> int:
        """What the sweeper does to `running` tasks whose lease expired; how many it ended."""
        expired = [record for record in self.tasks(["running"])
                   if record.fields["leaseExpiresAt"] < self.clock()]
        return sum(self.processor.expire(record) is not None for record in expired)
