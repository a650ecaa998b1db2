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

Which finished tasks look for dependents (a query, billed a read even when it finds none): a task
created by `add_tasks` carries `hasDependents`, true if a task of its batch names it. A dependent
that arrives while a task it names is unfinished and marked false marks it true, conditionally on
the version it read; if that write fails, the dependency changed (it may have finished) and the
dependent reads it again. So either the dependent sees its dependency finished, or the
dependency's final version is marked and its echo looks. A task without the field (written by a
client, or before the field existed) is always looked for, and the sweeper's scan of finished tasks
looks for every task's.

Failure policy (`onDependencyFailure`): a dependency that ends `failed` or `cancelled` ends its
dependents `failed` ("fail", the default) or `cancelled` ("skip") with a `DependencyFailed` error
naming it; "run" releases the dependent once every dependency has finished, whatever its outcome.
An operator's retry of the dependency brings the dependents it ended back to `waiting` (`reopen`).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

from google.cloud.firestore import DocumentReference

from firetasks import task, transitions
from firetasks.record import TaskRecord
from firetasks.retention import RetentionPolicy
from firetasks.store import TaskStore
from firetasks.task import FINAL_STATES, HAS_DEPENDENTS, State
from firetasks.transitions import DEPENDENCY_FAILED

RetentionOf = Callable[[TaskRecord], RetentionPolicy]  # a task's retention, by its handler
CYCLE_READS = 500  # tasks read at most looking for a cycle through waiting dependencies
MARK_TRIES = 5  # reads of a waiting task's dependencies when they change as it marks them


def dependency_ids(record: TaskRecord) -> list[str]:
    after = record.fields.get("after")
    return [str(id) for id in after] if isinstance(after, list) else []


def dependency_refs(record: TaskRecord) -> list[DocumentReference]:
    """The tasks `record` runs after: beside it, in its collection."""
    return [record.ref.parent.document(id) for id in dependency_ids(record)]


def policy_of(record: TaskRecord) -> str:
    return str(record.fields.get("onDependencyFailure") or "fail")


def dependency_failed(dependency: TaskRecord) -> dict[str, str]:
    """The error of a dependent that a failed or cancelled dependency ended."""
    what = "was cancelled" if dependency.state == State.CANCELLED else "failed"
    error = dependency.fields.get("error")
    reason = f": {error.get('message')}" if isinstance(error, dict) and error.get("message") else ""
    return {"type": DEPENDENCY_FAILED, "dependency": dependency.ref.id,
            "message": f"dependency {dependency.ref.id} ({dependency.type}.{dependency.action}) "
                       f"{what}{reason}"}


def after_dependency(
    dependent: TaskRecord, finished: TaskRecord, store: TaskStore, now: datetime.datetime,
    retention: RetentionPolicy,
) -> dict[str, Any] | None:
    """What a waiting dependent becomes now that `finished` has: None while it waits on. A
    dependency that is gone was a finished task that retention deleted: it counts as completed
    (its dependent was checked when it arrived)."""
    policy = policy_of(dependent)
    if finished.state != State.COMPLETED and policy != "run":
        return transitions.end_by_dependency(dependent, policy, dependency_failed(finished), now,
                                             retention)
    return transitions.release(dependent, now) if dependencies_done(dependent, store) else None


def dependencies_done(dependent: TaskRecord, store: TaskStore) -> bool:
    """Whether every task `dependent` runs after has completed (under policy "run": finished),
    a dependency that is gone counting as completed. Counts, not reads: one count query, and a
    second only while some are not done."""
    refs = dependency_refs(dependent)
    wanted = FINAL_STATES if policy_of(dependent) == "run" else frozenset({State.COMPLETED})
    done = store.count_in(refs, [state.value for state in wanted])
    if done < len(refs):  # the rest unfinished, or gone?
        done += len(refs) - store.count_in(refs, [state.value for state in State])
    return done == len(refs)


