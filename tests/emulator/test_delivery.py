"""Deliveries the event bus makes only by chance, made on purpose: the processor is called directly
with CloudEvents built like Firestore's, for tasks in a subcollection the real trigger ignores."""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import main
from firetasks import (
    HandlerRegistry,
    RetryPolicy,
    Task,
    TaskProcessor,
    TaskQueue,
    operations,
    task_trigger,
)
from firetasks.errors import IllegalTransition
from firetasks.testing import RecordingWaker  # keeps wake-ups: these tests deliver by hand
from tests.firestore_events import written_event
from tests.support import mails_for, task_fields

UNTRIGGERED = "untriggered"  # not `tasks`: the emulator's trigger leaves these documents alone


@pytest.fixture
def order(db, uid):
    order = db.document(f"orders/{uid}")
    order.set({"email": "ada@example.com", "status": "created"})
    return order


@pytest.fixture
def runs():
    """A registry whose handlers record each run, and the trigger that serves it."""
    registry = HandlerRegistry()
    calls: list[Task] = []

    @registry.handler("probe", "record")
    def record(task: Task) -> dict:
        calls.append(task)
        return {"attempt": task.attempt}

    @registry.handler("probe", "explode", retry=RetryPolicy(max_attempts=1))
    def explode(task: Task) -> None:
        calls.append(task)
        raise RuntimeError("provider said no")

    @registry.handler("probe", "returnObject")
    def return_object(task: Task) -> object:
        calls.append(task)
        return object()

    processor = TaskProcessor(TaskQueue(registry, collections=("untriggered",)),
                              waker=RecordingWaker())

    @registry.handler("probe", "deleteSelf")
    def delete_self(task: Task) -> None:
        task.ref.delete()  # as if someone deleted the task while it ran

    trigger = task_trigger(processor, name="probe_tasks", document="{c}/{d}/untriggered/{t}")
    return trigger, calls


def scheduled(order, fields):
    ref = order.collection(UNTRIGGERED).document("t")
    ref.set(fields)
    return ref, ref.get()


def deliver(trigger, before, after, project):
    trigger(written_event(before, after, project=project))


def log_lines(capsys) -> list[dict]:
    captured = capsys.readouterr()  # the logger writes errors to stderr, the rest to stdout
    return [json.loads(line) for line in (captured.out + captured.err).splitlines()
            if line.startswith("{")]


def test_a_duplicate_delivery_runs_the_handler_once(db, order):
    ref, snapshot = scheduled(order, task_fields("order", "sendConfirmationEmail"))
    event = written_event(None, snapshot, project=db.project)
    main.process_tasks(event)
    main.process_tasks(event)
    assert len(mails_for(db, ref)) == 1
    assert ref.get().get("attempts") == 1


def test_concurrent_deliveries_of_one_write_run_the_handler_once(db, order):
    ref, snapshot = scheduled(order, task_fields("order", "sendConfirmationEmail"))
    event = written_event(None, snapshot, project=db.project)
    start = threading.Barrier(8)

    def invoke(_: int) -> None:
        start.wait()
        main.process_tasks(event)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(invoke, range(8)))
    assert len(mails_for(db, ref)) == 1
    fields = ref.get().to_dict()
    assert (fields["state"], fields["attempts"]) == ("completed", 1)


def test_a_stale_delivery_after_completion_does_nothing(db, order, runs):
    trigger, calls = runs
    ref, first = scheduled(order, task_fields("probe", "record"))
    deliver(trigger, None, first, db.project)
    done = ref.get()
    deliver(trigger, None, first, db.project)  # the first write's event, arriving late
    assert len(calls) == 1
    assert ref.get().update_time == done.update_time


def test_each_retry_is_a_new_attempt(db, order, runs):
    trigger, calls = runs
    ref, first = scheduled(order, task_fields("probe", "record"))
    deliver(trigger, None, first, db.project)
    ref.update({"state": "scheduled"})
    again = ref.get()
    deliver(trigger, first, again, db.project)
    deliver(trigger, first, again, db.project)
    assert [task.attempt for task in calls] == [1, 2]
    fields = ref.get().to_dict()
    assert fields["state"] == "completed"
    assert (fields["attempts"], fields["result"]) == (2, {"attempt": 2})


def test_the_handler_sees_the_task(db, order, runs):
    trigger, calls = runs
    ref, snapshot = scheduled(order, task_fields("probe", "record", {"orderId": order.id}))
    deliver(trigger, None, snapshot, db.project)
    [task] = calls
    assert (task.id, task.path, task.parent.path) == ("t", ref.path, order.path)
    assert (task.type, task.action, task.data, task.attempt) == (
        "probe", "record", {"orderId": order.id}, 1)


def test_a_handler_exception_fails_the_task_without_escaping(db, order, runs, capsys):
    trigger, _ = runs
    ref, snapshot = scheduled(order, task_fields("probe", "explode"))
    deliver(trigger, None, snapshot, db.project)
    fields = ref.get().to_dict()
    assert fields["state"] == "failed"
    assert fields["error"] == {"type": "RuntimeError", "message": "provider said no"}
    assert fields["startedAt"] <= fields["finishedAt"]
    [error] = [line for line in log_lines(capsys) if line["severity"] == "ERROR"]
    assert error["message"] == "error processing task"


