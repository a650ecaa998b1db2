"""Debounce: run a keyed task once after a quiet period, with a maximum wait.

`NewTask(key=..., debounce=timedelta(seconds=30), max_wait=timedelta(minutes=5))`, added with
`add_tasks`: the first enqueue of the key creates a task due `debounce` from now; each enqueue of
the key while that task has not started replaces its `data` (the last enqueue's wins) and moves its
`runAt` to `debounce` after this enqueue, never later than `max_wait` after the first
(`debounceUntil`). Once it has started (or ended), the next enqueue starts a new burst: a new task.
So each burst runs once, and a key enqueued without pause runs about once every `max_wait`.

The key's pending task is named by a pointer document, `firetasksDebounce/{digest}` (of the tasks
collection's path and the key): an enqueue reads it and the task it names (two reads), then either
updates that task, conditional on the version read (a claim that came first makes it start a new
burst), or creates a new task and moves the pointer, in one batch conditional on the pointer's
version (of two enqueues creating at once, one wins; the other then updates its task).
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.clock import Clock
from firetasks.conditional import Write, commit, with_backoff
from firetasks.errors import InvalidTask
from firetasks.new_task import NewTask
from firetasks.record import TaskRecord
from firetasks.store import TaskStore
from firetasks.task import State

DEBOUNCE_COLLECTION = "firetasksDebounce"
DEBOUNCE_UNTIL = "debounceUntil"  # a debounced task's latest start: its first enqueue + max_wait
TRIES = 10  # enqueues of one key racing: each lost race is one more read of the pointer


def pointer_ref(tasks: firestore.CollectionReference, key: str) -> DocumentReference:
    path = str(tasks.document("_").path).rsplit("/", 1)[0]
    digest = hashlib.sha256(f"{path}\n{key}".encode()).hexdigest()[:40]
    return db.client_of(tasks.document("_")).collection(DEBOUNCE_COLLECTION).document(digest)


def debounced(tasks: firestore.CollectionReference, task: NewTask, store: TaskStore,
              clock: Clock) -> DocumentReference:
    """Enqueue a debounced task in the collection `tasks` (module docstring): its ref, the
    pending task's (updated) or a new one's."""
    if task.key is None or task.debounce is None:
        raise InvalidTask(["a debounced task needs a key (the burst it belongs to) and debounce="])
    pointer = pointer_ref(tasks, task.key)
    for _ in range(TRIES):
        now = clock()
        snapshot = with_backoff(pointer.get)
        named = snapshot.get("task") if snapshot.exists else None
        pending = store.read(db.client_of(pointer).document(named)) if named else None
        if _waiting(pending):
            assert pending is not None
            until = pending.fields[DEBOUNCE_UNTIL]
            fields = {"data": dict(task.data), "runAt": min(now + task.debounce, until),
                      "updatedAt": firestore.SERVER_TIMESTAMP}
            if store.write_if_unchanged(pending.ref, pending.version, fields) is not None:
                return pending.ref
            continue
        ref = tasks.document()
        move = {"task": ref.path}
        if commit([Write("create", ref, _first(task, now)),
                   Write("update", pointer, move, if_version=snapshot.update_time)
                   if snapshot.exists else Write("create", pointer, move)]) is not None:
            return ref
    raise InvalidTask([f"enqueues of the debounced key {task.key!r} kept conflicting"])


def _waiting(record: TaskRecord | None) -> bool:
    """Whether the key's pending task has not started: a burst may still change it."""
    return (record is not None and record.state == State.SCHEDULED
            and isinstance(record.fields.get(DEBOUNCE_UNTIL), datetime.datetime))


def _first(task: NewTask, now: datetime.datetime) -> dict[str, Any]:
    """The document of a burst's first task: due `debounce` from now, at the latest `max_wait`
    from now."""
    assert task.debounce is not None
    until = now + (task.max_wait if task.max_wait is not None else task.debounce)
    return task.document() | {"runAt": min(now + task.debounce, until), DEBOUNCE_UNTIL: until}
