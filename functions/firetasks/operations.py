"""What operators do to tasks: retry finished ones, cancel waiting or running ones, prune old ones.

Each action reads the task once and writes, with its audit record, conditionally on the version
it read (firetasks.store): of several operators acting on the same version exactly one wins, and
the others get TaskChanged (the dashboard's 409), never a second run. An action may also name the
state (`if_state`) or version (`if_version`) the operator was shown: a task that has moved on
since is TaskChanged too.

`prune` deletes finished tasks that expired (or finished long enough ago), as Firestore's TTL policy
does in production: for the emulator, which runs no TTL, and for manual clean-ups.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Callable, Iterator
from typing import Any

from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import audit, db, queries, workflow
from firetasks.audit import Actor
from firetasks.clock import utc_now
from firetasks.config import TaskQueue
from firetasks.errors import BadRequest, IllegalTransition, TaskChanged, TaskNotFound
from firetasks.queries import TaskFilter
from firetasks.record import TaskRecord
from firetasks.retention import DEFAULT_RETENTION, EXPIRE_AT, retained
from firetasks.store import MAX_BATCH_WRITES, FirestoreStore, TaskStore, with_backoff
from firetasks.task import FINAL_STATES, MAX_ATTEMPTS_LIMIT, State, check_transition


def retry(
    ref: DocumentReference,
    *,
    max_attempts: int | None = None,
    actor: Actor | None = None,
    if_state: str | None = None,
    if_version: datetime.datetime | None = None,
    store: TaskStore | None = None,
) -> dict[str, Any]:
    """Move a completed, failed or cancelled task back to `scheduled`, with a fresh attempt
    budget (of `max_attempts` if given). History and the attempt count are kept. `runAt` becomes
    the retry's time: should its trigger event be lost, the sweeper finds it by that. Its
    `expireAt` goes: a task that is not finished never expires. The dependents that its failure
    ended go back to `waiting` (firetasks.workflow): `reopened` counts them, if any."""
    if max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise ValueError(f"max_attempts must be from 1 to {MAX_ATTEMPTS_LIMIT}")
    changes: dict[str, Any] = {"state": State.SCHEDULED.value,
                               "runAt": firestore.SERVER_TIMESTAMP,
                               EXPIRE_AT: firestore.DELETE_FIELD}
    if max_attempts is not None:
        changes["maxAttempts"] = max_attempts
    store = store or FirestoreStore()
    outcome = _transition(ref, lambda record: (State.SCHEDULED, changes), "retry", actor,
                          if_state, if_version, store)
    reopened = workflow.reopen(ref, store) if outcome["before"] != State.COMPLETED else 0
    return outcome | ({"reopened": reopened} if reopened else {})


def cancel(
    ref: DocumentReference,
    *,
    actor: Actor | None = None,
    if_state: str | None = None,
    if_version: datetime.datetime | None = None,
    store: TaskStore | None = None,
    queue: TaskQueue | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """Cancel a waiting task at once; a running one records the request and ends `cancelled`
    instead of being retried. A task cancelled at once expires by its handler's retention in
    `queue` (default: DEFAULT_RETENTION), from `now`."""

    def plan(record: TaskRecord) -> tuple[State, dict[str, Any]]:
        if record.state == State.RUNNING:  # the running invocation owns the task: leave a note
            return State.CANCELLED, {"cancelRequested": True}
        policy = queue.registry.retention(record.type, record.action) if queue else None
        return State.CANCELLED, retained(
            {"state": State.CANCELLED.value, "finishedAt": firestore.SERVER_TIMESTAMP},
            policy or DEFAULT_RETENTION, now or utc_now())

    return _transition(ref, plan, "cancel", actor, if_state, if_version, store)


BULK_LIMIT = 500  # tasks per bulk retry: a page of the dashboard, well inside a function's time


def bulk_retry(
    client: firestore.Client,
    queue: TaskQueue,
    where: TaskFilter,
    *,
    confirm: int | None,
    actor: Actor | None = None,
    max_attempts: int | None = None,
) -> dict[str, Any]:
    """The failed tasks matching `where`, for the dashboard and the CLI alike. With `confirm`
    None, counts them (and names up to 20). With `confirm` equal to their count now, retries each
    at the version counted, skipping any that moved on meanwhile. Raises BadRequest beyond
    BULK_LIMIT and TaskChanged when the count changed since the operator saw it."""
    where = dataclasses.replace(where, state=State.FAILED.value)
    matches = queries.matching(client, queue, where, BULK_LIMIT + 1)
    if len(matches) > BULK_LIMIT:
        raise BadRequest(f"more than {BULK_LIMIT} tasks match; narrow the filter")
    if confirm is None:
        return {"count": len(matches), "paths": [m.reference.path for m in matches[:20]]}
    if confirm != len(matches):
        raise TaskChanged(f"{len(matches)} tasks match now, not {confirm}: count again before "
                          "confirming")
    retried = []
    for snapshot in matches:
        try:
            retry(snapshot.reference, max_attempts=max_attempts, actor=actor,
                  if_version=db.as_version(snapshot.update_time))
        except IllegalTransition:  # it moved on since the count: leave it
            continue
        retried.append(snapshot.reference.path)
    return {"count": len(matches), "retried": len(retried), "paths": retried}


Plan = Callable[[TaskRecord], tuple[State, dict[str, Any]]]


def _transition(
    ref: DocumentReference,
    plan: Plan,
    action: str,
    actor: Actor | None,
    if_state: str | None,
    if_version: datetime.datetime | None,
    store: TaskStore | None,
) -> dict[str, Any]:
    """Apply `plan(current state)`, the state it leads to and the changes, to the version read.
    Returns the state before and after; raises IllegalTransition where the machine forbids it and
    TaskChanged where the task is not (or no longer) what the operator saw."""
    store = store or FirestoreStore()
    record = store.read(ref)
    if record is None:
        raise TaskNotFound(f"no task at {ref.path}")
    state = record.state
    if if_version is not None and db.as_version(record.version) != if_version:
        raise TaskChanged(f"{ref.path} has changed since it was shown (it is {state} now): "
                          "reload it")
    if if_state is not None and state != if_state:
        raise TaskChanged(f"{ref.path} is {state} now, not {if_state}: reload it")
    target, changes = plan(record)
    check_transition(state, target)
    outcome = {"before": state, "after": changes.get("state", state)}
    entry = None if actor is None else audit.entry(actor, action, ref.path, outcome)
    store.transition(record, changes | {"updatedAt": firestore.SERVER_TIMESTAMP}, entry)
    return outcome


PRUNE_BATCH = MAX_BATCH_WRITES // 2  # tasks per batch: each delete has its audit record
Snapshot = firestore.DocumentSnapshot[DocumentReference]


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
) -> PruneReport:
    """Delete the finished tasks of the queue's collections whose `expireAt` has passed, or, with
    `older_than`, those that finished longer ago than that: in batches of PRUNE_BATCH tasks and
    their audit records, each delete conditional on the version read (a task retried meanwhile is
    kept). Tasks that are not finished are never read or deleted. `dry_run` only counts."""
    now = now or utc_now()
    report = PruneReport()
    for collection in queue.collections:
        for state in sorted(FINAL_STATES):
            batch: list[Snapshot] = []
            for snapshot in _prunable(client, queue, collection, state, older_than, now):
                report.matched += 1
                batch.append(snapshot)
                if len(batch) == PRUNE_BATCH:
                    _delete(client, batch, state, actor, dry_run, report, progress)
                    batch = []
            _delete(client, batch, state, actor, dry_run, report, progress)
    return report


def _prunable(
    client: firestore.Client,
    queue: TaskQueue,
    collection: str,
    state: State,
    older_than: datetime.timedelta | None,
    now: datetime.datetime,
) -> Iterator[Snapshot]:
    """The `state` tasks of `collection` to prune, by `finishedAt` (the stats' index; `expireAt`
    has none): finished before `now - older_than`, or expired. A task expires no sooner than the
    shortest retention of its state allows, so only tasks finished before that are read."""
    if older_than is None:
        policies = [queue.registry.retention(*name.split(".", 1))
                    for name in queue.registry.names()]
        kept = [policy.kept(state) for policy in [*policies, DEFAULT_RETENTION]]
        before = now - min((k for k in kept if k is not None), default=datetime.timedelta())
    else:
        before = now - older_than
    query = (client.collection_group(collection)
             .where(filter=firestore.FieldFilter("state", "==", state.value))
             .where(filter=firestore.FieldFilter("finishedAt", "<", before))
             .order_by("finishedAt").order_by("__name__"))
    while True:
        page = with_backoff(functools.partial(_page, query))
        for snapshot in page:
            expiry = (snapshot.to_dict() or {}).get(EXPIRE_AT)
            if older_than is not None or (isinstance(expiry, datetime.datetime) and expiry <= now):
                yield snapshot
        if len(page) < PRUNE_BATCH:
            return
        query = query.start_after(page[-1])


def _page(query: Any) -> list[Snapshot]:
    return list(query.limit(PRUNE_BATCH).stream())


def _delete(
    client: firestore.Client,
    snapshots: list[Snapshot],
    state: State,
    actor: Actor,
    dry_run: bool,
    report: PruneReport,
    progress: Callable[[str], None],
) -> None:
    """Delete one batch of tasks with an audit record each; should one have changed since it was
    read, each is deleted on its own, and the changed ones kept."""
    if not snapshots:
        return
    if dry_run:
        progress(f"would delete {len(snapshots)} {state.value} task(s), e.g. "
                 f"{snapshots[0].reference.path}")
        return

    def commit(group: list[Snapshot]) -> None:
        batch = client.batch()
        for snapshot in group:
            batch.delete(snapshot.reference, option=firestore.Client.write_option(
                last_update_time=snapshot.update_time))
            batch.create(audit.entry_ref(client), audit.entry(
                actor, "prune", snapshot.reference.path, {"before": state.value,
                                                          "after": "deleted"}))
        with_backoff(batch.commit)

    try:
        commit(snapshots)
        report.deleted += len(snapshots)
    except (exceptions.FailedPrecondition, exceptions.NotFound):
        for snapshot in snapshots:
            try:
                commit([snapshot])
                report.deleted += 1
            except (exceptions.FailedPrecondition, exceptions.NotFound):
                report.changed += 1
    progress(f"deleted {report.deleted} task(s) so far, the last {state.value}: "
             f"{snapshots[-1].reference.path}")
