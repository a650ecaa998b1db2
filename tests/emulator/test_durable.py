"""Durable handlers on the emulator, through the real trigger: a worker killed after step 2 of 4
resumes at step 3; an atomic step's effects exist once under concurrent duplicate deliveries; a
sleep ends the invocation and the wake-up machinery resumes the task on time; waits get each
matching event once, whatever the order of writes and triggers, lost ones included (the sweeper);
a wait's timeout fires; a customer sends an event from the client SDK under the generated rules."""

from __future__ import annotations

import contextlib
import datetime
import random

from google.cloud import firestore

import main
from firetasks import send_event, sweep
from firetasks.recovery import STALE_AFTER
from testing import durable_probes
from tests.emulator.test_atomic import UNTRIGGERED, deliver_concurrently
from tests.emulator.test_rules import create
from tests.emulator.test_sweeper import events_lost
from tests.firestore_events import written_event
from tests.support import drained, task_fields, wait_for_state, wait_until

UTC = datetime.UTC
STEPS = ["step1", "step2", "step3", "step4"]


def step_runs(db, task) -> list[tuple[str, int]]:
    """(step, attempt) of every run of a durable probe's step functions for `task`, in order."""
    query = db.collection(durable_probes.STEP_RUNS).where(
        filter=firestore.FieldFilter("taskPath", "==", task.path))
    return sorted((snapshot.get("step"), snapshot.get("attempt")) for snapshot in query.stream())


def test_a_worker_killed_after_step_2_of_4_resumes_and_runs_steps_3_and_4_only(db, uid):
    task = db.document(f"orders/{uid}/tasks/durable")
    counter = db.document(f"probeCounters/{uid}")
    task.set(task_fields("probe", "durable", {"counter": counter.path, "crashAfter": 2},
                         createdAt=firestore.SERVER_TIMESTAMP))
    wait_until(lambda: step_runs(db, task) == [("step1", 1), ("step2", 1)],
               what="steps 1 and 2 to run (and the worker to die)")
    running = wait_until(lambda: "step2" in (task.get().get("steps") or {}) and task.get(),
                         what="step 2's result to be saved")
    assert running.get("state") == "running"  # nobody wrote an outcome: the worker died
    lease = running.get("leaseExpiresAt")
    wait_until(lambda: datetime.datetime.now(UTC) > lease, what="the lease to expire")
    assert sweep(main.processor, db, collections=["tasks"]).expired >= 1
    done = wait_for_state(task, ("completed",), timeout=60)
    assert (done["attempts"], done["result"]) == (2, [1, 1, 2, 2])
    assert step_runs(db, task) == [("step1", 1), ("step2", 1), ("step3", 2), ("step4", 2)]
    assert counter.get().to_dict() == dict.fromkeys(STEPS, 1)
    assert [done["steps"][name]["attempt"] for name in STEPS] == [1, 1, 2, 2]


def test_an_atomic_step_s_effects_exist_once_under_8_concurrent_duplicate_deliveries(db, uid):
    task = db.document(f"orders/{uid}/{UNTRIGGERED}/durable")
    counter = db.document(f"probeCounters/{uid}")
    task.set(task_fields("probe", "durable", {"counter": counter.path}))
    deliver_concurrently(written_event(None, task.get(), project=db.project))
    done = task.get().to_dict()
    assert (done["state"], done["attempts"], done["result"]) == ("completed", 1, [1, 1, 1, 1])
    assert counter.get().to_dict() == dict.fromkeys(STEPS, 1)
    assert step_runs(db, task) == [(name, 1) for name in STEPS]


def test_a_sleep_wakes_on_time(db, uid):
    task = db.document(f"orders/{uid}/tasks/sleeper")
    task.set(task_fields("probe", "durableSleep", {"seconds": 4},
                         createdAt=firestore.SERVER_TIMESTAMP))
    suspended = wait_until(lambda: (task.get().to_dict() or {}).get("suspended"),
                        what="the task to sleep")
    assert (suspended["kind"], suspended["step"]) == ("sleep", "nap")
    done = wait_for_state(task, ("completed",), timeout=60)
    assert (done["attempts"], "suspended" in done) == (1, False)
    woke = datetime.datetime.fromisoformat(done["result"]["after"])
    until = done["steps"]["nap"]["until"]
    assert until <= woke < until + datetime.timedelta(seconds=20)
    assert done["steps"]["before"]["finishedAt"] < until


