"""Retention: finished tasks get the `expireAt` of their handler's policy, waiting ones never; an
operator's retry removes it; the indexes file declares the TTL policy on it."""

from __future__ import annotations

import datetime
import json

import pytest
from google.cloud import firestore

import main
from firetasks import HandlerRegistry, NewTask, RetentionPolicy, RetryPolicy, Task
from firetasks.indexes import index_config
from firetasks.retention import DEFAULT_RETENTION, expire_at, retained
from firetasks.testing import MemoryQueue
from tests.support import ROOT

DAY = datetime.timedelta(days=1)
NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
SHORT = RetentionPolicy(completed=DAY, failed=2 * DAY, cancelled=None)  # cancelled: kept for ever


@pytest.fixture
def queue() -> MemoryQueue:
    registry = HandlerRegistry()

    @registry.handler("job", "ok")
    def ok(task: Task) -> None:
        pass

    @registry.handler("job", "short", retention=SHORT, retry=RetryPolicy(max_attempts=2))
    def short(task: Task) -> None:
        if task.data.get("fail"):
            raise RuntimeError("boom")

    @registry.handler("job", "slow", retry=RetryPolicy(max_attempts=1),
                      lease=datetime.timedelta(seconds=30))
    def slow(task: Task) -> None:
        pass

    return MemoryQueue(registry)


def test_expire_at_by_state():
    assert expire_at(DEFAULT_RETENTION, "completed", NOW) == NOW + 7 * DAY
    assert expire_at(DEFAULT_RETENTION, "failed", NOW) == NOW + 30 * DAY
    assert expire_at(DEFAULT_RETENTION, "cancelled", NOW) == NOW + 30 * DAY
    for waiting in ("scheduled", "running", "retrying", "bogus", None):
        assert expire_at(DEFAULT_RETENTION, waiting, NOW) is None
    assert expire_at(SHORT, "cancelled", NOW) is None
    assert retained({"state": "retrying"}, SHORT, NOW)["expireAt"] is firestore.DELETE_FIELD
    assert retained({"state": "failed"}, SHORT, NOW)["expireAt"] == NOW + 2 * DAY


def test_a_retention_must_be_positive():
    with pytest.raises(ValueError, match="retention of failed tasks must be positive"):
        RetentionPolicy(failed=datetime.timedelta())


def test_finished_tasks_expire_by_their_handler_s_policy(queue):
    done = queue.enqueue("orders/o-1", NewTask("job", "ok"))
    short = queue.enqueue("orders/o-1", NewTask("job", "short"))
    queue.run()
    finished = queue.clock()
    assert queue.get(done).fields["expireAt"] == finished + 7 * DAY
    assert queue.get(short).fields["expireAt"] == finished + DAY


def test_a_retrying_task_has_none_and_gets_one_when_it_fails(queue):
    ref = queue.enqueue("orders/o-1", NewTask("job", "short", {"fail": True}))
    queue.run(until=queue.clock())  # the first attempt only: its retry waits
    assert queue.get(ref).state == "retrying"
    assert "expireAt" not in queue.get(ref).fields
    queue.run()
    task = queue.get(ref)
    assert task.state == "failed"
    assert task.fields["expireAt"] == queue.clock() + 2 * DAY


def test_invalid_cancelled_and_lease_expired_tasks_expire_too(queue):
    invalid = queue.write("orders/o-1/tasks/bad", {"type": "job", "action": "ok",
                                                   "state": "scheduled", "data": []})
    cancelled = queue.enqueue("orders/o-1", NewTask("job", "ok", run_at=NOW + DAY))
    kept = queue.enqueue("orders/o-1", NewTask("job", "short", run_at=NOW + DAY))
    queue.run(until=NOW)
    queue.cancel(cancelled)
    queue.cancel(kept)
    assert queue.get(invalid).fields["expireAt"] == NOW + 30 * DAY
    assert queue.get(cancelled).fields["expireAt"] == NOW + 30 * DAY
    assert "expireAt" not in queue.get(kept).fields  # SHORT keeps cancelled tasks for ever

    crashed = queue.write("orders/o-1/tasks/crashed", {
        "type": "job", "action": "slow", "state": "running", "data": {}, "attempts": 1,
        "leaseExpiresAt": NOW - DAY})
    assert queue.expire_leases() == 1
    assert queue.get(crashed).state == "failed"
    assert queue.get(crashed).fields["expireAt"] == NOW + 30 * DAY


def test_an_operator_retry_removes_expire_at_until_the_task_ends_again(queue):
    ref = queue.enqueue("orders/o-1", NewTask("job", "ok"))
    queue.run()
    first = queue.get(ref).fields["expireAt"]
    queue.retry(ref)
    assert queue.get(ref).state == "scheduled"
    assert "expireAt" not in queue.get(ref).fields
    queue.clock.advance(3600)
    queue.run()
    assert queue.get(ref).fields["expireAt"] == first + datetime.timedelta(hours=1)


def test_a_plain_write_of_scheduled_runs_again_and_the_claim_drops_expire_at():
    """Writing `state` yourself retries a task too (README, Retries); it still carries its
    `expireAt`, which must not make it invalid, nor stay while the task runs."""
    registry = HandlerRegistry()
    seen: list[bool] = []

    @registry.handler("job", "peek")
    def peek(task: Task) -> None:
        seen.append("expireAt" in queue.get(task.ref).fields)

    queue = MemoryQueue(registry)
    ref = queue.enqueue("orders/o-1", NewTask("job", "peek"))
    queue.run()
    queue.write(ref.path, {"state": "scheduled"})
    assert "expireAt" in queue.get(ref).fields
    queue.run()
    task = queue.get(ref)
    assert (task.state, task.attempts, seen) == ("completed", 2, [False, False])
    assert task.fields["expireAt"] == queue.clock() + 7 * DAY


def test_the_indexes_declare_the_ttl_policy_for_each_tasks_collection():
    overrides = json.loads((ROOT / "firestore.indexes.json").read_text())["fieldOverrides"]
    for collection in main.queue.collections:
        ttl = {"collectionGroup": collection, "fieldPath": "expireAt", "ttl": True,
               "indexes": []}
        assert ttl in overrides
        assert ttl in index_config(main.queue)["fieldOverrides"]
