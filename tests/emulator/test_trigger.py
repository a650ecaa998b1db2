"""The processor through the real trigger: tasks written to the Firestore emulator, run by the
Functions emulator's `process_tasks`."""

from __future__ import annotations

import pytest
from google.cloud import firestore

from firetasks import NewTask, add_tasks
from shop.orders import create_order
from tests.support import mails_for, task_fields, wait_for_state


def test_an_order_s_tasks_complete_with_their_side_effects(db, uid):
    order = create_order(db, f"{uid}-o", email="ada@example.com", items=["tea", "cake"])
    tasks = list(order.collection("tasks").stream())
    assert {t.get("action") for t in tasks} == {
        "charge", "sendConfirmationEmail", "initiateProcessing", "ship"}

    finished = {t.get("action"): wait_for_state(t.reference, timeout=60) for t in tasks}
    email = finished["sendConfirmationEmail"]
    assert email["state"] == "completed"
    assert email["attempts"] == 1
    assert email["startedAt"] <= email["finishedAt"]
    assert "error" not in email
    [mail] = mails_for(db, tasks[0].reference.parent.document(
        next(t.id for t in tasks if t.get("action") == "sendConfirmationEmail")))
    assert mail["to"] == "ada@example.com"
    assert mail["message"]["subject"] == f"Your order {uid}-o is confirmed"
    assert "- tea\n- cake" in mail["message"]["text"]
    assert email["result"] == {"mailId": email["result"]["mailId"], "to": "ada@example.com"}

    assert finished["initiateProcessing"]["state"] == "completed"
    assert finished["initiateProcessing"]["result"] == {"status": "processing", "changed": True}
    assert finished["charge"]["result"] == {"chargeId": f"ch_{uid}-o"}
    assert order.get().get("status") == "shipped"  # after processing, by `ship`


def test_a_dotted_action_reaches_its_nested_handler(db, uid):
    order = db.document(f"orders/{uid}")
    order.set({"email": "ada@example.com", "status": "created"})
    [task] = add_tasks(order, [NewTask("inventory", "mutations.initiateOrderProcessing")])
    assert wait_for_state(task)["state"] == "completed"
    assert order.get().get("status") == "processing"


def test_any_parent_collection_is_served(db, uid):
    parent = db.document(f"carts/{uid}")
    parent.set({"email": "bo@example.com"})
    task = parent.collection("tasks").document("t")
    task.set(task_fields("order", "sendConfirmationEmail"))
    assert wait_for_state(task)["state"] == "completed"
    assert [m["to"] for m in mails_for(db, task)] == ["bo@example.com"]


def test_a_handler_error_fails_the_task_and_a_retry_after_the_fix_completes_it(db, uid):
    order = create_order(db, uid, email="not-an-email", items=["tea"])
    [task] = order.collection("tasks").where(
        filter=firestore.FieldFilter("action", "==", "sendConfirmationEmail")).get()

    failed = wait_for_state(task.reference)
    assert failed["state"] == "failed"
    assert failed["attempts"] == 1
    assert failed["error"] == {
        "type": "OrderError",
        "message": f"order orders/{uid} has no valid email address: 'not-an-email'",
    }
    assert mails_for(db, task.reference) == []

    order.update({"email": "fixed@example.com"})
    task.reference.update({"state": "scheduled"})  # what an operator does to retry
    retried = wait_for_state(task.reference)
    assert retried["state"] == "completed"
    assert retried["attempts"] == 2
    assert "error" not in retried
    assert [m["to"] for m in mails_for(db, task.reference)] == ["fixed@example.com"]


def test_a_missing_order_fails_with_a_clear_error(db, uid):
    task = db.document(f"orders/{uid}/tasks/t")
    task.set(task_fields("order", "initiateProcessing"))
    assert wait_for_state(task)["error"] == {
        "type": "OrderError", "message": f"order orders/{uid} does not exist"
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (task_fields(7, "initiateProcessing"), "'type' must be a name like 'order', got int 7"),
        (task_fields("order", "initiate processing"), "'action' must be a name or a dotted path"),
        ({**task_fields("order", "initiateProcessing"), "data": ["x"]}, "'data' must be a map"),
        ({**task_fields("order", "initiateProcessing"), "state": "bogus"},
         "'state' must be one of"),
        ({"type": "order", "action": "initiateProcessing", "state": "scheduled"},
         "missing field 'data'"),
        (task_fields("order", "initiateProcessing", colour=1), "unknown field(s) 'colour'"),
        (task_fields("order", "initiateProcessing", attempts="2"),
         "'attempts' must be a whole number"),
    ],
    ids=["type-int", "action-space", "data-list", "state-unknown", "data-missing", "unknown-field",
         "attempts-string"],
)
def test_bad_documents_fail_with_what_is_wrong(db, uid, fields, message):
    db.document(f"orders/{uid}").set({"email": "ada@example.com"})
    task = db.document(f"orders/{uid}/tasks/t")
    task.set(fields)
    failed = wait_for_state(task)
    assert failed["state"] == "failed"
    assert failed["error"]["type"] == "InvalidTask"
    assert message in failed["error"]["message"]
    assert "startedAt" not in failed  # never claimed, never run
    assert db.document(f"orders/{uid}").get().get("email") == "ada@example.com"
