"""Progress reports through the real processor over the in-memory store: throttled writes while
running, the latest report written with the outcome, none kept into the next attempt."""

from __future__ import annotations

import datetime

import pytest
from google.cloud import firestore

from firetasks import HandlerRegistry, NewTask, Task
from firetasks.testing import MemoryQueue
from firetasks.transitions import claim


@pytest.fixture
def queue() -> MemoryQueue:
    registry = HandlerRegistry()

    @registry.handler("report", "export")
    def export(task: Task) -> None:
        for step in range(5):  # a step a second: reports at 0, 2 and 4 s are written
            task.progress(step / 4, f"step {step + 1} of 5")
            memory.clock.advance(1)
        if task.data.get("fail") and task.attempt == 1:
            raise RuntimeError("export failed")

    @registry.handler("report", "quick", atomic=True)
    def quick(task: Task) -> None:
        task.progress(0.5, "half")
        task.progress(1.0, "done")

    @registry.handler("report", "bad")
    def bad(task: Task) -> None:
        task.progress(1.5)

    memory = MemoryQueue(registry)
    return memory


def spy(queue: MemoryQueue) -> list[dict]:
    written: list[dict] = []
    commit = queue.store.commit
    queue.store.commit = lambda writes: (  # a spy on every conditional write
        written.extend(dict(write.fields or {}) for write in writes), commit(writes))[1]
    return written


def test_reports_are_written_at_most_every_2_s_and_the_last_with_the_outcome(queue):
    ref = queue.enqueue("reports/r-1", NewTask("report", "export"))
    written = spy(queue)
    queue.run()
    reports = [fields["progress"]["message"] for fields in written
               if set(fields) == {"progress"}]
    assert reports == ["step 1 of 5", "step 3 of 5", "step 5 of 5"]
    task = queue.get(ref)
    assert task.state == "completed"
    assert task.fields["progress"]["fraction"] == 1.0


def test_a_new_attempt_starts_without_the_old_progress(queue):
    ref = queue.enqueue("reports/r-1", NewTask("report", "export", {"fail": True}))
    queue.processor.process(queue.get(ref))
    retrying = queue.get(ref)
    assert (retrying.state, retrying.fields["progress"]["message"]) == ("retrying", "step 5 of 5")
    claimed = claim(retrying, queue.clock(), datetime.timedelta(minutes=1))
    assert claimed["progress"] is firestore.DELETE_FIELD


def test_an_atomic_handler_s_progress_is_written_with_its_outcome_only(queue):
    ref = queue.enqueue("reports/r-1", NewTask("report", "quick"))
    written = spy(queue)
    queue.run()
    assert [fields for fields in written if set(fields) == {"progress"}] == []
    assert queue.get(ref).fields["progress"]["message"] == "done"


def test_a_fraction_outside_0_to_1_fails_the_attempt(queue):
    ref = queue.enqueue("reports/r-1", NewTask("report", "bad"))
    queue.run()
    error = queue.get(ref).fields["error"]
    assert error["message"] == "progress is a fraction from 0 to 1, got 1.5"
