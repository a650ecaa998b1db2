"""Operators act on durable handlers' waits through the real parts: the dashboard's JSON API
(the `dashboard` function in the Functions emulator, real ID tokens) and the `firetasks` command
send an event or end a wait; the task resumes through the real triggers; each action is audited."""

from __future__ import annotations

import json

import pytest
from google.cloud import firestore

from firetasks.audit import AUDIT_COLLECTION
from tests.emulator.test_cli import run
from tests.emulator.test_dashboard_api import admin, call  # noqa: F401 (a fixture)
from tests.emulator.test_durable import waiting_task
from tests.support import wait_for_state, wait_until


def suspended(task) -> dict:
    return wait_until(lambda: (task.get().to_dict() or {}).get("suspended"),
                      what="the wait to be registered")


def audited(db, path: str) -> list[tuple[str, str]]:
    query = db.collection(AUDIT_COLLECTION).where(filter=firestore.FieldFilter("task", "==", path))
    return [(entry.get("action"), entry.get("actor")["via"]) for entry in query.stream()]


def test_the_dashboard_sends_an_event_to_a_waiting_task_and_ends_a_wait(db, uid, admin):  # noqa: F811
    sent_to, ended = waiting_task(db, uid), waiting_task(db, f"{uid}-end")
    suspended(sent_to)
    status, body = call("api/event", token=admin, body={"path": sent_to.path,
                                                        "name": "warehouse.picked"})
    assert status == 200  # no data: {} does not match {"orderId": ...}
    status, body = call("api/event", token=admin, body={
        "parent": f"orders/{uid}", "name": "warehouse.picked", "data": {"orderId": uid}})
    assert status == 200
    done = wait_for_state(sent_to, ("completed",), timeout=60)
    assert (done["attempts"], done["result"]) == (1, {"event": {"orderId": uid}})
    assert audited(db, body["event"]) == [("send-event", "dashboard")]

    suspended(ended)
    assert call("api/end-wait", token=admin, body={"path": ended.path})[0] == 200
    done = wait_for_state(ended, ("completed",), timeout=60)
    assert (done["result"], done["steps"]["picked"]["endedBy"]) == ({"event": None}, "operator")
    assert audited(db, ended.path) == [("end-wait", "dashboard")]
    status, body = call("api/end-wait", token=admin, body={"path": ended.path})
    assert status == 409
    assert "does not wait for an event" in body["error"]


@pytest.mark.parametrize(("body", "field"), [
    ({"parent": "orders", "name": "warehouse.picked"}, "parent"),
    ({"parent": "orders/o-1", "name": "warehouse picked"}, "name"),
    ({"parent": "orders/o-1", "name": "warehouse.picked", "data": [1]}, "data"),
])
def test_a_bad_event_gets_a_400_naming_the_field(admin, body, field):  # noqa: F811
    status, answer = call("api/event", token=admin, body=body)
    assert status == 400
    assert field in answer["error"]


def test_the_cli_sends_an_event_and_ends_a_wait(db, uid, capsys, monkeypatch):
    monkeypatch.setenv("FIRETASKS_QUEUE", "main:queue")
    monkeypatch.setenv("FIRETASKS_OPERATOR", "agent-smith")
    sent_to, ended = waiting_task(db, uid), waiting_task(db, f"{uid}-end")
    suspended(sent_to)
    code, out, _ = run(capsys, "send-event", f"orders/{uid}", "warehouse.picked",
                       "--data", json.dumps({"orderId": uid}))
    assert (code, out.startswith(f"sent warehouse.picked as orders/{uid}/events/")) == (0, True)
    assert wait_for_state(sent_to, ("completed",), timeout=60)["result"] == {
        "event": {"orderId": uid}}
    suspended(ended)
    code, out, _ = run(capsys, "--json", "end-wait", ended.path)
    assert (code, json.loads(out)["path"]) == (0, ended.path)
    assert wait_for_state(ended, ("completed",), timeout=60)["result"] == {"event": None}
    assert audited(db, ended.path) == [("end-wait", "cli")]
    code, _, err = run(capsys, "end-wait", ended.path)
    assert (code, "does not wait for an event" in err) == (2, True)
    code, _, err = run(capsys, "send-event", f"orders/{uid}", "warehouse.picked", "--data", "[")
    assert (code, "--data must be a JSON object" in err) == (2, True)
