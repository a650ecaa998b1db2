"""The task document: its states, its fields, and the rules a document must follow to be run."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard, cast

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.errors import IllegalTransition, InvalidTask


class State(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The state machine, in one place. Clients create `scheduled` tasks; the processor claims them
# (`running`) and ends each attempt; operators cancel waiting tasks and retry finished ones.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.SCHEDULED: frozenset({State.RUNNING, State.FAILED, State.CANCELLED}),
    State.RETRYING: frozenset({State.RUNNING, State.FAILED, State.CANCELLED}),
    State.RUNNING: frozenset({State.COMPLETED, State.RETRYING, State.FAILED, State.CANCELLED}),
    State.COMPLETED: frozenset({State.SCHEDULED}),
    State.FAILED: frozenset({State.SCHEDULED}),
    State.CANCELLED: frozenset({State.SCHEDULED}),
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
CLIENT_FIELDS = ("runAt", "maxAttempts", "cancelRequested")
MANAGED_FIELDS = (
    "attempts", "retryBase", "createdAt", "updatedAt", "startedAt", "finishedAt", "leaseExpiresAt",
    "result", "error", "history",
)
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
    if "cancelRequested" in fields and not isinstance(fields["cancelRequested"], bool):
        found.append(f"'cancelRequested' must be true or false, got "
                     f"{_describe(fields['cancelRequested'])}")
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
