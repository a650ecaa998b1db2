"""The processor: turns writes and wake-ups of task documents into exactly one run per attempt.

Every write of a task fires the trigger again (at least once, in no guaranteed order), so the
processor acts only on a task that is due, and claims it with a write that is conditional on the
very version of the document it saw. A duplicate or stale delivery finds a newer version and loses
the claim; so does a second invocation racing for the same event, and so does a cancel that came
first. The final write is conditional on the claim's own version; if the task changed meanwhile (a
cancel request), it is read again and written conditionally on that version, as long as this
invocation still owns the attempt.

The processor decides; its store (firetasks.store) reads and writes. The functions below the class
are the decisions themselves: pure, and unit-tested without Firestore.
"""

from __future__ import annotations

import datetime
import json
import random
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, Unpack

from firebase_functions import firestore_fn, logger
from firebase_functions.core import Change
from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference, DocumentSnapshot

from firetasks import db, workflow
from firetasks.clock import Clock, utc_now
from firetasks.config import TaskQueue
from firetasks.enqueue import NewTask, check_new
from firetasks.errors import PermanentError, RetryAfter
from firetasks.key_slots import limit_key
from firetasks.limits import (
    CloudTasksDispatcher,
    Dispatcher,
    Limits,
    dispatch_id,
    function_name,
)
from firetasks.progress import Progress
from firetasks.record import TaskRecord
from firetasks.registry import HandlerRegistry, Registration
from firetasks.retention import retained
from firetasks.retry import DEFAULT_RETRY, RetryPolicy
from firetasks.staging import StagedWrite, StagedWrites
from firetasks.store import FirestoreStore, TaskStore
from firetasks.task import (
    FINAL_STATES,
    LIMIT_KEY,
    TRIGGER_STATES,
    WAKE_STATES,
    State,
    Task,
    check_transition,
    is_state,
    problems,
)
from firetasks.trigger_options import TaskTriggerOptions
from firetasks.wakeup import WAIT_LIMIT, CloudTasksWaker, Waker

