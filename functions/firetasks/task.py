"""The task document: its states, its fields, and the rules a document must follow to be run.
(How its state changes: firetasks.transitions; what a handler receives: firetasks.handler.)"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeGuard

from firetasks.errors import InvalidTask


class State(StrEnum):
    WAITING = "waiting"  # for the tasks named in its `after` (firetasks.workflow)
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATES = frozenset(state.value for state in State)
# A trigger event acts only on `scheduled`: every other state is the processor's own write (or an
# operator's), which keeps the function's writes from looping. A wake-up also runs `retrying`.
TRIGGER_STATES = frozenset({State.SCHEDULED})
WAKE_STATES = frozenset({State.SCHEDULED, State.RETRYING})
FINAL_STATES = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})


def is_state(value: object) -> TypeGuard[str]:
    """True for one of the States' strings (and safe for any value a document may hold)."""
    return isinstance(value, str) and value in STATES


def handler_name(type: str, action: str) -> str:
    """A handler's name, `type.action`: how logs, limits, the dashboard and the CLI name it."""
    return f"{type}.{action}"


def function_name(prefix: str, type: str, action: str) -> str:
    """The name of a function generated for a handler (one scheme for all): `prefix` and the
    handler's name in camel case, letters and digits only, so that it is also a valid Cloud Tasks
    queue id: `limitedMailSend`, `periodicReportsDaily`, `limitedOrderMutationsInitiate`."""
    parts = re.split(r"[^A-Za-z0-9]+", handler_name(type, action))
    return prefix + "".join(part[:1].upper() + part[1:] for part in parts)


def split_handler_name(name: str) -> tuple[str, str]:
    """`type` and `action` of a handler's name (the action may be dotted)."""
    type, _, action = name.partition(".")
    return type, action


def wait_rank(created: datetime.datetime, priority: object) -> float:
    """A waiting task's `waitRank` (see PRIORITY_STEP): the smallest starts first."""
    level = priority if isinstance(priority, int) and not isinstance(priority, bool) else 0
    return created.timestamp() - level * PRIORITY_STEP


def limit_key(handler: str, key: str) -> str:
    """The `limitKey` of a task waiting for its handler's limits per key: handler and key."""
    return f"{handler}:{key}"


def split_limit_key(limit_key: str) -> tuple[str, str | None]:
    """The handler's name and the key (None for a handler's own limits) of a `limitKey`."""
    handler, _, key = limit_key.partition(":")
    return handler, key or None


DEFAULT_COLLECTIONS = ("tasks",)  # the tasks subcollection's id, unless a TaskQueue names others
REQUIRED_FIELDS = ("type", "action", "state", "data")
CLIENT_FIELDS = ("runAt", "maxAttempts", "cancelRequested", "after", "onDependencyFailure", "key",
                 "priority", "debounce", "maxWait")
