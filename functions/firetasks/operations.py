"""What operators do to tasks: retry finished ones, cancel waiting or running ones, prune old ones;
send an event or end a wait for one (durable handlers: firetasks.events).

Each action reads the task once and writes, with its audit record, conditionally on the version
it read (firetasks.store): of several operators acting on the same version exactly one wins, and
the others get TaskChanged (the dashboard's 409), never a second run. An action may also name the
state (`if_state`) or version (`if_version`) the operator was shown: a task that has moved on
since is TaskChanged too.

`prune` (firetasks.pruning) deletes finished tasks that expired (or finished long enough ago).
"""

from __future__ import annotations

__all__ = ["PruneReport", "bulk_retry", "cancel", "end_wait", "pause", "prune", "resume",
           "retry", "send_event"]

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import audit, db, events, pauses, queries, transitions, workflow
from firetasks.audit import Actor
from firetasks.clock import utc_now
from firetasks.conditional import Write, commit
from firetasks.config import TaskQueue
from firetasks.errors import BadRequest, IllegalTransition, StepError, TaskChanged, TaskNotFound
from firetasks.filters import TaskFilter
from firetasks.pruning import PruneReport, prune
from firetasks.record import TaskRecord
from firetasks.retention import DEFAULT_RETENTION
from firetasks.store import FirestoreStore, TaskStore
from firetasks.task import FINAL_STATES, MAX_ATTEMPTS_LIMIT, State


def retry(
    ref: DocumentReference,
    *,
    max_attempts: int | None = None,
    actor: Actor | None = None,
    if_state: str | None = None,
    if_version: datetime.datetime | None = None,
    store: TaskStore | None = None,
) -> dict[str, Any]:
    """Move a completed, failed or cancelled task back to `scheduled` (a task whose dependencies
    have not all completed: to `waiting` for them), with a fresh attempt budget (of
    `max_attempts` if given); see transitions.operator_retry. The dependents that its failure
    ended go back to `waiting` (firetasks.workflow): `reopened` counts them, if any."""
    max_attempts = check_max_attempts(max_attempts)
    store = store or FirestoreStore()

    def plan(record: TaskRecord) -> dict[str, Any]:
        done = record.state not in FINAL_STATES or workflow.dependencies_done(record, store)
        return transitions.operator_retry(record, max_attempts, dependencies_done=done)

    outcome = _transition(ref, plan, "retry", actor, if_state, if_version, store)
    reopened = workflow.reopen(ref, store) if outcome["before"] != State.COMPLETED else 0
    return outcome | ({"reopened": reopened} if reopened else {})


