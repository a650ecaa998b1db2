"""The dashboard's charts: tasks completed and failed per hour over the last day, and the time
from `createdAt` to `finishedAt` (p50, p95) per hour, for all handlers or one, at a cost that grows
neither with the history kept nor with the number of refreshes.

A closed hour no longer changes (a task's `finishedAt` is written when it finishes), so each one is
summarised once, from the tasks that finished in it (one read each, at most HOUR_CAP), into one
rollup document per queue, `firetasksCharts/{collections}`. A refresh then reads that one document
and the hour in progress: up to RECENT of its newest finished tasks, and when it holds more than
that, two count aggregations (per collection) for its totals. See docs/scaling.md, "What operating
it costs"."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from google.cloud import firestore
from google.cloud.firestore import DocumentSnapshot

from firetasks.config import TaskQueue
from firetasks.errors import BadRequest
from firetasks.filters import equal
from firetasks.queries import count_matching
from firetasks.task import (
    ACTION_PATTERN,
    TYPE_PATTERN,
    State,
    handler_name,
    split_handler_name,
)

CHARTS_COLLECTION = "firetasksCharts"  # one rollup document per queue: its closed hours
HOURS = 24  # the charts' span: the hour in progress and the 23 before it
KEPT = 48  # hours the rollup document keeps
HOUR_CAP = 10_000  # a closed hour is summarised from at most this many of its tasks
RECENT = 50  # the hour in progress: its figures from at most this many of its newest tasks
COUNTED = (State.COMPLETED.value, State.FAILED.value)
FIELDS = ["type", "action", "state", "createdAt", "finishedAt"]
HOUR = datetime.timedelta(hours=1)


def charts(
    client: firestore.Client, queue: TaskQueue, now: datetime.datetime, handler: str | None = None
) -> dict[str, Any]:
    """The last HOURS hours, oldest first, each `{start, completed, failed, p50Ms, p95Ms,
    sampled}` for all handlers or for `handler` (`type.action`); `sampled` when the figures come
    from a sample of the hour's tasks. `handlers` names every handler the rollups have seen."""
    if handler is not None and not _is_handler(handler):
        raise BadRequest("handler must be a type.action like order.sendConfirmationEmail")
    current = now.replace(minute=0, second=0, microsecond=0)
    rollups = client.collection(CHARTS_COLLECTION).document("+".join(queue.collections))
    kept: dict[str, Any] = (rollups.get().to_dict() or {}).get("hours", {})
    closed = [current - HOUR * back for back in range(HOURS - 1, 0, -1)]
    missing = [start for start in closed if _key(start) not in kept]
    if missing:
        for start in missing:
            kept[_key(start)] = _closed_hour(client, queue, start)
        oldest = _key(current - HOUR * KEPT)
        rollups.set({"hours": {key: hour for key, hour in kept.items() if key >= oldest}})
    hours = [_pick(kept[_key(start)], handler) for start in closed]
    hours.append(_hour_in_progress(client, queue, current, handler))
    for start, hour in zip([*closed, current], hours, strict=True):
        hour["start"] = start.isoformat()
    seen = {name for hour in kept.values() for name in hour.get("handlers", {})}
    return {"hours": hours, "handler": handler,
            "handlers": sorted(seen | set(queue.registry.names()))}


def summarise(tasks: Iterable[DocumentSnapshot[Any]], sampled: bool = False) -> dict[str, Any]:
    """An hour's figures, `{completed, failed, p50Ms, p95Ms, sampled, handlers: {name: ...}}`, from
    its finished tasks (cancelled ones are not counted)."""
    times: dict[str, list[float]] = {}
    counts: dict[str, dict[str, int]] = {}
    for task in tasks:
        fields = task.to_dict() or {}
        state, created, finished = (fields.get(key) for key in ("state", "createdAt", "finishedAt"))
        if state not in COUNTED:
            continue
        for name in ("", handler_name(str(fields.get("type")), str(fields.get("action")))):
            counts.setdefault(name, dict.fromkeys(COUNTED, 0))[state] += 1
            if isinstance(created, datetime.datetime) and isinstance(finished, datetime.datetime):
                times.setdefault(name, []).append((finished - created).total_seconds() * 1000)

    def figures(name: str) -> dict[str, Any]:
        spread = sorted(times.get(name, []))
        return {**counts.get(name, dict.fromkeys(COUNTED, 0)), "p50Ms": _percentile(spread, 50),
                "p95Ms": _percentile(spread, 95), "sampled": sampled}

    return figures("") | {"handlers": {name: figures(name) for name in counts if name}}


