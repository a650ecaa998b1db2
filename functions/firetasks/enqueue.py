"""Creating tasks: a parent document with its tasks in one atomic batch, or tasks for a parent.

A task may run after others (`after=[id, ...]`: created `waiting`, see firetasks.workflow) and may
have a unique `key`: its id is then a function of the key (the key itself when it is a valid id),
so enqueuing the same key twice returns the existing task and creates nothing. A key is unique in
its tasks collection under its parent; `unique="global"` makes it unique across all parents through
a lock document (`firetasksKeys/{id}`) created in the same batch.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.config import DEFAULT_COLLECTIONS
from firetasks.errors import InvalidTask
from firetasks.store import FirestoreStore, TaskStore
from firetasks.task import TASK_ID_PATTERN, State, validate

KEYS_COLLECTION = "firetasksKeys"  # lock documents of globally unique keys
CREATE_TRIES = 3  # a batch whose keys conflict is tried again without the tasks that exist


@dataclass(frozen=True)
class NewTask:
    type: str
    action: str
    data: Mapping[str, Any] = field(default_factory=dict)
    run_at: datetime.datetime | None = None  # not before this time (a delayed task)
    max_attempts: int | None = None  # overrides the handler's retry policy
    after: Sequence[str] = ()
    """Ids of the tasks (beside this one) it runs after: created `waiting` until they complete."""
    on_dependency_failure: Literal["fail", "run", "skip"] = "fail"
    """What a failed dependency does to it: fail it, run it anyway, or skip it (`cancelled`)."""
    key: str | None = None
    """Makes the task unique: its id derives from the key, and a second enqueue finds the first."""
    unique: Literal["parent", "global"] = "parent"
    """The key's scope: the tasks collection under one parent, or every parent (a lock document)."""

    @property
    def id(self) -> str | None:
        """The task's id if its key fixes one (else Firestore picks a random one)."""
        return None if self.key is None else task_id(self.key)

    def document(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "type": self.type,
            "action": self.action,
            "state": (State.WAITING if self.after else State.SCHEDULED).value,
            "data": dict(self.data),
        }
        if self.run_at is not None:
            fields["runAt"] = self.run_at
        if self.max_attempts is not None:
            fields["maxAttempts"] = self.max_attempts
        if self.after:
            fields["after"] = list(self.after)
            fields["onDependencyFailure"] = self.on_dependency_failure
        if self.key is not None:
            fields["key"] = self.key
        validate(fields)
        if self.unique == "global" and self.key is None:
            raise InvalidTask(["unique='global' needs a key"])
        return fields | {
            "attempts": 0,
            "createdAt": firestore.SERVER_TIMESTAMP,
            "updatedAt": firestore.SERVER_TIMESTAMP,
        }


def task_id(key: str) -> str:
    """The id of the task with unique `key`: the key itself if it is a valid id, else a digest."""
    if TASK_ID_PATTERN.fullmatch(key) and not key.startswith("__") and key not in (".", ".."):
        return key
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def check_graph(tasks: Sequence[NewTask], existing: Iterable[str] = ()) -> None:
    """Refuse dependencies on the task itself, on ids neither in the batch (by key) nor among
    `existing`, and cycles: InvalidTask, naming them."""
    ids = {task.id for task in tasks if task.id is not None}
    known = ids | set(existing)
    found: list[str] = []
    for task in tasks:
        name = task.key or f"{task.type}.{task.action}"
        if task.id is not None and task.id in task.after:
            found.append(f"task {name!r} runs after itself")
        unknown = [id for id in task.after if id not in known]
        if unknown:
            found.append(f"task {name!r} runs after unknown task(s): {', '.join(unknown)}")
    graph = {task.id: [id for id in task.after if id in ids] for task in tasks if task.id}
    cycle = _cycle(graph)
    if cycle:
        found.append(f"the tasks' dependencies make a cycle: {' -> '.join(cycle)}")
    if found:
        raise InvalidTask(found)


