"""Finding tasks across all parents, for the dashboard and the CLI: filters, pages, counts."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from typing import Any, cast

from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore import DocumentReference, DocumentSnapshot

from firetasks import db, pauses, task
from firetasks.config import TaskQueue
from firetasks.errors import BadRequest
from firetasks.filters import TaskFilter, equal, example_parent, filtered, usable_id
from firetasks.registry import HandlerRegistry
from firetasks.store import FirestoreStore
from firetasks.task import FINAL_STATES, LIMIT_KEY, State

MAX_PAGE = 100
WAITING = [State.SCHEDULED.value, State.RETRYING.value]  # due or retrying: the oldest one
COUNT_CAP = 5_000  # a count of the overview stops here: at most 5 reads
FEW = 20  # up to this many failures in the last day are read to count them by handler
WINDOWS = (  # the recent windows of finished tasks the overview counts, the longest last
    ("lastHour", datetime.timedelta(hours=1), (State.COMPLETED.value, State.FAILED.value)),
    ("lastDay", datetime.timedelta(days=1),
     (State.COMPLETED.value, State.FAILED.value, State.CANCELLED.value)),
)


def task_ref(client: firestore.Client, queue: TaskQueue, path: str) -> DocumentReference:
    """The task at `path`, which must lie in one of the queue's tasks collections."""
    segments = path.strip("/").split("/")
    if (len(segments) < 4 or len(segments) % 2 or not all(map(usable_id, segments))
            or segments[-2] not in queue.collections):
        raise BadRequest(f"{path[:200]!r} is not a task path like "
                         f"{example_parent(queue)}/{queue.collections[0]}/t-1")
    return client.document(*segments)


def list_tasks(
    client: firestore.Client,
    queue: TaskQueue,
    where: TaskFilter,
    *,
    limit: int = 25,
    cursor: str | None = None,
) -> tuple[list[DocumentSnapshot[DocumentReference]], str | None]:
    """A page of tasks, newest first, and the cursor of the next page (None on the last)."""
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be from 1 to {MAX_PAGE}")
    query = filtered(client, queue, where).order_by("createdAt",
                                                    direction=firestore.Query.DESCENDING)
    if cursor:
        after = task_ref(client, queue, _decode_cursor(cursor)).get()
        if not after.exists:
            raise BadRequest("cursor points at a task that no longer exists; start again")
        query = query.start_after(after)
    page = list(query.limit(limit + 1).stream())
    more = len(page) > limit
    page = page[:limit]
    return page, (_encode_cursor(page[-1].reference.path) if more else None)


def matching(
    client: firestore.Client, queue: TaskQueue, where: TaskFilter, cap: int
) -> list[DocumentSnapshot[DocumentReference]]:
    """Up to `cap` tasks that match, newest first (through the lists' indexes), for bulk
    actions."""
    return list(filtered(client, queue, where)
                .order_by("createdAt", direction=firestore.Query.DESCENDING).limit(cap).stream())


def stats(
    client: firestore.Client, queue: TaskQueue, now: datetime.datetime
) -> dict[str, Any]:
    """The overview, over all the queue's tasks collections, at a cost that does not grow with the
    history kept: the unfinished tasks by state, the tasks finished in the last hour and day, each
    handler's failures in the last day, and the oldest task waiting to run.

    Every figure is a count aggregation (one read per 1,000 index entries it matches, at least
    one) over a bounded set, capped at COUNT_CAP entries (shown as "at least"), or one document:
    finished tasks are counted by a `finishedAt` range, never all time. A handler's failures are
    counted only if the last day had any: from the failed tasks themselves when there are at most
    FEW of them, else one count per handler. See docs/scaling.md, "What operating it costs"."""
    groups = [client.collection_group(collection) for collection in queue.collections]

    def count(*filters: firestore.FieldFilter) -> int:
        total = 0
        for query in groups:
            for condition in filters:
                query = query.where(filter=condition)
            total += count_matching(query.limit(COUNT_CAP))
        return total

    def since(span: datetime.timedelta) -> firestore.FieldFilter:
        return firestore.FieldFilter("finishedAt", ">=", now - span)

    by_state = {state.value: count(equal("state", state.value))
                for state in State if state not in FINAL_STATES}
    recent = {label: {state: count(equal("state", state), since(span)) for state in counted}
              for label, span, counted in WINDOWS}
    day = WINDOWS[-1][1]
    by_handler = {name: {"failedLastDay": 0} for name in queue.registry.names()}
    failed_today = recent["lastDay"][State.FAILED.value]
    if 0 < failed_today <= FEW:
        for tasks in groups:
            for snapshot in (tasks.where(filter=equal("state", State.FAILED.value))
                             .where(filter=since(day)).select(["type", "action"]).stream()):
                name = task.handler_name(snapshot.get("type"), snapshot.get("action"))
                by_handler.setdefault(name, {"failedLastDay": 0})["failedLastDay"] += 1
    elif failed_today:
        for name, figures in by_handler.items():
            type_, action = task.split_handler_name(name)
            figures["failedLastDay"] = count(equal("state", State.FAILED.value),
                                             equal("type", type_), equal("action", action),
                                             since(day))
    oldest = [snapshot for tasks in groups
              for snapshot in tasks.where(filter=firestore.FieldFilter("state", "in", WAITING))
              .order_by("createdAt").limit(1).stream()]
    oldest.sort(key=lambda snapshot: snapshot.get("createdAt"))
    return {
        "byState": by_state,
        "recent": recent,
        "byHandler": by_handler,
        "oldestWaiting": summary(oldest[0], queue.registry) if oldest else None,
        "countCap": COUNT_CAP,
    }