HISTORY_LIMIT = 20  # attempts kept in `history`: far below Firestore's 1 MiB per document
FINISH_TRIES = 5  # re-reads of a task that changed while running before its outcome is dropped

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
    ) -> None:
        self.queue = queue
        self.waker = waker or CloudTasksWaker()
        self.store = store or FirestoreStore()
        self.clock = clock
        self.dispatcher = dispatcher or CloudTasksDispatcher()

    @property
    def registry(self) -> HandlerRegistry:
        return self.queue.registry

    def on_write(self, event: TaskEvent) -> None:
        """The Firestore trigger: act on a `scheduled` task, log a deleted one."""
        ref = db.client(event.database).document(event.document)
        record = TaskRecord.from_snapshot(event.data.after, ref)
        before = TaskRecord.from_snapshot(event.data.before)
        if record is None:
            context = before.describe() if before else {"taskId": ref.id, "path": ref.path}
            logger.info("skip processing deleted task", **context)
            return
        self.handle(record, before.state if before else None)

    def handle(self, record: TaskRecord, before: object = None) -> None:
        """One write of a task, that left it `record` (and in state `before` until then): a
        `waiting` task is settled if it can be; a task that just finished settles its waiting
        dependents (firetasks.workflow); a `scheduled` one is processed."""
        if record.state == State.WAITING:
            self.settle(record)
            return
        if is_state(record.state) and record.state in FINAL_STATES and before != record.state:
            self.settle_dependents(record)
        self.process(record, TRIGGER_STATES)

    def settle(self, record: TaskRecord) -> int:
        """Release a waiting task whose dependencies completed, end it by its failure policy, or
        fail one that names itself, unknown tasks or a cycle; else leave it waiting. 1 if it was
        written, else 0."""
        context = record.describe()
        if self._failed_if_invalid(record, context, {}):
            return 1
        fields = workflow.on_arrival(record, self.store)
        if fields is None:
            logger.debug("task waits for its dependencies", after=workflow.dependency_ids(record),
                         **context)
            return 0
        if self._write_if_unchanged(record, self._retained(record, fields), context) is None:
            return 0
        logger.info("settled waiting task", outcome=fields["state"], error=fields.get("error"),
                    **context)
        return 1

    def settle_dependents(self, record: TaskRecord) -> int:
        """Settle the waiting dependents of a finished task; how many were written."""
        settled = workflow.settle_dependents(
            record, self.store, lambda r: self.registry.retention(r.type, r.action), self.clock())
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
        if is_state(record.state) and record.state in WAKE_STATES and run_at is not None:
            wait = (run_at - self.clock()).total_seconds()
            if wait > WAIT_LIMIT:
                self.waker.wake_at(ref, run_at)
                return
            if wait > 0:  # only where wake-ups come early: the emulator's Cloud Tasks
                time.sleep(wait)
        self.process(record, WAKE_STATES)

    def run_admitted(
        self, ref: DocumentReference, at: datetime.datetime | None = None
    ) -> None:
        """A dispatch from a limited handler's queue (firetasks.limits): run the task now. It
        returns when the attempt has ended, which frees the queue's slot for the next. `at`: the
        time a rate gate admitted it, its `startedAt`."""
        record = self.store.read(ref)
        if record is None:
            logger.info("skip admitted task, deleted", taskId=ref.id, path=ref.path)
            return
        self.process(record, WAKE_STATES, admitted=True, admitted_at=at)

    def process(
        self, record: TaskRecord, states: Collection[State] = TRIGGER_STATES,
        admitted: bool = False, admitted_at: datetime.datetime | None = None,
    ) -> None:
        """Act on one version of a task document. A limited handler's task runs only `admitted`
        by its queue; until then it is queued there (firetasks.limits).

        A task written without `createdAt` gets the document's creation time with the processor's
        first write: lists and stats order by it.
        """
        context = record.describe()
        stamp = {} if "createdAt" in record.fields or record.created is None else {
            "createdAt": record.created}
        if is_state(record.state) and record.state not in states:
            logger.debug(f"skip processing {record.state} task", **context)
            return
        if self._failed_if_invalid(record, context, stamp):
            return
        if record.cancel_requested:
            self._write_if_unchanged(record, ended(State.CANCELLED) | stamp, context)
            return
        registration = self.registry.lookup(record.type, record.action)
        if registration is None:
            logger.info("skip processing task, no handler exists", **context)
            return
        run_at = record.run_at
        if run_at is not None and run_at > self.clock():
            logger.info("task not due yet", runAt=run_at.isoformat(), **context)
            self.waker.wake_at(record.ref, run_at)
            return
        if registration.limits is not None and not admitted:
            self._queue_limited(record, registration.limits, context, stamp,
                                woken=states == WAKE_STATES)
            return
        if admitted_at is not None:
            stamp["startedAt"] = admitted_at
        if registration.atomic:
            self._run_atomic(record, registration, context, stamp)
        else:
            self._run(record, registration, context, stamp,
                      hand_over=admitted and hands_over(registration))

    def _failed_if_invalid(
        self, record: TaskRecord, context: dict[str, Any], stamp: dict[str, Any]
    ) -> bool:
        """End a malformed task `failed` with an InvalidTask error listing its problems."""
        found = problems(record.fields)
        if found:
            logger.warn("invalid task", problems=found, **context)
            error = {"type": "InvalidTask", "message": "; ".join(found)}
            self._write_if_unchanged(record, ended(State.FAILED, error=error) | stamp, context)
        return bool(found)

    def _queue_limited(
        self, record: TaskRecord, limits: Limits, context: dict[str, Any],
        stamp: dict[str, Any], woken: bool
    ) -> None:
        """Mark a limited handler's due task `queuedAt` (unless it is), and with limits per key
        its `limitKey`, and enqueue it on its handler's queue, named by the version marked: a
        second enqueue of that version (the mark's own event) is a refused duplicate; an edit
        made while it waits queues the new version. A wake-up of a marked task (the sweeper's,
        for one waiting long or whose Cloud Task was lost) enqueues it afresh: at worst a second
        dispatch finds it claimed. A key function that fails ends the task `failed`."""
        version = (record.version, self.clock()) if woken else record.version
        mark: dict[str, Any] = {} if "queuedAt" in record.fields else {
            "queuedAt": firestore.SERVER_TIMESTAMP}
        key = f"{record.type}.{record.action}"  # the handler's, or per key, the key's
        if limits.key is not None:
            task = Task(ref=record.ref, type=record.type, action=record.action,
                        data=record.data, attempt=record.attempts + 1)
            try:
                key = limit_key(key, str(limits.key(task)))
            except Exception as exc:  # the user's key function: any error is the task's
                logger.warn("invalid task: its limit key failed", error=repr(exc), **context)
                error = {"type": "InvalidTask", "message": f"its limit key failed: {exc!r}"}
                self._write_if_unchanged(record, ended(State.FAILED, error=error) | stamp,
                                         context)
                return
        if record.fields.get(LIMIT_KEY) != key:
            mark[LIMIT_KEY] = key
        if mark:
            version = self.store.write_if_unchanged(record.ref, record.version, mark | stamp)
            if version is None:
                logger.info("skip queuing task, changed by another write", **context)
                return
        if self._dispatch(record.ref, record.type, record.action, version):
            logger.info("task queued for its handler's limits", **context)

    def start_waiting(self, beside: DocumentReference, key: str) -> None:
        """Start the task of `key` (a `limitKey`) that has waited the longest in the collection
        group of `beside`, if any: a slot of its key has just been freed (firetasks.key_slots)."""
        type, action = key.split(":", 1)[0].split(".", 1)
        for found in self.store.oldest_waiting(beside, key):
            if self._dispatch(found.ref, type, action, ("next", self.clock())):
                logger.info("waiting task started: a slot of its key was freed", path=found.path,
                            limitKey=key)

    def _dispatch(self, ref: DocumentReference, type: str, action: str, version: Any) -> bool:
        """Enqueue the task on its limited handler's queue, as one Cloud Task per `version`."""
        return self.dispatcher.dispatch(ref, function_name(type, action),
                                        dispatch_id(ref, version), self.queue.timeout_sec)

    def _run(
        self,
        record: TaskRecord,
        registration: Registration,
        context: dict[str, Any],
        stamp: dict[str, Any],
        hand_over: bool = False,
    ) -> None:
        """Claim the task and run the attempt. `hand_over` (a handler limited to a concurrency,
        admitted by its queue): the attempt's outcome is committed with the claim of the
        handler's oldest waiting task, which then runs here, in the slot this attempt held,
        while the function's timeout leaves room for another lease."""
        lease = registration.lease or self.queue.lease
        started = self.clock()
        claim = claim_fields(record, started, lease) | stamp
        claimed = self._write_if_unchanged(record, claim, context)
        began = time.monotonic()
        while claimed is not None:
            context["state"] = State.RUNNING.value
            progress = Progress(record.ref, claimed, self.store, self.clock)
            task = self._task(record, claim["attempts"], reporter=progress)
            spawns = StagedWrites()
            outcome = self._attempt(record, registration, task, claim["retryBase"], started,
                                    context, spawns) | progress.final()
            room = time.monotonic() - began + lease.total_seconds() < self.queue.timeout_sec
            waiting = self._next_waiting(record, registration) if hand_over and room else []
            handed = self._hand_over(record.ref, progress.version, outcome, spawns, waiting, lease)
            final = outcome if handed else self._finish(
                record.ref, progress.version, task.attempt, outcome, context, spawns)
            if final is not None:
                logger.info("end processing task", outcome=final["state"], **context)
                self._wake_if_retrying(record.ref, final)
            if handed is None:
                return
            record, claim, claimed = handed
            started = self.clock()
            context = record.describe()
            logger.info("claimed: handed over by the attempt before it", **context)

    def _next_waiting(self, record: TaskRecord, registration: Registration) -> list[TaskRecord]:
        """Tasks waiting for the limits of `record`'s handler, the oldest of them, in random
        order: attempts that end at once each hand over to a different one."""
        waiting = self.store.oldest_waiting(record.ref, f"{record.type}.{record.action}",
                                            (registration.limits and
                                             registration.limits.concurrency) or 1)
        return random.sample(waiting, len(waiting))

    def _run_atomic(
        self,
        record: TaskRecord,
        registration: Registration,
        context: dict[str, Any],
        stamp: dict[str, Any],
    ) -> None:
        """Run an atomic handler unclaimed, then commit its staged writes with the outcome in one
        batch conditional on the version delivered (firetasks.staging): of several deliveries of
        one version, one commits; the others, and stale ones, write nothing."""
        started = self.clock()
        base = claim_fields(record, started, datetime.timedelta()) | {"startedAt": started} | stamp
        progress = Progress(record.ref, record.version, self.store, self.clock, writes=False)
        task = self._task(record, base["attempts"], StagedWrites(), reporter=progress)
        fields = base | self._attempt(record, registration, task, base["retryBase"], started,
                                      context, task.writes) | progress.final()
        check_transition(record.state, State(fields["state"]))
        completed = fields["state"] == State.COMPLETED
        try:
            version = self.store.commit_if_unchanged(
                record.ref, record.version, fields, task.writes if completed else StagedWrites())
        except Exception as exc:  # a staged write could not apply: the attempt failed
            logger.error("error committing staged writes", error=repr(exc), **context)
            failure = self._failure(record, registration, task.attempt - base["retryBase"], exc)
            failure["history"] = history(record.history, task.attempt, started, self.clock(),
                                         failure)
            fields = base | failure
            version = self.store.write_if_unchanged(record.ref, record.version, fields)
        if version is None:
            logger.info("outcome dropped: the task changed since this delivery (a duplicate or "
                        "stale event); nothing staged was written", **context)
            return
        logger.info("end processing task", outcome=fields["state"], **context)
        self._wake_if_retrying(record.ref, fields)

    def _task(
        self, record: TaskRecord, attempt: int, staged: StagedWrites | None = None, *,
        reporter: Progress,
    ) -> Task:
        return Task(ref=record.ref, type=record.type, action=record.action, data=record.data,
                    attempt=attempt, staged=staged, after=tuple(workflow.dependency_ids(record)),
                    read_all=self.store.read_all, reporter=reporter)

    def _attempt(
        self,
        record: TaskRecord,
        registration: Registration,
        task: Task,
        retry_base: int,
        started: datetime.datetime,
        context: dict[str, Any],
        effects: StagedWrites,
    ) -> dict[str, Any]:
        """Call the handler: the fields that end the attempt, its history entry included. The
        tasks it spawns are staged in `effects`, to be created with a completion only."""
        created = record.fields.get("createdAt") or record.created
        context["attempt"] = task.attempt
        latency = {"latencyMs": round((started - created).total_seconds() * 1000)} if isinstance(
            created, datetime.datetime) else {}
        logger.info("start processing task", **latency, **context)
        try:
            result = spawned_result(task, registration.handler(task))
            self._stage_spawns(task, effects)
            outcome = ended(State.COMPLETED, result=json_result(result))
        except Exception as exc:  # a handler's failure belongs in the task, not in the function
            logger.error("error processing task", error=repr(exc), **context)
            outcome = self._failure(record, registration, task.attempt - retry_base, exc)
        finished = self.clock()
        context["durationMs"] = round((finished - started).total_seconds() * 1000, 1)
        outcome["history"] = history(record.history, task.attempt, started, finished, outcome)
        return self._retained(record, outcome)

    def _stage_spawns(self, task: Task, effects: StagedWrites) -> None:
        """Stage the creates of the tasks the handler spawned: checked as the enqueue helper
        checks (the spawning task counts as existing: it completes in the same write); a keyed
        one that exists already (from an earlier attempt) is not created again."""
        if not task.spawned:
            return
        news = [new for _, new in task.spawned]
        check_new(news, task.ref.parent, self.store, known=[task.id])
        keyed = [ref for ref, new in task.spawned if new.id is not None]
        taken = {found.path for found in self.store.read_all(keyed) if found is not None}
        for ref, new in task.spawned:
            if ref.path not in taken:
                effects.create(ref, new.document() | {"spawnedBy": task.id})

    def _failure(
        self, record: TaskRecord, registration: Registration, used: int, exc: Exception
    ) -> dict[str, Any]:
        return self._retained(record, after_failure(
            record.max_attempts, used, error_of(exc), registration.retry, self.clock(),
            permanent=isinstance(exc, PermanentError),
            delay=exc.seconds if isinstance(exc, RetryAfter) else None,
        ))

    def _hand_over(
        self,
        ref: DocumentReference,
        claimed: Any,
        outcome: dict[str, Any],
        spawns: StagedWrites,
        waiting: Sequence[TaskRecord],
        lease: datetime.timedelta,
    ) -> tuple[TaskRecord, dict[str, Any], Any] | None:
        """Commit the attempt's outcome (as _finish) with the claim of the first of `waiting`
        still as read: that task, its claim and its version; None if none was (nothing is
        written then, and _finish writes the outcome alone)."""
        check_transition(State.RUNNING, State(outcome["state"]))
        completed = outcome["state"] == State.COMPLETED
        for task in waiting:
            claim = claim_fields(task, self.clock(), lease)
            writes = StagedWrites([*(spawns if completed else ()), StagedWrite(
                "update", task.ref, claim, if_version=task.version)])
            try:
                version = self.store.commit_if_unchanged(ref, claimed, outcome, writes)
            except exceptions.FailedPrecondition:
                continue  # another attempt claimed it first: try the next
            return None if version is None else (task, claim, version)  # None: cancel requested
        return None

    def _finish(
        self,
        ref: DocumentReference,
        claimed: Any,
        attempt: int,
        outcome: dict[str, Any],
        context: dict[str, Any],
        spawns: StagedWrites,
    ) -> dict[str, Any] | None:
        """Write the attempt's outcome, with the tasks it spawned if it completed, if this
        invocation still owns it; what was written."""
        check_transition(State.RUNNING, State(outcome["state"]))
        if outcome["state"] != State.COMPLETED:
            spawns = StagedWrites()
        if self.store.commit_if_unchanged(ref, claimed, outcome, spawns) is not None:
            return outcome
        for _ in range(FINISH_TRIES):  # changed while running: a cancel request, or not ours
            current = self.store.read(ref)
            if current is None:
                logger.warn("task deleted while running", **context)
                return None
            if current.state != State.RUNNING or current.attempts != attempt:
                logger.warn("attempt no longer owned, outcome dropped",
                            currentState=current.state, **context)
                return None
            final = self._retained(current, honour_cancel(current.cancel_requested, outcome))
            check_transition(State.RUNNING, State(final["state"]))
            changes = final | {"cancelRequested": firestore.DELETE_FIELD}
            if self.store.commit_if_unchanged(ref, current.version, changes, spawns) is not None:
                return final
        logger.error("outcome dropped: the task kept changing", **context)
        return None

    def expire(self, record: TaskRecord) -> dict[str, Any] | None:
        """End a `running` attempt whose lease expired (its invocation died); what was written."""
        context = record.describe()
        registration = self.registry.lookup(record.type, record.action)
        lease = record.fields.get("leaseExpiresAt")
        error = {
            "type": "LeaseExpired",
            "message": f"attempt {record.attempts} did not finish before its lease expired at "
                       f"{lease.isoformat() if lease else '?'}: the function crashed, timed out "
                       "or was redeployed",
        }
        now = self.clock()
        outcome = after_failure(record.max_attempts, record.attempts - record.retry_base, error,
                                registration.retry if registration else DEFAULT_RETRY, now)
        started = record.fields.get("startedAt") or lease or now
        outcome = honour_cancel(record.cancel_requested, outcome) | {
            "history": history(record.history, record.attempts, started, now, outcome)
        }
        if self._write_if_unchanged(record, outcome, context) is None:
            return None
        logger.warn("lease expired", outcome=outcome["state"], **context)
        self._wake_if_retrying(record.ref, outcome)
        return outcome

    def _write_if_unchanged(
        self, record: TaskRecord, fields: dict[str, Any], context: dict[str, Any]
    ) -> Any | None:
        """Update the task only if it is still at the record's version; the new version, or None
        if it was not. An invalid document's unknown state may only become `failed`."""
        old = record.state
        check_transition(old if is_state(old) else State.SCHEDULED, State(fields["state"]))
        fields = self._retained(record, fields)
        version = self.store.write_if_unchanged(record.ref, record.version, fields)
        if version is None:
            logger.info("skip processing task, changed by another write", **context)
        return version

    def _retained(self, record: TaskRecord, fields: dict[str, Any]) -> dict[str, Any]:
        """`fields` with the `expireAt` their state has under the handler's retention: set when
        the task ends, removed otherwise (firetasks.retention)."""
        return retained(fields, self.registry.retention(record.type, record.action), self.clock())

    def _wake_if_retrying(self, ref: DocumentReference, written: dict[str, Any]) -> None:
        if written["state"] == State.RETRYING:
            self.waker.wake_at(ref, written["runAt"])


