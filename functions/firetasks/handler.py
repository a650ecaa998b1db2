"""What a handler receives: `Task`, one attempt at one task, with what it may do during the
attempt (report progress, spawn tasks, read its dependencies' results, stage atomic writes)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.new_task import NewTask
from firetasks.staging import StagedWrites
from firetasks.task import State, handler_name


class Reporter(Protocol):
    """Where an attempt's progress reports go (firetasks.progress)."""

    def report(self, fraction: float, message: str = "") -> None: ...


class Durable(Protocol):
    """A claimed attempt's steps and sleeps (firetasks.steps)."""

    staging: StagedWrites | None  # the writes of the step that is running, if any

    def step(self, name: str, fn: Callable[..., Any], *args: Any) -> Any: ...

    def time_left(self) -> float: ...

    def sleep(self, name: str, duration: datetime.timedelta) -> None: ...

    def wait_for(self, name: str, event: str, match: dict[str, Any] | None,
                 timeout: datetime.timedelta) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Task:
    """What a handler receives: one attempt at one task."""

    ref: DocumentReference
    type: str
    action: str
    data: dict[str, Any]
    attempt: int
    staged: StagedWrites | None = field(default=None, repr=False, compare=False)
    after: tuple[str, ...] = ()
    read_all: Callable[[list[DocumentReference]], list[Any]] | None = field(
        default=None, repr=False, compare=False)  # the processor's store, for dependencies
    spawned: list[tuple[DocumentReference, NewTask]] = field(
        default_factory=list, repr=False, compare=False)
    reporter: Reporter | None = field(default=None, repr=False, compare=False)
    durable: Durable | None = field(default=None, repr=False, compare=False)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the attempt has come (0 to 1), with a word on what it is doing: shown
        live in the dashboard, written at most every 2 s (firetasks.progress)."""
        if self.reporter is not None:
            self.reporter.report(fraction, message)

    def step(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` run once for this task: its JSON result is saved on the task, and a later
        attempt gets it back without running it again. Writes staged in `task.writes` while it
        runs commit with its result (docs/guides/durable.md)."""
        return self._durable("step").step(name, fn, *args)

    def sleep(self, name: str, duration: datetime.timedelta) -> None:
        """Suspend the task for `duration` (any length) without holding an invocation: the handler
        runs again when it is over, its steps saved, and the sleep returns."""
        self._durable("sleep").sleep(name, duration)

    def wait_for(self, name: str, *, event: str, match: dict[str, Any] | None = None,
                 timeout: datetime.timedelta) -> dict[str, Any] | None:
        """The data of the event named `event` (under the task's parent) whose data has the
        fields of `match`, whether it was sent before, during or after this call; None once
        `timeout` passed without one. The task waits without holding an invocation."""
        return self._durable("wait_for").wait_for(name, event, match, timeout)

    def time_left(self) -> float:
        """Seconds left before the function's timeout ends this invocation. A step that would
        start with less than a minute (a quarter of the timeout, if shorter) left continues in a
        new invocation instead, its saved steps kept: a long job is not capped by the timeout."""
        return self._durable("time_left").time_left()

    def _durable(self, what: str) -> Durable:
        if self.durable is None:
            raise TypeError(f"task.{what} is for handlers in claim mode: '{self.name}' is "
                            "registered with atomic=True (its whole run is one step already)")
        return self.durable

    def spawn(self, task: NewTask, *, after: Sequence[str] | None = None) -> DocumentReference:
        """Add a task beside this one, created in the same write as this attempt's completion:
        it exists if and only if the attempt completed. `after` may name this task, its siblings
        and other spawned tasks (by key). The new task's ref."""
        if task.unique == "global":
            raise ValueError("spawned tasks take keys unique under their parent only")
        if after is not None:
            task = dataclasses.replace(task, after=tuple(after))
        siblings = self.ref.parent
        ref = cast(DocumentReference,
                   siblings.document(task.id) if task.id else siblings.document())
        self.spawned.append((ref, task))
        return ref

    def dependency_results(self) -> dict[str, Any]:
        """The `result` of each task this one runs after, by id (None for one without)."""
        return {id: record.fields.get("result") if record else None
                for id, record in self._dependencies().items()}

    def dependency_errors(self) -> dict[str, Any]:
        """The `error` of each task this one runs after that did not complete (a dependent with
        `onDependencyFailure: "run"` runs anyway, and can see why)."""
        return {id: record.fields.get("error") for id, record in self._dependencies().items()
                if record is not None and record.state != State.COMPLETED}

    def _dependencies(self) -> dict[str, Any]:
        if self.read_all is None or not self.after:
            return {}
        refs = [self.ref.parent.document(id) for id in self.after]
        return dict(zip(self.after, self.read_all(refs), strict=True))

    @property
    def writes(self) -> StagedWrites:
        """Where an atomic handler stages its Firestore writes: committed with the task's outcome,
        exactly once (firetasks.staging); inside a step (`task.step`), the step's writes,
        committed with its result."""
        if self.durable is not None and self.durable.staging is not None:
            return self.durable.staging
        if self.staged is None:
            raise TypeError(f"task.writes is for atomic handlers and steps: register "
                            f"'{self.name}' with atomic=True, stage them inside task.step(), or "
                            "write through task.client")
        return self.staged

    @property
    def id(self) -> str:
        return cast(str, self.ref.id)  # google-cloud-firestore leaves these unannotated

    @property
    def path(self) -> str:
        return cast(str, self.ref.path)

    @property
    def client(self) -> firestore.Client:
        """The client that reads this task; handlers use it for their own reads and writes."""
        return db.client_of(self.ref)

    @property
    def parent(self) -> DocumentReference | None:
        """The document that owns the tasks subcollection (e.g. the order), None at the root."""
        return cast(DocumentReference | None, self.ref.parent.parent)

    @property
    def parent_ref(self) -> DocumentReference:
        """The parent document, typed as one: `task.writes.update(task.parent_ref, {...})`
        type-checks where `task.parent` (None for a task at the root) does not. Raises
        ValueError for a task at the root (a tasks collection of the database's)."""
        parent = self.parent
        if parent is None:
            raise ValueError(f"task {self.path} ({self.name}) is at the root of the database: "
                             "it has no parent document")
        return parent

    @property
    def name(self) -> str:
        return handler_name(self.type, self.action)
