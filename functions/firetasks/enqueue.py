"""Creating tasks: a parent document with its tasks in one atomic batch, or tasks for a parent.

A task may run after others (`after=[id, ...]`: created `waiting`, see firetasks.workflow) and may
have a unique `key`: its id is then a function of the key (the key itself when it is a valid id),
so enqueuing the same key twice returns the existing task and creates nothing. A key is unique in
its tasks collection under its parent; `unique="global"` makes it unique across all parents through
a lock document (`firetasksKeys/{collection}:{id}`, see `lock_id`) created in the same batch.

`after` names a task by its id, or by the key of a task in the same batch.

Given the queue's `registry=` (or the `queue=` itself), the helpers refuse a task no handler is
registered for (a typo would otherwise leave it scheduled for ever), naming the closest names.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.clock import Clock, utc_now
from firetasks.config import TaskQueue
from firetasks.debounce import debounced
from firetasks.errors import InvalidTask
from firetasks.new_task import NewTask
from firetasks.registry import HandlerRegistry
from firetasks.store import FirestoreStore, TaskStore
from firetasks.task import (
    DEFAULT_COLLECTIONS,
    HAS_DEPENDENTS,
    TASK_ID_PATTERN,
    find_cycle,
    handler_name,
)

KEYS_COLLECTION = "firetasksKeys"  # lock documents of globally unique keys
CREATE_TRIES = 3  # a batch whose keys conflict is tried again without the tasks that exist


def lock_id(collection: str, id: str) -> str:
    """The id of the lock document of the globally unique task `id` in tasks collections named
    `collection`: `{collection}:{id}`. Unambiguous: a task id never holds a ':' (TASK_ID_PATTERN,
    task_id), so the last ':' splits the two.

    Locks used to be `{collection}-{id}`, which two keys could share (`x-a` in `tasks`, `a` in
    `tasks-x`). Locks written that way are no longer read: a global key enqueued before this
    change can be enqueued once more under another parent (under the same parent its task's id
    still finds it), and from then on the new lock holds it. Each old lock names its task
    (`task`: the task's path), from which a migration can write the new lock."""
    return f"{collection}:{id}"


def resolve_after(tasks: Sequence[NewTask]) -> list[NewTask]:
    """The tasks with each name in `after` made a task id: the key of a task in the batch becomes
    that task's id (task_id); anything else must be a task id already. Raises InvalidTask naming
    the keys that two tasks of the batch share and the names that are neither."""
    found: list[str] = []
    by_id: dict[str, str] = {}
    for task in tasks:
        if task.key is None or task.id is None:
            continue
        if task.id in by_id:
            first = by_id[task.id]
            found.append(f"key {task.key!r} is given twice in one batch" if first == task.key
                         else f"keys {first!r} and {task.key!r} make the same task id {task.id}")
        else:
            by_id[task.id] = task.key
    ids = {key: id for id, key in by_id.items()}
    resolved = []
    for task in tasks:
        if isinstance(task.after, str):
            found.append(f"'after' must be a list of task ids or keys, got {task.after!r}")
            resolved.append(task)
            continue
        after = [ids.get(name, name) if isinstance(name, str) else name for name in task.after]
        bad = [name for name in after
               if not isinstance(name, str) or not TASK_ID_PATTERN.fullmatch(name)]
        if bad:
            found.append(f"task {_name(task)!r} runs after {', '.join(map(repr, bad))}: neither a "
                         "task id nor the key of a task in the batch")
        resolved.append(dataclasses.replace(task, after=tuple(after)) if task.after else task)
    if found:
        raise InvalidTask(found)
    return resolved


def _name(task: NewTask) -> str:
    return task.key or handler_name(task.type, task.action)


def check_handlers(tasks: Iterable[NewTask], registry: HandlerRegistry) -> None:
    """Refuse tasks that no handler of `registry` runs: InvalidTask naming each, with the closest
    registered names (a typo: `order.sned` -> did you mean 'order.send'?)."""
    names = registry.names()
    found: list[str] = []
    for task in tasks:
        if registry.lookup(task.type, task.action) is not None:
            continue
        name = handler_name(task.type, task.action)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = (f": did you mean {' or '.join(map(repr, close))}?" if close
                else f" (registered: {', '.join(names) or 'none'})" if len(names) <= 10 else "")
        problem = f"no handler is registered for {name!r}{hint}"
        if problem not in found:
            found.append(problem)
    if found:
        raise InvalidTask(found)


def check_graph(tasks: Sequence[NewTask], existing: Iterable[str] = ()) -> None:
    """Refuse dependencies on the task itself, on ids neither in the batch (by key) nor among
    `existing`, and cycles: InvalidTask, naming them."""
    ids = {task.id for task in tasks if task.id is not None}
    known = ids | set(existing)
    found: list[str] = []
    for task in tasks:
        name = _name(task)
        if task.id is not None and task.id in task.after:
            found.append(f"task {name!r} runs after itself")
        unknown = [id for id in task.after if id not in known]
        if unknown:
            found.append(f"task {name!r} runs after unknown task(s): {', '.join(unknown)}")
    graph = {task.id: [id for id in task.after if id in ids] for task in tasks if task.id}
    cycle = find_cycle(graph)
    if cycle:
        found.append(f"the tasks' dependencies make a cycle: {' -> '.join(cycle)}")
    if found:
        raise InvalidTask(found)


def check_new(
    tasks: Sequence[NewTask],
    collection: firestore.CollectionReference,
    store: TaskStore,
    known: Iterable[str] = (),
) -> list[NewTask]:
    """The new tasks of `collection`, their `after` names resolved (resolve_after) and checked
    (check_graph): the ids they name outside the batch (and outside `known`) must be tasks that
    exist there. Used by the enqueue helper and for spawned tasks alike."""
    tasks = resolve_after(tasks)
    ids = {task.id for task in tasks} | set(known)
    named = sorted({id for task in tasks for id in task.after} - ids)
    refs = [collection.document(id) for id in named]
    existing = {ref.id for ref, found in zip(refs, store.read_all(refs), strict=True) if found}
    check_graph(tasks, existing | set(known))
    return tasks


def task_documents(tasks: Sequence[NewTask]) -> list[dict[str, Any]]:
    """The documents of new tasks (checked by check_new), each marked `hasDependents`: whether a
    task of the same batch names it in `after` (one named later is marked then, by
    firetasks.workflow)."""
    named = {id for task in tasks for id in task.after}
    return [task.document() | {HAS_DEPENDENTS: task.id in named} for task in tasks]


def create_with_tasks(
    parent: DocumentReference,
    fields: Mapping[str, Any],
    tasks: Iterable[NewTask],
    *,
    collection: str | None = None,
    store: TaskStore | None = None,
    registry: HandlerRegistry | None = None,
    queue: TaskQueue | None = None,
) -> list[DocumentReference]:
    """Create `parent` (failing if it exists) and its tasks atomically: all of them or none. If
    every task has a key and they all exist with the parent, it was done before: their refs.
    With `registry=` (or `queue=`: its registry, and its first collection by default), a task
    without a handler there is refused (InvalidTask, naming the closest handlers)."""
    return _create(parent, _checked(tasks, registry, queue), _collection(collection, queue),
                   fields, store or FirestoreStore())


def add_tasks(
    parent: DocumentReference,
    tasks: Iterable[NewTask],
    *,
    collection: str | None = None,
    store: TaskStore | None = None,
    registry: HandlerRegistry | None = None,
    queue: TaskQueue | None = None,
    clock: Clock = utc_now,
) -> list[DocumentReference]:
    """Add tasks under `parent` (which need not exist) atomically. A task whose key exists is not
    created again: the existing task's ref is returned in its place. `registry=` and `queue=` as
    for create_with_tasks. A debounced task (`debounce=`) is added on its own (firetasks.debounce,
    at `clock`'s time)."""
    tasks = list(tasks)
    if any(task.debounce for task in tasks):
        if len(tasks) != 1:
            raise InvalidTask(["a debounced task is added on its own, in a call of its own"])
        return [debounced(parent.collection(_collection(collection, queue)),
                          _checked(tasks, registry, queue)[0], store or FirestoreStore(), clock)]
    return _create(parent, _checked(tasks, registry, queue), _collection(collection, queue),
                   None, store or FirestoreStore())


def _checked(tasks: Iterable[NewTask], registry: HandlerRegistry | None,
             queue: TaskQueue | None) -> list[NewTask]:
    tasks = list(tasks)
    if registry is not None and queue is not None and registry is not queue.registry:
        raise ValueError("give the registry or the queue, not both")
    registry = registry or (queue.registry if queue is not None else None)
    if registry is not None:
        check_handlers(tasks, registry)
    return tasks


def _collection(collection: str | None, queue: TaskQueue | None) -> str:
    if collection is not None:
        return collection
    return queue.collections[0] if queue is not None else DEFAULT_COLLECTIONS[0]


def _create(
    parent: DocumentReference,
    tasks: list[NewTask],
    collection: str,
    parent_fields: Mapping[str, Any] | None,
    store: TaskStore,
) -> list[DocumentReference]:
    tasks_collection = parent.collection(collection)
    tasks = check_new(tasks, tasks_collection, store)
    documents = task_documents(tasks)  # validate them all before writing any
    keys = db.client_of(parent).collection(KEYS_COLLECTION)
    locks = {index: keys.document(lock_id(collection, cast(str, task.id)))
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
        _check_beside(tasks, found, tasks_collection)
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


def _check_beside(
    tasks: Sequence[NewTask],
    found: Mapping[int, DocumentReference],
    collection: firestore.CollectionReference,
) -> None:
    """Refuse a batch whose tasks run after a task of the batch whose global key is held by a
    task under another parent: a task can only run after tasks beside it."""
    beside = _path_of(collection)
    elsewhere = {cast(str, tasks[i].id): (tasks[i], ref) for i, ref in found.items()
                 if _path_of(ref.parent) != beside}
    named = {id for task in tasks for id in task.after}
    problems = [f"tasks of the batch run after {_name(task)!r}, but its global key is held by "
                f"{ref.path}, and a task runs only after tasks beside it (in {beside})"
                for id, (task, ref) in elsewhere.items() if id in named]
    if problems:
        raise InvalidTask(problems)


def _path_of(collection: firestore.CollectionReference) -> str:
    return str(collection.document("_").path).rsplit("/", 1)[0]


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
