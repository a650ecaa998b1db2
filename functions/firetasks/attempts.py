"""Running one attempt: in claim mode (claim, run, write the outcome conditional on the claim) or
in atomic mode (run unclaimed, commit the outcome with the staged writes conditional on the version
delivered). Calling the handler, staging the tasks it spawns, and ending the attempt through
firetasks.transitions.

Claim mode: the claim is a write conditional on the very version the processor saw, so a duplicate
or stale delivery finds a newer version and loses it; so does a second invocation racing for the
same event, and so does a cancel that came first. The final write is conditional on the claim's own
version; if the task changed meanwhile (a cancel request), it is read again and written
conditionally on that version, as long as this invocation still owns the attempt.
"""

from __future__ import annotations

import datetime
import time
import traceback
from typing import Any

from firebase_functions import logger
from google.api_core import exceptions
from google.cloud.firestore import DocumentReference

from firetasks import transitions, workflow
from firetasks.clock import Clock
from firetasks.conditional import Write
from firetasks.config import TaskQueue
from firetasks.enqueue import check_new, task_documents
from firetasks.errors import PermanentError, RetryAfter
from firetasks.flow import FlowControl
from firetasks.handler import Task
from firetasks.new_task import NewTask
from firetasks.progress import Progress
from firetasks.record import TaskRecord
from firetasks.registry import Registration
from firetasks.staging import StagedWrites
from firetasks.steps import Steps, Suspended, json_result
from firetasks.store import TaskStore
from firetasks.task import State
from firetasks.transitions import Ending
from firetasks.wakeup import Waker

FINISH_TRIES = 5  # re-reads of a task that changed while running before its outcome is dropped
TRACEBACK_CHARS = 3000  # kept of a failure's traceback: 20 attempts of history stay under 64 KB