def hands_over(registration: Registration) -> bool:
    """Whether an attempt of the handler may hand its slot straight to the next waiting task:
    a handler limited to a concurrency only (a rate spaces its starts out; a key has slots of
    its own). It does while the function's timeout leaves room for one more `lease`, so only a
    handler that declares a lease shorter than the timeout hands over (see `_run`)."""
    limits = registration.limits
    return bool(limits and limits.concurrency and limits.rate is None and limits.key is None)


def claim_fields(
    record: TaskRecord, started: datetime.datetime, lease: datetime.timedelta
) -> dict[str, Any]:
    """The claim of a due task: `running`, one more attempt, a lease. Moving a task to
    `scheduled` starts a fresh attempt budget; `retrying` continues it."""
    attempt = record.attempts + 1
    return {
        "state": State.RUNNING.value,
        "attempts": attempt,
        "retryBase": record.retry_base if record.state == State.RETRYING else attempt - 1,
        "startedAt": firestore.SERVER_TIMESTAMP,
        "updatedAt": firestore.SERVER_TIMESTAMP,
        "leaseExpiresAt": started + lease,
        "queuedAt": firestore.DELETE_FIELD,
        LIMIT_KEY: firestore.DELETE_FIELD,
        "finishedAt": firestore.DELETE_FIELD,
        "result": firestore.DELETE_FIELD,
        "error": firestore.DELETE_FIELD,
        "progress": firestore.DELETE_FIELD,
    }


