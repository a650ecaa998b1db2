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
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.transforms import Sentinel, _NumericValue, _ValueList

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


Path = tuple[str, ...]
_MISSING = object()
_TRANSFORMS = (firestore.Increment, firestore.ArrayUnion, firestore.ArrayRemove, firestore.Maximum,
               firestore.Minimum)


class MemoryStore:
    """Documents in a dict, each with a version (a timestamp, as in Firestore) that every write
    moves on. Every write of a document is queued as a trigger event for MemoryQueue.

    Writes apply as Firestore applies them: a create or a set replaces the document; a set with
    merge deep-merges maps; an update (and `put`) takes each top-level name as a field path
    ("a.b" is field b of map a) and replaces the value there. SERVER_TIMESTAMP becomes the clock's
    time and Increment, ArrayUnion, ArrayRemove, Maximum and Minimum are applied, at any depth;
    DELETE_FIELD deletes (in an update, only as a top-level path, as Firestore's client allows).
    What Firestore refuses (a sentinel inside an array, DELETE_FIELD in a create or a plain set,
    conflicting paths in one update) raises ValueError naming it; nothing stores a sentinel."""

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
        after: dict[str, dict[str, Any] | None] = {}  # all or nothing: every write is worked out
        changes: list[tuple[str, dict[str, Any] | None]] = []  # before any is applied

        def current(path: str) -> dict[str, Any] | None:
            return after[path] if path in after else self.documents.get(path)

        for write in staged:
            path, document = write.ref.path, current(write.ref.path)
            if write.operation == "create" and document is not None:
                raise exceptions.Conflict(  # type: ignore[no-untyped-call]
                    f"document already exists: {path}")
            if write.operation == "update" and document is None:
                raise exceptions.NotFound(  # type: ignore[no-untyped-call]
                    f"no document to update: {path}")
            if write.if_version is not None and self.versions.get(path) != write.if_version:
                raise exceptions.FailedPrecondition(  # type: ignore[no-untyped-call]
                    f"changed since it was read: {path}")
            after[path] = self.applied(write.operation, document, write.fields or {},
                                       merge=write.merge)
            changes.append((path, after[path]))
        self.applied("update", current(ref.path), fields)  # refuse the task's write before any
        for path, document in changes:
            if document is None:
                self._delete(path)
            else:
                self._store(path, document)
        committed = self.put(ref.path, fields)
        for path in {ref.path, *after}:  # as Firestore gives every write of a commit its time
            if path in self.documents:
                self.versions[path] = committed
        return committed

    def write_all_if_unchanged(
        self, changes: Sequence[tuple[TaskRecord, Mapping[str, Any]]]
    ) -> bool:
        if any(self.versions.get(record.path) != record.version for record, _ in changes):
            return False
        for record, fields in changes:  # refuse any write before applying one
            self.applied("update", self.documents.get(record.path), fields)
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
                and _array_contains(record.fields.get("after"), ref.id)]

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
        entry = None if audit_entry is None else self.applied("create", None, audit_entry)
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
        writes = [(ref.path, self.applied("create", None, document), True)
                  for ref, document in zip(refs, documents, strict=True)]
        if parent_fields is not None:
            writes.insert(0, (parent.path, self.applied("create", None, parent_fields), False))
        writes += [(lock.path, {"task": refs[index].path}, False) for index, lock in locks.items()]
        for path, document, event in writes:
            self._store(path, document, event)
        return refs

    def put(self, path: str, fields: Mapping[str, Any], event: bool = True) -> datetime.datetime:
        """Update the document at `path` (creating it if missing) as Firestore's update does: each
        name is a field path. Its new version."""
        return self._store(path, self.applied("update", self.documents.get(path), fields), event)

    def applied(
        self, operation: str, document: Mapping[str, Any] | None, fields: Mapping[str, Any],
        *, merge: bool = False,
    ) -> dict[str, Any] | None:
        """The document after a write of `fields` (a StagedWrite's operation) to `document` (None:
        missing): a new dict (None after a delete). Raises ValueError for what Firestore refuses."""
        if operation == "delete":
            return None
        top = operation == "update"
        values, deletes, transforms = _extract(fields, expand_dots=top)
        if operation == "update":
            tops = [_field_path(name) for name in fields]
            for path in tops:
                for other in tops:
                    if other != path and other[:len(path)] == path:
                        raise ValueError(f"conflicting field paths in one update: "
                                         f"{_dotted(path)}, {_dotted(other)}")
            nested = [path for path in deletes if path not in tops]
            if nested:
                raise ValueError(f"DELETE_FIELD may only be a top-level path of an update, not "
                                 f"nested at {_dotted(nested[0])}")
            result = copy.deepcopy(dict(document or {}))
            for path in tops:
                if path not in transforms:
                    _delete_at(result, path)
        elif merge:
            result = copy.deepcopy(dict(document or {}))
            for path in deletes:
                _delete_at(result, path)
        else:
            if deletes:
                raise ValueError(f"DELETE_FIELD at {_dotted(deletes[0])} in a {operation} "
                                 "without merge: Firestore refuses it")
            result = {}
        for path, value in values.items():
            _set_at(result, path, value)
        for path, transform in transforms.items():
            _set_at(result, path, self._transformed(_get_at(result, path), transform, path))
        return result

    def _transformed(self, current: Any, transform: Any, path: Path) -> Any:
        if transform is firestore.SERVER_TIMESTAMP:
            return self.clock()
        if isinstance(transform, firestore.Increment | firestore.Maximum | firestore.Minimum):
            operand = transform.value
            if not _is_number(current):
                return operand
            if isinstance(transform, firestore.Increment):
                return current + operand
            pick = max if isinstance(transform, firestore.Maximum) else min
            return current if pick(current, operand) == current else operand
        items = list(current) if isinstance(current, list) else []
        values = [_plain(value, path) for value in transform.values]
        if isinstance(transform, firestore.ArrayUnion):
            for value in values:
                if not any(_same(value, item) for item in items):
                    items.append(value)
            return items
        return [item for item in items if not any(_same(item, value) for value in values)]

    def _store(self, path: str, document: dict[str, Any] | None,
               event: bool = True) -> datetime.datetime:
        assert document is not None  # only a delete makes None
        before = self.documents.get(path, {}).get("state")
        self.documents[path] = document
        self.created.setdefault(path, self.clock())
        self.versions[path] = self.next_version()
        if event:
            self.events.append((path, before))
        return self.versions[path]

    def _delete(self, path: str) -> None:
        self.documents.pop(path, None)
        self.versions.pop(path, None)
        self.created.pop(path, None)

    def next_version(self) -> datetime.datetime:
        return VERSIONS + datetime.timedelta(microseconds=next(self._writes))


