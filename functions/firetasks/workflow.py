"""Workflows: tasks that run after others.

A task that names others in `after` (ids of tasks in the same tasks collection, under the same
parent) is created `waiting`. It is *settled* (released to `scheduled`, or ended by its failure
policy) by whoever sees its dependencies finish:

- the echo of each dependency's final write (the trigger's event for its `completed`, `failed` or
  `cancelled` version) settles that dependency's waiting dependents;
- a waiting task's own create event settles it if its dependencies finished before it was written,
  and fails it (`InvalidTask`) if it names itself, unknown tasks, or a cycle;
- the sweeper settles the dependents of finished tasks whose echo was lost.

Why a dependent is released exactly once, with one write, however many dependencies finish at the
same instant: each dependency's final write is committed before its echo runs, and the echo counts
the dependencies' states after that. Of the dependencies that finish together, the one whose final
write Firestore committed last has an echo that runs after every other's write, so it counts them
all finished and releases; an echo that counts earlier sees one unfinished and does nothing. So at
least one echo releases. Several may (their dependencies finished close together): each writes
conditionally on the version of the dependent it read while it was `waiting`, and the first write
changes that version, so every other fails its precondition and writes nothing. So at most one
does. The dependent is written once, when it is settled, not once per finished dependency.

Failure policy (`onDependencyFailure`): a dependency that ends `failed` or `cancelled` ends its
dependents `failed` ("fail", the default) or `cancelled` ("skip") with a `DependencyFailed` error
naming it; "run" releases the dependent once every dependency has finished, whatever its outcome.
An operator's retry of the dependency brings the dependents it ended back to `waiting` (`reopen`).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks.record import TaskRecord
from firetasks.retention import EXPIRE_AT, RetentionPolicy, retained
from firetasks.store import TaskStore
from firetasks.task import FINAL_STATES, State

DEPENDENCY_FAILED = "DependencyFailed"
RetentionOf = Callable[[TaskRecord], RetentionPolicy]  # a finished task's retention, by handler
CYCLE_READS = 500  # tasks read at most looking for a cycle through waiting dependencies


def dependency_ids(record: TaskRecord) -> list[str]:
    return [str(id) for id in record.fields.get("after") or []]


def dependency_refs(record: TaskRecord) -> list[DocumentReference]:
    """The tasks `record` runs after: beside it, in its collection."""
    return [record.ref.parent.document(id) for id in dependency_ids(record)]


def policy_of(record: TaskRecord) -> str:
    return str(record.fields.get("onDependencyFailure") or "fail")


def released() -> dict[str, Any]:
    """A settled dependent's release. `runAt` = now lets the sweeper find it should the release's
    event be lost, as an operator's retry does."""
    return {"state": State.SCHEDULED.value, "runAt": firestore.SERVER_TIMESTAMP,
            "updatedAt": firestore.SERVER_TIMESTAMP}


def dependency_failed(dependency: TaskRecord) -> dict[str, str]:
    """The error of a dependent that a failed or cancelled dependency ended."""
    what = "was cancelled" if dependency.state == State.CANCELLED else "failed"
    error = dependency.fields.get("error")
    reason = f": {error.get('message')}" if isinstance(error, dict) and error.get("message") else ""
    return {"type": DEPENDENCY_FAILED, "dependency": dependency.ref.id,
            "message": f"dependency {dependency.ref.id} ({dependency.type}.{dependency.action}) "
                       f"{what}{reason}"}


def ended_by(policy: str, error: dict[str, str]) -> dict[str, Any]:
    """A dependent ended by a failed dependency (policy "fail" or "skip"), or an invalid one."""
    state = State.CANCELLED if policy == "skip" else State.FAILED
    return {"state": state.value, "error": error, "finishedAt": firestore.SERVER_TIMESTAMP,
            "updatedAt": firestore.SERVER_TIMESTAMP}


def after_dependency(
    dependent: TaskRecord, finished: TaskRecord, store: TaskStore
) -> dict[str, Any] | None:
    """What a waiting dependent becomes now that `finished` has: None while it waits on."""
    policy = policy_of(dependent)
    if finished.state != State.COMPLETED and policy != "run":
        return ended_by(policy, dependency_failed(finished))
    refs = dependency_refs(dependent)
    wanted = FINAL_STATES if policy == "run" else frozenset({State.COMPLETED})
    if store.count_in(refs, [state.value for state in wanted]) == len(refs):
        return released()
    return None


