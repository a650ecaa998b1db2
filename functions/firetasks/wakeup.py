"""Waking a task at its due time (a delayed task, or a retry): Cloud Tasks calls `wakeTasks`.

Cloud Tasks dispatches at the task's `scheduleTime` (to within about a second), which beats polling
both in precision and in cost (one queued task and one invocation per delay). The emulator suite's
Cloud Tasks emulator dispatches at once and ignores `scheduleTime` (firebase-tools issue 8254), so a
wake-up that arrives early waits out the rest of the delay itself, at most WAIT_LIMIT seconds per
dispatch, and enqueues itself again beyond that. In production the wait is about zero.

Cloud Tasks refuses a `scheduleTime` more than 30 days ahead. A wake-up due later is scheduled at
the horizon (WAKE_HORIZON, 29 days, from now: `horizon_at`), and the processor's wake, finding the
task not yet due, schedules the next one from there: a task due in 90 days is woken three times on
the way and starts at its `runAt`. CloudTasksWaker does this itself; HorizonWaker does it for any
other waker (the test kit's, say), so that it refuses what Cloud Tasks refuses.

Under the Cloud Tasks emulator, a wake-up due more than EMULATOR_HORIZON ahead is not enqueued: it
would come back at once, again and again, until then (a durable task waiting a day for an event
would keep a worker busy all day). The sweeper's `runAt` scan wakes such a task when it is due.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any, Protocol, Unpack, cast

import flask
from firebase_admin import exceptions, functions
from firebase_functions import https_fn, logger, tasks_fn
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.clock import Clock, utc_now
from firetasks.trigger_options import WakeTriggerOptions

TASKS_EMULATOR = "CLOUD_TASKS_EMULATOR_HOST"
WAKE_FUNCTION = "wakeTasks"  # also the Cloud Tasks queue id: letters, digits and hyphens only
WAIT_LIMIT = 30.0  # seconds; well below the wake function's timeout
WAKE_HORIZON = datetime.timedelta(days=29)  # Cloud Tasks takes a scheduleTime up to 30 days ahead
EMULATOR_HORIZON = datetime.timedelta(minutes=5)  # beyond: the sweeper wakes (the emulator only)


class Waker(Protocol):
    def wake_at(self, ref: DocumentReference, at: datetime.datetime) -> bool:
        """Have the task woken at `at`; whether that was arranged."""


def horizon_at(at: datetime.datetime, now: datetime.datetime) -> datetime.datetime:
    """When to schedule a wake-up due at `at`: `at` itself, or the horizon (now + WAKE_HORIZON)
    if `at` is further ahead; the wake-up at the horizon schedules the next (module docstring)."""
    return min(at, now + WAKE_HORIZON)


class HorizonWaker:
    """A waker whose wake-ups are never scheduled beyond the horizon (horizon_at): wraps one."""

    def __init__(self, waker: Waker, clock: Clock = utc_now) -> None:
        self.waker = waker
        self.clock = clock

    def wake_at(self, ref: DocumentReference, at: datetime.datetime) -> bool:
        return self.waker.wake_at(ref, horizon_at(at, self.clock()))


class CloudTasksWaker:
    """Enqueues wake-ups on the queue of the `wakeTasks` task-queue function, at most
    WAKE_HORIZON ahead (horizon_at)."""

    def __init__(self, function_name: str = WAKE_FUNCTION, clock: Clock = utc_now) -> None:
        self.function_name = function_name
        self.clock = clock

    def wake_at(self, ref: DocumentReference, at: datetime.datetime) -> bool:
        if os.environ.get(TASKS_EMULATOR) and at - self.clock() > EMULATOR_HORIZON:
            logger.debug("wake-up left to the sweeper under the emulator", path=ref.path,
                         at=at.isoformat())
            return True
        return self.enqueue(ref, at=horizon_at(at, self.clock()))

    def enqueue(
        self, ref: DocumentReference, *, at: datetime.datetime | None = None,
        task_id: str | None = None, deadline_sec: int | None = None,
    ) -> bool:
        """A Cloud Task for the task at `ref`, dispatched at `at` (else at once), named `task_id`
        (else by Cloud Tasks), waited for up to `deadline_sec` (15 to 1800; else Cloud Tasks'
        default): whether it is queued; one named as a queued one is a duplicate, refused by
        Cloud Tasks, and counts as queued."""
        db.app()
        queue = functions.task_queue(self.function_name)
        # firebase-admin sends the payload as the whole request body, and a task-queue function
        # reads its argument from the body's `data`: so the payload is wrapped here.
        payload = {"data": {"path": ref.path, "database": db.database_of(ref)}}
        try:
            queue.enqueue(payload, functions.TaskOptions(
                schedule_time=at, task_id=task_id, dispatch_deadline_seconds=deadline_sec))
        except (exceptions.AlreadyExistsError, exceptions.ConflictError):
            logger.debug("duplicate Cloud Task refused", path=ref.path, queue=self.function_name,
                         taskId=task_id)
        except ValueError as exc:
            # Under the Cloud Tasks emulator, firebase-admin enqueues a named task, then fails to
            # parse the name the emulator echoes (it strips a leading '/' that the emulator adds
            # only to names it makes up): the task was queued.
            if not (task_id and os.environ.get(TASKS_EMULATOR) and "resource name" in str(exc)):
                logger.error("could not enqueue wake-up", path=ref.path,
                             queue=self.function_name, error=repr(exc))
                return False
        except Exception as exc:  # the sweeper finds tasks whose wake-up was lost
            logger.error("could not enqueue wake-up", path=ref.path, queue=self.function_name,
                         error=repr(exc))
            return False
        logger.debug("wake-up enqueued", path=ref.path, queue=self.function_name,
                     at=at.isoformat() if at else None)
        return True


    def delete(self, task_id: str) -> None:
        """Delete the Cloud Task `task_id` if it has not been dispatched; one that has, or is
        gone, is left alone (its dispatch finds its task changed)."""
        db.app()
        try:
            functions.task_queue(self.function_name).delete(task_id)
        except Exception as exc:  # best effort: the dispatch it would spare is harmless
            logger.debug("Cloud Task not deleted", queue=self.function_name, taskId=task_id,
                         error=repr(exc))


class Wakeable(Protocol):
    def wake(self, ref: DocumentReference) -> None: ...


def wake_trigger(
    processor: Wakeable, *, name: str = WAKE_FUNCTION, **options: Unpack[WakeTriggerOptions]
) -> Callable[[flask.Request], flask.Response]:
    """The task-queue function that receives wake-ups; assign it to `name` in main.py."""

    def wake(request: https_fn.CallableRequest[Any]) -> None:
        data = request.data if isinstance(request.data, dict) else {}
        try:
            ref = db.client(data.get("database", db.DEFAULT_DATABASE)).document(data["path"])
        except (KeyError, TypeError, ValueError) as exc:
            logger.error("ignoring malformed wake-up", data=repr(request.data), error=repr(exc))
            return
        processor.wake(ref)

    wake.__name__ = wake.__qualname__ = name
    # firebase-functions declares the decorator's result a flask.Response; it is the function
    # that takes the task's request and returns one (tasks_fn.on_task_dispatched_wrapped).
    return cast(Callable[[flask.Request], flask.Response],
                tasks_fn.on_task_dispatched(**options)(wake))
