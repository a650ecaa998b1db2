"""Every change of a task's state, in one place: each move is a function that checks the state
machine and returns the fields to write. The processor, the workflow, operators and the sweeper
call these; nothing else writes `state` (tests/unit/test_transitions.py checks it).

Retention (`expireAt`) and `history` are applied here, once per write: a move that ends a task
sets its expiry, any other removes it, so a task that waits, runs or retries is never deleted.
"""

from __future__ import annotations

import dataclasses
import datetime
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore

from firetasks.errors import IllegalTransition
from firetasks.record import TaskRecord
from firetasks.retention import RetentionPolicy, retained
from firetasks.retry import RetryPolicy
from firetasks.task import (
    FINAL_STATES,
    LIMIT_KEY,
    PAUSED_FOR,
    SHARE_KEY,
    SUSPENDED,
    WAIT_RANK,
    WAKE_STATES,
    State,
    is_state,
    wait_rank,
)

# The state machine. Clients create `scheduled` tasks (`waiting` ones if they name tasks to run
# after: released to `scheduled`, or ended by their failure policy, and brought back to `waiting`
# when an operator retries the dependency that failed them); the processor claims them (`running`)
# and ends each attempt; operators cancel waiting or running tasks and retry finished ones. An
# atomic handler's attempt is never claimed: it ends straight from `scheduled` or `retrying`. A
# durable handler's attempt that sleeps goes back from `running` to `scheduled` (`suspend`).
TRANSITIONS: dict[State, frozenset[State]] = {
    State.WAITING: frozenset({State.SCHEDULED, State.FAILED, State.CANCELLED}),
    State.SCHEDULED: frozenset({State.RUNNING, State.COMPLETED, State.RETRYING, State.FAILED,
                                State.CANCELLED}),
    State.RETRYING: frozenset({State.RUNNING, State.COMPLETED, State.RETRYING, State.FAILED,
                               State.CANCELLED}),
    State.RUNNING: frozenset({State.COMPLETED, State.RETRYING, State.FAILED, State.CANCELLED,
                              State.SCHEDULED}),
    State.COMPLETED: frozenset({State.SCHEDULED, State.WAITING}),
    State.FAILED: frozenset({State.SCHEDULED, State.WAITING}),
    State.CANCELLED: frozenset({State.SCHEDULED, State.WAITING}),
}
RUNNING = frozenset({State.RUNNING})
CANCELLABLE = frozenset({State.WAITING, State.SCHEDULED, State.RETRYING, State.RUNNING})
WAITING = frozenset({State.WAITING})
ENDED_BY_DEPENDENCY = frozenset({State.FAILED, State.CANCELLED})
HISTORY_LIMIT = 20  # attempts kept in `history`: far below Firestore's 1 MiB per document
DEPENDENCY_FAILED = "DependencyFailed"


def check(old: object, new: State, sources: frozenset[State] | None = None) -> None:
    """Raise IllegalTransition unless the state machine allows moving from `old` to `new` (and
    the move starts from one of `sources`, if given)."""
    if (not is_state(old) or new not in TRANSITIONS[State(old)]
            or (sources is not None and old not in sources)):
        raise IllegalTransition(f"a {old} task cannot become {new}")


def created(*, waits: bool) -> State:
    """The state a task is created in: `waiting` if it runs after others, else `scheduled`."""
    return State.WAITING if waits else State.SCHEDULED


def _ended(state: State, **fields: Any) -> dict[str, Any]:
    ended = {"state": state.value, "updatedAt": firestore.SERVER_TIMESTAMP,
             "leaseExpiresAt": firestore.DELETE_FIELD, "leaseId": firestore.DELETE_FIELD}
    if state != State.RETRYING:
        ended["finishedAt"] = firestore.SERVER_TIMESTAMP
    return ended | {name: value for name, value in fields.items() if value is not None}