def waiting_task(db, order: str, timeout: float = 600, **data: str):
    task = db.document(f"orders/{order}/tasks/ship")
    task.set(task_fields("probe", "durableWait", {"orderId": order, "timeout": timeout, **data},
                         createdAt=firestore.SERVER_TIMESTAMP))
    return task


def picked(db, order: str) -> None:
    send_event(db.document(f"orders/{order}"), "warehouse.picked", {"orderId": order})


def resumed(db, task) -> int:
    return len([run for run in step_runs(db, task) if run[0] == "resumed"])


def assert_delivered_once(db, tasks: dict[str, object]) -> None:
    for order, task in tasks.items():
        done = wait_for_state(task, ("completed",), timeout=90)
        assert (done["attempts"], done["result"]) == (1, {"event": {"orderId": order}})
        assert resumed(db, task) == 1


def test_an_event_written_before_during_or_after_its_wait_is_delivered_once(db, uid):
    before, during, after = f"{uid}-before", f"{uid}-during", f"{uid}-after"
    picked(db, before)
    tasks = {before: waiting_task(db, before)}
    tasks[during] = waiting_task(db, during)
    picked(db, during)  # while the handler starts and registers its wait
    tasks[after] = waiting_task(db, after)
    wait_until(lambda: (tasks[after].get().to_dict() or {}).get("suspended"),
               what="the wait to be registered")
    picked(db, after)
    assert_delivered_once(db, tasks)


def test_50_waits_and_50_events_in_random_order_with_lost_triggers_resume_once_after_a_sweep(
        db, uid):
    orders = [f"{uid}-{n}" for n in range(50)]
    writes = [(kind, order) for order in orders for kind in ("wait", "event")]
    random.Random(uid).shuffle(writes)
    tasks = {}
    for number, (kind, order) in enumerate(writes):
        with events_lost() if number % 3 == 1 else contextlib.nullcontext():
            if kind == "wait":
                tasks[order] = waiting_task(db, order)
            else:
                picked(db, order)
    drained(db)
    later = datetime.datetime.now(UTC) + STALE_AFTER + datetime.timedelta(seconds=1)
    sweep(main.processor, db, collections=["tasks"], now=later)
    assert_delivered_once(db, tasks)


def test_a_wait_s_timeout_fires(db, uid):
    task = waiting_task(db, uid, timeout=3)
    done = wait_for_state(task, ("completed",), timeout=60)
    assert (done["attempts"], done["result"]) == (1, {"event": None})
    assert done["steps"]["picked"]["timedOut"] is True
    assert done["steps"]["picked"]["finishedAt"] >= done["steps"]["picked"]["until"]


def test_the_owner_sends_the_approval_from_the_client_sdk_under_the_rules_and_a_stranger_cannot(
        db, people, uid):
    owner, stranger = people["owner"].token, people["stranger"].token
    assert create(f"orders/{uid}", {"uid": people["owner"].uid}, owner) == 200
    task = waiting_task(db, uid, event="order.approved")
    path, approval = f"orders/{uid}/events/order.approved", {"name": "order.approved",
                                                             "data": {"orderId": uid}}
    assert create(path, approval, stranger, ("createdAt",)) == 403
    assert create(path, approval, None, ("createdAt",)) == 403
    assert create(f"orders/{uid}/events/other", approval, owner, ("createdAt",)) == 403  # once
    assert create(path, {**approval, "data": {"orderId": uid, "paid": True}}, owner,
                  ("createdAt",)) == 403  # data the handler does not allow
    assert create(path, {**approval, "name": "order.shipped"}, owner, ("createdAt",)) == 403
    assert create(path, approval, owner, ("createdAt",)) == 200
    assert create(path, approval, owner, ("createdAt",)) == 409  # sent already
    done = wait_for_state(task, ("completed",), timeout=60)
    assert done["result"] == {"event": {"orderId": uid}}
