"""Bugs that a model-based test of the kit found on main at 9eefac5 (issue 18, item 8), each
reproduced through MemoryQueue and the documented API; each of these tests failed there.
(K1, the kit's write semantics, is tests/unit/test_memory_store.py; B3 and B4, keys,
tests/unit/test_enqueue_keys.py.)"""

from __future__ import annotations

import datetime
import time

import pytest

from firetasks import HandlerRegistry, NewTask, PermanentError, Task
from firetasks.errors import IllegalTransition
from firetasks.testing import MemoryQueue

HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


@pytest.fixture
def broken() -> set[str]:
    """The handlers that fail (permanently) until a test fixes them."""
    return set()


@pytest.fixture
def queue(broken: set[str]) -> MemoryQueue:
    registry = HandlerRegistry()
    for action in ("a", "b", "d", "email", "processing", "ship", "join"):
        def handle(task: Task, action: str = action) -> str:
            if action in broken:
                raise PermanentError(f"{action} is broken")
            return action

        registry.register("flow", action, handle)
    return MemoryQueue(registry)


def test_b1_a_dependent_starts_no_sooner_than_its_own_run_at(queue: MemoryQueue) -> None:
    start = queue.clock()
    a, d = queue.add("orders/o-1", [NewTask("flow", "a", key="a"),
                                    NewTask("flow", "d", key="d", after=["a"],
                                            run_at=start + HOUR)])
    queue.run(until=start + HOUR / 2)
    assert (queue.get(a).state, queue.get(d).state) == ("completed", "scheduled")
    queue.run()
    assert queue.get(d).state == "completed"
    assert queue.get(d).fields["startedAt"] >= start + HOUR


def test_b2_an_operator_cannot_retry_a_waiting_task(queue: MemoryQueue) -> None:
    start = queue.clock()
    _, d = queue.add("orders/o-1", [NewTask("flow", "a", key="a", run_at=start + DAY),
                                    NewTask("flow", "d", key="d", after=["a"])])
    queue.run(until=start)
    assert queue.get(d).state == "waiting"
    with pytest.raises(IllegalTransition, match="waiting task cannot be retried"):
        queue.retry(d)
    queue.run(until=start + HOUR)
    assert queue.get(d).state == "waiting"  # it did not run before its dependency


def test_b5_a_task_cancelled_on_arrival_loses_its_request(queue: MemoryQueue) -> None:
    ref = queue.write("orders/o-1/tasks/t", {"type": "flow", "action": "a", "state": "scheduled",
                                             "data": {}, "cancelRequested": True})
    queue.run()
    cancelled = queue.get(ref)
    assert cancelled.state == "cancelled"
    assert "cancelRequested" not in cancelled.fields
    queue.retry(ref)
    queue.run()
    assert queue.get(ref).state == "completed"  # the retry runs it, not cancels it again


def test_b6_a_cancelled_dependent_stays_cancelled_when_its_dependency_is_retried(
    queue: MemoryQueue, broken: set[str]
) -> None:
    broken.add("a")
    a, d = queue.add("orders/o-1", [NewTask("flow", "a", key="a"),
                                    NewTask("flow", "d", key="d", after=["a"])])
    queue.run()
    assert (queue.get(a).state, queue.get(d).state) == ("failed", "failed")
    queue.retry(d)
    queue.cancel(d)
    queue.run()
    broken.clear()
    queue.retry(a)
    queue.run()
    assert (queue.get(a).state, queue.get(d).state) == ("completed", "cancelled")


def test_b7_a_late_retry_finishes_a_workflow_whose_completed_tasks_expired(
    queue: MemoryQueue, broken: set[str]
) -> None:
    broken.add("email")
    email, processing, ship = queue.add("orders/o-1", [
        NewTask("flow", "email", key="email"), NewTask("flow", "processing", key="processing"),
        NewTask("flow", "ship", key="ship", after=["email", "processing"])])
    queue.run()
    assert [queue.get(ref).state for ref in (email, processing, ship)] == [
        "failed", "completed", "failed"]
    queue.clock.advance((8 * DAY).total_seconds())
    assert queue.prune().deleted == 1  # completed tasks are kept 7 days, failed ones 30
    assert queue.document(processing.path) is None
    broken.clear()
    queue.retry(email)
    queue.run()
    assert (queue.get(email).state, queue.get(ship).state) == ("completed", "completed")


