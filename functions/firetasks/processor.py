"""The processor: turns writes and wake-ups of task documents into exactly one run per attempt.

Every write of a task fires the trigger again (at least once, in no guaranteed order), so the
processor routes each delivery to what it calls for: a waiting task is settled
(firetasks.workflow); a task that just finished settles its dependents; any other version is
decided on (firetasks.decide: skip, fail as invalid, cancel, wait until due, queue for its limits
(firetasks.flow), or run) and the decision carried out. Attempts run in firetasks.attempts; every
state change is built by firetasks.transitions; every read and write goes through the store.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Collection
from typing import Any, Unpack

from firebase_functions import firestore_fn, logger
from firebase_functions.core import Change
from google.cloud.firestore import DocumentReference, DocumentSnapshot

from firetasks import db, debounce, events, transitions, workflow
from firetasks.attempts import Attempts
from firetasks.clock import Clock, utc_now
from firetasks.config import TaskQueue
from firetasks.decide import Do, decide
from firetasks.flow import CloudTasksDispatcher, Dispatcher, FlowControl, InvalidKey
from firetasks.limits import Limits
from firetasks.record import TaskRecord
from firetasks.registry import HandlerRegistry
from firetasks.retention import RetentionPolicy
from firetasks.retry import DEFAULT_RETRY
from firetasks.store import FirestoreStore, TaskStore
from firetasks.task import (
    FINAL_STATES,
    TRIGGER_STATES,
    WAKE_STATES,
    State,
    is_state,
    problems,
)
from firetasks.trigger_options import TaskTriggerOptions
from firetasks.wakeup import WAIT_LIMIT, CloudTasksWaker, Waker

TaskEvent = firestore_fn.Event[Change[DocumentSnapshot[DocumentReference] | None]]


class TaskProcessor:
    """Runs the handlers of one queue for the task documents of its triggers."""

    def __init__(
        self,
        queue: TaskQueue,
        waker: Waker | None = None,
        store: TaskStore | None = None,
        clock: Clock = utc_now,
        dispatcher: Dispatcher | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.queue = queue
        self.waker = waker or CloudTasksWaker()
        self.store = store or FirestoreStore()
        self.clock = clock
        self.sleep = sleep  # an early wake-up's wait (the emulator's); the kit's moves its clock
        self.flow = FlowControl(queue, self.store, clock, dispatcher or CloudTasksDispatcher())
        self.attempts = Attempts(queue, self.store, clock, self.waker, self.flow)

    @property
    def registry(self) -> HandlerRegistry:
        return self.queue.registry

    def on_write(self, event: TaskEvent) -> None:
        """The Firestore trigger: act on a `scheduled` task, log a deleted one. Then (as wake-ups
        do) read ahead the list of paused handlers if it nears expiry (firetasks.pauses)."""
        ref = db.client(event.database).document(event.document)
        record = TaskRecord.from_snapshot(event.data.after, ref)
        if record is None:
            before = TaskRecord.from_snapshot(event.data.before)
            context = before.describe() if before else {"taskId": ref.id, "path": ref.path}
            logger.info("skip processing deleted task", **context)
            return
        self.handle(record, _state_of(event.data.before))
        self.flow.pauses.refresh_ahead(db.client_of(ref))

    def handle(self, record: TaskRecord, before: object = None) -> None:
        """One write of a task, that left it `record` (and in state `before` until then): a
        `waiting` task is settled if it can be (first seen if it was just created); a task that
        just finished settles its waiting dependents, if it may have any; a `scheduled` one is
        processed."""
        if record.state == State.WAITING:
            self.settle(record, first=before is None)
            return
        if record.state in FINAL_STATES and before != record.state and record.may_have_dependents:
            self.settle_dependents(record)
        self.process(record, TRIGGER_STATES)

    def settle(self, record: TaskRecord, *, first: bool = True) -> int:
        """Release a waiting task whose dependencies completed, end it by its failure policy, or
        fail one that names itself, unknown tasks or a cycle; else leave it waiting. 1 if it was
        written, else 0."""
        context = record.describe()
        found = problems(record.fields)
        if found:
            return self._fail_invalid(record, tuple(found), {})
        fields = workflow.on_arrival(record, self.store, self.clock(), self._retention(record),
                                     first=first)
        if fields is None:
            logger.debug("task waits for its dependencies", after=workflow.dependency_ids(record),
                         **context)
            return 0
        if self._write(record, fields) is None:
            return 0
        logger.info("settled waiting task", outcome=fields["state"], error=fields.get("error"),
                    **context)
        return 1

    def settle_dependents(self, record: TaskRecord) -> int:
        """Settle the waiting dependents of a finished task; how many were written."""
        settled = workflow.settle_dependents(record, self.store, self._retention, self.clock())
        if settled:
            logger.info("settled dependents", dependents=settled, **record.describe())
        return settled

    def wake(self, ref: DocumentReference) -> None:
        """A wake-up from Cloud Tasks or the sweeper: run the task if it is (about to be) due."""
        record = self.store.read(ref)
        if record is None:
            logger.info("skip wake-up, task deleted", taskId=ref.id, path=ref.path)
            return
        run_at = record.run_at
        if record.state in WAKE_STATES and run_at is not None:
            wait = (run_at - self.clock()).total_seconds()
            if wait > WAIT_LIMIT:
                self.waker.wake_at(ref, run_at)
                return
            if wait > 0:  # only where wake-ups come early: the emulator's Cloud Tasks
                self.sleep(wait)
        self.process(record, WAKE_STATES)
        self.flow.pauses.refresh_ahead(db.client_of(ref))

    def run_admitted(self, ref: DocumentReference, at: datetime.datetime | None = None,
                     record: TaskRecord | None = None) -> None:
        """A dispatch from a limited handler's queue (firetasks.flow): run the task now. It
        returns when the attempt has ended, which frees the queue's slot for the next. `at`: the
        time a rate gate admitted it, its `startedAt`; `record`: the task, if read already."""
        record = record or self.store.read(ref)
        if record is None:
            logger.info("skip admitted task, deleted", taskId=ref.id, path=ref.path)
            return
        self.process(record, WAKE_STATES, admitted=True, admitted_at=at)
        self.flow.pauses.refresh_ahead(db.client_of(ref))

    def process(
        self, record: TaskRecord, states: Collection[State] = TRIGGER_STATES,
        admitted: bool = False, admitted_at: datetime.datetime | None = None,
    ) -> None:
        """Act on one version of a task document, as `decide` says.

        A task written without `createdAt` gets the document's creation time with the processor's
        first write: lists and stats order by it.
        """
        registration = self.registry.lookup(record.type, record.action)
        decision = decide(record, states, registration, self.clock(), admitted=admitted)
        if decision.do == Do.SKIP:  # the echo of a write of its own, most often: a log line per
            return  # echo would be most of the log (and, on the emulator, a tenth of throughput)
        context = record.describe()
        stamp = {} if "createdAt" in record.fields or record.created is None else {
            "createdAt": record.created}
        if decision.do == Do.INVALID:
            self._fail_invalid(record, decision.problems, stamp)
        elif decision.do == Do.CANCEL:
            fields = transitions.cancel_at_start(record, self.clock(), self._retention(record))
            self._write(record, fields | stamp)
        elif decision.do == Do.UNHANDLED:
            logger.info("skip processing task, no handler exists", **context)
        elif decision.do == Do.FOLD:  # a client's debounced enqueue joins its key's burst
            burst = debounce.fold(record, self.store)
            logger.info("skip folding debounced enqueue, folded by another delivery"
                        if burst is None else "debounced enqueue folded into its burst's task",
                        burst=burst and burst.path, **context)
        elif decision.do == Do.NOT_DUE and events.deliver_waiting(record, self.store):
            logger.info("wait delivered an event found after it was registered", **context)
        elif decision.do == Do.NOT_DUE and decision.run_at is not None:
            logger.info("task not due yet", runAt=decision.run_at.isoformat(), **context)
            self.waker.wake_at(record.ref, decision.run_at)
        elif registration is None:
            return
        elif (pause := self.flow.pause_of(record, registration)) is not None:
            held = self.flow.hold(record, pause, stamp)
            logger.info(f"task held: its handler is {pause.describe()}" if held else
                        "skip holding task, changed by another write", pausedFor=pause.target,
                        **context)
        elif decision.do == Do.QUEUE and registration.limits is not None:
            self._queue(record, registration.limits, stamp, woken=states == WAKE_STATES)
        elif decision.do == Do.RUN_ATOMIC:
            self.attempts.run_atomic(record, registration, stamp | _started(admitted_at))
        else:
            self.attempts.run_claimed(record, registration, stamp | _started(admitted_at),
                                      hand_over=admitted and self.flow.hands_over(registration))

    def _queue(self, record: TaskRecord, limits: Limits, stamp: dict[str, Any],
               woken: bool) -> None:
        try:
            queued = self.flow.queue_task(record, limits, stamp, woken)
        except InvalidKey as exc:
            logger.warn("invalid task: its limit key failed", error=str(exc),
                        **record.describe())
            self._write(record, transitions.invalid(record, str(exc), self.clock(),
                                                    self._retention(record)) | stamp)
            return
        if queued:
            logger.info("task queued for its handler's limits", **record.describe())
        else:
            logger.info("skip queuing task, changed by another write", **record.describe())

    def expire(self, record: TaskRecord) -> dict[str, Any] | None:
        """End a `running` attempt whose lease expired (its invocation died); what was written."""
        registration = self.registry.lookup(record.type, record.action)
        fields = transitions.expire(record, self.clock(),
                                    registration.retry if registration else DEFAULT_RETRY,
                                    self._retention(record))
        if self._write(record, fields) is None:
            return None
        logger.warn("lease expired", outcome=fields["state"], **record.describe())
        if fields["state"] == State.RETRYING:
            self.waker.wake_at(record.ref, fields["runAt"])
        return fields

    def _fail_invalid(self, record: TaskRecord, problems: tuple[str, ...],
                      stamp: dict[str, Any]) -> int:
        """End a malformed task `failed` with an InvalidTask error listing its problems."""
        logger.warn("invalid task", problems=list(problems), **record.describe())
        fields = transitions.invalid(record, "; ".join(problems), self.clock(),
                                     self._retention(record))
        return int(self._write(record, fields | stamp) is not None)

    def _write(self, record: TaskRecord, fields: dict[str, Any]) -> Any | None:
        """Update the task only if it is still at the record's version; the new version, or None
        if it was not."""
        version = self.store.write_if_unchanged(record.ref, record.version, fields)
        if version is None:
            logger.info("skip processing task, changed by another write", **record.describe())
        return version

    def _retention(self, record: TaskRecord) -> RetentionPolicy:
        return self.registry.retention(record.type, record.action)


def _state_of(snapshot: DocumentSnapshot[DocumentReference] | None) -> State | None:
    """The state a version of a task was in (None: none, or no version): read alone, not with
    the whole document, which decoding would copy on every delivery."""
    if snapshot is None or not snapshot.exists:
        return None
    try:
        value = snapshot.get("state")
    except KeyError:  # no `state` field
        return None
    return State(value) if is_state(value) else None


def _started(admitted_at: datetime.datetime | None) -> dict[str, Any]:
    """An admitted task's `startedAt`: when its rate gate let it start."""
    return {} if admitted_at is None else {"startedAt": admitted_at}


def task_trigger(
    processor: TaskProcessor, *, name: str, collection: str | None = None,
    document: str | None = None, **options: Unpack[TaskTriggerOptions]
) -> Callable[[TaskEvent], None]:
    """A Cloud Function named `name` that processes the tasks of one of the queue's collections
    (the first by default) under any top-level parent, or at `document`, a path pattern whose
    last collection is one of the queue's (`invoices/{invoiceId}/jobs/{taskId}`).

    Assign it to a module-level variable of the same name in main.py, where the Functions runtime
    looks it up: `process_tasks = task_trigger(processor, name="process_tasks")`.
    """
    if document is None:
        document = processor.queue.document(collection)
    elif document.strip("/").split("/")[-2] not in processor.queue.collections:
        raise ValueError(f"{document!r}: its collection is not one of the queue's "
                         f"{processor.queue.collections}, so its tasks would not be swept, "
                         "counted or listed: add it to TaskQueue(collections=...)")

    def trigger(event: TaskEvent) -> None:
        processor.on_write(event)

    trigger.__name__ = trigger.__qualname__ = name
    return firestore_fn.on_document_written(document=document, **options)(trigger)
