"""The task document: its states, its fields, and the rules a document must follow to be run."""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.errors import IllegalTransition, InvalidTask
from firetasks.staging import StagedWrites

if TYPE_CHECKING:
    from firetasks.enqueue import NewTask
    from firetasks.progress import Progress


class State(StrEnum):
    WAITING = "waiting"  # for the tasks named in its `after` (firetasks.workflow)
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The state machine, in one place. Clients create `scheduled` tasks (`waiting` ones if they name
# tasks to run after: released to `scheduled`, or ended by their failure policy, and brought back to
# `waiting` when an operator retries the dependency that failed them); the processor claims them
# (`running`) and ends each attempt; operators cancel waiting tasks and retry finished ones. An
# atomic handler's attempt is never claimed: it ends straight from `scheduled` or `retrying`.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.WAITING: frozenset({State.SCHEDULED, State.FAILED, State.CANCELLED}),
    State.SCHEDULED: frozenset({State.RUNNING, State.COMPLETED, State.RETRYING, State.FAILED,
                                State.CANCELLED}),
    State.RETRYING: frozenset({State.RUNNING, State.COMPLETED, State.RETRYING, State.FAILED,
                               State.CANCELLED}),
    State.RUNNING: frozenset({State.COMPLETED, State.RETRYING, State.FAILED, State.CANCELLED}),
    State.COMPLETED: frozenset({State.SCHEDULED}),
    State.FAILED: frozenset({State.SCHEDULED, State.WAITING}),
    State.CANCELLED: frozenset({State.SCHEDULED, State.WAITING}),
}

# A trigger event acts only on `scheduled`: every other state is the processor's own write (or an
# operator's), which keeps the function's writes from looping. A wake-up also runs `retrying`.
TRIGGER_STATES = frozenset({State.SCHEDULED})
WAKE_STATES = frozenset({State.SCHEDULED, State.RETRYING})
FINAL_STATES = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})


def is_state(value: object) -> TypeGuard[str]:
    """True for one of the States' strings (and safe for any value a document may hold)."""
    return isinstance(value, str) and value in TRANSITIONS


def check_transition(old: object, new: State) -> None:
    """Raise IllegalTransition unless the state machine allows moving from `old` to `new`."""
    if not is_state(old) or new not in TRANSITIONS[State(old)]:
        raise IllegalTransition(f"a {old} task cannot become {new}")


REQUIRED_FIELDS = ("type", "action", "state", "data")
CLIENT_FIELDS = ("runAt", "maxAttempts", "cancelRequested", "after", "onDependencyFailure", "key")
DEPENDENCY_POLICIES = ("fail", "run", "skip")  # what a failed dependency does to its dependents
MAX_DEPENDENCIES = 100
TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_.~-]{1,128}")  # ids a task names in `after`
MANAGED_FIELDS = (
    "attempts", "retryBase", "createdAt", "updatedAt", "startedAt", "finishedAt", "leaseExpiresAt",
    "result", "error", "history", "spawnedBy", "expireAt", "progress",
    "queuedAt", "limitKey",
)
LIMIT_KEY = "limitKey"  # on a task waiting for its handler's limits: `type.action[:key]`
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS + CLIENT_FIELDS + MANAGED_FIELDS)
MAX_ATTEMPTS_LIMIT = 100
# Firestore refuses documents over 1 MiB; a task needs room for the processor's own fields
# (history, result, error), or a write that ends an attempt could fail.
MAX_TASK_BYTES = 900 * 1024

# `type` is one name; `action` is one or more names joined by dots (nested handler namespaces).
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
TYPE_PATTERN = re.compile(_NAME)
ACTION_PATTERN = re.compile(rf"{_NAME}(\.{_NAME})*")


