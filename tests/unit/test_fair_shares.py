"""Fair shares on the test kit (firetasks.fair_shares): a handler-wide concurrency shared between
the values of its key, the waiting tasks started in turn between them by the hand-over. The
emulator's tests/emulator/test_fair_shares.py runs 500 tasks of one merchant and 5 of another."""

from __future__ import annotations

import datetime

import pytest

from firetasks import HandlerRegistry, NewTask, Task
from firetasks.limits import Limits
from firetasks.testing import MemoryQueue


def kit() -> tuple[MemoryQueue, list[str]]:
    registry = HandlerRegistry()
    runs: list[str] = []

    @registry.handler("payments", "capture", concurrency=1, key=lambda task: task.data["m"],
                      shared=True, lease=datetime.timedelta(seconds=10))
    def capture(task: Task) -> None:
        runs.append(f"{task.data['m']}{task.data['n']}")

    return MemoryQueue(registry), runs


def test_a_key_with_3_tasks_is_not_starved_by_one_with_20() -> None:
    queue, runs = kit()
    refs = [queue.enqueue("orders/o", NewTask("payments", "capture", {"m": "A", "n": n}))
            for n in range(20)]
    refs += [queue.enqueue("orders/o", NewTask("payments", "capture", {"m": "B", "n": n}))
             for n in range(3)]
    for ref in refs:  # their create events, in order: every task queued
        queue.processor.handle(queue.get(ref))
    assert {queue.get(ref).fields["shareKey"] for ref in refs} == {"A", "B"}
    queue.clock.advance(1)  # the tasks waited for their slot: a look for the next is worth it
    queue.processor.run_admitted(queue.dispatcher.pending.pop(0))  # A0 runs, then hands over
    assert sorted(runs) == [*sorted(f"A{n}" for n in range(20)), "B0", "B1", "B2"]
    assert runs.index("B2") <= 7  # in turn: A, B, A, B, ... not after A's 20
    assert [run for run in runs if run.startswith("A")] == [f"A{n}" for n in range(20)]


def test_shared_limits_hold_for_the_handler_and_need_a_key() -> None:
    limits = Limits.of(4, None, key=lambda task: "k", shared=True)
    assert limits is not None
    assert not limits.per_key
    assert limits.rate_limits().max_concurrent_dispatches == 4  # Cloud Tasks holds it
    assert str(limits) == "concurrency 4 shared between keys"
    with pytest.raises(ValueError, match="give key="):
        Limits(4, shared=True)
