"""What operators do to tasks: retry finished ones, cancel waiting or running ones.

Each action reads the task once and writes, with its audit record, conditionally on the version
it read (firetasks.store): of several operators acting on the same version exactly one wins, and
the others get TaskChanged (the dashboard's 409), never a second run. An action may also name the
state (`if_state`) or version (`if_version`) the operator was shown: a task that has moved on
since is TaskChanged too.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import audit, db, queries
from firetasks.audit import Actor
from firetasks.config import TaskQueue
from firetasks.errors import BadRequest, IllegalTransition, TaskChanged, TaskNotFound
from firetasks.queries import TaskFilter
from firetasks.store import FirestoreStore, TaskStore
from firetasks.task import MAX_ATTEMPTS_LIMIT, State, check_transition


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
    the retry's time: should its trigger event be lost, the sweeper finds it by that."""
    if max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise ValueError(f"max_attempts must be from 1 to {MAX_ATTEMPTS_LIMIT}")
    changes: dict[str, Any] = {"state": State.SCHEDULED.value,
                               "runAt": firestore.SERVER_TIMESTAMP}
    if max_attempts is not None:
        changes["maxAttempts"] = max_attempts
    return _transition(ref, lambda state: (State.SCHEDULED, changes), "retry", actor,
                       if_state, if_version, store)


def cancel(
    ref: DocumentReference,
    *,
    actor: Actor | None = None,
    if_state: str | None = None,
    if_version: datetime.datetime | None = None,
    store: TaskStore | None = None,
) -> dict[str, Any]:
    """Cancel a waiting task at once; a running one records the request and ends `cancelled`
    instead of being retried."""

    def plan(state: object) -> tuple[State, dict[str, Any]]:
        if state == State.RUNNING:  # the running invocation owns the task: leave it a note
            return State.CANCELLED, {"cancelRequested": True}
        return State.CANCELLED, {
            "state": State.CANCELLED.value, "finishedAt": firestore.SERVER_TIMESTAMP
        }

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


Plan = Callable[[object], tuple[State, dict[str, Any]]]


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
    target, changes = plan(state)
    check_transition(state, target)
    outcome = {"before": state, "after": changes.get("state", state)}
    entry = None if actor is None else audit.entry(actor, action, ref.path, outcome)
    store.transition(record, changes | {"updatedAt": firestore.SERVER_TIMESTAMP}, entry)
    return outcome