def _closed_hour(client: firestore.Client, queue: TaskQueue, start: datetime.datetime
                 ) -> dict[str, Any]:
    tasks: list[DocumentSnapshot[Any]] = []
    more = False  # a collection has more tasks in this hour than were read
    for collection in queue.collections:
        page = list(_finished(client, collection, start).order_by("finishedAt")
                    .where(filter=firestore.FieldFilter("finishedAt", "<", start + HOUR))
                    .limit(HOUR_CAP).stream())
        more = more or len(page) >= HOUR_CAP
        tasks += page
    figures = summarise(tasks, sampled=more)
    return figures | _totals(client, queue, start, start + HOUR) if more else figures


def _hour_in_progress(client: firestore.Client, queue: TaskQueue, start: datetime.datetime,
                      handler: str | None) -> dict[str, Any]:
    newest: list[DocumentSnapshot[Any]] = []
    more = False  # a collection has more tasks in this hour than were read
    for collection in queue.collections:
        query = _finished(client, collection, start)
        if handler:
            type_, action = split_handler_name(handler)
            query = query.where(filter=equal("type", type_)).where(filter=equal("action", action))
        page = list(query.order_by("finishedAt", direction=firestore.Query.DESCENDING)
                    .limit(RECENT).stream())
        more = more or len(page) >= RECENT
        newest += page
    figures = _pick(summarise(newest, sampled=more), handler)
    if more:
        figures |= _totals(client, queue, start, None, handler)
    return figures


def _finished(client: firestore.Client, collection: str, start: datetime.datetime) -> Any:
    return (client.collection_group(collection).select(FIELDS)
            .where(filter=firestore.FieldFilter("finishedAt", ">=", start)))


def _totals(client: firestore.Client, queue: TaskQueue, start: datetime.datetime,
            end: datetime.datetime | None, handler: str | None = None) -> dict[str, int]:
    """Completed and failed from count aggregations, for an hour with more tasks than were read."""
    totals = dict.fromkeys(COUNTED, 0)
    for collection in queue.collections:
        for state in COUNTED:
            query = (client.collection_group(collection).where(filter=equal("state", state))
                     .where(filter=firestore.FieldFilter("finishedAt", ">=", start)))
            if handler:
                type_, action = split_handler_name(handler)
                query = (query.where(filter=equal("type", type_))
                         .where(filter=equal("action", action)))
            if end:
                query = query.where(filter=firestore.FieldFilter("finishedAt", "<", end))
            totals[state] += count_matching(query)
    return totals


def _pick(hour: dict[str, Any], handler: str | None) -> dict[str, Any]:
    """One handler's figures of an hour, or all of them (without the per-handler breakdown)."""
    if handler is None:
        return {key: value for key, value in hour.items() if key != "handlers"}
    empty = dict.fromkeys(COUNTED, 0) | {"p50Ms": None, "p95Ms": None}
    return {**empty, "sampled": hour.get("sampled", False), **hour["handlers"].get(handler, {})}


def _percentile(ordered: Sequence[float], percent: int) -> float | None:
    """The nearest-rank percentile of sorted values, None of none."""
    if not ordered:
        return None
    return round(ordered[max(0, -(-len(ordered) * percent // 100) - 1)], 1)


def _key(start: datetime.datetime) -> str:
    return start.strftime("%Y-%m-%dT%H")


def _is_handler(name: str) -> bool:
    type_, action = split_handler_name(name)
    return bool(TYPE_PATTERN.fullmatch(type_) and ACTION_PATTERN.fullmatch(action))