def test_b7_a_dependency_delayed_past_the_retention_does_not_strand_its_join(
    queue: MemoryQueue,
) -> None:
    start = queue.clock()
    _, b, join = queue.add("orders/o-1", [
        NewTask("flow", "a", key="a"), NewTask("flow", "b", key="b", run_at=start + 8 * DAY),
        NewTask("flow", "join", key="join", after=["a", "b"])])
    queue.run(until=start + HOUR)
    queue.clock.advance((DAY * 7.5).total_seconds())
    assert queue.prune().deleted == 1
    queue.run()
    assert (queue.get(b).state, queue.get(join).state) == ("completed", "completed")


def test_a_new_task_naming_a_task_that_never_existed_is_still_invalid(queue: MemoryQueue) -> None:
    ref = queue.write("orders/o-1/tasks/d", {"type": "flow", "action": "d", "state": "waiting",
                                             "data": {}, "after": ["nope"]})
    queue.run()
    assert queue.get(ref).state == "failed"
    assert "unknown task(s): nope" in queue.get(ref).fields["error"]["message"]


def test_k2_an_early_wake_up_waits_on_the_fake_clock_not_in_real_time(
    queue: MemoryQueue,
) -> None:
    start = queue.clock()
    ref = queue.enqueue("orders/o-1", NewTask("flow", "a", run_at=start + datetime.timedelta(
        seconds=20)))
    queue.run(until=start)
    queue.waker.wake_at(ref, start)  # a duplicate wake-up, early (as the emulator's Cloud Tasks)
    began = time.monotonic()
    queue.run()
    assert time.monotonic() - began < 2
    assert queue.get(ref).state == "completed"
    assert queue.clock() >= start + datetime.timedelta(seconds=20)


def test_the_kit_s_sweep_recovers_a_task_whose_event_was_lost(queue: MemoryQueue) -> None:
    ref = queue.enqueue("orders/o-1", NewTask("flow", "a"))
    queue.store.events.clear()  # the trigger's event never came
    queue.run()
    assert queue.get(ref).state == "scheduled"
    queue.clock.advance(180)
    report = queue.sweep()
    assert report.rewoken == 1
    queue.run()
    assert queue.get(ref).state == "completed"


def test_a_dependent_cancelled_while_waiting_and_retried_waits_for_its_dependencies(
    queue: MemoryQueue,
) -> None:
    """Found by tests/unit/test_kit_model.py: the retry scheduled it, and it ran first."""
    start = queue.clock()
    a, d = queue.add("orders/o-1", [NewTask("flow", "a", key="a", run_at=start + HOUR),
                                    NewTask("flow", "d", key="d", after=["a"])])
    queue.run(until=start)
    queue.cancel(d)
    assert queue.retry(d)["after"] == "waiting"
    queue.run(until=start + HOUR / 2)
    assert queue.get(d).state == "waiting"
    queue.run()
    assert (queue.get(a).state, queue.get(d).state) == ("completed", "completed")
    assert queue.get(d).fields["startedAt"] >= queue.get(a).fields["finishedAt"]


def test_a_completed_dependent_retried_while_its_dependency_reruns_waits_for_it(
    queue: MemoryQueue,
) -> None:
    """Found by tests/unit/test_kit_model.py: the retry was refused as an illegal transition."""
    a, d = queue.add("orders/o-1", [NewTask("flow", "a", key="a"),
                                    NewTask("flow", "d", key="d", after=["a"])])
    queue.run()
    queue.retry(a)  # re-run the dependency...
    assert queue.retry(d) == {"before": "completed", "after": "waiting"}  # ...and its dependent
    queue.run()
    assert (queue.get(a).state, queue.get(d).state) == ("completed", "completed")
    assert queue.get(d).attempts == 2