def problems(fields: Mapping[str, Any]) -> list[str]:
    """Everything wrong with a task document's fields, in words an operator can act on."""
    found = [f"missing field '{name}'" for name in REQUIRED_FIELDS if name not in fields]
    unknown = sorted(set(fields) - KNOWN_FIELDS)
    if unknown:
        found.append(
            f"unknown field(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(KNOWN_FIELDS))}"
        )
    if "type" in fields and not _matches(TYPE_PATTERN, fields["type"]):
        found.append(f"'type' must be a name like 'order', got {_describe(fields['type'])}")
    if "action" in fields and not _matches(ACTION_PATTERN, fields["action"]):
        found.append(
            "'action' must be a name or a dotted path like 'mutations.initiateProcessing', "
            f"got {_describe(fields['action'])}"
        )
    if "data" in fields and not isinstance(fields["data"], dict):
        found.append(f"'data' must be a map, got {_describe(fields['data'])}")
    if "state" in fields and not is_state(fields["state"]):
        found.append(
            f"'state' must be one of {', '.join(State)}, got {_describe(fields['state'])}"
        )
    for name in ("attempts", "retryBase"):
        if not _is_count(fields.get(name, 0), 0):
            found.append(f"'{name}' must be a whole number >= 0, got {_describe(fields[name])}")
    if "maxAttempts" in fields and not _is_count(fields["maxAttempts"], 1, MAX_ATTEMPTS_LIMIT):
        found.append(
            f"'maxAttempts' must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT}, "
            f"got {_describe(fields['maxAttempts'])}"
        )
    if "runAt" in fields and not isinstance(fields["runAt"], datetime.datetime | None):
        found.append(f"'runAt' must be a timestamp, got {_describe(fields['runAt'])}")
    size = document_size(fields)
    if size > MAX_TASK_BYTES:
        found.append(f"the task document is {size:,} bytes; at most {MAX_TASK_BYTES:,} leave room "
                     "for the processor's fields (keep large payloads elsewhere, pass a reference)")
    found += _dependency_problems(fields)
    if "cancelRequested" in fields and not isinstance(fields["cancelRequested"], bool):
        found.append(f"'cancelRequested' must be true or false, got "
                     f"{_describe(fields['cancelRequested'])}")
    return found


def _dependency_problems(fields: Mapping[str, Any]) -> list[str]:
    found = []
    after = fields.get("after", [])
    if not isinstance(after, list) or not all(_matches(TASK_ID_PATTERN, id) for id in after):
        found.append(f"'after' must be a list of task ids, got {_describe(after)}")
    elif len(after) > MAX_DEPENDENCIES or len(set(after)) != len(after):
        found.append(f"'after' must name at most {MAX_DEPENDENCIES} different tasks, got "
                     f"{len(after)} names")
    if fields.get("onDependencyFailure", "fail") not in DEPENDENCY_POLICIES:
        found.append(f"'onDependencyFailure' must be one of {', '.join(DEPENDENCY_POLICIES)}, "
                     f"got {_describe(fields['onDependencyFailure'])}")
    if "key" in fields and not isinstance(fields["key"], str):
        found.append(f"'key' must be a string, got {_describe(fields['key'])}")
    return found


def validate(fields: Mapping[str, Any]) -> None:
    """Raise InvalidTask unless the fields make a runnable task document."""
    found = problems(fields)
    if found:
        raise InvalidTask(found)


def document_size(value: object) -> int:
    """Firestore's storage size of a value (for a map: of its fields), by its documented rules."""
    if isinstance(value, dict):
        return sum(len(str(name).encode()) + 1 + document_size(item)
                   for name, item in value.items())
    if isinstance(value, list | tuple):
        return sum(document_size(item) for item in value)
    if isinstance(value, str):
        return len(value.encode()) + 1
    if isinstance(value, bytes):
        return len(value)
    if value is None or isinstance(value, bool):
        return 1
    return 8  # numbers, timestamps; references and geo points are rare in tasks


def _is_count(value: object, low: int, high: int | None = None) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _describe(value: object) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"


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
    reporter: Progress | None = field(default=None, repr=False, compare=False)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the attempt has come (0 to 1), with a word on what it is doing: shown
        live in the dashboard, written at most every 2 s (firetasks.progress)."""
        if self.reporter is not None:
            self.reporter.report(fraction, message)

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
        exactly once (firetasks.staging)."""
        if self.staged is None:
            raise TypeError(f"task.writes is for atomic handlers: register '{self.name}' with "
                            "atomic=True, or write through task.client")
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
    def name(self) -> str:
        return f"{self.type}.{self.action}"
