"""Atomic handlers on the emulator: staged writes commit with the task's outcome, conditional on the
version delivered, so duplicate, concurrent and stale deliveries and crashes give each effect once.

Deliveries by hand use tasks in a subcollection the real trigger ignores (as test_delivery does);
the crash goes through the real trigger, the sweeper and the Cloud Tasks emulator."""

from __future__ import annotations

import datetime
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.cloud import firestore

import main
from firetasks import sweep
from firetasks.recovery import STALE_AFTER
from testing import probes
from tests.firestore_events import written_event
from tests.support import mails_for, probe_runs, task_fields, wait_for_state, wait_until

UTC = datetime.UTC
UNTRIGGERED = "untriggered"


@pytest.fixture
def order(db, uid):
    order = db.document(f"orders/{uid}")
    order.set({"email": "ada@example.com", "status": "created", "items": ["tea"]})
    return order


def deliver_concurrently(event, times: int = 8) -> None:
    start = threading.Barrier(times)

    def invoke(_: int) -> None:
        start.wait()
        main.process_tasks(event)

    with ThreadPoolExecutor(times) as pool:
        list(pool.map(invoke, range(times)))


def test_concurrent_deliveries_commit_one_mail_and_one_status_change(db, order):
    mail = order.collection(UNTRIGGERED).document("mail")
    mail.set(task_fields("order", "sendConfirmationEmail", {"orderId": order.id}))
    processing = order.collection(UNTRIGGERED).document("processing")
    processing.set(task_fields("order", "initiateProcessing", {"orderId": order.id}))
    counted = order.collection(UNTRIGGERED).document("counted")
    counter = db.document(f"probeCounters/{order.id}")
    counted.set(task_fields("probe", "atomicCount", {"counter": counter.path}))
    for task in (mail, processing, counted):
        deliver_concurrently(written_event(None, task.get(), project=db.project))
    assert len(mails_for(db, mail)) == 1
    assert order.get().get("status") == "processing"
    assert len(probe_runs(db, counted)) == 8  # every delivery ran the handler ...
    assert counter.get().get("runs") == 1  # ... and one committed its writes
    for task in (mail, processing, counted):
        fields = task.get().to_dict()
        assert (fields["state"], fields["attempts"]) == ("completed", 1)


def test_a_stale_delivery_commits_nothing(db, order):
    task = order.collection(UNTRIGGERED).document("mail")
    task.set(task_fields("order", "sendConfirmationEmail", {"orderId": order.id}))
    created = task.get()
    main.process_tasks(written_event(None, created, project=db.project))
    done = task.get()
    main.process_tasks(written_event(None, created, project=db.project))  # arrives late
    assert len(mails_for(db, task)) == 1
    assert task.get().update_time == done.update_time


def test_the_shop_s_tasks_complete_through_the_trigger_without_showing_running(db, order):
    task = order.collection("tasks").document("sendConfirmationEmail")
    seen: list[str] = []
    watch = task.on_snapshot(lambda docs, changes, at: seen.extend(
        doc.get("state") for doc in docs if doc.exists))
    try:
        task.set(task_fields("order", "sendConfirmationEmail", {"orderId": order.id}))
        done = wait_for_state(task)
        wait_until(lambda: "completed" in seen, what="the listener to see the completion")
    finally:
        watch.unsubscribe()
    assert (done["state"], done["attempts"], done["result"]["to"]) == (
        "completed", 1, "ada@example.com")
    assert "running" not in seen
    [mail] = mails_for(db, task)
    assert done["result"]["mailId"] == mail_id(db, task)
    assert mail["message"]["subject"] == f"Your order {order.id} is confirmed"


def mail_id(db, task) -> str:
    [snapshot] = db.collection("mail").where(
        filter=firestore.FieldFilter("taskPath", "==", task.path)).get()
    return snapshot.id


def test_a_crash_before_the_commit_leaves_the_task_for_the_sweeper_and_one_effect(db, uid):
    task = db.document(f"orders/{uid}/tasks/crash")
    task.set(task_fields("probe", "atomicCrash", createdAt=firestore.SERVER_TIMESTAMP))
    wait_until(lambda: probe_runs(db, task) == [1], what="the first run to start (and die)")
    effects = db.collection(probes.EFFECTS).where(
        filter=firestore.FieldFilter("taskPath", "==", task.path))
    assert task.get().get("state") == "scheduled"  # the worker died: nothing was committed
    assert effects.get() == []
    later = datetime.datetime.now(UTC) + STALE_AFTER + datetime.timedelta(seconds=1)
    assert sweep(main.processor, db, collections=["tasks"], now=later).rewoken >= 1
    done = wait_for_state(task, timeout=60)
    assert (done["state"], done["attempts"]) == ("completed", 1)
    assert probe_runs(db, task) == [1, 1]
    assert len(effects.get()) == 1
