"""What operators do to tasks: retry finished ones, cancel waiting or running ones.

Each action reads the task once and writes with a precondition on the version it read, in one
atomic batch with its audit record. No transaction: the Firestore emulator (and, less readily,
production) aborts transactions that contend on one document, so concurrent clicks could all fail.
A conditional write never aborts: of several operators acting on the same version exactly one
wins, and the others get TaskChanged (the dashboard's 409), never a second run. An action may
also name the state (`if_state`) or version (`if_version`) the operator was shown: a task that has
moved on since is TaskChanged too. Only transient errors are retried, with jittered backoff.
"""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference, DocumentSnapshot

from firetasks import audit, db
from firetasks.audit import Actor
from firetasks.task import MAX_ATTEMPTS_LIMIT, IllegalTransition, State, check_transition

T = TypeVar("T")
TRANSIENT = (exceptions.Aborted, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded,
             exceptions.InternalServerError, exceptions.TooManyRequests)
ATTEMPTS = 6
BACKOFF = 0.05  # seconds; doubled per attempt, fully jittered so contenders spread out


class TaskNotFound(LookupError):
    pass


class TaskChanged(IllegalTransition):
    """The task is no longer as the operator saw it: another write came first."""


def retry(
    ref: DocumentReference,
    *,
    max_attempts: int | None = None,
    actor: Actor | None = None,
    if_state: str | None = None,
    if_version: datetime.datetime | None = None,
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
                       if_state, if_version)


def cancel(
    ref: DocumentReference,
    *,
    actor: Actor | None = None,
    if_state: str | None = None,
    if_version: datetime.datetime | None = None,
) -> dict[str, Any]:
    """Cancel a waiting task at once; a running one records the request and ends `cancelled`
    instead of being retried."""

    def plan(state: object) -> tuple[State, dict[str, Any]]:
        if state == State.RUNNING:  # the running invocation owns the task: leave it a note
            return State.CANCELLED, {"cancelRequested": True}
        return State.CANCELLED, {
            "state": State.CANCELLED.value, "finishedAt": firestore.SERVER_TIMESTAMP
        }

    return _transition(ref, plan, "cancel", actor, if_state, if_version)


Plan = Callable[[object], tuple[State, dict[str, Any]]]


def _transition(
    ref: DocumentReference,
    plan: Plan,
    action: str,
    actor: Actor | None,
    if_state: str | None,
    if_version: datetime.datetime | None,
) -> dict[str, Any]:
    """Apply `plan(current state)`, the state it leads to and the changes, to the version read.
    Returns the state before and after; raises IllegalTransition where the machine forbids it and
    TaskChanged where the task is not (or no longer) what the operator saw."""
    snapshot: DocumentSnapshot = _with_backoff(ref.get)
    if not snapshot.exists:
        raise TaskNotFound(f"no task at {ref.path}")
    state = (snapshot.to_dict() or {}).get("state")
    if if_version is not None and db.version_of(snapshot) != if_version:
        raise TaskChanged(f"{ref.path} has changed since it was shown (it is {state} now): "
                          "reload it")
    if if_state is not None and state != if_state:
        raise TaskChanged(f"{ref.path} is {state} now, not {if_state}: reload it")
    target, changes = plan(state)
    check_transition(state, target)
    outcome = {"before": state, "after": changes.get("state", state)}
    client = db.client_of(ref)

    def commit() -> None:
        batch = client.batch()
        batch.update(ref, changes | {"updatedAt": firestore.SERVER_TIMESTAMP},
                     option=client.write_option(last_update_time=snapshot.update_time))
        if actor is not None:
            batch.create(audit.entry_ref(client), audit.entry(actor, action, ref.path, outcome))
        batch.commit()

    try:
        _with_backoff(commit)
    except exceptions.FailedPrecondition as exc:
        raise TaskChanged(f"another write changed {ref.path} first: reload it") from exc
    except exceptions.NotFound as exc:
        raise TaskNotFound(f"no task at {ref.path}") from exc
    return outcome


def _with_backoff(call: Callable[[], T]) -> T:
    """`call()`, tried again after a transient error, ATTEMPTS times in all."""
    for attempt in range(ATTEMPTS - 1):
        try:
            return call()
        except TRANSIENT:
            time.sleep(random.uniform(0, BACKOFF * 2 ** attempt))
    return call()