def check_new(
    tasks: Sequence[NewTask],
    collection: firestore.CollectionReference,
    store: TaskStore,
    known: Iterable[str] = (),
) -> None:
    """check_graph for new tasks of `collection`: the ids they name outside the batch (and
    outside `known`) must be tasks that exist there."""
    ids = {task.id for task in tasks} | set(known)
    named = sorted({id for task in tasks for id in task.after} - ids)
    refs = [collection.document(id) for id in named]
    existing = {ref.id for ref, found in zip(refs, store.read_all(refs), strict=True) if found}
    check_graph(tasks, existing | set(known))


def _cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        for after in graph.get(node, []):
            found = visit(after, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for node in graph:
        found = visit(node, [])
        if found:
            return found
    return None


def create_with_tasks(
    parent: DocumentReference,
    fields: Mapping[str, Any],
    tasks: Iterable[NewTask],
    *,
    collection: str = DEFAULT_COLLECTIONS[0],
    store: TaskStore | None = None,
) -> list[DocumentReference]:
    """Create `parent` (failing if it exists) and its tasks atomically: all of them or none. If
    every task has a key and they all exist with the parent, it was done before: their refs."""
    return _create(parent, list(tasks), collection, fields, store or FirestoreStore())


def add_tasks(
    parent: DocumentReference,
    tasks: Iterable[NewTask],
    *,
    collection: str = DEFAULT_COLLECTIONS[0],
    store: TaskStore | None = None,
) -> list[DocumentReference]:
    """Add tasks under `parent` (which need not exist) atomically. A task whose key exists is not
    created again: the existing task's ref is returned in its place."""
    return _create(parent, list(tasks), collection, None, store or FirestoreStore())


def _create(
    parent: DocumentReference,
    tasks: list[NewTask],
    collection: str,
    parent_fields: Mapping[str, Any] | None,
    store: TaskStore,
) -> list[DocumentReference]:
    documents = [task.document() for task in tasks]  # validate them all before writing any
    tasks_collection = parent.collection(collection)
    check_new(tasks, tasks_collection, store)
    keys = db.client_of(parent).collection(KEYS_COLLECTION)
    locks = {index: keys.document(f"{collection}-{task.id}")
             for index, task in enumerate(tasks) if task.unique == "global"}
    ids = [task.id for task in tasks]
    refs: list[DocumentReference | None] = [None] * len(tasks)
    pending = list(range(len(tasks)))
    for _ in range(CREATE_TRIES):
        try:
            created = store.create(
                parent, [documents[i] for i in pending], collection, parent_fields,
                ids=[ids[i] for i in pending],
                locks={n: locks[i] for n, i in enumerate(pending) if i in locks})
        except exceptions.Conflict:
            if not any(ids):
                raise
        else:
            for i, ref in zip(pending, created, strict=True):
                refs[i] = ref
            return cast(list[DocumentReference], refs)
        found = _existing(store, tasks_collection, ids, locks)
        for i, ref in found.items():
            refs[i] = ref
        pending = [i for i in pending if i not in found]
        if parent_fields is not None:  # a replay of the whole creation, or a true conflict
            if pending or store.read(parent) is None:
                raise exceptions.Conflict(  # type: ignore[no-untyped-call]
                    f"{parent.path} exists, or some of its tasks' keys are taken")
            return cast(list[DocumentReference], refs)
        if not pending:
            return cast(list[DocumentReference], refs)
    raise exceptions.Conflict(  # type: ignore[no-untyped-call]
        f"the keys of {len(tasks)} task(s) under {parent.path} kept conflicting")


def _existing(
    store: TaskStore,
    collection: firestore.CollectionReference,
    ids: Sequence[str | None],
    locks: Mapping[int, DocumentReference],
) -> dict[int, DocumentReference]:
    """The keyed tasks that exist, by their index: found by id, or through their lock."""
    keyed = [i for i, id in enumerate(ids) if id is not None]
    tasks = store.read_all([collection.document(ids[i]) for i in keyed])
    found = {i: record.ref for i, record in zip(keyed, tasks, strict=True) if record is not None}
    held = store.read_all(list(locks.values()))
    for i, lock in zip(locks, held, strict=True):
        if lock is not None:
            found[i] = db.client_of(lock.ref).document(str(lock.fields["task"]))
    return found
