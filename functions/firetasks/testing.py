"""An in-memory queue for users' unit tests: no Java, no emulators, no network.

`MemoryQueue(registry)` runs tasks through the real processor (validation, claim, handler, retries,
cancel, leases), the real sweeper, prune and periodic tick, with a `MemoryStore`
(firetasks.memory) in place of Firestore and a fake clock: a retry's back-off passes at once, and
the outcomes are there to assert on. The clock starts at START (2030-01-01 UTC).

    queue = MemoryQueue(registry)
    ref = queue.enqueue("orders/o-1", NewTask("order", "sendConfirmationEmail", {"orderId": "o-1"}))
    queue.run()
    assert queue.get(ref).state == "completed"

Handlers get a `Task` whose `ref`, `parent` and `client` reach the kit's in-memory Firestore
(firetasks.memory_client): they read and write the store's documents, `queue.document(path)` shows
them, and a task written there is a trigger event. An atomic handler's staged writes
(`task.writes`) land there too, with the task's outcome. While the kit runs, the library logs
through Python's `logging` (logger "firetasks"), where pytest's caplog sees it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import functools
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from google.cloud.firestore import DocumentReference

from firetasks import events
from firetasks.config import TaskQueue
from firetasks.enqueue import add_tasks
from firetasks.errors import TaskNotFound
from firetasks.handler import Task
from firetasks.memory import START, FakeClock, MemoryStore
from firetasks.memory_client import MemoryClient
from firetasks.memory_faults import Crash
from firetasks.memory_kit import Triggers, UntriggeredTask, UntriggeredTaskWarning, kit_logging
from firetasks.memory_operators import OperatorVerbs
from firetasks.new_task import NewTask
from firetasks.processor import TaskProcessor
from firetasks.record import TaskRecord
from firetasks.registry import Handler, HandlerRegistry
from firetasks.task import DEBOUNCE_UNTIL, DEFAULT_COLLECTIONS, split_handler_name
from firetasks.wakeup import WAIT_LIMIT, HorizonWaker

__all__ = ["START", "FakeClock", "MemoryClient", "MemoryQueue", "MemoryStore", "UntriggeredTask",
           "UntriggeredTaskWarning"]
MAX_STEPS = 10_000  # events and wake-ups in one run(): beyond, a task loops


@contextlib.contextmanager
def _retried(again: Callable[[], object]) -> Iterator[None]:
    """A Cloud Task's invocation: if its worker dies (a kit Crash), Cloud Tasks delivers it
    again (`again()` puts it back)."""
    try:
        yield
    except Crash:
        again()
        raise


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
        self.queued: dict[str, DocumentReference] = {}  # by id: what cancel() takes back

    def dispatch(self, ref: DocumentReference, function: str, id: str, timeout_sec: int) -> bool:
        if id not in self.ids:
            self.ids.add(id)
            self.queued[id] = ref
            self.pending.append(ref)
        return True

    def cancel(self, function: str, id: str) -> None:
        ref = self.queued.pop(id, None)
        for index, pending in enumerate(self.pending):
            if pending is ref:
                del self.pending[index]
                return


class MemoryQueue(OperatorVerbs):
    """A TaskQueue run inline: the real processor over a MemoryStore, on a fake clock.

    `MemoryQueue(queue)` takes the app's TaskQueue (its registry, collections and timeout), or
    a HandlerRegistry (with `collections=`, the tasks collections; default "tasks"). It runs the
    tasks a deployed `task_trigger` runs: those under a top-level parent, or, given `documents=`,
    those at the trigger patterns given (`["invoices/{invoiceId}/jobs/{taskId}"]`). `start`: the
    fake clock's first time (START, 2030-01-01 UTC, by default). `raise_errors`: `run()` raises a
    handler's exception once the attempt's outcome is written (Celery's task_eager_propagates).
    """

    waker: RecordingWaker  # the kit's: wake-ups it holds until run() reaches their time

    def __init__(
        self, queue: TaskQueue | HandlerRegistry, *, collections: tuple[str, ...] | None = None,
        documents: Sequence[str] = (), start: datetime.datetime = START,
        raise_errors: bool = False,
    ) -> None:
        if isinstance(queue, HandlerRegistry):
            queue = TaskQueue(queue, collections=collections or DEFAULT_COLLECTIONS)
        elif not isinstance(queue, TaskQueue):
            raise TypeError(f"MemoryQueue takes a TaskQueue (firetasks.TaskQueue) or a "
                            f"HandlerRegistry, not {type(queue).__name__}")
        elif collections is not None:
            raise TypeError("MemoryQueue(queue, collections=...): a TaskQueue names its own "
                            "collections (TaskQueue(registry, collections=...))")
        self.errors: list[Exception] = []  # the handlers' exceptions, with raise_errors
        self.delivered: list[tuple[TaskRecord, object]] = []  # each event delivered: the
        # version it carried, the state before
        self.raise_errors = raise_errors
        self.clock = FakeClock(start)
        self.store = MemoryStore(self.clock, database=queue.database)
        self.waker = RecordingWaker()
        self.queue = dataclasses.replace(queue, registry=self._kit_registry(queue.registry))
        self.triggers = Triggers(self.queue, documents)
        self.dispatcher = RecordingDispatcher()
        self.processor = TaskProcessor(self.queue, waker=HorizonWaker(self.waker, self.clock),
                                       store=self.store,
                                       clock=self.clock, dispatcher=self.dispatcher,
                                       sleep=self.clock.advance)

    @property
    def client(self) -> MemoryClient:
        """The kit's Firestore client (firetasks.memory_client): what handlers get as
        `task.client`, reading and writing the kit's documents."""
        return self.store.client

    def enqueue(
        self, parent: str, task: NewTask, *, collection: str | None = None
    ) -> DocumentReference:
        """Add a task under the document at `parent` (a path), as `add_tasks` does."""
        [ref] = self.add(parent, [task], collection=collection)
        return ref

    def add(
        self, parent: str, tasks: Sequence[NewTask], *, collection: str | None = None
    ) -> list[DocumentReference]:
        """Add tasks under `parent` atomically, as `add_tasks` does: keys, dependencies. Raises
        UntriggeredTask if no trigger the kit mirrors would run tasks there."""
        collection = collection or self.queue.collections[0]
        self.triggers.check(f"{parent}/{collection}/x")
        return add_tasks(self.store.client.document(parent), tasks, collection=collection,
                         store=self.store, queue=self.queue, clock=self.clock)

    def send_event(self, parent: str, name: str, data: Mapping[str, Any] | None = None, *,
                   id: str | None = None) -> DocumentReference:
        """Send the event `name` under the document at `parent`, as `send_event` does: the next
        `run()` delivers it to the waits that match it (firetasks.events)."""
        return events.send_event(self.store.client.document(parent), name, data, id=id)

    def write(self, path: str, fields: Mapping[str, Any]) -> DocumentReference:
        """Write a document as a client SDK would, with the fields given (a trigger event)."""
        self.store.put(path, fields)
        return self.store.client.document(path)

    @kit_logging
    def run(self, *, until: datetime.datetime | None = None) -> int:
        """Deliver every trigger event and every wake-up, moving the clock to each wake-up's time
        (up to `until`, if given), until nothing is left; the number delivered. A task no
        trigger matches is left as it is, with an UntriggeredTaskWarning."""
        for step in range(MAX_STEPS):
            if self.store.events:
                self.deliver()
            elif self.dispatcher.pending:
                ref = self.dispatcher.pending.pop(0)
                with _retried(functools.partial(self.dispatcher.pending.insert, 0, ref)):
                    self.processor.run_admitted(ref)
            elif self.waker.pending and (until is None or self.waker.pending[0][0] <= until):
                at, _, ref = heapq.heappop(self.waker.pending)
                self.clock.now = max(self.clock.now, at)
                with _retried(functools.partial(self.waker.wake_at, ref, at)):
                    if not self._moved(ref):
                        self.processor.wake(ref)
            else:
                return step
            if self.errors:
                raise self.errors.pop(0)
        raise RuntimeError(f"tasks still running after {MAX_STEPS} steps: a handler loops")

    @kit_logging
    def deliver(self, event: int = 0) -> TaskRecord | None:
        """Deliver one pending trigger event (the `event`-th, in the order written: out of order,
        if not the first) with its document as it is now: what was delivered, kept in
        `delivered` for `redeliver`."""
        path, before = self.store.events.pop(event)
        record = self.store.read(self.store.client.document(path))
        if record is not None and self.triggers.runs(path):
            self.delivered.append((record, before))
            self.processor.handle(record, before)
        elif record is not None and events.is_event(path):
            events.on_event(record.ref, record.fields, self.queue.collections, self.store)
        return record

    @kit_logging
    def redeliver(self, delivered: int) -> None:
        """Deliver again the `delivered`-th event delivered so far, with the version it carried
        then: a duplicate, late if the task moved on since."""
        self.processor.handle(*self.delivered[delivered])

    def _moved(self, ref: DocumentReference) -> bool:
        """A wake-up of a debounced task whose `runAt` moved later is delivered again then: a
        deployed wake function waits (up to WAIT_LIMIT) while other enqueues may come. Any other
        early wake-up runs the task, the processor's wait moving the clock (`sleep`)."""
        record = self.store.read(ref)
        run_at = record.run_at if record is not None and DEBOUNCE_UNTIL in record.fields else None
        if run_at is None or not 0 < (run_at - self.clock.now).total_seconds() <= WAIT_LIMIT:
            return False
        self.waker.wake_at(ref, run_at)
        return True

    def _kit_registry(self, registry: HandlerRegistry) -> HandlerRegistry:
        """The user's registry as the kit runs it: with raise_errors, each handler wrapped to
        keep its exception for `run()` (the user's registry is left as it is)."""
        if not self.raise_errors:
            return registry
        kit = HandlerRegistry()
        for name in registry.names():
            type, action = split_handler_name(name)
            registration = registry.lookup(type, action)
            assert registration is not None
            options = {field.name: getattr(registration, field.name)
                       for field in dataclasses.fields(registration) if field.name != "handler"}
            kit.register(type, action, self._keeping_errors(registration.handler), **options)
        return kit

    def _keeping_errors(self, handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(task: Task) -> Any:
            try:
                return handler(task)
            except Exception as exc:
                self.errors.append(exc)
                raise
        return run

    def get(self, ref: DocumentReference | str) -> TaskRecord:
        record = self.store.read(self._ref(ref))
        if record is None:
            raise TaskNotFound(f"no task at {self._ref(ref).path}")
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

