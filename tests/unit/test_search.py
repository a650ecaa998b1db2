"""Searching tasks by a data field that handlers declare searchable (`data.orderId=o-1`): the
filter's parsing, the dashboard's API in-process on the test kit's in-memory Firestore (as
test_dashboard_input), and the CLI's `--data FIELD=VALUE`."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from firetasks import HandlerRegistry, PermanentError, Task, TaskQueue, cli, dashboard
from firetasks.errors import BadRequest
from firetasks.filters import TaskFilter
from firetasks.testing import MemoryQueue
from tests.unit.test_dashboard_input import OPERATOR, POST, answer, post


def registry() -> HandlerRegistry:
    handlers = HandlerRegistry()

    @handlers.handler("order", "charge", searchable=("orderId",))
    def charge(task: Task) -> None:
        if task.data.get("card") == "declined":
            raise PermanentError("card declined")

    @handlers.handler("order", "ship", searchable=("orderId", "email"))
    def ship(task: Task) -> dict[str, Any]:
        return {"shipped": True}

    @handlers.handler("reports", "export")
    def export(task: Task) -> None:
        return None

    return handlers


QUEUE = TaskQueue(registry(), collections=("tasks", "jobs"), parent_alias="orders")


def parse(**params: str) -> TaskFilter:
    return TaskFilter.parse(params, QUEUE)


def test_a_searchable_field_parses_to_the_field_and_its_value():
    assert parse(**{"data.orderId": " o-1 "}).data == ("orderId", "o-1")
    assert parse(**{"data.email": "a@example.com", "state": "failed", "parent": "o-1",
                    "since": "2030-01-01T00:00:00Z"}) == TaskFilter(
        state="failed", parent="orders/o-1", data=("email", "a@example.com"),
        since=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC))
    assert parse(**{"data.orderId": ""}).data is None  # an empty box searches nothing


@pytest.mark.parametrize(
    ("params", "message"),
    [({"data.colour": "red"}, "data.colour is not searchable: search by data.email, "
                              "data.orderId"),
     ({"data.": "x"}, "data. is not searchable"),
     ({"data": "x"}, "unknown filter(s): data"),
     ({"data.orderId": "o-1", "data.email": "a@b.c"},
      "search by one data field at a time, not data.orderId and data.email"),
     ({"data.orderId": "o-1", "action": "charge"},
      "data.orderId combines with state, parent, collection, since and until, not with "
      "action: no index serves that search"),
     ({"data.orderId": "o-1", "type": "order", "action": "charge"}, "not with type or action"),
     ({"data.orderId": "x" * 1501}, "data.orderId must be at most 1,500 bytes")],
)
def test_a_bad_search_is_refused_naming_why(params: dict[str, str], message: str):
    with pytest.raises(BadRequest) as refused:
        TaskFilter.parse(params, QUEUE)
    assert message in str(refused.value)


def test_without_searchable_fields_a_search_says_how_to_declare_one():
    with pytest.raises(BadRequest, match=r"data.orderId is not searchable: no handler declares "
                                         r"a searchable data field \(registry.handler\(\.\.\., "
                                         r"searchable=\)\)"):
        TaskFilter.parse({"data.orderId": "o-1"}, TaskQueue())


@pytest.fixture(scope="module")
def kit() -> MemoryQueue:
    kit = MemoryQueue(QUEUE)
    for order, card in (("o-1", "declined"), ("o-2", "ok")):
        kit.write(f"orders/{order}/tasks/charge", {
            "type": "order", "action": "charge", "state": "scheduled",
            "data": {"orderId": order, "card": card}})
        kit.write(f"orders/{order}/tasks/ship", {
            "type": "order", "action": "ship", "state": "scheduled",
            "data": {"orderId": order, "email": f"{order}@example.com"}})
        kit.run()
        kit.clock.advance(60)
    kit.write("invoices/i-1/jobs/ship", {  # another parent, another collection, the same order
        "type": "order", "action": "ship", "state": "scheduled", "data": {"orderId": "o-1"}})
    kit.write("reports/r-1/tasks/export", {"type": "reports", "action": "export",
                                           "state": "scheduled", "data": {"orderId": "o-1"}})
    kit.run()
    return kit


@pytest.fixture(scope="module")
def api(kit: MemoryQueue) -> Iterator[FlaskClient]:
    verified = pytest.MonkeyPatch()
    verified.setattr(dashboard, "admin_from_header", lambda header, claim: OPERATOR)
    yield dashboard.create_app(kit.queue, client=kit.client).test_client()
    verified.undo()


def paths(api: FlaskClient, query: str) -> list[str]:
    status, page = answer(api.get(f"/api/tasks?{query}", headers=POST))
    assert status == 200, page
    return [task["path"] for task in page["tasks"]]


def test_the_api_finds_an_order_s_tasks_by_its_data_across_parents(api: FlaskClient):
    assert paths(api, "data.orderId=o-1") == [  # any task whose data has it, newest first
        "reports/r-1/tasks/export", "orders/o-1/tasks/ship", "orders/o-1/tasks/charge"]
    assert paths(api, "data.orderId=o-1&collection=jobs") == ["invoices/i-1/jobs/ship"]
    assert paths(api, "data.orderId=o-2&state=completed") == ["orders/o-2/tasks/ship",
                                                             "orders/o-2/tasks/charge"]
    assert paths(api, "data.orderId=o-1&state=failed") == ["orders/o-1/tasks/charge"]
    assert paths(api, "data.orderId=o-1&parent=o-2") == []
    assert paths(api, "data.email=o-2%40example.com&parent=orders/o-2") == [
        "orders/o-2/tasks/ship"]
    assert paths(api, "data.orderId=o-2&since=2030-01-01T00:01:00Z") == [
        "orders/o-2/tasks/ship", "orders/o-2/tasks/charge"]
    assert paths(api, "data.orderId=o-2&until=2030-01-01T00:01:00Z") == []
    assert paths(api, "data.orderId=o-3") == []


@pytest.mark.parametrize(
    ("query", "message"),
    [("data.colour=red", "data.colour is not searchable: search by data.email, data.orderId"),
     ("data.orderId=o-1&type=order", "not with type: no index serves that search"),
     ("data.orderId=o-1&data.email=x", "search by one data field at a time")],
)
def test_the_api_refuses_a_search_it_cannot_serve(api: FlaskClient, query: str, message: str):
    status, answered = answer(api.get(f"/api/tasks?{query}", headers=POST))
    assert status == 400
    assert message in answered["error"]


def test_the_page_learns_the_searchable_fields(api: FlaskClient):
    assert api.get("/config.json").get_json()["searchable"] == ["email", "orderId"]


def test_a_bulk_retry_by_data_counts_the_order_s_failed_tasks(api: FlaskClient):
    status, counted = post(api, "/api/bulk-retry", {"filters": {"data.orderId": "o-1"},
                                                    "dryRun": True})
    assert (status, counted) == (200, {"count": 1, "paths": ["orders/o-1/tasks/charge"]})
    status, refused = post(api, "/api/bulk-retry", {"filters": {"data.colour": "red"},
                                                    "dryRun": True})
    assert status == 400
    assert "data.colour is not searchable" in refused["error"]


def cli_filter(*argv: str) -> TaskFilter:
    args = cli.parser().parse_args(["list", *argv])
    args.queue = QUEUE
    return cli._filter_of(args)


def test_the_cli_searches_with_data_field_value():
    assert cli_filter("--data", "orderId=o-1").data == ("orderId", "o-1")
    assert cli_filter("--data", "email=a=b@example.com", "--state", "failed") == TaskFilter(
        state="failed", data=("email", "a=b@example.com"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--data", "orderId"], "--data takes FIELD=VALUE, like orderId=o-123, not 'orderId'"),
     (["--data", "orderId=a", "--data", "orderId=b"], "--data orderId is given twice"),
     (["--data", "orderId=a", "--data", "email=b"], "search by one data field at a time"),
     (["--data", "colour=red"], "data.colour is not searchable: search by data.email, "
                                "data.orderId")],
)
def test_the_cli_refuses_a_bad_search(argv: list[str], message: str):
    with pytest.raises(BadRequest) as refused:
        cli_filter(*argv)
    assert message in str(refused.value)
