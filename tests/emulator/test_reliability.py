"""Retries, delays, recovery and bad input through the real trigger, the real Cloud Tasks emulator
and the `wakeTasks` function, with the fault-injection handlers of functions/testing/probes.py."""

from __future__ import annotations

import datetime
import itertools
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.cloud import firestore

import main
from firetasks import NewTask, add_tasks, operations, sweep
from firetasks.errors import TaskChanged
from firetasks.recovery import STALE_AFTER
from tests.support import drained, probe_runs, task_fields, wait_for_state, wait_until

UTC = datetime.UTC


def seconds(later: datetime.datetime, earlier: datetime.datetime) -> float:
    return (later - earlier).total_seconds()


@pytest.fixture
def tasks(db, uid):
    parent = db.document(f"jobs/{uid}")
    return parent.collection("tasks")


def test_a_handler_failing_twice_then_succeeding_completes_on_attempt_3(db, tasks):
    task = tasks.document("t")
    task.set(task_fields("probe", "flaky", {"failTimes": 2}))
    done = wait_for_state(task, timeout=60)
    assert (done["state"], done["attempts"], done["result"]) == ("completed", 3, {"attempt": 3})
    assert probe_runs(db, task) == [1, 2, 3]
    history = done["history"]
    assert [h["outcome"] for h in history] == ["retrying", "retrying", "completed"]
    assert history[0]["error"] == {"type": "RuntimeError", "message": "flaky failure on attempt 1"}
    # Backoff: QUICK waits at least 1 s after a failure, then at least 1 s again (2 s less jitter).
    for failed, next_attempt in itertools.pairwise(history):
        assert seconds(next_attempt["startedAt"], failed["finishedAt"]) >= 0.95


def test_a_permanent_error_fails_at_once(db, tasks):
    task = tasks.document("t")
    task.set(task_fields("probe", "permanent"))
    done = wait_for_state(task)
    assert (done["state"], done["attempts"]) == ("failed", 1)
    assert done["error"] == {"type": "PermanentError", "message": "card declined"}
    assert probe_runs(db, task) == [1]


def test_exhausted_attempts_fail_with_the_last_error(db, tasks):
    task = tasks.document("t")
    task.set(task_fields("probe", "flaky", {"failTimes": 5}, maxAttempts=2))
    done = wait_for_state(task, timeout=60)
    assert (done["state"], done["attempts"]) == ("failed", 2)
    assert done["error"]["message"] == "flaky failure on attempt 2"
    assert probe_runs(db, task) == [1, 2]


def test_a_manual_retry_gets_a_fresh_attempt_budget(db, tasks):
    task = tasks.document("t")
    task.set(task_fields("probe", "flaky", {"failTimes": 3}))  # QUICK allows 3 attempts
    assert wait_for_state(task, timeout=60)["attempts"] == 3
    assert operations.retry(task) == {"before": "failed", "after": "scheduled"}
    done = wait_for_state(task, ("completed",), timeout=60)
    assert done["attempts"] == 4
    assert [h["outcome"] for h in done["history"]] == [
        "retrying", "retrying", "failed", "completed"]


def test_retry_after_waits_as_long_as_the_handler_asked(db, tasks):
    task = tasks.document("t")
    task.set(task_fields("probe", "rateLimited", {"seconds": 3}))
    done = wait_for_state(task, timeout=60)
    assert (done["state"], done["attempts"]) == ("completed", 2)
    first, second = done["history"]
    assert first["error"]["type"] == "RetryAfter"
    assert seconds(second["startedAt"], first["finishedAt"]) >= 2.95


def test_a_delayed_task_starts_at_its_run_at_and_not_before(db, tasks):
    run_at = datetime.datetime.now(UTC) + datetime.timedelta(seconds=5)
    task = tasks.document("t")
    task.set(task_fields("probe", "flaky", runAt=run_at))
    done = wait_for_state(task, timeout=60)
    assert done["state"] == "completed"
    late = seconds(done["history"][0]["startedAt"], run_at)
    print(f"delayed task started {late:.3f} s after its runAt")
    assert 0 <= late < 3


