"""Fair shares: a handler's limits held for the handler as a whole (`concurrency=4`, its Cloud
Tasks queue), its waiting tasks started in turn between the values of its key (`key=..., shared=
True`), so that a merchant with 50,000 waiting tasks does not starve one with 3.

Each task of such a handler is queued with its key's value (`shareKey`) and a place in line
(`waitRank`, the smallest starts first, as for priorities) of `now + backlog * QUANTUM`, its
key's waiting tasks counted by one count query (one read per 1,000 of them): a key's n-th waiting
task is placed n QUANTUM seconds on, whichever key came first, so the hand-over (a concurrency
with a `lease`) starts the keys in turn, each about one task a QUANTUM of its backlog. No
document is shared between the tasks of one key, so a burst of one key writes nothing but its
own tasks. Priorities still apply (less PRIORITY_STEP a level).
"""

from __future__ import annotations

import datetime
from typing import Any

from google.cloud import firestore

from firetasks import db
from firetasks.conditional import with_backoff
from firetasks.record import TaskRecord
from firetasks.task import (
    LIMIT_KEY,
    PRIORITY_STEP,
    SHARE_KEY,
    WAIT_RANK,
    WAKE_STATES,
    handler_name,
)

QUANTUM = 1.0  # seconds of `waitRank` between two waiting tasks of one key
__all__ = ["QUANTUM", "SHARE_KEY", "backlog", "fair_mark"]


def backlog(record: TaskRecord, share: str) -> int:
    """How many tasks of the handler of `record` with key `share` wait (a count query)."""
    query: Any = (db.client_of(record.ref).collection_group(record.ref.parent.id)
             .where(filter=firestore.FieldFilter(LIMIT_KEY, "==",
                                                 handler_name(record.type, record.action)))
             .where(filter=firestore.FieldFilter(SHARE_KEY, "==", share))
             .where(filter=firestore.FieldFilter("state", "in", sorted(WAKE_STATES))))
    return int(with_backoff(query.count().get)[0][0].value)


def fair_mark(record: TaskRecord, share: str, now: datetime.datetime) -> dict[str, Any]:
    """The fields that queue a task of a shared handler in its key's turn (module docstring)."""
    priority = record.fields.get("priority")
    level = priority if isinstance(priority, int) and not isinstance(priority, bool) else 0
    rank = now.timestamp() + backlog(record, share) * QUANTUM - level * PRIORITY_STEP
    return {SHARE_KEY: share, WAIT_RANK: rank}
