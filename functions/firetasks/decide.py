"""What the processor does with one version of a task document: a pure decision, from the record,
the states the delivery acts on, the task's handler and the time. Unit-tested without Firestore.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from firetasks.record import TaskRecord
from firetasks.registry import Registration
from firetasks.task import State, is_debounce_request, problems


class Do(StrEnum):
    SKIP = "skip"  # a state this delivery does not act on: the processor's own write, say
    INVALID = "invalid"  # malformed: end it `failed`, listing its problems
    CANCEL = "cancel"  # it arrived with a cancel request: end it `cancelled` unrun
    UNHANDLED = "unhandled"  # no handler for its type.action: leave it as it is
    FOLD = "fold"  # a client's debounced enqueue: fold it into its key's burst (debounce)
    NOT_DUE = "not due"  # its `runAt` is ahead: have it woken then
    QUEUE = "queue"  # its handler is limited: wait for its queue to admit it
    RUN = "run"  # claim it and run the attempt
    RUN_ATOMIC = "run atomic"  # run the attempt, then commit its outcome with its writes


@dataclass(frozen=True)
class Decision:
    do: Do
    problems: tuple[str, ...] = ()
    run_at: datetime.datetime | None = None


def decide(
    record: TaskRecord,
    states: Collection[State],
    registration: Registration | None,
    now: datetime.datetime,
    *,
    admitted: bool = False,
) -> Decision:
    """What to do with `record`, delivered to act on tasks in `states` (a trigger's event: only
    `scheduled`; a wake-up: `retrying` too); `admitted`: its limited handler's queue let it
    start."""
    if record.state is not None and record.state not in states:
        return Decision(Do.SKIP)
    found = problems(record.fields)
    if found:
        return Decision(Do.INVALID, tuple(found))
    if record.cancel_requested:
        return Decision(Do.CANCEL)
    if registration is None:
        return Decision(Do.UNHANDLED)
    if record.state == State.SCHEDULED and is_debounce_request(record.fields):
        return Decision(Do.FOLD)
    if record.run_at is not None and record.run_at > now:
        return Decision(Do.NOT_DUE, run_at=record.run_at)
    if registration.limits is not None and not admitted:
        return Decision(Do.QUEUE)
    return Decision(Do.RUN_ATOMIC if registration.atomic else Do.RUN)
