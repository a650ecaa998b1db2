"""What an operator filters task lists by (the dashboard's `api/tasks` parameters, the CLI's
options): TaskFilter, parsed from strings and checked before anything is read, and the Firestore
query it stands for. Besides the task's own fields, a search by a data field: `data.orderId=o-1`
for a field that handlers declare searchable, alone or with the filters its indexes serve
(firetasks.indexes)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from google.cloud import firestore

from firetasks.config import TaskQueue
from firetasks.errors import BadRequest
from firetasks.indexes import SEARCH_WITH
from firetasks.task import ACTION_PATTERN, TYPE_PATTERN, State, is_state


@dataclass(frozen=True)
class TaskFilter:
    state: str | None = None
    type: str | None = None
    action: str | None = None
    parent: str | None = None  # a document path such as orders/o-123
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    collection: str | None = None  # one of the queue's tasks collections; the first by default
    data: tuple[str, str] | None = None  # a searchable data field, the value it equals

    @classmethod
    def parse(cls, params: Mapping[str, Any], queue: TaskQueue) -> TaskFilter:
        """From query parameters (strings); raises BadRequest naming the bad one."""
        searched = {key: value for key, value in params.items()
                    if str(key).startswith(DATA_PREFIX)}
        unknown = set(params) - set(FILTERS) - set(searched)
        if unknown:
            raise BadRequest(f"unknown filter(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {key: (str(value).strip() or None)
                                  for key, value in params.items() if key not in searched}
        if values.get("state") and not is_state(values["state"]):
            raise BadRequest(f"state must be one of {', '.join(State)}")
        if values.get("type") and not TYPE_PATTERN.fullmatch(values["type"]):
            raise BadRequest("type must be a name like 'order'")
        if values.get("action") and not ACTION_PATTERN.fullmatch(values["action"]):
            raise BadRequest("action must be a name or a dotted path")
        if values.get("parent"):
            values["parent"] = parent_path(queue, values["parent"])
        if values.get("collection") and values["collection"] not in queue.collections:
            raise BadRequest(f"collection must be one of {', '.join(queue.collections)}")
        for key in ("since", "until"):
            if values.get(key):
                values[key] = _timestamp(key, values[key])
        values["data"] = _search(searched, queue)
        unserved = [key for key in ("state", "type", "action")
                    if values.get(key) and key not in SEARCH_WITH]
        if values["data"] and unserved:
            raise BadRequest(f"data.{values['data'][0]} combines with "
                             f"{', '.join(SEARCH_WITH)}, parent, collection, since and until, "
                             f"not with {' or '.join(unserved)}: no index serves that search")
        return cls(**values)


DATA_PREFIX = "data."
FILTERS = tuple(field.name for field in fields(TaskFilter) if field.name != "data")
"""The filters' parameters, besides `data.<field>` (a searchable field of the tasks' data)."""


def _search(searched: Mapping[str, Any], queue: TaskQueue) -> tuple[str, str] | None:
    """The one data field searched and its value (a string), or None; BadRequest for a field no
    handler declares searchable (naming those that are), a second one, or a value too long."""
    searchable = queue.registry.searchable()
    for key in searched:
        field = str(key)[len(DATA_PREFIX):]
        if field not in searchable:
            known = ", ".join(DATA_PREFIX + name for name in searchable)
            raise BadRequest(f"{DATA_PREFIX}{field[:100]} is not searchable: "
                             + (f"search by {known}" if known else "no handler declares a "
                                "searchable data field (registry.handler(..., searchable=))"))
    given = [(str(key)[len(DATA_PREFIX):], str(value).strip())
             for key, value in searched.items() if str(value).strip()]
    if len(given) > 1:
        raise BadRequest("search by one data field at a time, not "
                         + " and ".join(DATA_PREFIX + field for field, _ in given))
    if given and len(given[0][1].encode(errors="replace")) > MAX_VALUE_BYTES:
        raise BadRequest(f"{DATA_PREFIX}{given[0][0]} must be at most {MAX_VALUE_BYTES:,} bytes")
    return given[0] if given else None


MAX_VALUE_BYTES = 1500  # Firestore indexes no more of a string


def filtered(client: firestore.Client, queue: TaskQueue, where: TaskFilter) -> Any:
    """The query of the tasks that match (unordered, unlimited)."""
    collection = where.collection or queue.collections[0]
    if where.parent:
        query: Any = client.document(where.parent).collection(collection)
    else:
        query = client.collection_group(collection)
    for field in ("state", "type", "action"):
        if getattr(where, field):
            query = query.where(filter=equal(field, getattr(where, field)))
    if where.data:
        query = query.where(filter=equal(DATA_PREFIX + where.data[0], where.data[1]))
    if where.since:
        query = query.where(filter=firestore.FieldFilter("createdAt", ">=", where.since))
    if where.until:
        query = query.where(filter=firestore.FieldFilter("createdAt", "<", where.until))
    return query


def equal(field: str, value: Any) -> firestore.FieldFilter:
    return firestore.FieldFilter(field, "==", value)


def parent_path(queue: TaskQueue, text: str) -> str:
    """A document path (`orders/o-123`), or a bare id (`o-123`) in the queue's `parent_alias`
    collection, as a document path."""
    path = text.strip().strip("/")
    if "/" not in path and queue.parent_alias:
        path = f"{queue.parent_alias}/{path}"
    segments = path.split("/")
    if len(segments) % 2 or not all(map(usable_id, segments)):
        raise BadRequest(f"parent {text[:200]!r} is not a document path like "
                         f"{example_parent(queue)}")
    return path


def usable_id(segment: str) -> bool:
    """An id Firestore accepts (not empty, `.`, `..` or `__reserved__`, at most 1,500 bytes)."""
    return (segment not in ("", ".", "..") and len(segment.encode(errors="replace")) <= 1500
            and not (segment.startswith("__") and segment.endswith("__")))


def example_parent(queue: TaskQueue) -> str:
    return f"{queue.parent_alias or 'parents'}/p-123"


def _timestamp(name: str, text: str) -> datetime.datetime:
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an ISO 8601 time like 2026-11-27T18:00:00Z") from exc
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