def _extract(
    fields: Mapping[str, Any], *, expand_dots: bool
) -> tuple[dict[Path, Any], list[Path], dict[Path, Any]]:
    """A write's fields as Firestore's client splits them: the values at their paths (maps walked
    down to their leaves; an empty map is a value), the paths to delete, and the transforms."""
    values: dict[Path, Any] = {}
    deletes: list[Path] = []
    transforms: dict[Path, Any] = {}

    def walk(path: Path, value: Any) -> None:
        if isinstance(value, dict) and value:
            for name, item in value.items():
                walk((*path, _name(name)), item)
        elif value is firestore.DELETE_FIELD:
            deletes.append(path)
        elif value is firestore.SERVER_TIMESTAMP or isinstance(value, _TRANSFORMS):
            transforms[path] = value
        else:
            values[path] = _plain(value, path)

    for name, value in fields.items():
        walk(_field_path(name) if expand_dots else (_name(name),), value)
    return values, deletes, transforms


def _name(name: object) -> str:
    if not isinstance(name, str):
        raise ValueError(f"a field name must be a string, got {name!r}")
    return name


def _field_path(name: object) -> Path:
    return tuple(FieldPath.from_string(_name(name)).parts)


def _plain(value: Any, path: Path) -> Any:
    """A copy of a value to store, refusing the sentinels Firestore refuses there (in arrays)."""
    if isinstance(value, dict):
        return {_name(name): _plain(item, (*path, name)) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, path) for item in value]
    if isinstance(value, Sentinel | _ValueList | _NumericValue):
        raise ValueError(f"{_sentinel(value)} at {_dotted(path)} is not supported by MemoryStore: "
                         "Firestore takes transforms and sentinels only as field values, not in "
                         "arrays")
    return copy.deepcopy(value)


def _sentinel(value: object) -> str:
    for name in ("DELETE_FIELD", "SERVER_TIMESTAMP"):
        if value is getattr(firestore, name):
            return name
    return type(value).__name__


def _dotted(path: Path) -> str:
    return ".".join(path) or "(the document)"


def _set_at(document: dict[str, Any], path: Path, value: Any) -> None:
    for name in path[:-1]:
        if not isinstance(document.get(name), dict):
            document[name] = {}
        document = document[name]
    document[path[-1]] = value


def _get_at(document: Mapping[str, Any], path: Path) -> Any:
    value: Any = document
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return _MISSING
        value = value[name]
    return value


def _delete_at(document: dict[str, Any], path: Path) -> None:
    parent = _get_at(document, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: object, b: object) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _array_contains(array: object, value: object) -> bool:
    """Firestore's array-contains: only an array's items match."""
    return isinstance(array, list) and any(_same(item, value) for item in array)


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
