"""An in-memory queue for users' unit tests: no Java, no emulators, no network.

`MemoryQueue(registry)` runs tasks through the real processor (validation, claim, handler, retries,
cancel, leases) with a `MemoryStore` in place of Firestore and a fake clock: a retry's back-off
passes at once, and the outcomes are there to assert on.

    queue = MemoryQueue(registry)
    ref = queue.enqueue("orders/o-1", NewTask("order", "sendConfirmationEmail", {"orderId": "o-1"}))
    queue.run()
    assert queue.get(ref).state == "completed"

Handlers get a `Task` whose `ref` and `client` name the task but reach no database: a handler that
reads or writes Firestore itself needs the emulator suite.
"""

from __future__ import annotations

import copy
import datetime
import heapq
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import operations
from firetasks.config import DEFAULT_COLLECTIONS, TaskQueue
from firetasks.enqueue import NewTask
from firetasks.errors import TaskChanged, TaskNotFound
from firetasks.processor import TaskProcessor
from firetasks.record import TaskRecord
from firetasks.registry import HandlerRegistry
from firetasks.task import TRIGGER_STATES

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
        self.events: list[str] = []  # paths written, in order: what triggers would deliver

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
    ) -> list[DocumentReference]:
        if parent_fields is not None:
            if parent.path in self.documents:
                raise ValueError(f"{parent.path} already exists")
            self.put(parent.path, parent_fields, event=False)
        refs = [parent.collection(collection).document() for _ in documents]
        for ref, document in zip(refs, documents, strict=True):
            self.put(ref.path, document)
        return refs

    def put(self, path: str, fields: Mapping[str, Any], event: bool = True) -> datetime.datetime:
        """Write fields to the document at `path`; its new version."""
        document = self.documents.setdefault(path, {})
        self.created.setdefault(path, self.clock())
        for name, value in self._resolved(fields).items():
            if value is firestore.DELETE_FIELD:
                document.pop(name, None)
            else:
                document[name] = value
        self.versions[path] = VERSIONS + datetime.timedelta(microseconds=next(self._writes))
        if event:
            self.events.append(path)
        return self.versions[path]

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


class MemoryQueue:
    """A TaskQueue run inline: the real processor over a MemoryStore, on a fake clock."""

    def __init__(
        self, registry: HandlerRegistry, *, collections: tuple[str, ...] = DEFAULT_COLLECTIONS
    ) -> None:
        self.clock = FakeClock()
        self.store = MemoryStore(self.clock)
        self.waker = RecordingWaker()
        self.queue = TaskQueue(registry, collections=collections)
        self.processor = TaskProcessor(self.queue, waker=self.waker, store=self.store,
                                       clock=self.clock)

    def enqueue(
        self, parent: str, task: NewTask, *, collection: str | None = None
    ) -> DocumentReference:
        """Add a task under the document at `parent` (a path), as `add_tasks` does."""
        [ref] = self.store.create(self.store.client.document(parent), [task.document()],
                                  collection or self.queue.collections[0])
        return ref

    def write(self, path: str, fields: Mapping[str, Any]) -> DocumentReference:
        """Write a task document as a client SDK would, with the fields given."""
        self.store.put(path, fields)
        return self.store.client.document(path)

    def run(self, *, until: datetime.datetime | None = None) -> int:
        """Deliver every trigger event and every wake-up, moving the clock to each wake-up's time
        (up to `until`, if given), until nothing is left; the number delivered."""
        for step in range(MAX_STEPS):
            if self.store.events:
                record = self.store.read(self.store.client.document(self.store.events.pop(0)))
                if record is not None:
                    self.processor.process(record, TRIGGER_STATES)
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
        return operations.cancel(ref, store=self.store, **options)

    def expire_leases(self) -> int:
        """What the sweeper does to `running` tasks whose lease expired; how many it ended."""
        expired = [record for record in self.tasks(["running"])
                   if record.fields["leaseExpiresAt"] < self.clock()]
        return sum(self.processor.expire(record) is not None for record in expired)