def on_arrival(waiting: TaskRecord, store: TaskStore) -> dict[str, Any] | None:
    """What a waiting task becomes when first seen (its create event, or the sweeper): invalid if
    it names itself, unknown tasks or a cycle; else settled as far as its dependencies allow."""
    ids = dependency_ids(waiting)
    if waiting.ref.id in ids:
        return ended_by("fail", invalid(f"'after' names the task itself ({waiting.ref.id})"))
    dependencies = store.read_all(dependency_refs(waiting))
    unknown = [id for id, record in zip(ids, dependencies, strict=True) if record is None]
    if unknown:
        return ended_by("fail", invalid(f"'after' names unknown task(s): {', '.join(unknown)}"))
    cycle = find_cycle(waiting, [record for record in dependencies if record is not None], store)
    if cycle:
        return ended_by("fail", invalid(f"'after' makes a cycle: {' -> '.join(cycle)}"))
    policy = policy_of(waiting)
    states = [record.state for record in dependencies if record is not None]
    failed = [record for record in dependencies
              if record is not None and record.state in (State.FAILED, State.CANCELLED)]
    if failed and policy != "run":
        return ended_by(policy, dependency_failed(failed[0]))
    wanted = FINAL_STATES if policy == "run" else {State.COMPLETED}
    return released() if all(state in wanted for state in states) else None


def find_cycle(
    start: TaskRecord, dependencies: Sequence[TaskRecord], store: TaskStore
) -> list[str] | None:
    """A path of waiting tasks from `start` back to itself, if its dependencies lead there."""
    paths = {record.ref.path: [start.ref.id, record.ref.id] for record in dependencies}
    frontier = [record for record in dependencies if record.state == State.WAITING]
    reads = 0
    while frontier and reads < CYCLE_READS:
        record = frontier.pop()
        refs = dependency_refs(record)
        reads += len(refs)
        for ref, found in zip(refs, store.read_all(refs), strict=True):
            if ref.path == start.ref.path:
                return [*paths[record.ref.path], start.ref.id]
            if found is not None and found.state == State.WAITING and ref.path not in paths:
                paths[ref.path] = [*paths[record.ref.path], ref.id]
                frontier.append(found)
    return None


def invalid(message: str) -> dict[str, str]:
    return {"type": "InvalidTask", "message": message}


def settle_dependents(
    finished: TaskRecord, store: TaskStore, retention: RetentionOf,
    now: datetime.datetime,
) -> int:
    """Settle the waiting dependents of a task that just finished; how many were written.

    `finished` comes from an event, which may arrive late: by then an operator may have retried
    the task and reopened its dependents. So the task is read again, and a version that is no
    longer final settles nothing (its dependents wait for the retry's outcome)."""
    dependents = store.dependents(finished.ref, [State.WAITING.value])
    current = store.read(finished.ref) if dependents else None
    if current is None or current.state not in FINAL_STATES:
        return 0
    written = 0
    for dependent in dependents:
        fields = after_dependency(dependent, current, store)
        if fields is not None and store.write_if_unchanged(
                dependent.ref, dependent.version, retained(fields, retention(dependent), now)):
            written += 1
    return written


def reopen(ref: DocumentReference, store: TaskStore) -> int:
    """Bring back to `waiting` the dependents that the task at `ref` ended when it failed and, in
    turn, theirs: an operator retried it. All in one batch, conditional on the versions read, so
    that none of them, arriving `waiting`, finds another one still failed. How many."""
    found: list[TaskRecord] = []
    frontier = [ref]
    while frontier:
        dependency = frontier.pop()
        for dependent in store.dependents(dependency, [State.FAILED.value, State.CANCELLED.value]):
            error = dependent.fields.get("error") or {}
            if (error.get("type") == DEPENDENCY_FAILED and error.get("dependency") == dependency.id
                    and dependent.path not in {record.path for record in found}):
                found.append(dependent)
                frontier.append(dependent.ref)
    waiting = {"state": State.WAITING.value, "error": firestore.DELETE_FIELD,
               "finishedAt": firestore.DELETE_FIELD, "updatedAt": firestore.SERVER_TIMESTAMP,
               EXPIRE_AT: firestore.DELETE_FIELD}
    if found and store.write_all_if_unchanged([(record, waiting) for record in found]):
        return len(found)
    return 0
