"""The source design's processor, exactly: check the state, call the handler, update the state.

No claim, no retries: the benchmark's baseline. It serves `{collection}/{docId}/naiveTasks/{taskId}`
so that it never sees the tasks of firetasks' own trigger.
"""

from __future__ import annotations

from firebase_functions import firestore_fn, logger

from firetasks import HandlerRegistry, Task, db
from firetasks.processor import TaskEvent

DOCUMENT = "{collection}/{docId}/naiveTasks/{taskId}"


class NaiveProcessor:
    def __init__(self, registry: HandlerRegistry) -> None:
        self.registry = registry

    def on_write(self, event: TaskEvent) -> None:
        ref = db.client(event.database).document(event.document)
        after = event.data.after
        if after is None or not after.exists:
            logger.info("skip processing deleted task", taskId=ref.id)
            return
        task = after.to_dict() or {}
        type_, action, state = task.get("type"), task.get("action"), task.get("state")
        registration = self.registry.lookup(str(type_), str(action))
        if registration is None:
            logger.info("skip processing task, no handler exist", taskId=ref.id)
            return
        if state in ("completed", "failed"):
            logger.info("skip processing failed or completed task", taskId=ref.id)
            return
        try:
            registration.handler(Task(ref=ref, type=str(type_), action=str(action),
                                      data=task.get("data") or {}, attempt=1))
            ref.update({"state": "completed"})
        except Exception as exc:
            logger.error("error processing task", taskId=ref.id, error=repr(exc))
            ref.update({"state": "failed"})


def naive_trigger(processor: NaiveProcessor, *, name: str) -> object:
    def trigger(event: TaskEvent) -> None:
        processor.on_write(event)

    trigger.__name__ = trigger.__qualname__ = name
    return firestore_fn.on_document_written(document=DOCUMENT)(trigger)
