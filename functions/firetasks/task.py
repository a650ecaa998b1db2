"""The task document: its states, its fields, and the rules a document must follow to be run."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from google.cloud import firestore
from google.cloud.firestore import DocumentReference


class State(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


# States the processor writes itself: an event that shows one of them is never a request for work,
# which is what keeps the function's own writes from looping.
PASSIVE_STATES = frozenset({State.RUNNING, State.COMPLETED, State.FAILED})

REQUIRED_FIELDS = ("type", "action", "state", "data")
MANAGED_FIELDS = (
    "attempts", "createdAt", "updatedAt", "startedAt", "finishedAt", "result", "error",
)
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS + MANAGED_FIELDS)

# `type` is one name; `action` is one or more names joined by dots (nested handler namespaces).
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
TYPE_PATTERN = re.compile(_NAME)
ACTION_PATTERN = re.compile(rf"{_NAME}(\.{_NAME})*")


class InvalidTask(ValueError):
    """A task document that cannot be run as written; the message lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


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
    if "state" in fields and fields["state"] not in set(State):
        found.append(
            f"'state' must be one of {', '.join(State)}, got {_describe(fields['state'])}"
        )
    attempts = fields.get("attempts", 0)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
        found.append(f"'attempts' must be a whole number >= 0, got {_describe(attempts)}")
    return found


def validate(fields: Mapping[str, Any]) -> None:
    """Raise InvalidTask unless the fields make a runnable task document."""
    found = problems(fields)
    if found:
        raise InvalidTask(found)


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
        return self.ref.id

    @property
    def path(self) -> str:
        return self.ref.path

    @property
    def client(self) -> firestore.Client:
        """The client that reads this task; handlers use it for their own reads and writes."""
        return self.ref._client  # DocumentReference has no public accessor for it

    @property
    def parent(self) -> DocumentReference | None:
        """The document that owns the tasks subcollection (e.g. the order), None at the root."""
        return self.ref.parent.parent

    @property
    def name(self) -> str:
        return f"{self.type}.{self.action}"