def after_failure(
    max_attempts: int | None,
    used: int,
    error: dict[str, str],
    policy: RetryPolicy,
    now: datetime.datetime,
    *,
    permanent: bool = False,
    delay: float | None = None,
) -> dict[str, Any]:
    """The fields that end a failed attempt, the `used`-th of the task's budget: `retrying` if
    the budget (the task's `max_attempts`, else the policy's) allows, else `failed`."""
    if permanent or used >= (max_attempts or policy.max_attempts):
        return ended(State.FAILED, error=error)
    seconds = policy.delay(used) if delay is None else max(0.0, delay)
    return ended(State.RETRYING, error=error) | {
        "runAt": now + datetime.timedelta(seconds=seconds)
    }


def honour_cancel(cancel_requested: bool, outcome: dict[str, Any]) -> dict[str, Any]:
    """A cancel requested while running ends the task `cancelled` unless the attempt completed."""
    if not cancel_requested or outcome["state"] == State.COMPLETED:
        return outcome
    cancelled = {key: value for key, value in outcome.items() if key != "runAt"}
    return cancelled | {"state": State.CANCELLED.value, "finishedAt": firestore.SERVER_TIMESTAMP,
                        "cancelRequested": firestore.DELETE_FIELD}


def ended(
    state: State, *, result: Any = None, error: dict[str, str] | None = None
) -> dict[str, Any]:
    """The fields that end an attempt (or, for an invalid task, the task) in `state`."""
    fields: dict[str, Any] = {
        "state": state.value,
        "updatedAt": firestore.SERVER_TIMESTAMP,
        "leaseExpiresAt": firestore.DELETE_FIELD,
    }
    if state != State.RETRYING:
        fields["finishedAt"] = firestore.SERVER_TIMESTAMP
    if result is not None:
        fields["result"] = result
    if error is not None:
        fields["error"] = error
    return fields


def history(
    previous: list[dict[str, Any]],
    attempt: int,
    started: datetime.datetime,
    finished: datetime.datetime,
    outcome: dict[str, Any],
) -> list[dict[str, Any]]:
    """The task's `history` with this attempt appended, the last HISTORY_LIMIT kept."""
    entry = {
        "attempt": attempt,
        "startedAt": started,
        "finishedAt": finished,
        "outcome": outcome["state"],
        "error": outcome.get("error"),
    }
    return [*previous[-(HISTORY_LIMIT - 1):], entry]


def spawned_result(task: Task, value: Any) -> Any:
    """A handler's return value; tasks it returns (a NewTask or a list of them) are spawned, and
    the result names them."""
    returned = [value] if isinstance(value, NewTask) else value
    if not isinstance(returned, list) or not returned or not all(
            isinstance(item, NewTask) for item in returned):
        return value
    return {"spawned": [task.spawn(item).id for item in returned]}


def json_result(value: Any) -> Any:
    """The handler's return value, if it is JSON-able (what a task document can hold)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"handler returned a value that is not JSON-able: {exc}") from exc
    return value


def error_of(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc) or repr(exc)}


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
