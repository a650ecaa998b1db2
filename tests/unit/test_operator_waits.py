"""Operators act on durable handlers' waits: send an event, end a wait; through
firetasks.operations, the dashboard's API and the `firetasks` command, audited, on the test kit."""

from __future__ import annotations

import argparse

import pytest
from flask.testing import FlaskClient

from firetasks import NewTask, audit, cli_waits, dashboard, operations
from firetasks.errors import BadRequest, IllegalTransition
from firetasks.testing import MemoryQueue
from tests.unit.test_dashboard_input import OPERATOR, POST
from tests.unit.test_durable import wait_queue


def waiting_task() -> tuple[MemoryQueue, str]:
    queue = wait_queue()
    ref = queue.enqueue("orders/o-1", NewTask("shipping", "ship", {"id": "o-1"}))
    queue.run(until=queue.clock())
    assert queue.get(ref).fields["suspended"]["kind"] == "wait"
    return queue, ref.path


def actions(queue: MemoryQueue) -> list[tuple[str, str]]:
    """The audit records: the store's (of moves) and the collection's (of events sent)."""
    return [(entry["action"], entry["task"])
            for entry in [*queue.store.audit, *audit.recent(queue.client)]]


def test_an_operator_s_event_resumes_the_wait_and_is_audited() -> None:
    queue, path = waiting_task()
    parent = operations.parent_ref(queue.client, "orders/o-1")
    sent = operations.send_event(parent, "warehouse.picked", {"orderId": "o-1", "bin": 4},
                                 actor=OPERATOR)
    assert sent["event"].startswith("orders/o-1/events/")
    queue.run(until=queue.clock())
    done = queue.get(path)
    assert (done.state, done.fields["result"]) == ("completed", {"orderId": "o-1", "bin": 4})
    assert actions(queue) == [("send-event", sent["event"])]


def test_ending_a_wait_resumes_it_with_none_once() -> None:
    queue, path = waiting_task()
    assert queue.end_wait(path, actor=OPERATOR) == {"before": "scheduled", "after": "scheduled"}
    with pytest.raises(IllegalTransition, match="does not wait for an event"):
        queue.end_wait(path, actor=OPERATOR)
    queue.run(until=queue.clock())
    done = queue.get(path)
    assert (done.state, done.attempts, done.fields.get("result")) == ("completed", 1, None)
    assert done.fields["steps"]["picked"]["endedBy"] == "operator"
    assert actions(queue) == [("end-wait", path)]
    with pytest.raises(IllegalTransition, match="does not wait for an event"):
        queue.end_wait(path)


@pytest.mark.parametrize(("name", "data", "field"), [
    (None, {}, "name"), ("warehouse picked", {}, "name"), ("warehouse.picked", [1], "data"),
])
def test_a_bad_event_is_refused_naming_the_field(name: object, data: object, field: str) -> None:
    queue, _ = waiting_task()
    with pytest.raises(BadRequest, match=field):
        operations.send_event(queue.client.document("orders/o-1"), name, data, actor=OPERATOR)
    for bad in ("orders", "orders/o-1/tasks/t", 7, "/o-1"):
        with pytest.raises(BadRequest, match="parent"):
            operations.parent_ref(queue.client, bad)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> tuple[FlaskClient, MemoryQueue, str]:
    queue, path = waiting_task()
    monkeypatch.setattr(dashboard, "admin_from_header", lambda header, claim: OPERATOR)
    return dashboard.create_app(queue.queue, client=queue.client).test_client(), queue, path


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "warehouse.picked"}, "parent"),
    ({"parent": "orders/o-1", "path": "orders/o-1/tasks/t", "name": "a.b"}, "parent"),
    ({"parent": "orders", "name": "a.b"}, "parent"),
    ({"parent": "orders/o-1", "name": 3}, "name"),
    ({"parent": "orders/o-1", "name": "a.b", "data": "x"}, "data"),
    ({"path": "nowhere", "name": "a.b"}, "task path"),
    ({"parent": "orders/o-1", "name": "a.b", "id": "x"}, "unknown field"),
])
def test_the_event_api_answers_bad_input_with_a_400_naming_the_field(
        api: tuple[FlaskClient, MemoryQueue, str], body: dict[str, object], field: str) -> None:
    answer = api[0].post("/api/event", json=body, headers=POST)
    assert answer.status_code == 400
    assert field in answer.get_json()["error"]


def test_the_dashboard_sends_an_event_for_a_task_s_parent_and_ends_a_wait(
        api: tuple[FlaskClient, MemoryQueue, str]) -> None:
    client, queue, path = api
    other = queue.enqueue("orders/o-2", NewTask("shipping", "ship", {"id": "o-2"})).path
    queue.run(until=queue.clock())
    sent = client.post("/api/event", json={"path": path, "name": "warehouse.picked",
                                           "data": {"orderId": "o-1"}}, headers=POST)
    assert sent.status_code == 200
    assert sent.get_json()["event"].startswith("orders/o-1/events/")
    assert client.post("/api/end-wait", json={"path": other}, headers=POST).status_code == 200
    again = client.post("/api/end-wait", json={"path": other}, headers=POST)
    assert again.status_code == 409
    assert "does not wait" in again.get_json()["error"]
    assert client.post("/api/end-wait", json={"path": 5}, headers=POST).status_code == 400
    queue.run(until=queue.clock())
    assert queue.get(path).fields["result"] == {"orderId": "o-1"}
    assert queue.get(other).fields.get("result") is None
    assert queue.get(other).state == "completed"


def test_the_cli_sends_events_and_ends_waits(capsys: pytest.CaptureFixture[str]) -> None:
    queue, path = waiting_task()
    args = argparse.Namespace(queue=queue.queue, parent="orders/o-1", name="warehouse.picked",
                              data='{"orderId": "o-1"}', json=False)
    assert cli_waits.run_send_event(queue.client, args, OPERATOR) == 0  # type: ignore[arg-type]
    assert capsys.readouterr().out.startswith("sent warehouse.picked as orders/o-1/events/")
    for data in ("{", "[1]"):
        with pytest.raises(BadRequest, match="--data"):
            cli_waits.run_send_event(queue.client, argparse.Namespace(  # type: ignore[arg-type]
                **{**vars(args), "data": data}), OPERATOR)
    queue.run(until=queue.clock())
    args = argparse.Namespace(queue=queue.queue, path=path, json=False)
    with pytest.raises(IllegalTransition):
        cli_waits.run_end_wait(queue.client, args, OPERATOR)  # type: ignore[arg-type]


def test_the_shop_s_dispatch_waits_for_the_warehouse_beside_the_order_s_workflow() -> None:
    from shop.handlers import registry
    from shop.orders import create_order

    queue = MemoryQueue(registry)
    create_order(queue.client, "o-9", email="a@example.com", items=["tea"],  # type: ignore[arg-type]
                 dispatch=True)
    queue.run(until=queue.clock())
    states = {record.ref.id: record.state for record in queue.tasks()}
    assert states.pop("dispatch") == "scheduled"
    assert set(states.values()) == {"completed"}
    assert len(states) == 4
    queue.send_event("orders/o-9", "warehouse.picked", {"orderId": "o-9"})
    queue.run(until=queue.clock())
    assert queue.get("orders/o-9/tasks/dispatch").fields["result"] == {
        "status": "label booked", "carrier": "parcel-co", "slot": "next-day", "label": "LBL-o-9"}
