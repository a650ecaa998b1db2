"""What operators do to tasks: retry finished ones, cancel waiting or running ones.

Each action is a transaction that checks the state machine, so two operators acting at once, or an
operator racing the processor, leave one consistent outcome. Given an actor, the same transaction
writes the action's audit record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import audit, db
from firetasks.audit import Actor
from firetasks.task import MAX_ATTEMPTS_LIMIT, State, check_transition


class TaskNotFound(LookupError):
    pass


def retry(
    ref: DocumentReference, *, max_attempts: int | None = None, actor: Actor | None = None
) -> dict[str, Any]:
    """Move a completed, failed or cancelled task back to `scheduled`, with a fresh attempt
    budget (of `max_attempts` if given). History and the attempt count are kept."""
    if max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise ValueError(f"max_attempts must be from 1 to {MAX_ATTEMPTS_LIMIT}")
    changes: dict[str, Any] = {"state": State.SCHEDULED.value, "runAt": firestore.DELETE_FIELD}
    if max_attempts is not None:
        changes["maxAttempts"] = max_attempts
    return _transition(ref, lambda state: (State.SCHEDULED, changes), "retry", actor)


def cancel(ref: DocumentReference, *, actor: Actor | None = None) -> dict[str, Any]:
    """Cancel a waiting task at once; a running one records the request and ends `cancelled`
    instead of being retried."""

    def plan(state: object) -> tuple[State, dict[str, Any]]:
        if state == State.RUNNING:  # the running invocation owns the task: leave it a note
            return State.CANCELLED, {"cancelRequested": True}
        return State.CANCELLED, {
            "state": State.CANCELLED.value, "finishedAt": firestore.SERVER_TIMESTAMP
        }

    return _transition(ref, plan, "cancel", actor)


Plan = Callable[[object], tuple[State, dict[str, Any]]]


def _transition(
    ref: DocumentReference, plan: Plan, action: str, actor: Actor | None
) -> dict[str, Any]:
    """Apply `plan(current state)`, the state it leads to and the changes, in a transaction.
    Returns the state before and after; raises IllegalTransition where the machine forbids it."""

    @firestore.transactional
    def apply(transaction: firestore.Transaction) -> dict[str, Any]:
        snapshot = ref.get(transaction=transaction)
        if not snapshot.exists:
            raise TaskNotFound(f"no task at {ref.path}")
        state = (snapshot.to_dict() or {}).get("state")
        target, changes = plan(state)
        check_transition(state, target)
        transaction.update(ref, changes | {"updatedAt": firestore.SERVER_TIMESTAMP})
        outcome = {"before": state, "after": changes.get("state", state)}
        if actor is not None:
            record = audit.entry(actor, action, ref.path, outcome)
            transaction.create(audit.entry_ref(client), record)
        return outcome

    client = db.client_of(ref)
    return apply(client.transaction())
