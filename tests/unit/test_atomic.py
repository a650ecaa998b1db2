"""Atomic handlers through the real processor over firetasks.testing's in-memory store: staged
writes are committed with the outcome, once, or not at all."""

from __future__ import annotations

import datetime
import logging

import pytest

from firetasks import HandlerRegistry, NewTask, PermanentError, RetryPolicy, Task
from firetasks.testing import MemoryQueue

QUICK = RetryPolicy(max_attempts=3, min_delay=1.0, max_delay=4.0, jitter=0.0)


@pytest.fixture
def runs() -> list[Task]:
    return []


@pytest.fixture
def queue(runs) -> MemoryQueue:
    registry = HandlerRegistry()

    @registry.handler("order", "confirm", atomic=True, retry=QUICK)
    def confirm(task: Task) -> dict:
        runs.append(task)
        mail = task.writes.create(task.client.collection("mail").document(), {"to": "a@b.c"})
        task.writes.update(task.parent, {"status": "confirmed"})
        if task.attempt <= task.data.get("failTimes", 0):
            raise RuntimeError(f"failure {task.attempt}")
        return {"mailId": mail.id}

    @registry.handler("order", "createTwice", atomic=True, retry=QUICK)
    def create_twice(task: Task) -> None:
        runs.append(task)
        task.writes.create(task.client.document("mail/fixed"), {"to": "a@b.c"})

    @registry.handler("order", "cancelledMeanwhile", atomic=True)
    def cancelled_meanwhile(task: Task) -> None:
        task.writes.create(task.client.collection("mail").document(), {"to": "a@b.c"})
        memory.cancel(task.ref)  # an operator's cancel lands while the handler runs

    @registry.handler("order", "claimed")
    def claimed(task: Task) -> None:
        task.writes.delete(task.ref)

    memory = MemoryQueue(registry)
    memory.write("orders/o-1", {"status": "new"})
    return memory


def mails(queue: MemoryQueue) -> list[str]:
    return [path for path in queue.store.documents if path.startswith("mail/")]


def test_staged_writes_commit_with_the_completion_and_the_task_is_never_running(queue, runs):
    ref = queue.enqueue("orders/o-1", NewTask("order", "confirm"))
    written = []
    commit = queue.store.commit
    queue.store.commit = lambda writes: (  # a spy on every conditional write
        written.extend((write.ref.path, (write.fields or {}).get("state")) for write in writes),
        commit(writes))[1]
    queue.run()
    task = queue.get(ref)
    [mail] = mails(queue)
    assert (task.state, task.attempts, task.fields["result"]) == (
        "completed", 1, {"mailId": mail.split("/")[1]})
    assert queue.document("orders/o-1")["status"] == "confirmed"
    assert [state for path, state in written if path == ref.path] == ["completed"]
    assert len(runs) == 1


def test_duplicate_and_stale_deliveries_commit_nothing(queue, runs):
    ref = queue.enqueue("orders/o-1", NewTask("order", "confirm"))
    delivered = queue.get(ref)
    queue.processor.process(delivered)
    queue.processor.process(delivered)  # the same version again: the handler runs, commits nothing
    assert (len(runs), len(mails(queue)), queue.get(ref).attempts) == (2, 1, 1)


def test_a_failed_attempt_commits_its_outcome_alone_and_the_retry_commits_once(queue, runs):
    ref = queue.enqueue("orders/o-1", NewTask("order", "confirm", {"failTimes": 1}))
    queue.processor.process(queue.get(ref))
    assert (queue.get(ref).state, mails(queue), queue.document("orders/o-1")["status"]) == (
        "retrying", [], "new")
    queue.run()
    assert (queue.get(ref).state, queue.get(ref).attempts, len(mails(queue))) == (
        "completed", 2, 1)


def test_a_staged_write_that_cannot_apply_fails_the_attempt(queue):
    queue.write("mail/fixed", {"to": "x@y.z"})
    ref = queue.enqueue("orders/o-1", NewTask("order", "createTwice"))
    queue.run()
    task = queue.get(ref)
    assert (task.state, task.attempts, task.fields["error"]["type"]) == (
        "failed", 3, "FailedPrecondition")  # as Firestore answers: the kit commits as it does
    assert queue.document("mail/fixed") == {"to": "x@y.z"}


def test_a_cancel_while_the_handler_runs_wins_and_nothing_is_written(queue):
    ref = queue.enqueue("orders/o-1", NewTask("order", "cancelledMeanwhile"))
    queue.run()
    assert (queue.get(ref).state, mails(queue)) == ("cancelled", [])


def test_claim_mode_handlers_have_no_staged_writes(queue):
    ref = queue.enqueue("orders/o-1", NewTask("order", "claimed"))
    queue.run()
    error = queue.get(ref).fields["error"]
    assert error["type"] == "TypeError"
    assert "atomic=True" in error["message"]


def test_an_atomic_handler_takes_no_lease():
    with pytest.raises(ValueError, match="takes no lease"):
        HandlerRegistry().register("a", "b", lambda task: None, atomic=True,
                                   lease=datetime.timedelta(seconds=5))


def test_a_permanent_error_fails_at_once():
    registry = HandlerRegistry()

    @registry.handler("order", "declined", atomic=True)
    def declined(task: Task) -> None:
        task.writes.create(task.client.collection("mail").document(), {})
        raise PermanentError("card declined")

    queue = MemoryQueue(registry)
    ref = queue.enqueue("orders/o-1", NewTask("order", "declined"))
    queue.run()
    assert (queue.get(ref).state, mails(queue)) == ("failed", [])


def test_an_atomic_attempt_logs_one_line_at_its_end_with_its_latency(queue, caplog):
    queue.enqueue("orders/o-1", NewTask("order", "confirm"))
    with caplog.at_level(logging.INFO, logger="firetasks"):
        queue.run()
    lines = [record for record in caplog.records
             if record.getMessage().startswith(("start processing task", "end processing task"))]
    [end] = lines  # nothing shows an atomic attempt until it ends: no start line
    assert end.getMessage().startswith("end processing task")
    assert end.fields["outcome"] == "completed"
    assert end.fields["latencyMs"] == 0  # the kit's clock stood still since the enqueue
    assert end.fields["durationMs"] >= 0
