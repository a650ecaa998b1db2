"""The customer view is mounted only when asked for, at `/<parent_alias>/<id>`, and names that
collection to its page; it and the dashboard share one set of security headers."""

from __future__ import annotations

import types

import pytest

from firetasks import customer
from firetasks.config import TaskQueue
from firetasks.dashboard import create_app

HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}


@pytest.fixture(autouse=True)
def no_emulators(monkeypatch):
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(customer.db, "app", lambda: types.SimpleNamespace(project_id="demo-p"))


def test_the_shop_s_orders_are_served_at_their_alias():
    app = create_app(TaskQueue(collections=("jobs",), parent_alias="orders"), customer_view=True)
    client = app.test_client()
    page = client.get("/orders/o-123")
    assert page.status_code == 200
    assert page.content_type.startswith("text/html")
    config = client.get("/customer/config.json").get_json()
    assert (config["parents"], config["collection"], config["projectId"]) == (
        "orders", "jobs", "demo-p")
    assert client.get("/customer/customer.js").status_code == 200


def test_another_parent_collection_is_served_at_its_own_alias():
    client = create_app(TaskQueue(parent_alias="carts"), customer_view=True).test_client()
    assert client.get("/carts/c-1").status_code == 200
    assert client.get("/orders/o-1").status_code == 404
    assert client.get("/customer/config.json").get_json()["parents"] == "carts"


@pytest.mark.parametrize("alias", ["orders", None])
def test_without_the_option_there_is_no_customer_view(alias):
    client = create_app(TaskQueue(parent_alias=alias)).test_client()
    assert client.get("/orders/o-1").status_code == 404
    assert client.get("/customer/config.json").status_code == 404


@pytest.mark.parametrize(("alias", "message"), [(None, "parent_alias"), ("api", "/api/"),
                                                ("customer", "/customer/")])
def test_the_view_needs_an_alias_the_dashboard_does_not_use(alias, message):
    with pytest.raises(ValueError, match=message):
        create_app(TaskQueue(parent_alias=alias), customer_view=True)


def test_dashboard_and_customer_responses_share_the_security_headers():
    client = create_app(TaskQueue(parent_alias="orders"), customer_view=True).test_client()
    dashboard, page = client.get("/"), client.get("/orders/o-1")
    for response in (dashboard, page, client.get("/customer/config.json"),
                     client.get("/api/stats"), client.get("/customer/nothing.js")):
        assert {name: response.headers.get(name) for name in HEADERS} == HEADERS
    policy = dashboard.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "https://identitytoolkit.googleapis.com" in policy
    assert "firestore" not in policy
    assert page.headers["Content-Security-Policy"] == policy.replace(
        "connect-src 'self' ", "connect-src 'self' https://firestore.googleapis.com ")


def test_with_emulators_the_policies_name_them(monkeypatch):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080")
    client = create_app(TaskQueue(parent_alias="orders"), customer_view=True).test_client()
    assert "connect-src 'self' http://127.0.0.1:9099;" in client.get("/").headers[
        "Content-Security-Policy"]
    assert "connect-src 'self' http://127.0.0.1:8080 http://127.0.0.1:9099;" in client.get(
        "/orders/o-1").headers["Content-Security-Policy"]
    config = client.get("/customer/config.json").get_json()
    assert config["firestoreEmulator"] == {"host": "127.0.0.1", "port": 8080}