def test_a_result_that_is_not_json_fails_the_task(db, order, runs):
    trigger, _ = runs
    ref, snapshot = scheduled(order, task_fields("probe", "returnObject"))
    deliver(trigger, None, snapshot, db.project)
    error = ref.get().get("error")
    assert error["type"] == "TypeError"
    assert "not JSON-able" in error["message"]


@pytest.mark.parametrize("state", ["running", "completed", "failed"])
def test_tasks_not_scheduled_are_left_alone(db, order, runs, state):
    trigger, calls = runs
    ref, snapshot = scheduled(order, {**task_fields("probe", "record"), "state": state})
    deliver(trigger, None, snapshot, db.project)
    assert calls == []
    assert ref.get().update_time == snapshot.update_time


def test_a_task_without_handler_is_left_untouched_and_logged(db, order, runs, capsys):
    trigger, calls = runs
    ref, snapshot = scheduled(order, task_fields("probe", "unknownAction"))
    deliver(trigger, None, snapshot, db.project)
    assert calls == []
    assert ref.get().update_time == snapshot.update_time
    [line] = log_lines(capsys)
    assert line["message"] == "skip processing task, no handler exists"
    assert (line["taskId"], line["type"], line["action"]) == ("t", "probe", "unknownAction")


def test_a_deleted_task_is_logged_and_nothing_else(db, order, runs, capsys):
    trigger, calls = runs
    ref, snapshot = scheduled(order, task_fields("probe", "record"))
    ref.delete()
    deliver(trigger, snapshot, None, db.project)
    assert calls == []
    assert not ref.get().exists
    [line] = log_lines(capsys)
    assert line["message"] == "skip processing deleted task"
    assert {k: line[k] for k in ("taskId", "type", "action", "state")} == {
        "taskId": "t", "type": "probe", "action": "record", "state": "scheduled"}


def test_each_step_is_logged_with_the_task_s_identity(db, order, runs, capsys):
    trigger, _ = runs
    ref, snapshot = scheduled(order, task_fields("probe", "record"))
    deliver(trigger, None, snapshot, db.project)
    start, end = log_lines(capsys)
    assert start["message"] == "start processing task"
    assert end["message"] == "end processing task"
    assert end["outcome"] == "completed"
    assert end["durationMs"] >= 0
    for line in (start, end):
        assert (line["taskId"], line["path"], line["attempt"]) == ("t", ref.path, 1)


def test_an_out_of_order_delivery_loses_to_the_newer_version(db, order, runs):
    trigger, calls = runs
    ref, first = scheduled(order, task_fields("probe", "record"))
    ref.update({"data": {"edited": True}})  # a second write while still scheduled
    second = ref.get()
    deliver(trigger, first, second, db.project)  # the newer event arrives first
    deliver(trigger, None, first, db.project)
    assert [task.data for task in calls] == [{"edited": True}]


def test_a_cancel_racing_the_claim_leaves_one_consistent_outcome(db, order, runs):
    trigger, calls = runs
    for n in range(10):
        ref = order.collection(UNTRIGGERED).document(f"race-{n}")
        ref.set(task_fields("probe", "explode"))
        event = written_event(None, ref.get(), project=db.project)
        start = threading.Barrier(2)

        def claim(event=event, start=start):
            start.wait()
            trigger(event)

        def cancel(ref=ref, start=start):
            start.wait()
            with contextlib.suppress(IllegalTransition):  # too late: the task had failed
                operations.cancel(ref)

        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(claim), pool.submit(cancel)]:
                future.result()
        fields = ref.get().to_dict()
        ran = [task for task in calls if task.id == ref.id]
        assert len(ran) <= 1
        # Cancelled before the claim: never ran. After it: the failing attempt ends cancelled
        # (explode allows one attempt, so `failed` is also its honest end if the cancel lost).
        assert fields["state"] == ("cancelled" if not ran else fields["state"])
        assert fields["state"] in {"cancelled", "failed"}
        assert "cancelRequested" not in fields


def test_a_task_deleted_while_running_stays_deleted(db, order, runs, capsys):
    trigger, _ = runs
    ref, snapshot = scheduled(order, task_fields("probe", "deleteSelf"))
    deliver(trigger, None, snapshot, db.project)
    assert not ref.get().exists
    assert "task deleted while running" in [line["message"] for line in log_lines(capsys)]


def test_history_keeps_the_last_20_attempts(db, order, runs):
    trigger, _ = runs
    old = [{"attempt": n, "outcome": "failed"} for n in range(1, 26)]
    ref, snapshot = scheduled(order, task_fields("probe", "record", attempts=25, history=old))
    deliver(trigger, None, snapshot, db.project)
    history = ref.get().get("history")
    assert len(history) == 20
    assert [h["attempt"] for h in history] == [*range(7, 26), 26]
