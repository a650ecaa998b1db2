"""The dashboard's API answers bad input with a JSON 4xx naming the field, never a 5xx: run
in-process (Flask's test client) on the test kit's in-memory Firestore, with an operator whose
token is taken as verified (firetasks.access is tested against the Auth emulator)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firetasks import HandlerRegistry, PermanentError, Task, TaskQueue, dashboard
from firetasks.audit import Actor
from firetasks.testing import MemoryQueue

OPERATOR = Actor(uid="op-1", email="op@example.com", via="dashboard")
POST = {"X-Firetasks-CSRF": "1", "Authorization": "Bearer verified"}


def kit_queue() -> MemoryQueue:
    registry = HandlerRegistry()

    @registry.handler("order", "charge", searchable=("orderId",))
    def charge(task: Task) -> None:
        raise PermanentError("card declined")

    @registry.handler("order", "ship")
    def ship(task: Task) -> dict[str, Any]:
        return {"shipped": True}

    kit = MemoryQueue(TaskQueue(registry, collections=("tasks", "jobs"), parent_alias="orders"))
    for action in ("charge", "ship"):
        kit.write(f"orders/o-1/tasks/{action}", {"type": "order", "action": action,
                                                 "state": "scheduled", "data": {"orderId": "o-1"}})
    kit.run()
    return kit


@pytest.fixture(scope="module")
def kit() -> MemoryQueue:
    return kit_queue()


@pytest.fixture(scope="module")
def api(kit: MemoryQueue) -> Iterator[FlaskClient]:
    verified = pytest.MonkeyPatch()
    verified.setattr(dashboard, "admin_from_header", lambda header, claim: OPERATOR)
    app = dashboard.create_app(kit.queue, client=kit.client)
    yield app.test_client()
    verified.undo()


FAILED = "orders/o-1/tasks/charge"


def post(api: FlaskClient, endpoint: str, body: object) -> tuple[int, Any]:
    response = api.post(endpoint, data=json.dumps(body), headers=POST,
                        content_type="application/json")
    return answer(response)


def answer(response: Any) -> tuple[int, Any]:
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:300]
    return response.status_code, response.get_json()


def test_the_kit_serves_the_api(api: FlaskClient, kit: MemoryQueue) -> None:
    status, page = answer(api.get("/api/tasks?parent=o-1", headers=POST))
    assert status == 200
    assert {task["path"]: task["state"] for task in page["tasks"]} == {
        FAILED: "failed", "orders/o-1/tasks/ship": "completed"}
    status, task = answer(api.get(f"/api/task?path={FAILED}", headers=POST))
    assert (status, task["state"]) == (200, "failed")


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [("/api/retry", {"path": FAILED, "maxAttempts": 0}, "maxAttempts"),
     ("/api/retry", {"path": FAILED, "maxAttempts": 1_000_000_000}, "maxAttempts"),
     ("/api/retry", {"path": FAILED, "maxAttempts": True}, "maxAttempts"),
     ("/api/retry", {"path": FAILED, "maxAttempts": 2.5}, "maxAttempts"),
     ("/api/retry", {"path": [FAILED]}, "path"),
     ("/api/retry", {"path": FAILED, "state": "bogus"}, "state"),
     ("/api/retry", {"path": FAILED, "version": 12}, "version"),
     ("/api/retry", {"path": FAILED, "colour": "red"}, "colour"),
     ("/api/cancel", {"path": {"a": 1}}, "path"),
     ("/api/cancel", {"path": "orders/../tasks/x"}, "is not a task path"),
     ("/api/bulk-retry", {"filters": "x", "dryRun": True}, "filters"),
     ("/api/bulk-retry", {"filters": {"state": ["failed"]}, "dryRun": True}, "filters"),
     ("/api/bulk-retry", {"filters": {}, "dryRun": True, "maxAttempts": 1_000_000_000},
      "maxAttempts"),
     ("/api/bulk-retry", {"filters": {}, "dryRun": "yes"}, "dryRun"),
     ("/api/bulk-retry", {"filters": {}, "confirm": True}, "confirm"),
     ("/api/bulk-retry", {"filters": {}, "confirm": -1}, "confirm"),
     ("/api/pause", {"handler": "order.nope"}, "handler"),
     ("/api/pause", {"handler": ["order.charge"]}, "handler"),
     ("/api/pause", {"handler": "order.charge", "key": "k"}, "key"),
     ("/api/resume", {"handler": "order.charge", "key": 5}, "key"),
     ("/api/resume", {"handler": "order.charge", "colour": "red"}, "colour")],
)
def test_bad_bodies_are_400_naming_the_field(
    api: FlaskClient, kit: MemoryQueue, endpoint: str, body: dict[str, Any], field: str
) -> None:
    status, answered = post(api, endpoint, body)
    assert status == 400
    assert field in answered["error"]
    assert kit.get(FAILED).state == "failed"


@pytest.mark.parametrize(
    ("query", "field"),
    [("/api/tasks?limit=99999999999999999999", "limit"), ("/api/tasks?since=not-a-date", "since"),
     ("/api/tasks?parent=__x__", "parent"), ("/api/task?path=orders/o-1/tasks/" + "x" * 2000,
                                             "task path"),
     ("/api/audit?limit=1e3", "limit"), ("/api/charts?handler=a%20b", "handler")],
)
def test_bad_queries_are_400_naming_the_field(api: FlaskClient, query: str, field: str) -> None:
    status, answered = answer(api.get(query, headers=POST))
    assert status == 400
    assert field in answered["error"]


def test_a_bulk_retry_with_an_attempt_budget() -> None:
    fresh = kit_queue()
    app = dashboard.create_app(fresh.queue, client=fresh.client)
    with pytest.MonkeyPatch.context() as verified:
        verified.setattr(dashboard, "admin_from_header", lambda header, claim: OPERATOR)
        client = app.test_client()
        assert post(client, "/api/bulk-retry", {"filters": {"parent": "o-1"}, "dryRun": True,
                                                "maxAttempts": 3})[1]["count"] == 1
        status, done = post(client, "/api/bulk-retry", {"filters": {"parent": "o-1"},
                                                        "confirm": 1, "maxAttempts": 3})
    assert (status, done["retried"]) == (200, 1)
    assert fresh.get(FAILED).fields["maxAttempts"] == 3


def test_an_operator_pauses_and_resumes_a_handler_and_the_task_page_says_why() -> None:
    fresh = kit_queue()
    with pytest.MonkeyPatch.context() as verified:
        verified.setattr(dashboard, "admin_from_header", lambda header, claim: OPERATOR)
        api = dashboard.create_app(fresh.queue, client=fresh.client).test_client()
        status, paused = post(api, "/api/pause", {"handler": "order.ship"})
        assert (status, paused["reason"][:32]) == (200, "paused by op@example.com, since ")
        assert answer(api.get("/api/pauses", headers=POST))[1]["pauses"] == [
            {key: paused[key] for key in ("target", "by", "since", "reason")}]
        fresh.processor.flow.pauses.forget()  # the instance's list, read again at once
        fresh.write("orders/o-2/tasks/ship", {"type": "order", "action": "ship",
                                              "state": "scheduled", "data": {}})
        fresh.run()
        status, task = answer(api.get("/api/task?path=orders/o-2/tasks/ship", headers=POST))
        assert (task["state"], task["pausedFor"]) == ("scheduled", "order.ship")
        assert task["paused"]["reason"] == paused["reason"]
        status, resumed = post(api, "/api/resume", {"handler": "order.ship"})
        assert (status, resumed["resumed"]) == (200, 1)
        fresh.run()
        assert fresh.get("orders/o-2/tasks/ship").state == "completed"


# Any JSON value, with the shapes an API confuses: booleans for numbers, lists for strings, huge
# and out-of-range numbers, long strings.
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False) | st.text(max_size=30) | st.just("x" * 5000)
           | st.sampled_from([FAILED, "orders/o-1", "o-1", "failed", "0", "-1", "1e9",
                              "2030-01-01T00:00:00Z", "order.charge", "tasks"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=6)
BODY_FIELDS = st.sampled_from(["path", "state", "version", "maxAttempts", "filters", "dryRun",
                               "confirm", "colour", "handler", "key"])
FILTER_FIELDS = st.sampled_from(["state", "type", "action", "parent", "since", "until",
                                 "collection", "limit", "cursor", "handler", "path", "colour",
                                 "data.orderId", "data.colour"])
BODIES = st.dictionaries(BODY_FIELDS, VALUES, max_size=5) | VALUES
QUERIES = st.dictionaries(FILTER_FIELDS, st.text(max_size=40) | st.just("x" * 5000)
                          | st.sampled_from(["0", "101", "-5", "1e3", "true", "o-1", FAILED,
                                             "failed", "2030-01-01", "orders/o-1/x"]),
                          max_size=4)
GETS = ["/api/stats", "/api/charts", "/api/tasks", "/api/task", "/api/audit", "/api/pauses"]
POSTS = ["/api/retry", "/api/cancel", "/api/bulk-retry", "/api/pause", "/api/resume"]


def bounded(status: int, body: Any) -> None:
    assert status < 500, body
    assert isinstance(body, dict)
    if status >= 400:
        assert isinstance(body["error"], str)
        assert body["error"]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=st.sampled_from(POSTS), body=BODIES)
def test_random_bodies_never_get_a_5xx(api: FlaskClient, endpoint: str, body: object) -> None:
    bounded(*post(api, endpoint, body))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=st.sampled_from(GETS), query=QUERIES)
def test_random_queries_never_get_a_5xx(api: FlaskClient, endpoint: str,
                                        query: dict[str, str]) -> None:
    bounded(*answer(api.get(endpoint, query_string=query, headers=POST)))


def test_an_unexpected_error_is_json_too(kit: MemoryQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "admin_from_header", lambda header, claim: OPERATOR)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(dashboard.queries, "stats", broken)
    request = flask.Flask(__name__).test_request_context("/api/stats", headers=POST)
    serve = dashboard.dashboard_trigger(kit.queue, client=kit.client)
    status, body = answer(serve(request.request))
    assert (status, body["error"]) == (500, "internal error (RuntimeError)")