def cancel(
    ref: DocumentReference,
    *,
    actor: Actor | None = None,
    if_state: str | None = None,
    if_version: datetime.datetime | None = None,
    store: TaskStore | None = None,
    queue: TaskQueue | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """Cancel a waiting task at once; a running one records the request and ends `cancelled`
    instead of being retried. A task cancelled at once expires by its handler's retention in
    `queue` (default: DEFAULT_RETENTION), from `now`."""

    def plan(record: TaskRecord) -> dict[str, Any]:
        policy = queue.registry.retention(record.type, record.action) if queue else None
        return transitions.operator_cancel(record, now or utc_now(), policy or DEFAULT_RETENTION)

    return _transition(ref, plan, "cancel", actor, if_state, if_version, store)


def end_wait(
    ref: DocumentReference,
    *,
    actor: Actor | None = None,
    if_state: str | None = None,
    if_version: datetime.datetime | None = None,
    store: TaskStore | None = None,
) -> dict[str, Any]:
    """End the task's wait for an event now, as its timeout would: its `task.wait_for` returns
    None and the handler goes on. IllegalTransition if it does not wait for an event."""

    def plan(record: TaskRecord) -> dict[str, Any]:
        fields = events.ended(record, None, {"endedBy": "operator"})
        if fields is None:
            raise IllegalTransition(f"{record.path} does not wait for an event "
                                    f"(it is {record.state})")
        return fields

    return _transition(ref, plan, "end-wait", actor, if_state, if_version, store)


def send_event(parent: DocumentReference, name: object, data: object, *,
               actor: Actor) -> dict[str, Any]:
    """Send the event `name` with `data` (a map) under `parent`, as firetasks.events.send_event
    does, with its audit record in the same batch: each wait of the parent's tasks that matches
    it gets it. BadRequest naming the field for a bad name or data. The event's path."""
    if not isinstance(name, str) or not isinstance(data, dict):
        raise BadRequest("name must be an event's name (a string) and data a JSON object")
    try:
        ref, fields = events.event_document(parent, name, data)
    except StepError as exc:
        raise BadRequest(f"name or data: {exc}") from exc
    batch = db.client_of(ref).batch()
    batch.create(ref, fields)
    batch.create(audit.entry_ref(db.client_of(ref)), audit.entry(
        actor, "send-event", ref.path, {"before": "-", "after": name}))
    batch.commit()
    return {"event": ref.path, "name": name}


def parent_ref(client: firestore.Client, path: object) -> DocumentReference:
    """The parent document at `path` (`orders/o-1`): BadRequest naming `parent` for anything
    else."""
    if not isinstance(path, str) or len(parts := path.split("/")) != 2 or not all(parts):
        raise BadRequest(f"parent must be a document path like orders/o-1, not {str(path)[:80]}")
    ref: DocumentReference = client.document(path)
    return ref


def parent_of(task: DocumentReference) -> DocumentReference:
    """The document a task's events are sent under: its parent."""
    parent: DocumentReference | None = task.parent.parent
    if parent is None:
        raise BadRequest(f"task {task.path} has no parent document")
    return parent


def check_max_attempts(value: object, name: str = "max_attempts") -> int | None:
    """`value` as an attempt budget (None: the handler's own); raises BadRequest (a ValueError)
    naming `name` for anything but a whole number from 1 to MAX_ATTEMPTS_LIMIT (a JSON `true` is
    no number)."""
    if value is None:
        return None
    if (not isinstance(value, int) or isinstance(value, bool)
            or not 1 <= value <= MAX_ATTEMPTS_LIMIT):
        raise BadRequest(f"{name} must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT}, "
                         f"not {str(value)[:40]}")
    return value


def pause(client: firestore.Client, queue: TaskQueue, handler: object, *, key: object = None,
          actor: Actor) -> dict[str, Any]:
    """Pause a handler (or, with `key`, one key of a handler with limits per key): its due tasks
    are held, none starts, running attempts finish (firetasks.pauses). Audited; pausing a paused
    target keeps who paused it first."""
    target = pauses.target_of(queue, handler, key)
    pause = pauses.read(client, target)
    if pause is None:
        fields = {"target": target, "by": actor.email or actor.uid or actor.via,
                  "since": firestore.SERVER_TIMESTAMP}
        entry = audit.entry(actor, "pause", target, {"before": "running", "after": "paused"})
        commit([Write("set", pauses.pause_ref(client, target), fields),
                Write("create", audit.entry_ref(client), entry)])
        pause = pauses.read(client, target)
    return {"target": target, "paused": True} | (pause.as_json() if pause else {})


def resume(client: firestore.Client, queue: TaskQueue, handler: object, *, key: object = None,
           actor: Actor, store: TaskStore | None = None,
           wake: Callable[[DocumentReference], object] | None = None) -> dict[str, Any]:
    """Lift the pause of a handler (or key), audited, and start the tasks it held, oldest first,
    through their handler's limits; `resumed` counts them (`wake`: see pauses.release_held).
    Resuming a target that is not paused starts any task still held for it."""
    target = pauses.target_of(queue, handler, key)
    pause = pauses.read(client, target)
    if pause is not None:
        entry = audit.entry(actor, "resume", target, {"before": "paused", "after": "running"})
        commit([Write("delete", pauses.pause_ref(client, target)),
                Write("create", audit.entry_ref(client), entry)])
    resumed = pauses.release_held(client, store or FirestoreStore(), queue.collections, target,
                                   wake)
    return {"target": target, "paused": False, "resumed": resumed}


BULK_LIMIT = 500  # tasks per bulk retry: a page of the dashboard, well inside a function's time


def bulk_retry(
    client: firestore.Client,
    queue: TaskQueue,
    where: TaskFilter,
    *,
    confirm: int | None,
    actor: Actor | None = None,
    max_attempts: int | None = None,
) -> dict[str, Any]:
    """The failed tasks matching `where`, for the dashboard and the CLI alike. With `confirm`
    None, counts them (and names up to 20). With `confirm` equal to their count now, retries each
    at the version counted, skipping any that moved on meanwhile. Raises BadRequest beyond
    BULK_LIMIT (or for a bad `max_attempts`, before counting) and TaskChanged when the count
    changed since the operator saw it."""
    max_attempts = check_max_attempts(max_attempts)
    where = dataclasses.replace(where, state=State.FAILED.value)
    matches = queries.matching(client, queue, where, BULK_LIMIT + 1)
    if len(matches) > BULK_LIMIT:
        raise BadRequest(f"more than {BULK_LIMIT} tasks match; narrow the filter")
    if confirm is None:
        return {"count": len(matches), "paths": [m.reference.path for m in matches[:20]]}
    if confirm != len(matches):
        raise TaskChanged(f"{len(matches)} tasks match now, not {confirm}: count again before "
                          "confirming")
    retried = []
    for snapshot in matches:
        try:
            retry(snapshot.reference, max_attempts=max_attempts, actor=actor,
                  if_version=db.as_version(snapshot.update_time))
        except IllegalTransition:  # it moved on since the count: leave it
            continue
        retried.append(snapshot.reference.path)
    return {"count": len(matches), "retried": len(retried), "paths": retried}


Plan = Callable[[TaskRecord], dict[str, Any]]  # an operator's move (firetasks.transitions)


def _transition(
    ref: DocumentReference,
    plan: Plan,
    action: str,
    actor: Actor | None,
    if_state: str | None,
    if_version: datetime.datetime | None,
    store: TaskStore | None,
) -> dict[str, Any]:
    """Apply `plan(the task as read)`, the changes of a move, to the version read.
    Returns the state before and after; raises IllegalTransition where the machine forbids it and
    TaskChanged where the task is not (or no longer) what the operator saw."""
    store = store or FirestoreStore()
    record = store.read(ref)
    if record is None:
        raise TaskNotFound(f"no task at {ref.path}")
    state = record.state
    if if_version is not None and db.as_version(record.version) != if_version:
        raise TaskChanged(f"{ref.path} has changed since it was shown (it is {state} now): "
                          "reload it")
    if if_state is not None and state != if_state:
        raise TaskChanged(f"{ref.path} is {state} now, not {if_state}: reload it")
    changes = plan(record)
    outcome = {"before": state, "after": changes.get("state", state)}
    entry = None if actor is None else audit.entry(actor, action, ref.path, outcome)
    store.transition(record, changes, entry)
    return outcome
