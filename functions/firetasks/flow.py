"""Flow control, one slice: at most N attempts of a handler running at once, at most R starts
per window (the limits of firetasks.limits), enforced here for the processor.

A limited handler gets a Cloud Tasks queue of its own, served by a task-queue function
(`limited_triggers`) declared with `rate_limits` (max_concurrent_dispatches, max_dispatches_per_
second): Cloud Tasks, not firetasks, holds the count of running attempts and the rate's tokens,
across every instance. The trigger does not run a limited handler's task: it marks it `queuedAt`
and `limitKey` (the task stays `scheduled` or `retrying`, visibly waiting) and enqueues a Cloud
Task naming it. The queue dispatches it when a slot and a token are free; the dispatch runs the
task through the processor (the same claim or atomic commit as any task) and returns when the
attempt ends, which frees the slot. With a concurrency alone, an attempt hands its slot straight to
a waiting task, claimed in the batch of its outcome (firetasks.attempts), while the function's
timeout leaves room and the handler is not paused (firetasks.pauses: a paused handler's tasks are
held before they queue); limits per key are held in Firestore (firetasks.key_slots). A crashed
attempt's dispatch fails at once (its slot is free again); its task is
retried by the sweeper when its lease expires, through the queue again.

The Cloud Task's id derives from the task's path and the version that was queued, so a duplicate
enqueue of one queued version (the mark's own event) is refused by Cloud Tasks, not dispatched
twice. A rate is also held by a RateGate in Firestore (firetasks.rate_gate), strictly in every
window (Cloud Tasks' token bucket lets bursts through); a start records the time the gate
admitted it as `startedAt`.

A waiting task costs one write (`queuedAt`), one extra trigger invocation (that write's event),
one enqueue and one dispatch (none, when a hand-over claims it: it deletes the Cloud Task), and a
rate two writes more; docs/scaling.md has the ceilings and the measurements.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol, Unpack

import flask
from firebase_functions import logger, options
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.clock import Clock
from firetasks.config import TaskQueue
from firetasks.fair_shares import SHARE_KEY, fair_mark
from firetasks.handler import Task
from firetasks.key_slots import KeySlots, key_id, reclaim_expired
from firetasks.limits import Limits
from firetasks.pauses import Pause, Pauses
from firetasks.rate_gate import RateGate
from firetasks.record import TaskRecord
from firetasks.registry import Registration
from firetasks.store import TaskStore
from firetasks.task import (
    LIMIT_KEY,
    QUEUED_AT,
    WAKE_STATES,
    State,
    handler_name,
    limit_key,
    split_handler_name,
    split_limit_key,
)
from firetasks.task import function_name as generated_name
from firetasks.transitions import hold_for_pause, queue_for_limit
from firetasks.trigger_options import RuntimeOptions
from firetasks.wakeup import CloudTasksWaker, wake_trigger

FUNCTION_PREFIX = "limited"
MIN_DEADLINE_SEC, MAX_DEADLINE_SEC = 15, 1800  # Cloud Tasks' bounds on a dispatch deadline
HAND_OVER_WAIT = datetime.timedelta(seconds=1)  # a task queued longer waited for its slot


def function_name(type: str, action: str) -> str:
    """The task-queue function (and Cloud Tasks queue id) of a limited handler:
    `limitedMailSend` for `mail.send`, `limitedOrderMutationsInitiate` for
    `order.mutations.initiate`."""
    return generated_name(FUNCTION_PREFIX, type, action)


def dispatch_id(ref: DocumentReference, version: Any) -> str:
    """The Cloud Task's id for one queued version of a task (or a tuple naming one enqueue of
    it): enqueued twice, dispatched once."""
    parts = version if isinstance(version, tuple) else (version,)
    # One version is one id, however it was read (a write's result, a get, a query: each gives
    # its time as another type); rfc3339() keeps the nanoseconds.
    stamp = "@".join(str(part) if isinstance(part, str | int) else db.as_version(part).rfc3339()
                     for part in parts)
    return hashlib.sha256(f"{ref.path}@{stamp}".encode()).hexdigest()[:40]


class Dispatcher(Protocol):
    def dispatch(self, ref: DocumentReference, function: str, id: str, timeout_sec: int) -> bool:
        """Enqueue the task on the queue of the limited handler's `function`, as Cloud Task
        `id`, for a function that runs up to `timeout_sec`; whether it is queued (a duplicate of
        a queued id counts)."""

    def cancel(self, function: str, id: str) -> None:
        """Delete Cloud Task `id` from the queue of `function` if it has not been dispatched
        (best effort: a dispatch that runs anyway finds its task claimed and ends)."""


class CloudTasksDispatcher:
    """Enqueues onto the limited handlers' Cloud Tasks queues (firetasks.wakeup does the call)."""

    def dispatch(self, ref: DocumentReference, function: str, id: str, timeout_sec: int) -> bool:
        # Cloud Tasks holds the slot until the dispatch answers or its deadline passes: the
        # deadline covers the function's timeout, so a slow attempt is not counted out early.
        deadline = min(max(timeout_sec, MIN_DEADLINE_SEC), MAX_DEADLINE_SEC)
        return CloudTasksWaker(function).enqueue(ref, task_id=id, deadline_sec=deadline)

    def cancel(self, function: str, id: str) -> None:
        CloudTasksWaker(function).delete(id)


