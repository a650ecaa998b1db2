"""The processor: turns writes and wake-ups of task documents into exactly one run per attempt.

Every write of a task fires the trigger again (at least once, in no guaranteed order), so the
processor acts only on a task that is due, and claims it with a write that is conditional on the
very version of the document it saw. A duplicate or stale delivery finds a newer version and loses
the claim; so does a second invocation racing for the same event, and so does a cancel that came
first. The final write is conditional on the claim's own version; if the task changed meanwhile (a
cancel request), a transaction re-checks that this invocation still owns the attempt.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable
from typing import Any

from firebase_functions import firestore_fn, logger
from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference, DocumentSnapshot

from firetasks import db
from firetasks.config import TaskQueue
from firetasks.registry import HandlerRegistry, Registration
from firetasks.retry import DEFAULT_RETRY, PermanentError, RetryAfter, RetryPolicy
from firetasks.task import (
    TRIGGER_STATES,
    WAKE_STATES,
    State,
    Task,
    check_transition,
    is_state,
    problems,
)
from firetasks.wakeup import WAIT_LIMIT, CloudTasksWaker, Waker

HISTORY_LIMIT = 20  # attempts kept in `history`: far below Firestore's 1 MiB per document

TaskEvent = firestore_fn.Event[firestore_fn.Change[DocumentSnapshot | None]]


class TaskProcessor:
    """Runs the handlers of one queue for the task documents of its triggers."""

    def __init__(self, queue: TaskQueue, waker: Waker | None = None) -> None:
        self.queue = queue
        self.waker = waker or CloudTasksWaker()

    @property
    def registry(self) -> HandlerRegistry:
        return self.queue.registry

    def on_write(self, event: TaskEvent) -> None:
        """The Firestore trigger: act on a `scheduled` task, log a deleted one."""
        ref = db.client(event.database).document(event.document)
        after = event.data.after
        if after is None or not after.exists:
            before = event.data.before
            fields = (before.to_dict() if before is not None else None) or {}
            logger.info("skip processing deleted task", **_describe(ref, fields))
            return
        self.process(ref, after.to_dict() or {}, after.update_time, TRIGGER_STATES,
                     created=after.create_time)

    def wake(self, ref: DocumentReference) -> None:
        """A wake-up from Cloud Tasks or the sweeper: run the task if it is (about to be) due."""
        snapshot = ref.get()
        if not snapshot.exists:
            logger.info("skip wake-up, task deleted", taskId=ref.id, path=ref.path)
            return
        fields = snapshot.to_dict() or {}
        state, run_at = fields.get("state"), fields.get("runAt")
        if is_state(state) and state in WAKE_STATES and isinstance(run_at, datetime.datetime):
            wait = (run_at - _now()).total_seconds()
            if wait > WAIT_LIMIT:
                self.waker.wake_at(ref, run_at)
                return
            if wait > 0:  # only where wake-ups come early: the emulator's Cloud Tasks
                time.sleep(wait)
        self.process(ref, fields, snapshot.update_time, WAKE_STATES,
                     created=snapshot.create_time)

    def process(
        self,
        ref: DocumentReference,
        fields: dict[str, Any],
        version: Any,
        states: Iterable[State] = TRIGGER_STATES,
        created: Any = None,
    ) -> None:
        """Act on one version of a task document (`version` is its update time).

        A task written without `createdAt` gets the document's creation time with the processor's
        first write: lists and stats order by it.
        """
        context = _describe(ref, fields)
        stamp = {} if "createdAt" in fields or created is None else {
            "createdAt": _as_datetime(created)}
        state = fields.get("state")
        if is_state(state) and state not in states:
            logger.debug(f"skip processing {state} task", **context)
            return
        found = problems(fields)
        if found:
            logger.warn("invalid task", problems=found, **context)
            error = {"type": "InvalidTask", "message": "; ".join(found)}
            _write_if_unchanged(ref, version, _ended(State.FAILED, error=error) | stamp, context)
            return
        if fields.get("cancelRequested"):
            _write_if_unchanged(ref, version, _ended(State.CANCELLED) | stamp, context)
            return
        registration = self.registry.lookup(fields["type"], fields["action"])
        if registration is None:
            logger.info("skip processing task, no handler exists", **context)
            return
        run_at = fields.get("runAt")
        if run_at is not None and run_at > _now():
            logger.info("task not due yet", runAt=run_at.isoformat(), **context)
            self.waker.wake_at(ref, run_at)
            return
        self._run(ref, fields, version, registration, context, stamp)

    def _run(
        self,
        ref: DocumentReference,
        fields: dict[str, Any],
        version: Any,
        registration: Registration,
        context: dict[str, Any],
        stamp: dict[str, Any],
    ) -> None:
        attempt = fields.get("attempts", 0) + 1
        # Moving a task to `scheduled` starts a fresh attempt budget; `retrying` continues it.
        retrying = fields["state"] == State.RETRYING
        retry_base = fields.get("retryBase", 0) if retrying else attempt - 1
        started = _now()
        claim = {
            "state": State.RUNNING.value,
            "attempts": attempt,
            "retryBase": retry_base,
            "startedAt": firestore.SERVER_TIMESTAMP,
            "updatedAt": firestore.SERVER_TIMESTAMP,
            "leaseExpiresAt": started + (registration.lease or self.queue.lease),
            "finishedAt": firestore.DELETE_FIELD,
            "result": firestore.DELETE_FIELD,
            "error": firestore.DELETE_FIELD,
        } | stamp
        claimed = _write_if_unchanged(ref, version, claim, context)
        if claimed is None:
            return
        context.update(state=State.RUNNING.value, attempt=attempt)
        task = Task(ref=ref, type=fields["type"], action=fields["action"],
                    data=fields["data"], attempt=attempt)
        logger.info("start processing task", **context)
        try:
            outcome = _ended(State.COMPLETED, result=_json_result(registration.handler(task)))
        except Exception as exc:  # a handler's failure belongs in the task, not in the function
            logger.error("error processing task", error=repr(exc), **context)
            outcome = after_failure(
                fields | {"retryBase": retry_base}, attempt, _error(exc), registration.retry,
                permanent=isinstance(exc, PermanentError),
                delay=exc.seconds if isinstance(exc, RetryAfter) else None,
            )
        context["durationMs"] = round((_now() - started).total_seconds() * 1000, 1)
        outcome["history"] = _history(fields, attempt, started, outcome)
        final = self._finish(ref, claimed, attempt, outcome, context)
        if final is not None:
            logger.info("end processing task", outcome=final["state"], **context)
            self._wake_if_retrying(ref, final)

    def _finish(
        self,
        ref: DocumentReference,
        claimed: Any,
        attempt: int,
        outcome: dict[str, Any],
        context: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Write the attempt's outcome if this invocation still owns it; what was written."""
        check_transition(State.RUNNING, State(outcome["state"]))
        try:
            ref.update(outcome, option=_unchanged_since(claimed))
            return outcome
        except exceptions.NotFound:
            logger.warn("task deleted while running", **context)
            return None
        except exceptions.FailedPrecondition:
            pass  # changed while running: still ours, with a cancel request, or no longer ours

        @firestore.transactional
        def finish_changed(transaction: firestore.Transaction) -> dict[str, Any] | None:
            snapshot = ref.get(transaction=transaction)
            current = snapshot.to_dict() if snapshot.exists else None
            if current is None:
                logger.warn("task deleted while running", **context)
                return None
            if current.get("state") != State.RUNNING or current.get("attempts") != attempt:
                logger.warn("attempt no longer owned, outcome dropped",
                            currentState=current.get("state"), **context)
                return None
            final = _honour_cancel(current, outcome)
            check_transition(State.RUNNING, State(final["state"]))
            transaction.update(ref, final | {"cancelRequested": firestore.DELETE_FIELD})
            return final

        return finish_changed(db.client_of(ref).transaction())

    def expire(self, snapshot: DocumentSnapshot) -> dict[str, Any] | None:
        """End a `running` attempt whose lease expired (its invocation died); what was written."""
        fields = snapshot.to_dict() or {}
        context = _describe(snapshot.reference, fields)
        registration = self.registry.lookup(str(fields.get("type")), str(fields.get("action")))
        attempt = fields.get("attempts", 0)
        lease = fields.get("leaseExpiresAt")
        error = {
            "type": "LeaseExpired",
            "message": f"attempt {attempt} did not finish before its lease expired at "
                       f"{lease.isoformat() if lease else '?'}: the function crashed, timed out "
                       "or was redeployed",
        }
        outcome = after_failure(fields, attempt, error,
                                registration.retry if registration else DEFAULT_RETRY)
        started = fields.get("startedAt") or lease or _now()
        outcome = _honour_cancel(fields, outcome) | {
            "history": _history(fields, attempt, started, outcome)
        }
        if _write_if_unchanged(snapshot.reference, snapshot.update_time, outcome, context) is None:
            return None
        logger.warn("lease expired", outcome=outcome["state"], **context)
        self._wake_if_retrying(snapshot.reference, outcome)
        return outcome

    def _wake_if_retrying(self, ref: DocumentReference, written: dict[str, Any]) -> None:
        if written["state"] == State.RETRYING:
            self.waker.wake_at(ref, written["runAt"])


