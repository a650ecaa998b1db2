"""Prune: delete finished tasks that expired (or finished long enough ago), as Firestore's TTL
policy does in production: for the emulator, which runs no TTL, and for manual clean-ups. Each
delete is conditional on the version read and has its audit record. An operator's verb:
firetasks.operations.prune."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterator
from typing import Any

from google.cloud import firestore

from firetasks import audit
from firetasks.audit import Actor
from firetasks.clock import utc_now
from firetasks.conditional import MAX_BATCH_WRITES
from firetasks.config import TaskQueue
from firetasks.record import TaskRecord
from firetasks.retention import EXPIRE_AT
from firetasks.store import FirestoreStore, TaskStore
from firetasks.task import FINAL_STATES, State

PRUNE_BATCH = MAX_BATCH_WRITES // 2  # tasks per batch: each delete has its audit record


@dataclasses.dataclass
class PruneReport:
    matched: int = 0  # finished tasks due for deletion
    deleted: int = 0
    changed: int = 0  # left alone: changed (a retry, say) between the read and the delete


def prune(
    client: firestore.Client,
    queue: TaskQueue,
    *,
    actor: Actor,
    older_than: datetime.timedelta | None = None,
    dry_run: bool = False,
    now: datetime.datetime | None = None,
    progress: Callable[[str], None] = lambda line: None,
    store: TaskStore | None = None,
) -> PruneReport:
    """Delete the finished tasks of the queue's collections whose `expireAt` has passed, or, with
    `older_than`, those that finished longer ago than that: in batches of PRUNE_BATCH tasks and
    their audit records, each delete conditional on the version read (a task retried meanwhile is
    kept). Tasks that are not finished are never read or deleted. `dry_run` only counts."""
    now = now or utc_now()
    store = store or FirestoreStore()
    report = PruneReport()
    for collection in queue.collections:
        for state in sorted(FINAL_STATES):
            batch: list[TaskRecord] = []
            for record in _prunable(client, queue, store, collection, state, older_than, now):
                report.matched += 1
                batch.append(record)
                if len(batch) == PRUNE_BATCH:
                    _delete(store, batch, state, actor, dry_run, report, progress)
                    batch = []
            _delete(store, batch, state, actor, dry_run, report, progress)
    return report


def _prunable(
    client: firestore.Client,
    queue: TaskQueue,
    store: TaskStore,
    collection: str,
    state: State,
    older_than: datetime.timedelta | None,
    now: datetime.datetime,
) -> Iterator[TaskRecord]:
    """The `state` tasks of `collection` to prune, by `finishedAt` (the stats' index; `expireAt`
    has none): finished before `now - older_than`, or expired. A task expires no sooner than the
    shortest retention of its state allows, so only tasks finished before that are read."""
    if older_than is None:
        shortest = queue.registry.shortest_retention(state)
        before = now - (shortest or datetime.timedelta())
    else:
        before = now - older_than
    for page in store.scan(client, collection, state.value, "finishedAt", before):
        for record in page:
            expiry = record.fields.get(EXPIRE_AT)
            if older_than is not None or (isinstance(expiry, datetime.datetime) and expiry <= now):
                yield record


def _delete(
    store: TaskStore,
    records: list[TaskRecord],
    state: State,
    actor: Actor,
    dry_run: bool,
    report: PruneReport,
    progress: Callable[[str], None],
) -> None:
    """Delete one batch of tasks with an audit record each; should one have changed since it was
    read, each is deleted on its own, and the changed ones kept."""
    if not records:
        return
    if dry_run:
        progress(f"would delete {len(records)} {state.value} task(s), e.g. {records[0].path}")
        return

    def entry(record: TaskRecord) -> dict[str, Any]:
        return audit.entry(actor, "prune", record.path, {"before": state.value,
                                                         "after": "deleted"})

    if store.delete_all_if_unchanged(records, [entry(record) for record in records]):
        report.deleted += len(records)
    else:
        for record in records:
            if store.delete_all_if_unchanged([record], [entry(record)]):
                report.deleted += 1
            else:
                report.changed += 1
    progress(f"deleted {report.deleted} task(s) so far, the last {state.value}: "
             f"{records[-1].path}")
