"""Priorities of waiting tasks (`NewTask(priority=...)`, the raw `priority` field): the next task
a hand-over or a key's release starts is the highest priority, then the oldest, with aging
(firetasks.task.PRIORITY_STEP). On the test kit; tests/emulator/test_priorities.py runs it through
the real triggers."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from firetasks import HandlerRegistry, NewTask, Task
from firetasks.errors import InvalidTask
from firetasks.task import PRIORITY_STEP, problems
from firetasks.testing import MemoryQueue


def kit() -> tuple[MemoryQueue, list[str]]:
    registry = HandlerRegistry()
    runs: list[str] = []

    @registry.handler("mail", "send", concurrency=1, lease=datetime.timedelta(seconds=10))
    def send(task: Task) -> None:
        runs.append(task.data["name"])

    return MemoryQueue(registry), runs


def queued(queue: MemoryQueue, name: str, priority: int | None = None) -> Any:
    """A task of `mail.send`, queued for its limit (its create event), a second after the last."""
    queue.clock.advance(1)
    ref = queue.enqueue("orders/o", NewTask("mail", "send", {"name": name}, priority=priority))
    queue.processor.handle(queue.get(ref))
    return ref


def test_a_hand_over_starts_the_highest_priority_then_the_oldest() -> None:
    queue, runs = kit()
    for n in range(5):
        queued(queue, f"low{n}")
    queued(queue, "high0", priority=5)
    queued(queue, "top", priority=9)
    queued(queue, "high1", priority=5)
    queue.clock.advance(1)  # each waited for its slot: each hands over
    queue.processor.run_admitted(queue.dispatcher.pending.pop(0))  # low0's dispatch: it runs,
    assert runs == ["low0", "top", "high0", "high1", "low1", "low2", "low3", "low4"]  # hands over


def test_a_chain_goes_on_through_a_high_priority_task_queued_just_now() -> None:
    """The high task waited for no slot of its own, but the lows behind it did: were the chain to
    end at it, Cloud Tasks' next dispatch (in its own order) would start a low."""
    queue, runs = kit()
    for n in range(3):
        queued(queue, f"low{n}")
    queue.clock.advance(5)
    ref = queue.enqueue("orders/o", NewTask("mail", "send", {"name": "urgent"}, priority=9))
    queue.processor.handle(queue.get(ref))  # queued now: no time passes before the dispatch
    queue.processor.run_admitted(queue.dispatcher.pending.pop(0))
    assert runs == ["low0", "urgent", "low1", "low2"]


def test_a_low_priority_task_waits_at_most_a_step_a_level_behind_newer_high_ones() -> None:
    queue, runs = kit()
    queued(queue, "first")  # holds the slot: its dispatch runs it
    queued(queue, "old-low")
    queue.clock.advance(PRIORITY_STEP + 1)  # waited longer than one level's head start
    queued(queue, "new-high", priority=1)
    queued(queue, "newer-higher", priority=2)
    queue.clock.advance(1)  # each waited for its slot: each hands over
    queue.processor.run_admitted(queue.dispatcher.pending.pop(0))
    assert runs == ["first", "newer-higher", "old-low", "new-high"]


def test_the_rank_is_written_with_the_queue_mark_and_removed_by_the_claim() -> None:
    queue, _ = kit()
    ref = queued(queue, "a", priority=3)
    waiting = queue.get(ref)
    created = waiting.fields["createdAt"]
    assert waiting.fields["waitRank"] == created.timestamp() - 3 * PRIORITY_STEP
    queue.run()
    assert "waitRank" not in queue.get(ref).fields


@pytest.mark.parametrize("priority", [-1, 10, 2.5, True, "high"])
def test_a_bad_priority_is_refused_naming_the_field(priority: Any) -> None:
    with pytest.raises(InvalidTask, match="'priority' must be a whole number from 0 to 9"):
        NewTask("mail", "send", {}, priority=priority).document()
    raw = {"type": "mail", "action": "send", "state": "scheduled", "data": {},
           "priority": priority}
    assert any("'priority'" in problem for problem in problems(raw))


def test_a_client_s_task_with_a_bad_priority_fails_as_invalid() -> None:
    queue, runs = kit()
    ref = queue.write("orders/o/tasks/t", {"type": "mail", "action": "send", "state": "scheduled",
                                           "data": {"name": "x"}, "priority": "urgent"})
    queue.run()
    failed = queue.get(ref)
    assert failed.state == "failed"
    assert "'priority' must be a whole number from 0 to 9, got str 'urgent'" in (
        failed.fields["error"]["message"])
    assert runs == []