def summary(
    snapshot: DocumentSnapshot[DocumentReference], registry: HandlerRegistry | None = None
) -> dict[str, Any]:
    """A task as a row of a list; with the deployment's `registry`, `handled` says whether it has
    a handler for the task's type.action (a task without one waits for another deployment)."""
    fields = snapshot.to_dict() or {}
    row = {
        "path": snapshot.reference.path,
        "version": version_text(snapshot),
        "parent": snapshot.reference.parent.parent.path if snapshot.reference.parent.parent
        else None,
        **{key: fields.get(key) for key in (
            "type", "action", "state", "attempts", "createdAt", "updatedAt", "runAt", "error",
            "after", "queuedAt", "pausedFor")},
    }
    if registry is not None:
        row["handled"] = handled(registry, fields)
        row["mode"] = mode(registry, fields)
    return cast(dict[str, Any], jsonable(row))


def mode(registry: HandlerRegistry, fields: Mapping[str, Any]) -> str | None:
    """`atomic` (runs unclaimed, its writes commit with its completion) or `claim`; None without
    a handler in this deployment."""
    type_, action = fields.get("type"), fields.get("action")
    if not (isinstance(type_, str) and isinstance(action, str)):
        return None
    entry = registry.lookup(type_, action)
    return None if entry is None else ("atomic" if getattr(entry, "atomic", False) else "claim")


def handled(registry: HandlerRegistry, fields: Mapping[str, Any]) -> bool:
    """Whether this deployment has a handler for the task's type.action."""
    type_, action = fields.get("type"), fields.get("action")
    return (isinstance(type_, str) and isinstance(action, str)
            and registry.lookup(type_, action) is not None)


def version_text(snapshot: DocumentSnapshot[DocumentReference]) -> str:
    """The snapshot's version (its update time, to the nanosecond): what an operator saw."""
    return cast(str, db.as_version(snapshot.update_time).rfc3339())  # api-core: unannotated


def parse_version(text: object) -> datetime.datetime:
    """A version from version_text(); raises BadRequest."""
    try:
        return cast(datetime.datetime, DatetimeWithNanoseconds.from_rfc3339(str(text)))
    except ValueError as exc:
        raise BadRequest(f"version must be a task version this API returned, got {text!r}") from exc


def detail(
    snapshot: DocumentSnapshot[DocumentReference], registry: HandlerRegistry | None = None
) -> dict[str, Any]:
    """A task with all its fields, and its place in a workflow: the tasks it runs after and the
    tasks that run after it, each with its state; a task waiting for its handler's limits is
    `throttled` (with how many wait before it)."""
    fields = snapshot.to_dict() or {}
    return summary(snapshot, registry) | {"fields": jsonable(fields)} | links(
        snapshot.reference, fields.get("after") or []) | {"throttled": throttled(snapshot),
                                                          "paused": paused(snapshot)}


def paused(snapshot: DocumentSnapshot[DocumentReference]) -> dict[str, Any] | None:
    """For a task held by a pause (`pausedFor`): the pause, `{target, by, since, reason}` (its
    reason "paused by care@..., since ..."); `{target}` alone if it has been lifted since."""
    fields = snapshot.to_dict() or {}
    target = fields.get(task.PAUSED_FOR)
    if fields.get("state") not in WAITING or not isinstance(target, str):
        return None
    pause = pauses.read(db.client_of(snapshot.reference), target)
    return pause.as_json() if pause else {"target": target}


def throttled(snapshot: DocumentSnapshot[DocumentReference]) -> dict[str, Any] | None:
    """For a task waiting for its handler's limits (`queuedAt`): `{ahead, key}`, the tasks of its
    key (per-key limits) or of its handler created before it and still waiting, capped at
    COUNT_CAP: a count aggregation, 1 read per 1,000 of them. None for any other task."""
    fields = snapshot.to_dict() or {}
    created = fields.get("createdAt")
    if (fields.get("state") not in WAITING or "queuedAt" not in fields
            or not isinstance(created, datetime.datetime)):
        return None
    key = fields.get(LIMIT_KEY)
    query: Any = db.client_of(snapshot.reference).collection_group(snapshot.reference.parent.id)
    if isinstance(key, str):
        query = query.where(filter=equal(LIMIT_KEY, key))
    else:
        query = (query.where(filter=equal("type", fields.get("type")))
                 .where(filter=equal("action", fields.get("action"))))
    query = (query.where(filter=firestore.FieldFilter("state", "in", WAITING))
             .where(filter=firestore.FieldFilter("createdAt", "<", created)))
    return {"ahead": count_matching(query.limit(COUNT_CAP)),
            "key": task.split_limit_key(key)[1] if isinstance(key, str) else None}


def links(ref: DocumentReference, after: list[str]) -> dict[str, list[dict[str, Any]]]:
    """`dependencies` (the tasks `after` names) and `dependents` (beside it, naming it in their
    `after`), as `{id, path, state}`; a dependency that does not exist has state None."""
    store = FirestoreStore()
    named = [ref.parent.document(str(id)) for id in after]
    return {
        "dependencies": [{"id": dep.id, "path": dep.path, "state": found.state if found else None}
                         for dep, found in zip(named, store.read_all(named), strict=True)],
        "dependents": [{"id": record.ref.id, "path": record.path, "state": record.state}
                       for record in store.dependents(ref)],
    }


def jsonable(value: Any) -> Any:
    """Firestore values as JSON: timestamps in ISO 8601, references as paths."""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, DocumentReference):
        return value.path
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def count_matching(query: Any) -> int:
    return int(query.count().get()[0][0].value)


def _encode_cursor(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode()


def _decode_cursor(cursor: str) -> str:
    try:
        path = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("cursor is not one this API returned") from exc
    if path.count("/") < 3:
        raise BadRequest("cursor is not one this API returned")
    return path
