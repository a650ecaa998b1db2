"""Durable handlers: `task.step(name, fn, *args)` runs once per task, `task.sleep(name, delta)`
suspends it without holding an invocation (docs/guides/durable.md).

A step's JSON result is saved in the task's `steps` map (`steps.<name>: {result, startedAt,
finishedAt, attempt}`) by a write conditional on the version this attempt holds (its claim's, then
its own last write's, shared with progress reports): a later attempt, after a crash or a failure,
gets the saved result back without running the step again. If the task changed meanwhile (a cancel
request), it is read again and the result saved on that version, as long as this attempt still
owns it; else the attempt is lost (AttemptLost) and its result is not saved.

An atomic step stages writes in `task.writes` while it runs: they commit in the same batch as its
result, under the same condition, so its Firestore effects happen once: a crash before the commit
writes nothing (the step runs again), one after it never runs the step again.

A sleep ends the invocation (Suspended, a BaseException, so a handler's `except Exception` does not
swallow it): the attempt's end writes `scheduled` again, due at the sleep's end, and gives back the
attempt (transitions.suspend); the wake-up machinery (firetasks.wakeup) runs it then, and the sleep,
whose end is saved as its step, returns. A step that would start too close to the function's timeout
suspends the same way, due at once: the handler continues in a new invocation.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

from firetasks.clock import Clock
from firetasks.errors import AttemptLost, StepError
from firetasks.events import check_event, find_event, step_path
from firetasks.progress import Progress
from firetasks.record import TaskRecord
from firetasks.staging import StagedWrites
from firetasks.store import TaskStore
from firetasks.task import SUSPENDED, State, document_size

STEP_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
MAX_RESULT_BYTES = 100 * 1024  # one step's saved result
MAX_STEPS_BYTES = 500 * 1024  # all steps of a task: the task stays under Firestore's 1 MiB
SAVE_TRIES = 5  # re-reads of a task that changed (a cancel request) before a result is dropped
CONTINUE_MARGIN = 60.0  # seconds (at most a quarter of the timeout): a step starts with more left


class Suspended(BaseException):
    """Ends the invocation of a durable handler that sleeps (or waits): not a failure. `fields`:
    what the suspension writes besides the move (its step's entry, what it waits for)."""

    def __init__(self, name: str, until: datetime.datetime, fields: Mapping[str, Any]) -> None:
        super().__init__(f"step {name!r} suspends the task until {until.isoformat()}")
        self.until = until
        self.fields = dict(fields)


def json_result(value: Any, what: str = "handler") -> Any:
    """`value`, if it is JSON-able (what a task document can hold); else TypeError."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} returned a value that is not JSON-able: {exc}") from exc
    return value


class Steps:
    """The steps of one claimed attempt: those saved by earlier attempts, those run by this one."""

    def __init__(self, record: TaskRecord, attempt: int, progress: Progress, store: TaskStore,
                 clock: Clock, deadline: float) -> None:
        saved = record.fields.get("steps")
        self.saved: dict[str, Any] = dict(saved) if isinstance(saved, dict) else {}
        self.ref = record.ref
        self.attempt = attempt
        self.progress = progress
        self.store = store
        self.clock = clock
        self.seen: set[str] = set()
        self.staging: StagedWrites | None = None  # an open step's writes (task.writes)
        self.deadline = deadline  # the function's timeout, by time.monotonic()
        self.margin = min(CONTINUE_MARGIN, (deadline - time.monotonic()) / 4)

    def time_left(self) -> float:
        """Seconds until the function's timeout ends this invocation."""
        return max(0.0, self.deadline - time.monotonic())

    def step(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)`'s result: the saved one, if an earlier attempt ran the step; else run it
        now and save its result (with the writes it staged) before returning it."""
        entry = self._entry(name)
        if "finishedAt" in entry:
            return entry.get("result")
        started = self.clock()
        if self.time_left() < self.margin:  # continue in a new invocation, before the timeout
            raise Suspended(name, started, {SUSPENDED: {"step": name, "kind": "continue",
                                                    "until": started, "since": started}})
        self.staging = StagedWrites()
        try:
            result = json_result(fn(*args), f"step {name!r}")
        finally:
            staged, self.staging = self.staging, None
        self._check_size(name, result)
        self._save(name, {"result": result, "startedAt": started, "finishedAt": self.clock(),
                          "attempt": self.attempt}, staged)
        return result

    def sleep(self, name: str, duration: datetime.timedelta) -> None:
        """Return once the task has slept `duration` since it first came to this step; until
        then, end the invocation (Suspended) to be woken at the sleep's end."""
        if not isinstance(duration, datetime.timedelta) or duration < datetime.timedelta():
            raise StepError(f"sleep {name!r}: the duration must be a timedelta >= 0, "
                            f"got {duration!r}")
        entry = self._entry(name)
        now = self.clock()
        until = entry.get("until")
        if not isinstance(until, datetime.datetime):
            until = now + duration
        if until <= now:
            return
        raise Suspended(name, until, {
            step_path(name): {"until": until, "startedAt": entry.get("startedAt", now)},
            SUSPENDED: {"step": name, "kind": "sleep", "until": until, "since": now},
        })

    def wait_for(self, name: str, event: str, match: Mapping[str, Any] | None,
                 timeout: datetime.timedelta) -> dict[str, Any] | None:
        """The data of the first event `event` under the task's parent whose data matches
        `match`, or None once `timeout` has passed since the task first came to this wait; until
        then, end the invocation (Suspended), registered as waiting (firetasks.events)."""
        match = dict(match or {})
        check_event(event, {}, match)
        if not isinstance(timeout, datetime.timedelta) or timeout < datetime.timedelta():
            raise StepError(f"wait {name!r}: the timeout must be a timedelta >= 0, "
                            f"got {timeout!r}")
        entry = self._entry(name)
        if "finishedAt" in entry:
            return cast(dict[str, Any] | None, entry.get("result"))
        now = self.clock()
        until = entry.get("until")
        if not isinstance(until, datetime.datetime):
            until = now + timeout
        since = entry.get("startedAt", now)
        found = find_event(self.ref, event, match)
        if found is not None or until <= now:
            result = None if found is None else found[1]
            ending = {"event": found[0]} if found else {"timedOut": True}
            self._save(name, {"result": result, "startedAt": since, "finishedAt": now,
                              "until": until, "attempt": self.attempt, **ending}, StagedWrites())
            return result
        raise Suspended(name, until, {
            step_path(name): {"until": until, "startedAt": since},
            SUSPENDED: {"step": name, "kind": "wait", "event": event, "match": match,
                        "until": until, "since": now},
        })

    def _entry(self, name: str) -> dict[str, Any]:
        """The saved entry of the step `name` ({} if none); a name used twice in one run, or not
        a name, is a StepError."""
        if not isinstance(name, str) or not STEP_NAME.fullmatch(name):
            raise StepError(f"a step's name is 1 to 100 letters, digits or _.:- characters, "
                            f"got {name!r}")
        if name in self.seen:
            raise StepError(f"step name {name!r} is used twice in this handler: each step, sleep "
                            "and wait of a task needs a name of its own")
        self.seen.add(name)
        entry = self.saved.get(name)
        return dict(entry) if isinstance(entry, dict) else {}

    def _check_size(self, name: str, result: Any) -> None:
        size = document_size(result)
        if size > MAX_RESULT_BYTES:
            raise StepError(f"step {name!r} returned {size:,} bytes; a step's result is at most "
                            f"{MAX_RESULT_BYTES:,} (save large data elsewhere, return its path)")
        total = size + document_size(self.saved)
        if total > MAX_STEPS_BYTES:
            raise StepError(f"step {name!r}: the task's steps would hold {total:,} bytes, over "
                            f"{MAX_STEPS_BYTES:,} (save large results elsewhere)")

    def _save(self, name: str, entry: dict[str, Any], staged: StagedWrites) -> None:
        """Save the step's `entry` (and commit `staged`) if the task is at this attempt's
        version; re-read it if it changed, while this attempt still owns it."""
        for _ in range(SAVE_TRIES):
            version = self.store.commit_if_unchanged(self.ref, self.progress.version,
                                                     {step_path(name): entry}, staged)
            if version is not None:
                self.progress.version = version
                self.saved[name] = entry
                return
            found = self.store.read(self.ref)
            if found is None or found.state != State.RUNNING or found.attempts != self.attempt:
                raise AttemptLost(f"the step's result was not saved: task {self.ref.path} is no "
                                  "longer this attempt's (its lease expired, or it was deleted)")
            self.progress.version = found.version
        raise AttemptLost(f"the step's result was not saved: task {self.ref.path} kept changing")
