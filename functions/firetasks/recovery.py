"""The sweeper: a periodic function that finds tasks nobody will finish otherwise.

- `running` past its lease: the invocation crashed, timed out or was redeployed mid-run. The attempt
  ends like a failed one: `retrying` if the budget allows, else `failed` (error `LeaseExpired`).
- `scheduled` and untouched for STALE_AFTER: its trigger event was dropped. The Python SDK's
  Firestore triggers cannot turn on retry-on-failure, so an invocation that dies before its claim
  loses the event. The sweeper sends the task a wake-up.
- `retrying` overdue by STALE_AFTER: its wake-up was lost; it gets another.

Every step is a write conditional on the version read, or an idempotent wake-up, so the sweeper is
safe to run at any time, twice at once, and beside the processor.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from firebase_functions import logger, scheduler_fn
from google.cloud import firestore

from firetasks import db
from firetasks.processor import TaskProcessor
from firetasks.task import State

STALE_AFTER = datetime.timedelta(minutes=2)  # far beyond a trigger's usual delivery delay
BATCH = 500  # tasks of each kind per sweep; the next sweep takes the rest


@dataclass
class SweepReport:
    expired: int = 0
    rewoken: int = 0


def sweep(
    processor: TaskProcessor,
    client: firestore.Client,
    *,
    collections: Iterable[str] = ("tasks",),
    now: datetime.datetime | None = None,
) -> SweepReport:
    now = now or datetime.datetime.now(datetime.UTC)
    stale = now - STALE_AFTER
    report = SweepReport()
    for collection in collections:
        tasks = client.collection_group(collection)
        for snapshot in _where(tasks, State.RUNNING, "leaseExpiresAt", now):
            if processor.expire(snapshot) is not None:
                report.expired += 1
        overdue = [*_where(tasks, State.RETRYING, "runAt", stale)]
        unclaimed = [
            snapshot for snapshot in _where(tasks, State.SCHEDULED)
            if snapshot.update_time.ToDatetime(tzinfo=datetime.UTC) < stale
            and _runnable(processor, snapshot.to_dict() or {}, now)
        ]
        for snapshot in overdue + unclaimed:
            processor.waker.wake_at(snapshot.reference, now)
            report.rewoken += 1
    logger.info("sweep done", expired=report.expired, rewoken=report.rewoken)
    return report


def sweep_trigger(
    processor: TaskProcessor, *, name: str, schedule: str = "every 1 minutes", **options: Any
) -> Any:
    """The scheduled function that sweeps; assign it to `name` in main.py."""

    def run(event: scheduler_fn.ScheduledEvent) -> None:
        sweep(processor, db.client())

    run.__name__ = run.__qualname__ = name
    return scheduler_fn.on_schedule(schedule=schedule, **options)(run)


def _where(
    tasks: firestore.CollectionGroup, state: State, field: str | None = None,
    before: datetime.datetime | None = None,
) -> Iterable[firestore.DocumentSnapshot]:
    query = tasks.where(filter=firestore.FieldFilter("state", "==", state.value))
    if field is not None:
        query = query.where(filter=firestore.FieldFilter(field, "<", before))
    return query.limit(BATCH).stream()


def _runnable(processor: TaskProcessor, fields: dict[str, Any], now: datetime.datetime) -> bool:
    """Due, and served by a handler (a task nobody handles stays `scheduled` by design)."""
    run_at = fields.get("runAt")
    due = not isinstance(run_at, datetime.datetime) or run_at <= now
    return due and processor.registry.lookup(
        str(fields.get("type")), str(fields.get("action"))) is not None
