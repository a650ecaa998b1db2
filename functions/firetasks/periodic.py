"""Periodic tasks: a handler registered with `registry.periodic(...)` gets a task at each firing of
its schedule, created by a scheduled function (Cloud Scheduler) and run by the processor like any
other task: same claim, retries, dashboard and CLI.

Each firing's task has a fixed path, derived from the handler and the fire time:
`firetasksPeriodic/{type}.{action}/{tasks collection}/{type}.{action}@{YYYYMMDDTHHMMZ}` (the
queue's first tasks collection, so its trigger runs it), and is written with a create, which fails
if the document exists: a scheduler that fires twice, or a tick repeated, makes one task.

Missed firings are skipped: a tick creates the task of the schedule's latest fire time at or
before the time it ticks for (Cloud Scheduler's `scheduleTime`, else now), never one per firing
it missed while the scheduler, the function or the project was down. A handler that must cover
every period reads `fireTime` from its data and works out what is missing itself.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Unpack, cast

import flask
from firebase_functions import logger, scheduler_fn
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.clock import utc_now
from firetasks.config import TaskQueue
from firetasks.new_task import NewTask
from firetasks.schedule import Schedule
from firetasks.store import FirestoreStore, TaskStore
from firetasks.task import function_name as generated_name
from firetasks.task import handler_name
from firetasks.trigger_options import SweepTriggerOptions

PERIODIC_COLLECTION = "firetasksPeriodic"  # one parent document per periodic handler
FUNCTION_PREFIX = "periodic"


@dataclass(frozen=True)
class Firing:
    """One firing of a periodic handler's schedule: where its task goes and what it holds."""

    type: str
    action: str
    schedule: Schedule
    at: datetime.datetime  # the fire time, in UTC

    @property
    def name(self) -> str:
        return handler_name(self.type, self.action)

    @property
    def parent(self) -> str:
        return f"{PERIODIC_COLLECTION}/{self.name}"

    @property
    def task_id(self) -> str:
        return f"{self.name}@{self.at:%Y%m%dT%H%MZ}"

    def path(self, queue: TaskQueue) -> str:
        return f"{self.parent}/{queue.collections[0]}/{self.task_id}"

    def document(self) -> dict[str, Any]:
        """The task: due at the fire time, with the firing in its data."""
        data = {"fireTime": self.at.isoformat(), "schedule": self.schedule.text,
                "timezone": self.schedule.timezone}
        return NewTask(self.type, self.action, data, run_at=self.at).document()


def firing(queue: TaskQueue, type: str, action: str, now: datetime.datetime) -> Firing:
    """The firing a tick at `now` creates the task of: the latest at or before `now`."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.UTC)
    schedule = schedule_of(queue, type, action)
    return Firing(type, action, schedule, schedule.latest(now))


def schedule_of(queue: TaskQueue, type: str, action: str) -> Schedule:
    registration = queue.registry.lookup(type, action)
    if registration is None or registration.schedule is None:
        raise ValueError(f"'{type}.{action}' is not a periodic handler of this queue")
    return registration.schedule


def tick(
    client: firestore.Client, queue: TaskQueue, type: str, action: str,
    now: datetime.datetime | None = None, *, store: TaskStore | None = None,
) -> DocumentReference | None:
    """Create the task of the periodic handler's latest firing at or before `now`; the new task,
    or None if that firing's task exists already (a repeated tick)."""
    fire = firing(queue, type, action, now or utc_now())
    ref = client.document(fire.path(queue))
    if not (store or FirestoreStore()).create_task(ref, fire.document()):
        logger.debug("periodic task exists", path=ref.path, fireTime=fire.at.isoformat())
        return None
    logger.info("periodic task created", path=ref.path, fireTime=fire.at.isoformat())
    return ref


def tick_all(
    client: firestore.Client, queue: TaskQueue, now: datetime.datetime | None = None, *,
    store: TaskStore | None = None,
) -> list[DocumentReference]:
    """Tick every periodic handler of the queue (what `make dev` does once a minute); the tasks
    created."""
    created = [tick(client, queue, type, action, now, store=store)
               for type, action, _ in queue.registry.schedules()]
    return [ref for ref in created if ref is not None]


def function_name(type: str, action: str) -> str:
    """The scheduled function of a periodic handler: `periodicReportsDaily`. (Until firetasks
    named every generated function one way, it was `periodic_reports_daily`: see the periodic
    tasks guide for the move.)"""
    return generated_name(FUNCTION_PREFIX, type, action)


def periodic_trigger(
    queue: TaskQueue, type: str, action: str, *, name: str | None = None,
    **options: Unpack[SweepTriggerOptions],
) -> Callable[[flask.Request], flask.Response]:
    """The scheduled function that ticks one periodic handler, on its schedule (as cron) in its
    time zone (which wins over a `timezone` option); assign it to a variable named `name`
    (default: function_name) in main.py."""
    schedule = schedule_of(queue, type, action)

    def run(event: scheduler_fn.ScheduledEvent) -> None:
        tick(db.client(queue.database), queue, type, action, event.schedule_time)

    run.__name__ = run.__qualname__ = name or function_name(type, action)
    # as sweep_trigger: the decorator's result is the function that takes Cloud Scheduler's request
    options["timezone"] = schedule.zone
    return cast(Callable[[flask.Request], flask.Response],
                scheduler_fn.on_schedule(schedule=schedule.cron, **options)(run))


def periodic_triggers(
    queue: TaskQueue, **options: Unpack[SweepTriggerOptions]
) -> dict[str, Callable[[flask.Request], flask.Response]]:
    """One scheduled function per periodic handler of the queue, by function name: in main.py,
    `globals().update(periodic_triggers(queue))`."""
    return {function_name(type, action): periodic_trigger(queue, type, action, **options)
            for type, action, _ in queue.registry.schedules()}
