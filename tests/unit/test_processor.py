"""Every branch of processing a write, a wake-up and an expired lease, through the real processor
over firetasks.testing's in-memory store and fake clock; and the pure decisions it makes."""

from __future__ import annotations

import datetime
import itertools

import pytest

from firetasks import (
    HandlerRegistry,
    NewTask,
    PermanentError,
    RetryAfter,
    RetryPolicy,
    Task,
)
from firetasks.errors import IllegalTransition, TaskChanged
from firetasks.testing import MemoryQueue

QUICK = RetryPolicy(max_attempts=3, min_delay=1.0, max_delay=4.0, jitter=0.0)
ERROR = {"type": "RuntimeError", "message": "boom"}
NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def runs() -> list[Task]:
    return []


@pytest.fixture
def queue(runs) -> MemoryQueue:
    registry = HandlerRegistry()

    @registry.handler("job", "ok")
    def ok(task: Task) -> dict:
        runs.append(task)
        return {"attempt": task.attempt}

    @registry.handler("job", "flaky", retry=QUICK)
    def flaky(task: Task) -> None:
        runs.append(task)
        if task.attempt <= task.data["failTimes"]:
            raise RuntimeError(f"failure {task.attempt}")

    @registry.handler("job", "permanent", retry=QUICK)
    def permanent(task: Task) -> None:
        runs.append(task)
        raise PermanentError("card declined")

    @registry.handler("job", "later", retry=QUICK)
    def later(task: Task) -> None:
        runs.append(task)
        if task.attempt == 1:
            raise RetryAfter(30, "rate limited")

    @registry.handler("job", "cancelsItself", retry=QUICK)
    def cancels_itself(task: Task) -> None:
        runs.append(task)
        memory.cancel(task.ref)  # an operator's cancel arrives while the handler runs
        raise RuntimeError("interrupted")

    memory = MemoryQueue(registry)
    return memory


def test_a_due_task_runs_once_and_completes(queue, runs):
    ref = queue.enqueue("orders/o-1", NewTask("job", "ok", {"n": 1}))
    queue.run()
    task = queue.get(ref)
    assert (task.state, task.attempts, task.fields["result"]) == ("completed", 1, {"attempt": 1})
    assert [(run.path, run.data, run.attempt) for run in runs] == [(ref.path, {"n": 1}, 1)]
    assert [entry["outcome"] for entry in task.history] == ["completed"]


def test_failures_retry_after_the_policy_s_delay_on_the_fake_clock(queue, runs):
    ref = queue.enqueue("orders/o-1", NewTask("job", "flaky", {"failTimes": 2}))
    queue.run()
    task = queue.get(ref)
    assert (task.state, task.attempts) == ("completed", 3)
    starts = [entry["startedAt"] for entry in task.history]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(starts)] == [1, 2]
    assert task.history[0]["error"] == {"type": "RuntimeError", "message": "failure 1"}


def test_exhausted_attempts_fail_with_the_last_error(queue):
    ref = queue.enqueue("orders/o-1", NewTask("job", "flaky", {"failTimes": 9}, max_attempts=2))
    queue.run()
    task = queue.get(ref)
    assert (task.state, task.attempts, task.fields["error"]["message"]) == (
        "failed", 2, "failure 2")


def test_a_permanent_error_fails_at_once_and_retry_after_waits_as_asked(queue):
    permanent = queue.enqueue("orders/o-1", NewTask("job", "permanent"))
    later = queue.enqueue("orders/o-1", NewTask("job", "later"))
    queue.run()
    assert (queue.get(permanent).state, queue.get(permanent).attempts) == ("failed", 1)
    first, second = queue.get(later).history
    assert (second["startedAt"] - first["finishedAt"]).total_seconds() == 30


def test_a_delayed_task_waits_for_its_run_at(queue, runs):
    run_at = queue.clock() + datetime.timedelta(hours=1)
    ref = queue.enqueue("orders/o-1", NewTask("job", "ok", run_at=run_at))
    queue.run(until=run_at - datetime.timedelta(seconds=1))
    assert (queue.get(ref).state, runs) == ("scheduled", [])
    queue.run()
    assert queue.get(ref).history[0]["startedAt"] == run_at


@pytest.mark.parametrize(
    ("fields", "state"),
    [({"type": "job", "action": "nobody", "state": "scheduled", "data": {}}, "scheduled"),
     ({"type": "job", "action": "ok", "state": "completed", "data": {}}, "completed"),
     ({"type": "job", "action": "ok", "state": "scheduled", "data": {}, "cancelRequested": True},
      "cancelled"),
     ({"type": "job", "action": "ok", "state": "scheduled", "data": "x"}, "failed"),
     ({"type": "job", "action": "ok", "state": 3, "data": {}}, "failed")],
    ids=["no-handler", "not-scheduled", "cancel-requested", "invalid", "unknown-state"])
def test_what_is_not_run(queue, runs, fields, state):
    ref = queue.write("orders/o-1/tasks/t", fields)
    queue.run()
    assert (queue.get(ref).state, runs) == (state, [])


def test_a_duplicate_delivery_loses_the_claim(queue, runs):
    ref = queue.enqueue("orders/o-1", NewTask("job", "ok"))
    record = queue.get(ref)
    queue.processor.process(record)
    queue.processor.process(record)  # the same version again: Firestore's at-least-once
    assert len(runs) == 1


def test_a_cancel_while_running_ends_cancelled_instead_of_retried(queue, runs):
    ref = queue.enqueue("orders/o-1", NewTask("job", "cancelsItself"))
    queue.run()
    task = queue.get(ref)
    assert (task.state, len(runs), "cancelRequested" in task.fields) == ("cancelled", 1, False)


def test_an_expired_lease_becomes_a_retry_with_the_reason(queue, runs):
    ref = queue.write("orders/o-1/tasks/t", {
        "type": "job", "action": "ok", "state": "running", "data": {}, "attempts": 1,
        "leaseExpiresAt": queue.clock() - datetime.timedelta(seconds=1)})
    assert queue.expire_leases() == 1
    queue.run()
    task = queue.get(ref)
    assert (task.state, task.attempts, len(runs)) == ("completed", 2, 1)
    assert task.history[0]["error"]["type"] == "LeaseExpired"


def test_operators_retry_with_a_fresh_budget_and_exactly_one_wins(queue):
    ref = queue.enqueue("orders/o-1", NewTask("job", "permanent"))
    queue.run()
    seen = queue.get(ref)
    assert queue.retry(ref, if_version=seen.version) == {"before": "failed", "after": "scheduled"}
    with pytest.raises(TaskChanged):
        queue.retry(ref, if_version=seen.version)
    with pytest.raises(IllegalTransition, match="a scheduled task cannot be retried"):
        queue.retry(ref)
    queue.run()
    assert (queue.get(ref).state, queue.get(ref).attempts) == ("failed", 2)
