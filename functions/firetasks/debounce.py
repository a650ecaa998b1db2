"""Debounce: run a keyed task once after a quiet period, with a maximum wait.

`NewTask(key=..., debounce=timedelta(seconds=30), max_wait=timedelta(minutes=5))`, added with
`add_tasks`: the first enqueue of the key creates a task due `debounce` from now; each enqueue of
the key while that task has not started replaces its `data` (the last enqueue's wins) and moves its
`runAt` to `debounce` after this enqueue, never later than `max_wait` after the first
(`debounceUntil`). Once it has started (or ended), the next enqueue starts a new burst: a new task.
So each burst runs once, and a key enqueued without pause runs about once every `max_wait`.

A client (the web SDK) enqueues by creating a task document with raw `key`, `debounce` and
`maxWait` (seconds): a request that the processor folds (`fold`) on its first delivery, the same
way: into the pending task, deleting the request, or by making the request the burst's first task.
Deliveries come late and out of order, so "last" is by the enqueue's time (`debouncedAt` holds the
time of the data a task has): an older request never replaces newer data, nor brings `runAt`
forward, and one older than the data of a burst that started already is only deleted.

The key's pending task is named by a pointer document, `firetasksDebounce/{digest}` (of the tasks
collection's path and the key): an enqueue reads it and the task it names (two reads), then either
updates that task, conditional on the version read (a claim that came first makes it start a new
burst), or creates a new task (or updates the request) and moves the pointer, in one batch
conditional on the pointer's version (of two enqueues starting at once, one wins; the other then
updates its task). A request's delete is conditional on its version, in the same batch: of two
deliveries of one request, one folds it.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.clock import Clock
from firetasks.conditional import Write, commit, with_backoff
from firetasks.errors import InvalidTask
from firetasks.new_task import NewTask
from firetasks.record import TaskRecord
from firetasks.store import TaskStore
from firetasks.task import DEBOUNCE_UNTIL, DEBOUNCED_AT, State, is_debounce_request

DEBOUNCE_COLLECTION = "firetasksDebounce"
TRIES = 10  # enqueues of one key racing: each lost race is one more read of the pointer


@dataclass(frozen=True)
class Enqueue:
    """One enqueue of a debounced key: its data, when it was made (of two, the later one's data
    wins, in whatever order they arrive), its quiet period and its longest wait."""

    key: str
    data: Mapping[str, Any]
    at: datetime.datetime
    debounce: datetime.timedelta
    max_wait: datetime.timedelta | None = None

    def first(self) -> dict[str, Any]:
        """The fields of a burst's first task: due `debounce` after the enqueue, at the latest
        `max_wait` after it (without one, `debounce`)."""
        until = self.at + (self.max_wait or self.debounce)
        return {"runAt": min(self.at + self.debounce, until), DEBOUNCE_UNTIL: until,
                DEBOUNCED_AT: self.at}

    def joined(self, pending: TaskRecord) -> dict[str, Any]:
        """The fields that fold this enqueue into its burst's task, not started: due `debounce`
        after the enqueue, never after its `debounceUntil`, with the enqueue's data, unless it
        holds a later enqueue's (this one came late): then `runAt` only ever moves later. Empty
        if nothing changes."""
        run_at = min(self.at + self.debounce, pending.fields[DEBOUNCE_UNTIL])
        last = pending.fields.get(DEBOUNCED_AT)
        if isinstance(last, datetime.datetime) and self.at < last:
            later = pending.run_at is None or run_at > pending.run_at
            return {"runAt": run_at, "updatedAt": firestore.SERVER_TIMESTAMP} if later else {}
        return {"data": dict(self.data), "runAt": run_at, DEBOUNCED_AT: self.at,
                "updatedAt": firestore.SERVER_TIMESTAMP}


def pointer_ref(tasks: firestore.CollectionReference, key: str) -> DocumentReference:
    path = str(tasks.document("_").path).rsplit("/", 1)[0]
    digest = hashlib.sha256(f"{path}\n{key}".encode()).hexdigest()[:40]
    return db.client_of(tasks.document("_")).collection(DEBOUNCE_COLLECTION).document(digest)


def debounced(tasks: firestore.CollectionReference, task: NewTask, store: TaskStore,
              clock: Clock) -> DocumentReference:
    """A server's enqueue of a debounced task in the collection `tasks` (module docstring): its
    ref, the pending task's (updated) or a new one's."""
    if task.key is None or task.debounce is None:
        raise InvalidTask(["a debounced task needs a key (the burst it belongs to) and debounce="])
    enqueue = Enqueue(task.key, task.data, clock(), task.debounce, task.max_wait)
    new = TaskRecord(tasks.document(), task.document(), version=None)
    ref = _join(pointer_ref(tasks, task.key), enqueue, new, store)
    assert ref is not None  # only a request's other delivery ends the join without one
    return ref


def fold(request: TaskRecord, store: TaskStore) -> DocumentReference | None:
    """A client's debounced enqueue, a task document with a raw `debounce` (firetasks.task
    checked its fields): folded into its key's burst (module docstring). The burst's task (the
    request itself if it starts one), or None if another delivery of the request folded it."""
    fields = request.fields
    created = fields.get("createdAt")
    at = created if isinstance(created, datetime.datetime) else request.created
    assert at is not None  # a stored document has a creation time
    max_wait = fields.get("maxWait")
    enqueue = Enqueue(fields["key"], request.data, at,
                      datetime.timedelta(seconds=fields["debounce"]),
                      None if max_wait is None else datetime.timedelta(seconds=max_wait))
    return _join(pointer_ref(request.ref.parent, enqueue.key), enqueue, request, store)


def _join(pointer: DocumentReference, enqueue: Enqueue, origin: TaskRecord,
          store: TaskStore) -> DocumentReference | None:
    """Join `enqueue` to its key's burst. `origin`: the client's request as delivered, or, for a
    server's enqueue, the task to create (at version None: not written yet)."""
    for _ in range(TRIES):
        snapshot = with_backoff(pointer.get)
        named = snapshot.get("task") if snapshot.exists else None
        if named == origin.path:
            return origin.ref  # a late delivery of a request that started the burst
        pending = store.read(db.client_of(pointer).document(named)) if named else None
        spent = [] if origin.version is None else [
            Write("delete", origin.ref, if_version=origin.version)]
        if _waiting(pending):
            fields = enqueue.joined(pending)
            ref, writes = pending.ref, spent + ([Write("update", pending.ref, fields,
                                                       if_version=pending.version)]
                                                if fields else [])
        elif pending is not None and _covers(pending, enqueue.at):
            ref, writes = pending.ref, spent
        else:
            move = {"task": origin.path}
            ref, writes = origin.ref, [_started(origin, enqueue), Write(
                "update", pointer, move, if_version=snapshot.update_time)
                if snapshot.exists else Write("create", pointer, move)]
        if commit(writes) is not None:
            return ref
        if origin.version is not None:  # the request changed, or a race for its key was lost
            current = store.read(origin.ref)
            if current is None or not is_debounce_request(current.fields):
                return None
            origin = current
    raise InvalidTask([f"enqueues of the debounced key {enqueue.key!r} kept conflicting"])


def _started(origin: TaskRecord, enqueue: Enqueue) -> Write:
    """The write that makes `origin` a burst's first task: a server's new task, created; a
    client's request, updated if unchanged."""
    if origin.version is None:
        return Write("create", origin.ref, dict(origin.fields) | enqueue.first())
    return Write("update", origin.ref, enqueue.first(), if_version=origin.version)


def _waiting(record: TaskRecord | None) -> TypeGuard[TaskRecord]:
    """Whether the key's pending task has not started: a burst may still change it."""
    return (record is not None and record.state == State.SCHEDULED
            and isinstance(record.fields.get(DEBOUNCE_UNTIL), datetime.datetime))


def _covers(record: TaskRecord, at: datetime.datetime) -> bool:
    """Whether a burst that started already ran (or runs) with data newer than an enqueue made
    at `at`: such an enqueue, delivered late, is spent."""
    last = record.fields.get(DEBOUNCED_AT)
    return isinstance(last, datetime.datetime) and at < last