class InvalidKey(Exception):
    """A handler's key function failed for a task: the task is invalid."""


class FlowControl:
    """What the processor asks of flow control: queue a limited handler's task, start the next
    waiting one, pick the tasks a finishing attempt may hand its slot to."""

    def __init__(self, queue: TaskQueue, store: TaskStore, clock: Clock,
                 dispatcher: Dispatcher) -> None:
        self.queue = queue
        self.store = store
        self.clock = clock
        self.dispatcher = dispatcher
        self.pauses = Pauses()

    def pause_of(self, record: TaskRecord, registration: Registration) -> Pause | None:
        """The pause of the task's handler, or of its key, if either is paused (firetasks.pauses:
        a task of a handler that is not paused reads nothing)."""
        targets = [handler_name(record.type, record.action)]
        if registration.limits is not None and registration.limits.per_key:
            with contextlib.suppress(InvalidKey):  # queuing fails the task for it
                targets.append(self.key_of(record, registration.limits))
        return self.pauses.paused(db.client_of(record.ref), targets)

    def hold(self, record: TaskRecord, pause: Pause, stamp: dict[str, Any]) -> bool:
        """Hold a due task for `pause` (firetasks.transitions.hold_for_pause); whether it is
        held (False: another write came first)."""
        mark = hold_for_pause(record, pause.target) | stamp
        return not mark or self.store.write_if_unchanged(record.ref, record.version,
                                                         mark) is not None

    def queue_task(self, record: TaskRecord, limits: Limits, stamp: dict[str, Any],
                   woken: bool) -> bool:
        """Mark a limited handler's due task `queuedAt` (unless it is), and its `limitKey`, and
        enqueue it on its handler's queue, named by the version marked: a second enqueue of that
        version (the mark's own event) is a refused duplicate; an edit made while it waits queues
        the new version. A wake-up of a marked task (the sweeper's, for one waiting long or whose
        Cloud Task was lost) enqueues it afresh: at worst a second dispatch finds it claimed.
        Whether it was queued (False: another write came first). Raises InvalidKey."""
        version = (record.version, self.clock()) if woken else record.version
        mark = queue_for_limit(record, self.key_of(record, limits)) | stamp
        if limits.shared and SHARE_KEY not in record.fields:
            mark |= fair_mark(record, self.key_value(record, limits), self.clock())
        if mark:
            version = self.store.write_if_unchanged(record.ref, record.version, mark)
            if version is None:
                return False
        return self.dispatch(record.ref, record.type, record.action, version)

    def key_of(self, record: TaskRecord, limits: Limits) -> str:
        """The task's `limitKey`: its handler's name, and with limits per key, its key."""
        name = handler_name(record.type, record.action)
        if not limits.per_key:
            return name
        return limit_key(name, self.key_value(record, limits))

    @staticmethod
    def key_value(record: TaskRecord, limits: Limits) -> str:
        """The value of the handler's key for the task (text). Raises InvalidKey."""
        task = Task(ref=record.ref, type=record.type, action=record.action, data=record.data,
                    attempt=record.attempts + 1)
        try:
            return str(limits.key(task)) if limits.key else ""
        except Exception as exc:  # the user's key function: any error is the task's
            raise InvalidKey(f"its limit key failed: {exc!r}") from exc

    def start_waiting(self, beside: DocumentReference, key: str) -> None:
        """Start the task of `key` (a `limitKey`) that has waited the longest in the collection
        group of `beside`, if any: a slot of its key has just been freed (firetasks.key_slots)."""
        type, action = split_handler_name(split_limit_key(key)[0])
        for found in self.store.oldest_waiting(beside, key):
            if self.dispatch(found.ref, type, action, ("next", self.clock())):
                logger.info("waiting task started: a slot of its key was freed", path=found.path,
                            limitKey=key)

    def dispatch(self, ref: DocumentReference, type: str, action: str, version: Any) -> bool:
        """Enqueue the task on its limited handler's queue, as one Cloud Task per `version`."""
        return self.dispatcher.dispatch(ref, function_name(type, action),
                                        dispatch_id(ref, version), self.queue.timeout_sec)

    @staticmethod
    def hands_over(registration: Registration) -> bool:
        """Whether an attempt of the handler may hand its slot straight to the next waiting
        task: a handler limited to a concurrency only (a rate spaces its starts out; a key has
        slots of its own). It does while the function's timeout leaves room for one more `lease`,
        so only a handler that declares a lease shorter than the timeout hands over."""
        limits = registration.limits
        return bool(limits and limits.concurrency and limits.rate is None and not limits.per_key)

    @staticmethod
    def waited_for_slot(record: TaskRecord, started: datetime.datetime) -> bool:
        """Whether the task, started at `started`, waited for its slot (it was queued
        HAND_OVER_WAIT or more before): then others may wait too, and its attempt looks for one
        to hand its slot to. A task that started at once had free slots beside it: nothing was
        waiting, and a look would cost a read for nothing."""
        queued = record.fields.get(QUEUED_AT)
        return isinstance(queued, datetime.datetime) and started - queued >= HAND_OVER_WAIT

    def hand_over_candidate(self, record: TaskRecord) -> TaskRecord | None:
        """The task first in line for the limits of `record`'s handler (one read), if any and
        the handler is not paused. Attempts that end at the same moment reach for the same task:
        one claims it, and the others' slots go back to Cloud Tasks, whose next dispatch starts
        the next in line (so a lost race costs its look and the read that tells it from a
        cancel request, in TaskStore.commit_if_unchanged: not a round of reads by each)."""
        name = handler_name(record.type, record.action)
        if self.pauses.paused(db.client_of(record.ref), [name]):
            return None  # paused since the attempt started: its slot goes back to the queue
        first = self.store.oldest_waiting(record.ref, name)
        return first[0] if first else None

    def handed_over(self, record: TaskRecord) -> None:
        """A waiting task was claimed by a hand-over: delete the Cloud Task its queuing enqueued
        (named by the version read), so that no dispatch is left to read it again."""
        self.dispatcher.cancel(function_name(record.type, record.action),
                               dispatch_id(record.ref, record.version))

    def reclaim(self, client: firestore.Client, now: datetime.datetime) -> int:
        """Free the key slots whose holder's lease passed (the sweeper); how many."""
        return reclaim_expired(client, now, self.start_waiting)