def test_an_expired_lease_is_recovered_and_the_task_runs_again(db, tasks):
    task = tasks.document("t")
    past = datetime.datetime.now(UTC) - datetime.timedelta(seconds=1)
    # What a crashed invocation leaves behind: `running`, its lease over.
    task.set(task_fields("probe", "flaky", state="running", attempts=1, retryBase=0,
                         startedAt=past, leaseExpiresAt=past))
    report = sweep(main.processor, db, collections=["tasks"])
    assert report.expired >= 1
    done = wait_for_state(task, ("completed",), timeout=60)
    assert done["attempts"] == 2
    assert done["history"][0]["outcome"] == "retrying"
    assert done["history"][0]["error"]["type"] == "LeaseExpired"
    assert probe_runs(db, task) == [2]


def test_a_worker_killed_mid_handler_is_recovered_by_the_sweeper(db, tasks):
    task = tasks.document("t")
    task.set(task_fields("probe", "crash"))
    running = wait_for_state(task, ("running",))
    wait_until(lambda: probe_runs(db, task) == [1], what="the first run to start (and die)")
    lease = running["leaseExpiresAt"]
    wait_until(lambda: datetime.datetime.now(UTC) > lease, what="the lease to expire")
    assert task.get().get("state") == "running"  # nobody wrote an outcome: the worker died
    assert sweep(main.processor, db, collections=["tasks"]).expired >= 1
    done = wait_for_state(task, ("completed",), timeout=60)
    assert done["attempts"] == 2
    assert done["history"][0]["error"]["type"] == "LeaseExpired"
    assert probe_runs(db, task) == [1, 2]


def test_an_expired_lease_without_attempts_left_fails_and_says_why(db, tasks):
    task = tasks.document("t")
    past = datetime.datetime.now(UTC) - datetime.timedelta(seconds=1)
    task.set(task_fields("probe", "flaky", state="running", attempts=1, maxAttempts=1,
                         leaseExpiresAt=past))
    sweep(main.processor, db, collections=["tasks"])
    done = task.get().to_dict()
    assert done["state"] == "failed"
    assert "lease expired" in done["error"]["message"]
    assert sweep(main.processor, db, collections=["tasks"]).expired == 0  # idempotent


def test_a_task_whose_event_was_lost_is_picked_up_by_the_sweeper(db, uid):
    # `lost` is a subcollection no trigger watches: its tasks' events are lost by construction.
    task = db.document(f"jobs/{uid}/lost/t")
    task.set(task_fields("probe", "flaky", createdAt=firestore.SERVER_TIMESTAMP))
    later = datetime.datetime.now(UTC) + STALE_AFTER + datetime.timedelta(seconds=1)
    assert sweep(main.processor, db, collections=["lost"], now=later).rewoken == 1
    assert wait_for_state(task)["state"] == "completed"


def test_a_cancelled_task_never_runs(db, tasks):
    task = tasks.document("t")
    task.set(task_fields("probe", "flaky",
                         runAt=datetime.datetime.now(UTC) + datetime.timedelta(seconds=3)))
    assert operations.cancel(task) == {"before": "scheduled", "after": "cancelled"}
    assert operations.retry(tasks.document("t")) == {"before": "cancelled", "after": "scheduled"}
    assert wait_for_state(task, ("completed",), timeout=30)["attempts"] == 1
    assert probe_runs(db, task) == [1]


def test_cancelling_a_running_task_ends_it_cancelled_instead_of_retried(db, tasks):
    task = tasks.document("t")
    task.set(task_fields("probe", "slow", {"seconds": 2, "fail": True}))
    wait_for_state(task, ("running",))
    assert operations.cancel(task) == {"before": "running", "after": "running"}
    done = wait_for_state(task, ("cancelled", "retrying", "failed", "completed"), timeout=30)
    assert done["state"] == "cancelled"
    assert "cancelRequested" not in done
    assert probe_runs(db, task) == [1]