def claim(record: TaskRecord, started: datetime.datetime,
          lease: datetime.timedelta) -> dict[str, Any]:
    """A due task's claim: `running`, one more attempt, a lease. Moving a task to `scheduled`
    starts a fresh attempt budget; `retrying` continues it, and so does a suspended one
    (`suspend`). The lease's random id tells this claim from another's
    (firetasks.conditional.landed: a claim whose answer was lost)."""
    check(record.state, State.RUNNING)
    attempt = record.attempts + 1
    return record.changes({
        "state": State.RUNNING.value,
        "attempts": attempt,
        "retryBase": record.retry_base
        if record.state == State.RETRYING or SUSPENDED in record.fields else attempt - 1,
        "startedAt": firestore.SERVER_TIMESTAMP,
        "updatedAt": firestore.SERVER_TIMESTAMP,
        "leaseExpiresAt": started + lease,
        "leaseId": secrets.token_hex(8),
        "queuedAt": firestore.DELETE_FIELD,
        LIMIT_KEY: firestore.DELETE_FIELD,
        PAUSED_FOR: firestore.DELETE_FIELD,
        WAIT_RANK: firestore.DELETE_FIELD,
        SHARE_KEY: firestore.DELETE_FIELD,
        "finishedAt": firestore.DELETE_FIELD,
        "result": firestore.DELETE_FIELD,
        "error": firestore.DELETE_FIELD,
        "progress": firestore.DELETE_FIELD,
        "expireAt": firestore.DELETE_FIELD,
        SUSPENDED: firestore.DELETE_FIELD,
    })


def as_claimed(record: TaskRecord, version: Any) -> TaskRecord:
    """The task as its claim left it, at `version`: what the attempt's end moves on from."""
    return dataclasses.replace(record, fields={**record.fields, "state": State.RUNNING.value},
                               version=version)


@dataclass(frozen=True)
class Ending:
    """How one attempt ended: its handler's `result`, or the `error` it raised, and where
    (`traceback`; `permanent`: no retry; `delay`: the handler's own RetryAfter)."""

    attempt: int
    started: datetime.datetime
    finished: datetime.datetime
    result: Any = None
    error: dict[str, str] | None = None
    traceback: str | None = None
    permanent: bool = False
    delay: float | None = None
    suspension: Mapping[str, Any] | None = None  # a sleep's fields: the attempt did not end