def after_failure(
    fields: dict[str, Any],
    attempt: int,
    error: dict[str, str],
    policy: RetryPolicy,
    *,
    permanent: bool = False,
    delay: float | None = None,
) -> dict[str, Any]:
    """The fields that end a failed attempt: `retrying` if the budget allows, else `failed`."""
    max_attempts = fields.get("maxAttempts") or policy.max_attempts
    used = attempt - fields.get("retryBase", 0)
    if permanent or used >= max_attempts:
        return _ended(State.FAILED, error=error)
    seconds = policy.delay(used) if delay is None else max(0.0, delay)
    return _ended(State.RETRYING, error=error) | {
        "runAt": _now() + datetime.timedelta(seconds=seconds)
    }


def _honour_cancel(current: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """A cancel requested while running ends the task `cancelled` unless the attempt completed."""
    if not current.get("cancelRequested") or outcome["state"] == State.COMPLETED:
        return outcome
    cancelled = {key: value for key, value in outcome.items() if key != "runAt"}
    return cancelled | {"state": State.CANCELLED.value, "finishedAt": firestore.SERVER_TIMESTAMP,
                        "cancelRequested": firestore.DELETE_FIELD}


def task_trigger(
    processor: TaskProcessor, *, name: str, collection: str | None = None,
    document: str | None = None, **options: Any
) -> Any:
    """A Cloud Function named `name` that processes the tasks of one of the queue's collections
    (the first by default) under any top-level parent, or at `document`, a path pattern whose
    last collection is one of the queue's (`invoices/{invoiceId}/jobs/{taskId}`).

    Assign it to a module-level variable of the same name in main.py, where the Functions runtime
    looks it up: `process_tasks = task_trigger(processor, name="process_tasks")`.
    """
    if document is None:
        document = processor.queue.document(collection)
    elif document.strip("/").split("/")[-2] not in processor.queue.collections:
        raise ValueError(f"{document!r}: its collection is not one of the queue's "
                         f"{processor.queue.collections}, so its tasks would not be swept, "
                         "counted or listed: add it to TaskQueue(collections=...)")

    def trigger(event: TaskEvent) -> None:
        processor.on_write(event)

    trigger.__name__ = trigger.__qualname__ = name
    return firestore_fn.on_document_written(document=document, **options)(trigger)


def _ended(state: State, *, result: Any = None, error: dict[str, str] | None = None) -> dict:
    fields: dict[str, Any] = {
        "state": state.value,
        "updatedAt": firestore.SERVER_TIMESTAMP,
        "leaseExpiresAt": firestore.DELETE_FIELD,
    }
    if state != State.RETRYING:
        fields["finishedAt"] = firestore.SERVER_TIMESTAMP
    if result is not None:
        fields["result"] = result
    if error is not None:
        fields["error"] = error
    return fields


def _history(
    fields: dict[str, Any], attempt: int, started: datetime.datetime, outcome: dict[str, Any]
) -> list[dict[str, Any]]:
    entry = {
        "attempt": attempt,
        "startedAt": started,
        "finishedAt": _now(),
        "outcome": outcome["state"],
        "error": outcome.get("error"),
    }
    return [*(fields.get("history") or [])[-(HISTORY_LIMIT - 1):], entry]


def _unchanged_since(version: Any) -> Any:
    """A precondition: the document's update time is still `version`."""
    return firestore.Client.write_option(last_update_time=version)


def _write_if_unchanged(
    ref: DocumentReference, version: Any, fields: dict[str, Any], context: dict[str, Any]
) -> datetime.datetime | None:
    """Update the task only if it is still at `version`; the new version, or None if it was not.

    `context["state"]` is the state at `version`; an invalid document's unknown state may only
    become `failed`.
    """
    old = context["state"]
    check_transition(old if is_state(old) else State.SCHEDULED, State(fields["state"]))
    try:
        result = ref.update(fields, option=_unchanged_since(version))
    except (exceptions.FailedPrecondition, exceptions.NotFound):
        logger.info("skip processing task, changed by another write", **context)
        return None
    return result.update_time


def _as_datetime(timestamp: Any) -> datetime.datetime:
    """A snapshot's create time, which is a protobuf Timestamp or already a datetime."""
    if isinstance(timestamp, datetime.datetime):
        return timestamp
    return timestamp.ToDatetime(tzinfo=datetime.UTC)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _json_result(value: Any) -> Any:
    """The handler's return value, if it is JSON-able (what a task document can hold)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"handler returned a value that is not JSON-able: {exc}") from exc
    return value


def _error(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc) or repr(exc)}


def _describe(ref: DocumentReference, fields: dict[str, Any]) -> dict[str, Any]:
    """The structured log fields that identify a task."""
    return {
        "taskId": ref.id,
        "path": ref.path,
        "type": fields.get("type"),
        "action": fields.get("action"),
        "state": fields.get("state"),
        "attempt": fields.get("attempts", 0),
    }
