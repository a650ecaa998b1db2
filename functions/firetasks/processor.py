"""The processor: turns a write of a task document into exactly one handler run per attempt.

Every write of a task fires the trigger again (at least once, in no guaranteed order), so the
processor acts only on an event whose document is `scheduled`, and claims it with a write that is
conditional on the very version of the document the event carries. A duplicate or stale delivery
finds a newer version and loses the claim; so does a second invocation racing for the same event.
The final write is conditional on the claim's own version, so it lands only while this invocation
still owns the task. No reads are needed: two writes per task, both with preconditions.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

from firebase_functions import firestore_fn, logger
from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference, DocumentSnapshot

from firetasks import db
from firetasks.registry import HandlerRegistry
from firetasks.task import PASSIVE_STATES, State, Task, problems

TASKS_DOCUMENT = "{collection}/{docId}/tasks/{taskId}"

TaskEvent = firestore_fn.Event[firestore_fn.Change[DocumentSnapshot | None]]


class TaskProcessor:
    """Runs the handlers of one registry for the task documents of one or more triggers."""

    def __init__(self, registry: HandlerRegistry) -> None:
        self.registry = registry

    def __call__(self, event: TaskEvent) -> None:
        ref = db.client(event.database).document(event.document)
        after = event.data.after
        if after is None or not after.exists:
            before = event.data.before
            fields = (before.to_dict() if before is not None else None) or {}
            logger.info("skip processing deleted task", **_describe(ref, fields))
            return
        self.process(ref, after.to_dict() or {}, after.update_time)

    def process(self, ref: DocumentReference, fields: dict[str, Any], version: Any) -> None:
        """Act on one version of a task document (`version` is its update time)."""
        context = _describe(ref, fields)
        if fields.get("state") in PASSIVE_STATES:
            logger.debug("skip processing task, not scheduled", **context)
            return
        found = problems(fields)
        if found:
            logger.warn("invalid task", problems=found, **context)
            error = {"type": "InvalidTask", "message": "; ".join(found)}
            _write_if_unchanged(ref, version, _finished(State.FAILED, error=error), context)
            return
        handler = self.registry.lookup(fields["type"], fields["action"])
        if handler is None:
            logger.info("skip processing task, no handler exists", **context)
            return
        attempt = fields.get("attempts", 0) + 1
        claimed = _write_if_unchanged(ref, version, _claim(attempt), context)
        if claimed is None:
            return
        context.update(state=State.RUNNING.value, attempt=attempt)
        task = Task(ref=ref, type=fields["type"], action=fields["action"],
                    data=fields["data"], attempt=attempt)
        logger.info("start processing task", **context)
        started = time.monotonic()
        try:
            outcome = _finished(State.COMPLETED, result=_json_result(handler(task)))
        except Exception as exc:  # a handler's failure belongs in the task, not in the function
            logger.error("error processing task", error=repr(exc), **context)
            outcome = _finished(State.FAILED, error=_error(exc))
        context["durationMs"] = round((time.monotonic() - started) * 1000, 1)
        if _write_if_unchanged(ref, claimed, outcome, context) is not None:
            logger.info("end processing task", outcome=outcome["state"], **context)


def task_trigger(
    registry: HandlerRegistry, *, name: str, document: str = TASKS_DOCUMENT, **options: Any
) -> Any:
    """A Cloud Function named `name` that processes the tasks at `document` (a path pattern).

    Assign it to a module-level variable of the same name in main.py, where the Functions runtime
    looks it up: `process_tasks = task_trigger(registry, name="process_tasks")`.
    """
    processor = TaskProcessor(registry)

    def trigger(event: TaskEvent) -> None:
        processor(event)

    trigger.__name__ = trigger.__qualname__ = name
    return firestore_fn.on_document_written(document=document, **options)(trigger)


def _claim(attempt: int) -> dict[str, Any]:
    return {
        "state": State.RUNNING.value,
        "attempts": attempt,
        "startedAt": firestore.SERVER_TIMESTAMP,
        "updatedAt": firestore.SERVER_TIMESTAMP,
        "finishedAt": firestore.DELETE_FIELD,
        "result": firestore.DELETE_FIELD,
        "error": firestore.DELETE_FIELD,
    }


def _finished(state: State, *, result: Any = None, error: dict[str, str] | None = None) -> dict:
    fields: dict[str, Any] = {
        "state": state.value,
        "finishedAt": firestore.SERVER_TIMESTAMP,
        "updatedAt": firestore.SERVER_TIMESTAMP,
    }
    if result is not None:
        fields["result"] = result
    if error is not None:
        fields["error"] = error
    return fields


def _write_if_unchanged(
    ref: DocumentReference, version: Any, fields: dict[str, Any], context: dict[str, Any]
) -> datetime.datetime | None:
    """Update the task only if it is still at `version`; the new version, or None if it was not."""
    try:
        result = ref.update(fields, option=firestore.Client.write_option(last_update_time=version))
    except (exceptions.FailedPrecondition, exceptions.NotFound):
        logger.info("skip processing task, changed by another write", **context)
        return None
    return result.update_time


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
