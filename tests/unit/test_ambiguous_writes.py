"""Writes whose outcome the client never learnt (issue 21): Firestore applied the commit and
answered DEADLINE_EXCEEDED or UNAVAILABLE; the retry, conditional on the version its own first
write changed, fails its precondition and must conclude that it won. Each test failed before
firetasks.conditional.landed: the processor took its own write for another's."""

from __future__ import annotations

from collections import Counter

import pytest
from google.cloud import firestore

from firetasks import HandlerRegistry, NewTask, Task, conditional
from firetasks.memory_faults import Crash, Fault
from firetasks.testing import MemoryQueue


@pytest.fixture
def calls() -> Counter[int]:
    return Counter()


@pytest.fixture
def queue(calls: Counter[int]) -> MemoryQueue:
    registry = HandlerRegistry()

    @registry.handler("job", "run")
    def run(task: Task) -> str:
        calls[task.attempt] += 1
        if task.attempt <= task.data.get("crash", 0):
            raise Crash("the worker died")
        if task.attempt <= task.data.get("fail", 0):
            raise RuntimeError("fails once")
        return "done"

    @registry.handler("job", "atomic", atomic=True)
    def atomic(task: Task) -> str:
        calls[task.attempt] += 1
        if task.attempt <= task.data.get("fail", 0):
            raise RuntimeError("fails once")
        task.writes.set(task.client.document("effects/e"), {"count": firestore.Increment(1)},
                        merge=True)
        return "done"

    return MemoryQueue(registry)


def test_a_claim_whose_answer_was_lost_runs_its_attempt(queue: MemoryQueue,
                                                        calls: Counter[int]) -> None:
    ref = queue.enqueue("orders/o-1", NewTask("job", "run"))
    queue.store.faults.arm(Fault.AFTER)  # the claim
    queue.run()
    assert queue.get(ref).state == "completed"  # was: left running, its handler never called
    assert calls == {1: 1}


def test_an_ambiguous_retrying_outcome_keeps_its_wake_up(queue: MemoryQueue,
                                                         calls: Counter[int]) -> None:
    ref = queue.enqueue("orders/o-1", NewTask("job", "run", {"fail": 1}))
    queue.store.faults.arm(Fault.AFTER, later=1)  # the first attempt's outcome, after its claim
    queue.run()
    assert queue.get(ref).state == "completed"  # was: left retrying, no wake-up asked for
    assert calls == {1: 1, 2: 1}


def test_an_ambiguous_atomic_commit_keeps_its_wake_up(queue: MemoryQueue,
                                                      calls: Counter[int]) -> None:
    ref = queue.enqueue("orders/o-1", NewTask("job", "atomic", {"fail": 1}))
    queue.store.faults.arm(Fault.AFTER)  # the failed attempt's commit
    queue.run()
    assert queue.get(ref).state == "completed"  # was: left retrying, no wake-up asked for
    assert queue.document("effects/e") == {"count": 1}


def test_a_write_that_landed_is_told_from_one_that_lost(queue: MemoryQueue) -> None:
    ref = queue.write("orders/o-1", {"n": 1})
    version = queue.store.versions[ref.path]
    queue.store.faults.arm(Fault.AFTER)
    assert conditional.write_if_unchanged(ref, version, {"n": 2}) is not None
    version = queue.store.versions[ref.path]
    queue.write("orders/o-1", {"n": 3})  # another write came first
    assert conditional.landed([conditional.Write("update", ref, {"n": 2},
                                                 if_version=version)]) is None


def test_a_stale_claim_that_lost_to_another_is_not_taken_for_its_own(
        queue: MemoryQueue, calls: Counter[int]) -> None:
    """Its retry, after a transient error, finds the task claimed by the first delivery with the
    same fields at the same (fake) time: only the lease's id tells the claims apart."""
    ref = queue.enqueue("orders/o-1", NewTask("job", "run", {"crash": 1}))
    with pytest.raises(Crash):
        queue.deliver()  # claimed: attempt 1 runs, and its worker dies
    queue.store.faults.arm(Fault.BEFORE)
    queue.redeliver(0)  # the same event again, late: its claim must lose
    assert calls == {1: 1}
    queue.clock.advance(3600)
    queue.sweep()
    queue.run()
    assert (queue.get(ref).state, calls) == ("completed", {1: 1, 2: 1})