class Runner(Protocol):
    """What a limited handler's queue runs its tasks through: the processor."""

    queue: TaskQueue
    store: TaskStore
    flow: FlowControl

    def run_admitted(self, ref: DocumentReference, at: datetime.datetime | None = None,
                     record: TaskRecord | None = None) -> None:
        """Run the task now: its queue admitted it (`at`: the time its rate gate did; `record`:
        the task as read already, if it was)."""

    def process(self, record: TaskRecord, states: Collection[State] = ...) -> None:
        """Act on a task as on its trigger's event."""


@dataclass(frozen=True)
class Admitted:
    """What a limited handler's queue calls: per key, a slot of the task's key
    (firetasks.key_slots); its rate gate; then the processor, told the task was admitted."""

    runner: Runner
    name: str
    limits: Limits
    gate: RateGate
    slots: KeySlots

    def wake(self, ref: DocumentReference) -> None:
        if not self.limits.per_key:
            self._start(ref, self.name)
            return
        record = self.runner.store.read(ref)
        if record is None or record.state not in WAKE_STATES:
            logger.info("skip admitted task, not waiting", path=ref.path,
                        state=record.state if record else None)
            return
        key = record.fields.get(LIMIT_KEY)
        if not isinstance(key, str):  # queued before its handler had a key: queue it by its key
            self.runner.process(record, WAKE_STATES)
            return
        if self.limits.concurrency is None:
            self._start(ref, key_id(key), record)
            return
        wait = datetime.timedelta(seconds=self.limits.rate.per if self.limits.rate else 0)
        lease = self.runner.queue.lease_of(record.type, record.action)
        slot = self.slots.take(db.client_of(ref), key, self.limits.concurrency, ref, lease + wait)
        if slot is None:
            logger.info("task waits: every slot of its key is held", path=ref.path,
                        limitKey=key)
            return
        try:
            self._start(ref, key_id(key), record)
        finally:
            self.slots.release(slot)
            self.runner.flow.start_waiting(ref, key)

    def _start(self, ref: DocumentReference, gate: str, record: TaskRecord | None = None) -> None:
        """Pass the rate gate `gate` (if the handler has a rate), then run the task (`record`:
        as read already: a keyed task is read once a dispatch; its claim is conditional on it)."""
        if self.limits.rate is None:
            self.runner.run_admitted(ref, record=record)
            return
        began = time.time()
        at = self.gate.admit(db.client_of(ref), gate, self.limits.rate)
        logger.debug("start admitted at the handler's rate", path=ref.path,
                     rate=str(self.limits.rate), waitedMs=round((at.timestamp() - began) * 1000))
        self.runner.run_admitted(ref, at, record)


def limited_triggers(
    processor: Runner, **options_: Unpack[RuntimeOptions]
) -> dict[str, Callable[[flask.Request], flask.Response]]:
    """One task-queue function per limited handler, by function name, its queue declared with the
    handler's limits: in main.py, `globals().update(limited_triggers(processor))`. Pass the
    processing functions' options (timeout, memory)."""
    triggers: dict[str, Callable[[flask.Request], flask.Response]] = {}
    for type, action, limits in processor.queue.registry.limited():
        name = function_name(type, action)
        if name in triggers:
            raise ValueError(f"'{type}.{action}': its queue name {name!r} is another limited "
                             "handler's; rename one")
        admitted = Admitted(processor, handler_name(type, action), limits, RateGate(),
                            KeySlots())
        triggers[name] = wake_trigger(
            admitted, name=name, rate_limits=limits.rate_limits(),
            # Only a crashed or timed-out dispatch fails (a handler's error ends in the task);
            # its retry finds the task `running` and returns at once, so retries are cheap.
            retry_config=options.RetryConfig(max_attempts=100, min_backoff_seconds=1,
                                             max_backoff_seconds=10, max_doublings=3),
            **options_)
    return triggers