def end_attempt(
    record: TaskRecord, ending: Ending, retry: RetryPolicy, retention: RetentionPolicy,
    *, used: int, extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields that end a `running` attempt (the `used`-th of the task's budget): `completed`;
    `retrying` if the budget (the task's `maxAttempts`, else the policy's) allows another;
    `failed`; or `cancelled`, if a cancel was requested and the attempt did not complete. The
    attempt's entry (with that final state) is appended to `history`."""
    if ending.error is None:
        state = State.COMPLETED
    elif record.cancel_requested:
        state = State.CANCELLED
    elif ending.permanent or used >= (record.max_attempts or retry.max_attempts):
        state = State.FAILED
    else:
        state = State.RETRYING
    check(record.state, state)
    fields = _ended(state, result=ending.result, error=ending.error) | dict(extra or {})
    if state == State.RETRYING:
        seconds = retry.delay(used) if ending.delay is None else max(0.0, ending.delay)
        fields["runAt"] = ending.finished + datetime.timedelta(seconds=seconds)
    if record.cancel_requested:
        fields["cancelRequested"] = firestore.DELETE_FIELD
    entry = {"attempt": ending.attempt, "startedAt": ending.started,
             "finishedAt": ending.finished, "outcome": state.value, "error": ending.error}
    if ending.traceback is not None:
        entry["traceback"] = ending.traceback
    fields["history"] = [*record.history[-(HISTORY_LIMIT - 1):], entry]
    return retained(fields, retention, ending.finished)


def atomic_commit(
    record: TaskRecord, ending: Ending, retry: RetryPolicy, retention: RetentionPolicy,
    *, extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An atomic attempt's one write: its claim and its end at once, straight from `scheduled`
    or `retrying` (it is never `running`)."""
    started = claim(record, ending.started, datetime.timedelta())
    unclaimed = {name: value for name, value in started.items()
                 if name not in ("leaseExpiresAt", "leaseId", "state")}
    return record.changes(unclaimed | {"startedAt": ending.started} | end_attempt(
        record, ending, retry, retention, used=started["attempts"] - started["retryBase"],
        extra=extra))


def suspend(record: TaskRecord, ending: Ending, retention: RetentionPolicy) -> dict[str, Any]:
    """A running durable handler that sleeps (firetasks.steps): `scheduled` again, due when the
    sleep ends, with the suspension's fields (`suspended`: what it sleeps for). It was not an
    attempt: the count goes back. A cancel requested meanwhile ends it `cancelled` instead."""
    suspension = dict(ending.suspension or {})
    if record.cancel_requested:
        check(record.state, State.CANCELLED, RUNNING)
        return retained(_ended(State.CANCELLED, cancelRequested=firestore.DELETE_FIELD,
                               attempts=ending.attempt - 1), retention, ending.finished)
    check(record.state, State.SCHEDULED, RUNNING)
    return suspension | {"state": State.SCHEDULED.value, "attempts": ending.attempt - 1,
                         "runAt": suspension[SUSPENDED]["until"],
                         "updatedAt": firestore.SERVER_TIMESTAMP,
                         "leaseExpiresAt": firestore.DELETE_FIELD,
                         "expireAt": firestore.DELETE_FIELD}


def resume(record: TaskRecord, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A task suspended on a wait (firetasks.events) is delivered its event, or an operator ends the
    wait: `fields` (the wait's step) are saved and the task is due now; it stays `scheduled`."""
    if record.state != State.SCHEDULED or not isinstance(record.fields.get(SUSPENDED), dict):
        raise IllegalTransition(f"a {record.state} task that does not wait cannot be resumed")
    return {**fields, "runAt": firestore.SERVER_TIMESTAMP, "updatedAt": firestore.SERVER_TIMESTAMP}


def expire(record: TaskRecord, now: datetime.datetime, retry: RetryPolicy,
           retention: RetentionPolicy) -> dict[str, Any]:
    """A `running` attempt whose lease passed (its invocation died) ends as a failed one."""
    if record.state != State.RUNNING:
        raise IllegalTransition(f"a {record.state} task has no lease to expire")
    lease = record.fields.get("leaseExpiresAt")
    when = lease.isoformat() if isinstance(lease, datetime.datetime) else "?"
    started = record.fields.get("startedAt")
    error = {"type": "LeaseExpired",
             "message": f"attempt {record.attempts} did not finish before its lease expired at "
                        f"{when}: the function crashed, timed out or was redeployed"}
    ending = Ending(record.attempts, started if isinstance(started, datetime.datetime) else now,
                    now, error=error)
    return end_attempt(record, ending, retry, retention,
                       used=record.attempts - record.retry_base)


def invalid(record: TaskRecord, message: str, now: datetime.datetime,
            retention: RetentionPolicy) -> dict[str, Any]:
    """A malformed task ends `failed` with an InvalidTask error (from any state it may hold,
    even one that is not a state)."""
    error = {"type": "InvalidTask", "message": message}
    return retained(_ended(State.FAILED, error=error), retention, now)


def cancel_at_start(record: TaskRecord, now: datetime.datetime,
                    retention: RetentionPolicy) -> dict[str, Any]:
    """A task that arrives with `cancelRequested` ends `cancelled` unrun; the request is
    honoured, so the flag goes (a later retry runs it)."""
    check(record.state, State.CANCELLED, WAKE_STATES)
    return retained(_ended(State.CANCELLED, cancelRequested=firestore.DELETE_FIELD),
                    retention, now)


def release(record: TaskRecord, now: datetime.datetime) -> dict[str, Any]:
    """A waiting task whose dependencies allow it becomes `scheduled`. `runAt` = now lets the
    sweeper find it should the release's event be lost; a later `runAt` of its own is kept."""
    check(record.state, State.SCHEDULED, WAITING)
    fields = {"state": State.SCHEDULED.value, "updatedAt": firestore.SERVER_TIMESTAMP,
              "expireAt": firestore.DELETE_FIELD}
    if record.run_at is None or record.run_at <= now:
        fields["runAt"] = firestore.SERVER_TIMESTAMP
    return fields


def end_by_dependency(record: TaskRecord, policy: str, error: dict[str, str],
                      now: datetime.datetime, retention: RetentionPolicy) -> dict[str, Any]:
    """A waiting task ended by a failed dependency: `cancelled` under policy "skip", else
    `failed`; its error names the dependency (see `reopen`)."""
    state = State.CANCELLED if policy == "skip" else State.FAILED
    check(record.state, state, WAITING)
    return retained(_ended(state, error=error), retention, now)


def ended_by(record: TaskRecord, dependency: str) -> bool:
    """Whether `record` is a task that the failure of `dependency` (an id) ended."""
    error = record.fields.get("error")
    return (record.state in (State.FAILED, State.CANCELLED) and isinstance(error, dict)
            and error.get("type") == DEPENDENCY_FAILED and error.get("dependency") == dependency)


def reopen(record: TaskRecord) -> dict[str, Any]:
    """A dependent that a failed dependency ended goes back to `waiting`: an operator retried
    the dependency."""
    check(record.state, State.WAITING, ENDED_BY_DEPENDENCY)
    return {"state": State.WAITING.value, "updatedAt": firestore.SERVER_TIMESTAMP,
            "error": firestore.DELETE_FIELD, "finishedAt": firestore.DELETE_FIELD,
            "expireAt": firestore.DELETE_FIELD}


def operator_retry(record: TaskRecord, max_attempts: int | None = None, *,
                   dependencies_done: bool = True) -> dict[str, Any]:
    """An operator's retry of a finished task: `scheduled`, with a fresh attempt budget (of
    `max_attempts` if given), due now (`runAt`: the sweeper finds it should its event be lost).
    A task whose dependencies are not all done goes back to `waiting` for them instead (released
    when they are, ended again by its policy if one is failed), its error gone with the outcome it
    explained. History and the attempt count are kept."""
    if record.state not in FINAL_STATES:
        raise IllegalTransition(f"a {record.state} task cannot be retried: only a completed, "
                                "failed or cancelled one")
    waits = not dependencies_done
    target = State.WAITING if waits else State.SCHEDULED
    check(record.state, target)
    fields: dict[str, Any] = {"state": target.value, "updatedAt": firestore.SERVER_TIMESTAMP,
                              "expireAt": firestore.DELETE_FIELD,
                              "cancelRequested": firestore.DELETE_FIELD}
    if waits:
        fields |= {"error": firestore.DELETE_FIELD, "finishedAt": firestore.DELETE_FIELD}
    else:
        fields["runAt"] = firestore.SERVER_TIMESTAMP
    if max_attempts is not None:
        fields["maxAttempts"] = max_attempts
    return fields


def operator_cancel(record: TaskRecord, now: datetime.datetime,
                    retention: RetentionPolicy) -> dict[str, Any]:
    """An operator's cancel: a task not running ends `cancelled` at once; a running one gets
    the request, which its attempt honours when it ends (`end_attempt`)."""
    if record.state not in CANCELLABLE:
        raise IllegalTransition(f"a {record.state} task cannot become cancelled")
    if record.state == State.RUNNING:
        return {"cancelRequested": True, "updatedAt": firestore.SERVER_TIMESTAMP}
    return retained(_ended(State.CANCELLED), retention, now)


def queue_for_limit(record: TaskRecord, limit_key: str) -> dict[str, Any]:
    """A due task of a limited handler, marked as waiting for its limits (`queuedAt`) under
    `limit_key`: its state stays (`scheduled` or `retrying`). Empty if it is marked so."""
    mark: dict[str, Any] = {} if "queuedAt" in record.fields else {
        "queuedAt": firestore.SERVER_TIMESTAMP}
    if record.fields.get(LIMIT_KEY) != limit_key:
        mark[LIMIT_KEY] = limit_key
    created = record.fields.get("createdAt", record.created)
    if WAIT_RANK not in record.fields and isinstance(created, datetime.datetime):
        mark[WAIT_RANK] = wait_rank(created, record.fields.get("priority"))
    return mark


def hold_for_pause(record: TaskRecord, target: str) -> dict[str, Any]:
    """A due task whose handler (or key) is paused, held (firetasks.pauses): `queuedAt`, and
    `pausedFor` its pause's target instead of a `limitKey`, so that no hand-over or release of a
    key starts it. Its state stays (`scheduled` or `retrying`). Empty if it is held so."""
    check(record.state, State.RUNNING, WAKE_STATES)  # a task that may start, and only such
    mark: dict[str, Any] = {} if "queuedAt" in record.fields else {
        "queuedAt": firestore.SERVER_TIMESTAMP}
    if record.fields.get(PAUSED_FOR) != target:
        mark[PAUSED_FOR] = target
    if LIMIT_KEY in record.fields:
        mark[LIMIT_KEY] = firestore.DELETE_FIELD
    return mark


def resume_held(record: TaskRecord) -> dict[str, Any]:
    """A held task whose pause was lifted: without `pausedFor`, and due now (`runAt`: so that the
    sweeper wakes one `retrying` should nothing else). Its event starts it as a new task's."""
    if record.state not in WAKE_STATES or PAUSED_FOR not in record.fields:
        raise IllegalTransition(f"a {record.state} task held by no pause cannot be resumed")
    return {PAUSED_FOR: firestore.DELETE_FIELD, "updatedAt": firestore.SERVER_TIMESTAMP,
            "runAt": firestore.SERVER_TIMESTAMP}