DEPENDENCY_POLICIES = ("fail", "run", "skip")  # what a failed dependency does to its dependents
MAX_DEPENDENCIES = 100
TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_.~-]{1,128}")  # ids a task names in `after`
MANAGED_FIELDS = (
    "attempts", "retryBase", "createdAt", "updatedAt", "startedAt", "finishedAt", "leaseExpiresAt",
    "leaseId", "result", "error", "history", "spawnedBy", "expireAt", "progress",
    "queuedAt", "limitKey", "pausedFor", "waitRank", "debounceUntil", "debouncedAt", "shareKey",
    "steps", "suspended", "hasDependents",
)
QUEUED_AT = "queuedAt"  # on a task waiting for its handler's limits (or a pause): since when
LIMIT_KEY = "limitKey"  # on a task waiting for its handler's limits: `type.action[:key]`
PAUSED_FOR = "pausedFor"  # on a task held by a pause: its handler's name or `limitKey` (pauses)
MAX_PRIORITY = 9  # `priority`: 0 (the default) to 9, the highest
# A waiting task's place (`waitRank`, smallest first): its creation time in seconds, less
# PRIORITY_STEP a level of priority. So higher priorities go first, then the oldest; and a task
# never waits behind one created more than PRIORITY_STEP per level of difference after it (aging).
PRIORITY_STEP = 600.0
WAIT_RANK = "waitRank"
SHARE_KEY = "shareKey"  # a waiting task of a handler whose limits its key's values share
SUSPENDED = "suspended"  # on a durable task that sleeps: what for, until when (firetasks.steps)
DEBOUNCE_UNTIL = "debounceUntil"  # a debounced task's latest start: its first enqueue + max_wait
DEBOUNCED_AT = "debouncedAt"  # when the enqueue whose data a debounced task holds was made
# False on a task that no task named in `after` when it was last looked at: its finish settles no
# dependents, so the echo of its final write looks for none (firetasks.workflow). Absent: unknown.
HAS_DEPENDENTS = "hasDependents"
MAX_DEBOUNCE_SECONDS = 30 * 24 * 3600  # a client's `debounce` and `maxWait`: at most 30 days
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
    if "priority" in fields and not _is_count(fields["priority"], 0, MAX_PRIORITY):
        found.append(f"'priority' must be a whole number from 0 to {MAX_PRIORITY}, got "
                     f"{_describe(fields['priority'])}")
    if "runAt" in fields and not isinstance(fields["runAt"], datetime.datetime | None):
        found.append(f"'runAt' must be a timestamp, got {_describe(fields['runAt'])}")
    size = document_size(fields)
    if size > MAX_TASK_BYTES:
        found.append(f"the task document is {size:,} bytes; at most {MAX_TASK_BYTES:,} leave room "
                     "for the processor's fields (keep large payloads elsewhere, pass a reference)")
    found += _dependency_problems(fields)
    found += _debounce_problems(fields)
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


def is_debounce_request(fields: Mapping[str, Any]) -> bool:
    """Whether a task is a client's debounced enqueue not yet folded into its key's burst
    (firetasks.debounce): it has a raw `debounce` and no `debounceUntil`."""
    return "debounce" in fields and DEBOUNCE_UNTIL not in fields


def _debounce_problems(fields: Mapping[str, Any]) -> list[str]:
    """A client's debounced enqueue: `debounce` and `maxWait` in seconds, with a key, on its own."""
    found = []
    debounce, max_wait = fields.get("debounce"), fields.get("maxWait")
    if "debounce" in fields and not _is_seconds(debounce):
        found.append(f"'debounce' must be a number of seconds above 0 and at most "
                     f"{MAX_DEBOUNCE_SECONDS:,}, got {_describe(debounce)}")
    if "maxWait" in fields and "debounce" not in fields:
        found.append("'maxWait' needs 'debounce'")
    elif "maxWait" in fields and not (_is_seconds(max_wait) and (
            not _is_seconds(debounce) or max_wait >= debounce)):
        found.append(f"'maxWait' must be a number of seconds at least 'debounce' and at most "
                     f"{MAX_DEBOUNCE_SECONDS:,}, got {_describe(max_wait)}")
    if is_debounce_request(fields) and ("key" not in fields or "after" in fields
                                        or "runAt" in fields):
        found.append("'debounce' needs a 'key' (the burst's), and takes no 'after' or 'runAt'")
    return found


def find_cycle(graph: Mapping[str, Sequence[str]], start: str | None = None) -> list[str] | None:
    """A cycle of dependencies in `graph` (a task's id -> the ids it runs after) as the path
    around it, first and last the same: one through `start` if given, else any. The one check
    of the enqueue helper (a batch) and of the processor (the waiting tasks it reads)."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node] if start in (None, node) else None
        if node in done:
            return None
        for after in graph.get(node, []):
            found = visit(after, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for node in graph if start is None else [start]:
        found = visit(node, [])
        if found:
            return found
    return None


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


def _is_seconds(value: object) -> TypeGuard[float]:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and 0 < value <= MAX_DEBOUNCE_SECONDS)


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _describe(value: object) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"