def test_concurrent_retries_of_what_one_operator_saw_have_exactly_one_winner(db, tasks):
    task = tasks.document("t")
    task.set(task_fields("probe", "permanent"))
    wait_for_state(task)
    seen = task.get()  # what every operator was shown
    start = threading.Barrier(8)

    def retry(_: int) -> str:
        start.wait()
        try:
            return operations.retry(task, if_version=seen.update_time)["after"]
        except TaskChanged:
            return "changed"

    with ThreadPoolExecutor(8) as pool:
        outcomes = Counter(pool.map(retry, range(8)))
    assert outcomes == {"scheduled": 1, "changed": 7}
    assert wait_for_state(task, ("failed",))["attempts"] == 2
    assert probe_runs(db, task) == [1, 2]  # the winner's attempt ran once; no loser's ran
    with pytest.raises(TaskChanged, match="changed since it was shown"):
        operations.retry(task, if_version=seen.update_time)  # a click on the stale page


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"text": "Grüße, 注文, שלום, 🎉"}, "completed"),
        ({"deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}, "completed"),
        ({"blob": "x" * 500_000}, "completed"),
        ({"blob": "x" * 950_000}, "the task document is 950,"),
    ],
    ids=["unicode", "deep", "half-mib", "near-1-mib"],
)
def test_odd_but_storable_data(db, tasks, data, expected):
    task = tasks.document("t")
    task.set(task_fields("probe", "flaky", data))
    done = wait_for_state(task)
    if expected == "completed":
        assert done["state"] == "completed"
        assert done["data"] == data
    else:
        assert done["state"] == "failed"
        assert expected in done["error"]["message"]
        assert done["data"] == data  # nothing lost


def test_bad_tasks_leave_their_neighbours_alone(db, tasks):
    bad = [{"type": None}, {"action": "ünïcode"}, {"data": "x"}, {"maxAttempts": 0},
           {"runAt": "tomorrow"}, {"state": 3}, {"state": ["scheduled"]},
           {"state": {"nested": "scheduled"}}]
    for n, change in enumerate(bad):
        tasks.document(f"bad-{n}").set(task_fields("probe", "flaky") | change)
    good = tasks.document("good")
    good.set(task_fields("probe", "flaky"))
    for n in range(len(bad)):
        failed = wait_for_state(tasks.document(f"bad-{n}"))
        assert failed["error"]["type"] == "InvalidTask", failed
    assert wait_for_state(good)["state"] == "completed"


def test_a_500_task_burst_with_a_third_failing_once_all_completes(db, uid):
    rng = random.Random(500)
    parents = [db.document(f"jobs/{uid}-{n:02}") for n in range(50)]
    plan = {parent.path: [rng.random() < 1 / 3 for _ in range(10)] for parent in parents}

    def enqueue(parent):
        specs = [NewTask("probe", "flaky", {"failTimes": int(fails)})
                 for fails in plan[parent.path]]
        return list(zip(add_tasks(parent, specs), plan[parent.path], strict=True))

    with ThreadPoolExecutor(10) as pool:
        refs = [pair for batch in pool.map(enqueue, parents) for pair in batch]
    expected = {ref.path: 2 if fails else 1 for ref, fails in refs}

    def finished():
        snapshots = db.get_all([ref for ref, _ in refs])
        states = Counter(s.get("state") for s in snapshots)
        return states if states["completed"] + states["failed"] == len(refs) else None

    states = wait_until(finished, timeout=300, what="500 tasks to finish")
    attempts = {s.reference.path: s.get("attempts") for s in db.get_all([r for r, _ in refs])}
    print(f"burst: {dict(states)}, failing once: {sum(f for _, f in refs)}, "
          f"attempts: {sum(attempts.values())}")
    assert states == {"completed": 500}
    assert attempts == expected
    runs = Counter(
        s.get("taskPath") for s in db.collection("probeRuns")
        .where(filter=firestore.FieldFilter("taskPath", ">=", f"jobs/{uid}-"))
        .where(filter=firestore.FieldFilter("taskPath", "<", f"jobs/{uid}-~")).stream())
    assert runs == expected
    drained(db)