class Attempts:
    """Runs attempts of the queue's handlers."""

    def __init__(self, queue: TaskQueue, store: TaskStore, clock: Clock, waker: Waker,
                 flow: FlowControl) -> None:
        self.queue = queue
        self.store = store
        self.clock = clock
        self.waker = waker
        self.flow = flow

    def run_claimed(self, record: TaskRecord, registration: Registration,
                    stamp: dict[str, Any], hand_over: bool = False) -> None:
        """Claim the task and run the attempt. `hand_over` (a handler limited to a concurrency,
        admitted by its queue): if the task waited for its slot, the attempt's outcome is
        committed with the claim of the handler's first waiting task, which then runs here, in
        the slot this attempt held, while the function's timeout leaves room for another lease
        (firetasks.flow)."""
        lease = self.queue.lease_of(record.type, record.action)
        began = time.monotonic()
        started = self.clock()
        claim = transitions.claim(record, started, lease) | stamp
        claimed = self.store.write_if_unchanged(record.ref, record.version, claim)
        if claimed is None:
            logger.info("skip processing task, changed by another write", **record.describe())
        # A chain of hand-overs starts where a task waited for its slot, and goes on while each
        # look finds a task: a task it claims may have waited less (a high priority one, queued
        # just now), and ending there would let Cloud Tasks' next dispatch, in its own order,
        # overtake the tasks still waiting.
        looking = hand_over and self.flow.waited_for_slot(record, started)
        while claimed is not None:
            running = transitions.as_claimed(record, claimed)
            context = running.describe()
            progress = Progress(record.ref, claimed, self.store, self.clock)
            task = self._task(record, claim["attempts"], progress, began=began)
            spawns = StagedWrites()
            ending = self._call(record, registration, task, started, context, spawns)
            used, extra = task.attempt - claim["retryBase"], progress.final()
            outcome = self._end(running, registration, ending, used, extra)
            room = time.monotonic() - began + lease.total_seconds() < self.queue.timeout_sec
            waiting = self.flow.hand_over_candidate(record) if looking and room else None
            handed = None if waiting is None else self._hand_over(
                record, progress.version, outcome, spawns, waiting, lease)
            final = outcome if handed else self._finish(
                running.ref, progress.version, outcome, registration, ending, used, extra,
                context, spawns)
            if final is not None:
                logger.info("end processing task", outcome=final["state"], **context)
                self._wake_if_retrying(record, final)
            if handed is None:
                return
            record, claim, claimed = handed
            started = self.clock()
            logger.info("claimed: handed over by the attempt before it", **record.describe())

    def run_atomic(self, record: TaskRecord, registration: Registration,
                   stamp: dict[str, Any]) -> None:
        """Run an atomic handler unclaimed, then commit its staged writes with the outcome in one
        batch conditional on the version delivered (firetasks.staging): of several deliveries of
        one version, one commits; the others, and stale ones, write nothing."""
        context = record.describe()
        started = self.clock()
        progress = Progress(record.ref, record.version, self.store, self.clock, writes=False)
        attempt = record.attempts + 1
        task = self._task(record, attempt, progress, StagedWrites())
        ending = self._call(record, registration, task, started, context, task.writes)
        fields = transitions.atomic_commit(record, ending, registration.retry,
                                           registration.retention, extra=progress.final()) | stamp
        completed = fields["state"] == State.COMPLETED
        try:
            version = self.store.commit_if_unchanged(
                record.ref, record.version, fields, task.writes if completed else StagedWrites())
        except Exception as exc:  # a staged write could not apply: the attempt failed
            logger.error("error committing staged writes", error=repr(exc), **context)
            failed = _failed(ending, exc, self.clock())
            fields = transitions.atomic_commit(record, failed, registration.retry,
                                               registration.retention) | stamp
            version = self.store.write_if_unchanged(record.ref, record.version, fields)
        if version is None:
            logger.info("outcome dropped: the task changed since this delivery (a duplicate or "
                        "stale event); nothing staged was written", **context)
            return
        logger.info("end processing task", outcome=fields["state"], **context)
        self._wake_if_retrying(record, fields)

    def _task(self, record: TaskRecord, attempt: int, reporter: Progress,
              staged: StagedWrites | None = None, began: float | None = None) -> Task:
        """The handler's Task; in claim mode (the invocation `began`, by the monotonic clock),
        with its steps (firetasks.steps)."""
        steps = None if began is None else Steps(
            record, attempt, reporter, self.store, self.clock,
            deadline=began + self.queue.timeout_sec)
        return Task(ref=record.ref, type=record.type, action=record.action, data=record.data,
                    attempt=attempt, staged=staged, after=tuple(workflow.dependency_ids(record)),
                    read_all=self.store.read_all, reporter=reporter, durable=steps)

    def _call(self, record: TaskRecord, registration: Registration, task: Task,
              started: datetime.datetime, context: dict[str, Any],
              effects: StagedWrites) -> Ending:
        """Call the handler: how the attempt ended. The tasks it spawns are staged in `effects`,
        to be created with a completion only."""
        created = record.fields.get("createdAt") or record.created
        context["attempt"] = task.attempt
        latency = {"latencyMs": round((started - created).total_seconds() * 1000)} if isinstance(
            created, datetime.datetime) else {}
        if task.staged is None:  # claim mode: a line at the start, as the claim in the task
            logger.info("start processing task", **latency, **context)
        else:  # atomic mode writes nothing until the attempt ends: one line then, with latency
            context.update(latency)
        try:
            result = json_result(spawned_result(task, registration.handler(task)))
            self._stage_spawns(task, effects)
        except Suspended as suspension:  # a sleep or a wait: the invocation ends, not the attempt
            logger.info("task suspended", until=suspension.until.isoformat(), **context)
            return Ending(task.attempt, started, self.clock(), suspension=suspension.fields)
        except Exception as exc:  # a handler's failure belongs in the task, not in the function
            logger.error("error processing task", error=repr(exc), **context)
            return _failed(Ending(task.attempt, started, started), exc, self.clock())
        finished = self.clock()
        context["durationMs"] = round((finished - started).total_seconds() * 1000, 1)
        return Ending(task.attempt, started, finished, result=result)

    def _stage_spawns(self, task: Task, effects: StagedWrites) -> None:
        """Stage the creates of the tasks the handler spawned: checked as the enqueue helper
        checks (the spawning task counts as existing: it completes in the same write); a keyed
        one that exists already (from an earlier attempt) is not created again."""
        if not task.spawned:
            return
        refs = [ref for ref, _ in task.spawned]
        news = check_new([new for _, new in task.spawned], task.ref.parent, self.store,
                         known=[task.id])
        keyed = [ref for ref, new in zip(refs, news, strict=True) if new.id is not None]
        taken = {found.path for found in self.store.read_all(keyed) if found is not None}
        for ref, document in zip(refs, task_documents(news), strict=True):
            if ref.path not in taken:
                effects.create(ref, document | {"spawnedBy": task.id})

    def _end(self, running: TaskRecord, registration: Registration, ending: Ending, used: int,
             extra: dict[str, Any]) -> dict[str, Any]:
        if ending.suspension is not None:
            return transitions.suspend(running, ending, registration.retention) | extra
        return transitions.end_attempt(running, ending, registration.retry,
                                       registration.retention, used=used, extra=extra)

    def _hand_over(
        self, record: TaskRecord, claimed: Any, outcome: dict[str, Any], spawns: StagedWrites,
        waiting: TaskRecord, lease: datetime.timedelta,
    ) -> tuple[TaskRecord, dict[str, Any], Any] | None:
        """Commit the attempt's outcome (as _finish) with the claim of `waiting` if it is still
        as read: that task, its claim and its version; None if it was not (nothing is written
        then, and _finish writes the outcome alone)."""
        completed = outcome["state"] == State.COMPLETED
        claim = transitions.claim(waiting, self.clock(), lease)
        writes = StagedWrites([*(spawns if completed else ()),
                               Write("update", waiting.ref, claim, if_version=waiting.version)])
        try:
            version = self.store.commit_if_unchanged(record.ref, claimed, outcome, writes)
        except exceptions.FailedPrecondition:
            return None  # another attempt claimed it first
        if version is None:
            return None  # a cancel was requested
        self.flow.handed_over(waiting)
        return waiting, claim, version

    def _finish(
        self, ref: DocumentReference, version: Any, outcome: dict[str, Any],
        registration: Registration, ending: Ending, used: int, extra: dict[str, Any],
        context: dict[str, Any], spawns: StagedWrites,
    ) -> dict[str, Any] | None:
        """Write the attempt's `outcome`, with the tasks it spawned if it completed, if the task
        is still at `version`; if it changed (a cancel request), the outcome is built again from
        the task as it is now, as long as this invocation still owns the attempt. What was
        written."""
        for _ in range(FINISH_TRIES + 1):
            completed = outcome["state"] == State.COMPLETED
            if self.store.commit_if_unchanged(ref, version, outcome,
                                              spawns if completed else StagedWrites()):
                return outcome
            found = self.store.read(ref)
            if found is None:
                logger.warn("task deleted while running", **context)
                return None
            if found.state != State.RUNNING or found.attempts != ending.attempt:
                logger.warn("attempt no longer owned, outcome dropped",
                            currentState=found.state, **context)
                return None
            outcome, version = self._end(found, registration, ending, used, extra), found.version
        logger.error("outcome dropped: the task kept changing", **context)
        return None

    def _wake_if_retrying(self, record: TaskRecord, written: dict[str, Any]) -> None:
        if written["state"] == State.RETRYING:
            self.waker.wake_at(record.ref, written["runAt"])


def _failed(ending: Ending, exc: Exception, now: datetime.datetime) -> Ending:
    """How an attempt that raised `exc` ended."""
    return Ending(ending.attempt, ending.started, now, error=error_of(exc),
                  traceback=traceback_of(exc), permanent=isinstance(exc, PermanentError),
                  delay=exc.seconds if isinstance(exc, RetryAfter) else None)


def spawned_result(task: Task, value: Any) -> Any:
    """A handler's return value; tasks it returns (a NewTask or a list of them) are spawned, and
    the result names them."""
    returned = [value] if isinstance(value, NewTask) else value
    if not isinstance(returned, list) or not returned or not all(
            isinstance(item, NewTask) for item in returned):
        return value
    return {"spawned": [task.spawn(item).id for item in returned]}


def error_of(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc) or repr(exc)}


def traceback_of(exc: BaseException) -> str:
    """Where a failure was raised, as the attempt's history keeps it: the last TRACEBACK_CHARS of
    its traceback (the innermost frames)."""
    trace = "".join(traceback.format_exception(exc)).rstrip()
    if len(trace) > TRACEBACK_CHARS:
        trace = "… (outer frames cut)\n" + trace[-TRACEBACK_CHARS:].split("\n", 1)[-1]
    return trace