def on_arrival(
    waiting: TaskRecord, store: TaskStore, now: datetime.datetime, retention: RetentionPolicy,
    *, first: bool = True,
) -> dict[str, Any] | None:
    """What a waiting task becomes when seen: invalid if it names itself, or `first` seen (its
    create event, or the sweeper standing in for it), unknown tasks or a cycle; else settled as
    far as its dependencies allow. Seen again (reopened, or retried by an operator), a dependency
    that is gone was deleted by retention once finished, and counts as completed."""
    ids = dependency_ids(waiting)
    if waiting.ref.id in ids:
        return transitions.invalid(
            waiting, f"'after' names the task itself ({waiting.ref.id})", now, retention)
    for _ in range(MARK_TRIES):
        dependencies = store.read_all(dependency_refs(waiting))
        fields = _settled(waiting, ids, dependencies, store, now, retention, first=first)
        if fields is not None or _marked(dependencies, store):
            return fields
    return None  # its dependencies kept changing: the sweeper's scan of finished tasks settles it


def _settled(
    waiting: TaskRecord, ids: list[str], dependencies: list[TaskRecord | None], store: TaskStore,
    now: datetime.datetime, retention: RetentionPolicy, *, first: bool,
) -> dict[str, Any] | None:
    """on_arrival's verdict on the dependencies as read."""
    unknown = [id for id, record in zip(ids, dependencies, strict=True) if record is None]
    if unknown and first:
        return transitions.invalid(
            waiting, f"'after' names unknown task(s): {', '.join(unknown)}", now, retention)
    found = [record for record in dependencies if record is not None]
    cycle = find_cycle(waiting, found, store)
    if cycle:
        return transitions.invalid(
            waiting, f"'after' makes a cycle: {' -> '.join(cycle)}", now, retention)
    policy = policy_of(waiting)
    failed = [record for record in found if record.state in (State.FAILED, State.CANCELLED)]
    if failed and policy != "run":
        return transitions.end_by_dependency(waiting, policy, dependency_failed(failed[0]), now,
                                             retention)
    wanted = FINAL_STATES if policy == "run" else {State.COMPLETED}
    if all(record.state in wanted for record in found):
        return transitions.release(waiting, now)
    return None


def _marked(dependencies: list[TaskRecord | None], store: TaskStore) -> bool:
    """Mark `hasDependents` on each unfinished dependency known to have none, conditionally on
    the version read, so that its final write's echo looks for this dependent; whether all were
    (False: one changed since it was read, and may have finished)."""
    return all(
        store.write_if_unchanged(record.ref, record.version, {HAS_DEPENDENTS: True}) is not None
        for record in dependencies
        if record is not None and record.state not in FINAL_STATES
        and not record.may_have_dependents)


def find_cycle(
    start: TaskRecord, dependencies: Sequence[TaskRecord], store: TaskStore
) -> list[str] | None:
    """A path of waiting tasks from `start` back to itself, if its dependencies lead there: the
    cycle check of firetasks.task on the waiting tasks they reach (at most CYCLE_READS read)."""
    graph = {start.ref.id: dependency_ids(start)}
    frontier = [record for record in dependencies if record.state == State.WAITING]
    reads = 0
    while frontier and reads < CYCLE_READS:
        record = frontier.pop()
        graph[record.ref.id] = dependency_ids(record)
        refs = [ref for ref in dependency_refs(record) if ref.id not in graph]
        reads += len(refs)
        frontier += [found for found in store.read_all(refs)
                     if found is not None and found.state == State.WAITING
                     and found.ref.id not in graph]
    return task.find_cycle(graph, start.ref.id)


def settle_dependents(
    finished: TaskRecord, store: TaskStore, retention: RetentionOf, now: datetime.datetime,
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
        fields = after_dependency(dependent, current, store, now, retention(dependent))
        if fields is not None and store.write_if_unchanged(dependent.ref, dependent.version,
                                                           fields):
            written += 1
    return written


def reopen(ref: DocumentReference, store: TaskStore) -> int:
    """Bring back to `waiting` the dependents that the task at `ref` ended when it failed and, in
    turn, theirs: an operator retried it. All in one batch, conditional on the versions read, so
    that none of them, arriving `waiting`, finds another one still failed. How many."""
    found: dict[str, TaskRecord] = {}
    frontier = [ref]
    while frontier:
        dependency = frontier.pop()
        for dependent in store.dependents(dependency, [State.FAILED.value, State.CANCELLED.value]):
            if transitions.ended_by(dependent, dependency.id) and dependent.path not in found:
                found[dependent.path] = dependent
                frontier.append(dependent.ref)
    changes = [(record, transitions.reopen(record)) for record in found.values()]
    if changes and store.write_all_if_unchanged(changes):
        return len(changes)
    return 0
