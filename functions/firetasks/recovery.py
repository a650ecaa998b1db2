"""The sweeper: a periodic function that finds tasks nobody will finish otherwise.

- `running` past its lease: the invocation crashed, timed out or was redeployed mid-run. The attempt
  ends like a failed one: `retrying` if the budget allows, else `failed` (error `LeaseExpired`).
- `retrying` overdue by STALE_AFTER: its wake-up was lost; it gets another.
- `scheduled` for STALE_AFTER and never claimed: its trigger event was dropped (the Python SDK's
  Firestore triggers cannot turn on retry-on-failure, so an invocation that dies before its claim
  loses the event). The sweeper sends the task a wake-up.
- a slot of a key (firetasks.key_slots) whose holder's lease has passed: the attempt crashed
  before it could give the slot back. The slot is freed and the key's oldest waiting task started.

Every query reads candidates only, so a sweep costs what it must do, not what the backlog holds.
Expired leases and overdue retries are ranges on `leaseExpiresAt` and `runAt`. Unclaimed
`scheduled` tasks cannot be told apart from waiting ones by a field that clients write, so the
sweeper keeps a mark per collection (in SWEEP_COLLECTION) and reads each such task once: by
`createdAt` when it is created (after STALE_AFTER), and once more by `runAt` when it falls due, if
it has one. An operator's retry sets `runAt` to the retry's time for the same reason. A task
without a handler, or not due for a day, is therefore read at most twice in its life, not once a
sweep. The mark moves only past tasks whose wake-up was enqueued.

Each sweep pages through its candidates until `budget` runs out; the next sweep continues. Every
step is a write conditional on the version read, or an idempotent wake-up, so the sweeper is safe
to run at any time, twice at once, and beside the processor.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Unpack, cast

import flask
from firebase_functions import logger, scheduler_fn
from google.cloud import firestore

from firetasks import db, events
from firetasks.clock import utc_now
from firetasks.processor import TaskProcessor
from firetasks.record import TaskRecord
from firetasks.task import FINAL_STATES, State
from firetasks.trigger_options import SweepTriggerOptions

STALE_AFTER = datetime.timedelta(minutes=2)  # far beyond a trigger's usual delivery delay
BUDGET = datetime.timedelta(seconds=50)  # per sweep: one a minute, each done before the next
# The scans from a mark: its name in the marks document, the state and the time field scanned.
# Unclaimed `scheduled` tasks by `createdAt` and `runAt` (woken); `waiting` tasks by `createdAt`
# (settled, in case their create event was lost); finished tasks by `finishedAt` (their waiting
# dependents settled, in case their final write's event was lost).
SCANS = [("createdAt", State.SCHEDULED, "createdAt"), ("runAt", State.SCHEDULED, "runAt"),
         ("waiting", State.WAITING, "createdAt"),
         *((state.value, state, "finishedAt") for state in sorted(FINAL_STATES))]


@dataclass
class SweepReport:
    expired: int = 0  # running attempts whose lease had expired, ended
    rewoken: int = 0  # tasks sent a wake-up
    read: int = 0  # task documents read
    settled: int = 0  # waiting tasks released or ended (firetasks.workflow)
    delivered: int = 0  # events delivered to waits whose trigger event was lost (firetasks.events)
    reclaimed: int = 0  # slots of keys whose holder's lease passed, freed (firetasks.key_slots)
    finished: bool = True  # False: the budget ran out, the next sweep goes on


def sweep(
    processor: TaskProcessor,
    client: firestore.Client,
    *,
    collections: Iterable[str] | None = None,
    now: datetime.datetime | None = None,
    budget: datetime.timedelta = BUDGET,
    reclaim: bool = True,
) -> SweepReport:
    """One sweep of the queue's collections (all by default) at `now`, through the processor's
    store; `reclaim`: free key slots too (firetasks.key_slots)."""
    now = now or utc_now()
    stale = now - STALE_AFTER
    report = SweepReport()
    store = processor.store
    deadline = time.monotonic() + budget.total_seconds()
    if reclaim:  # first: a crashed holder's slot, before its task's retry could take it over
        report.reclaimed = processor.flow.reclaim(client, now)
    for collection in processor.queue.collections if collections is None else collections:
        scans = store.scan(client, collection, State.RUNNING.value, "leaseExpiresAt", now)
        for record in _records(scans, report, deadline):
            if processor.expire(record) is not None:
                report.expired += 1
        scans = store.scan(client, collection, State.RETRYING.value, "runAt", stale)
        for record in _records(scans, report, deadline):
            if processor.waker.wake_at(record.ref, now):
                report.rewoken += 1
        marks = store.marks(client, collection)
        moved = {name: _scan(processor, client, collection, state, field, marks.get(name), now,
                             report, deadline)
                 for name, state, field in SCANS}
        moved = {name: mark for name, mark in moved.items() if mark != marks.get(name)}
        if moved:
            store.save_marks(client, collection, moved)
    report.delivered = events.sweep_events(client, store, list(processor.queue.collections),
                                           stale, lambda: time.monotonic() < deadline)
    logger.info("sweep done", expired=report.expired, rewoken=report.rewoken,
                settled=report.settled, delivered=report.delivered, reclaimed=report.reclaimed,
                read=report.read, finished=report.finished)
    return report


def _scan(
    processor: TaskProcessor,
    client: firestore.Client,
    collection: str,
    state: State,
    field: str,
    mark: dict[str, Any] | None,
    now: datetime.datetime,
    report: SweepReport,
    deadline: float,
) -> dict[str, Any] | None:
    """Act on each `state` task whose `field` passed STALE_AFTER since `mark`; the new mark:
    the last task dealt with. An act that fails (False) keeps the mark before its task: the next
    sweep tries again."""
    act = _action(processor, state, now, report)
    after = None if mark is None else (mark["at"], mark["path"])
    scans = processor.store.scan(client, collection, state.value, field, now - STALE_AFTER, after)
    for record in _records(scans, report, deadline):
        if not act(record):
            report.finished = False
            break
        mark = {"at": record.fields.get(field), "path": record.path}
    return mark


def _action(
    processor: TaskProcessor, state: State, now: datetime.datetime, report: SweepReport
) -> Callable[[TaskRecord], bool]:
    """What a scan does to each task it finds in `state`."""

    def wake_unclaimed(record: TaskRecord) -> bool:
        """A due `scheduled` task with a handler gets a wake-up (one with a later `runAt` is
        the `runAt` scan's)."""
        run_at = record.run_at
        waiting = run_at is not None and run_at > now - STALE_AFTER
        handled = processor.registry.lookup(record.type, record.action) is not None
        if handled and not waiting:
            if not processor.waker.wake_at(record.ref, now):
                return False
            report.rewoken += 1
        return True

    def settle(record: TaskRecord) -> bool:
        report.settled += (processor.settle(record) if state == State.WAITING
                           else processor.settle_dependents(record))
        return True

    return wake_unclaimed if state == State.SCHEDULED else settle


def _records(
    pages: Iterator[list[TaskRecord]], report: SweepReport, deadline: float
) -> Iterator[TaskRecord]:
    """Every task of `pages`, a page at a time, until the deadline passes."""
    for page in pages:
        if time.monotonic() > deadline:
            report.finished = False
            return
        report.read += len(page)
        yield from page


def sweep_trigger(
    processor: TaskProcessor,
    *,
    name: str,
    schedule: str = "every 1 minutes",
    **options: Unpack[SweepTriggerOptions],
) -> Callable[[flask.Request], flask.Response]:
    """The scheduled function that sweeps; assign it to `name` in main.py."""

    def run(event: scheduler_fn.ScheduledEvent) -> None:
        sweep(processor, db.client(processor.queue.database))

    run.__name__ = run.__qualname__ = name
    # firebase-functions declares the decorator's result a flask.Response; it is the function
    # that takes Cloud Scheduler's request and returns one (scheduler_fn.on_schedule_wrapped).
    return cast(Callable[[flask.Request], flask.Response],
                scheduler_fn.on_schedule(schedule=schedule, **options)(run))
