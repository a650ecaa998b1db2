"""The Firestore indexes a queue's queries need, for each of its tasks collections: the sweeper's
candidate ranges, the stats, the charts, a key's waiting tasks, the task lists under the common
filters (newest first) and the searches by the data fields handlers declare searchable; and the
key slots' leases (firetasks.key_slots). Free-form fields are exempt from indexing (but for
those searchable fields of `data`); `expireAt` too, and it carries the TTL policy that deletes
finished tasks (firetasks.retention). `firetasks indexes` prints them or writes them into
firestore.indexes.json, where a test checks them against main.py's queue."""

from __future__ import annotations

from typing import Any

from firetasks.config import TaskQueue
from firetasks.events import EVENTS
from firetasks.key_slots import SLOT_GROUP
from firetasks.retention import EXPIRE_AT

ASC, DESC = "ASCENDING", "DESCENDING"
CONTAINS = "CONTAINS"  # an array field's index, for array-contains
GROUP, COLLECTION = "COLLECTION_GROUP", "COLLECTION"
COMPOSITE = [  # (scope, fields and their orders)
    (GROUP, [("state", ASC), ("leaseExpiresAt", ASC)]),  # the sweeper: expired leases
    (GROUP, [("state", ASC), ("runAt", ASC)]),  # ... overdue retries, scheduled tasks by runAt
    (GROUP, [("state", ASC), ("createdAt", ASC)]),  # ... scheduled tasks by createdAt; oldest
    (GROUP, [("state", ASC), ("finishedAt", ASC)]),  # stats: finished in the last hour, day
    (GROUP, [("state", ASC), ("type", ASC), ("action", ASC), ("finishedAt", ASC)]),  # by handler
    (GROUP, [("type", ASC), ("action", ASC), ("finishedAt", DESC)]),  # charts: one handler's hour
    (GROUP, [("state", ASC), ("createdAt", DESC)]),  # lists, newest first
    (GROUP, [("type", ASC), ("createdAt", DESC)]),
    (GROUP, [("action", ASC), ("createdAt", DESC)]),
    (GROUP, [("type", ASC), ("action", ASC), ("createdAt", DESC)]),
    (GROUP, [("state", ASC), ("type", ASC), ("createdAt", DESC)]),
    (GROUP, [("state", ASC), ("action", ASC), ("createdAt", DESC)]),
    (GROUP, [("state", ASC), ("type", ASC), ("action", ASC), ("createdAt", DESC)]),
    (COLLECTION, [("state", ASC), ("createdAt", DESC)]),  # one parent's tasks
    (COLLECTION, [("type", ASC), ("action", ASC), ("createdAt", DESC)]),
    (COLLECTION, [("after", CONTAINS), ("state", ASC)]),  # a task's dependents (workflow)
    (GROUP, [("limitKey", ASC), ("state", ASC), ("createdAt", ASC)]),  # the task page's "ahead"
    (GROUP, [("limitKey", ASC), ("state", ASC), ("waitRank", ASC)]),  # next: priority, then age
    (GROUP, [("limitKey", ASC), ("shareKey", ASC), ("state", ASC)]),  # a key's share (count)
    (GROUP, [("pausedFor", ASC), ("state", ASC), ("createdAt", ASC)]),  # a pause's held tasks
]
SINGLE_FIELD = {"state": [ASC], "type": [ASC], "action": [ASC], "createdAt": [ASC, DESC],
                "finishedAt": [ASC, DESC]}  # finishedAt: the charts (firetasks.charts)
# Never queried: free-form and often large, or (queuedAt, firetasks.limits) a sequential timestamp
NOT_INDEXED = ["data", "result", "error", "history", "queuedAt", "steps"]
SEARCH_WITH = ("state",)
"""The equality filters a search by a data field combines with (parent, collection, since and
until too): search_indexes has an index for each, newest first; no other (firetasks.filters)."""


def search_indexes(field: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The composite indexes of the lists searched by `data.<field>` (registry.searchable), across
    parents and under one, alone or with each of SEARCH_WITH, newest first."""
    searched, newest = (f"data.{field}", ASC), ("createdAt", DESC)
    return [(scope, [*combined, searched, newest])
            for combined in ([], *([(name, ASC)] for name in SEARCH_WITH))
            for scope in (GROUP, COLLECTION)]


def index_config(queue: TaskQueue) -> dict[str, list[dict[str, Any]]]:
    """The `indexes` and `fieldOverrides` of firestore.indexes.json for the queue's collections."""
    indexes: list[dict[str, Any]] = []
    overrides: list[dict[str, Any]] = []
    searchable = list(queue.registry.searchable())
    composite = COMPOSITE + [index for field in searchable for index in search_indexes(field)]
    for collection in queue.collections:
        indexes += [{"collectionGroup": collection, "queryScope": scope,
                     "fields": [{"fieldPath": path,
                                 "arrayConfig" if order == CONTAINS else "order": order}
                                for path, order in fields]}
                    for scope, fields in composite]
        overrides += [{"collectionGroup": collection, "fieldPath": path,
                       "indexes": [{"order": order, "queryScope": scope}
                                   for order in orders for scope in (COLLECTION, GROUP)]}
                      for path, orders in SINGLE_FIELD.items()]
        overrides += [{"collectionGroup": collection, "fieldPath": path, "indexes": []}
                      for path in NOT_INDEXED]
        overrides += [{"collectionGroup": collection, "fieldPath": f"data.{field}",  # searchable:
                       "indexes": [{"order": ASC, "queryScope": scope}  # indexed, unlike the
                                   for scope in (COLLECTION, GROUP)]}    # rest of data
                      for field in searchable]
        overrides.append({"collectionGroup": collection, "fieldPath": EXPIRE_AT, "ttl": True,
                          "indexes": []})  # Firestore deletes the task once expireAt is past
    overrides.append({"collectionGroup": SLOT_GROUP, "fieldPath": "until",  # the sweeper's
                      "indexes": [{"order": ASC, "queryScope": scope}   # reclaim (key_slots)
                                  for scope in (COLLECTION, GROUP)]})
    overrides.append({"collectionGroup": EVENTS, "fieldPath": "createdAt",  # the sweeper's
                      "indexes": [{"order": ASC, "queryScope": scope}   # events (firetasks.events)
                                  for scope in (COLLECTION, GROUP)]})
    return {"indexes": indexes, "fieldOverrides": overrides}


def merged(existing: dict[str, Any], queue: TaskQueue) -> dict[str, Any]:
    """An indexes file with the queue's collections' entries replaced by index_config's, and
    everyone else's kept."""
    ours = {*queue.collections, SLOT_GROUP, EVENTS}
    config = index_config(queue)
    return existing | {
        key: [entry for entry in existing.get(key, []) if entry["collectionGroup"] not in ours]
        + config[key]
        for key in ("indexes", "fieldOverrides")
    }
