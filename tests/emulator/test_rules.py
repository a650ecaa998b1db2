"""firestore.rules, enforced by the Firestore emulator on REST calls that carry real (emulator)
ID tokens of an owner, a stranger, an admin, or none at all."""

from __future__ import annotations

import datetime
import os

import pytest
import requests

from firetasks import client_rules
from shop.handlers import registry as shop_registry
from tests.support import ROOT

PROJECT = os.environ.get("GCLOUD_PROJECT", "demo-firetasks")
DOCUMENTS = f"projects/{PROJECT}/databases/(default)/documents"


def base() -> str:
    return f"http://{os.environ['FIRESTORE_EMULATOR_HOST']}/v1/{DOCUMENTS}"


def headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def value(python: object) -> dict:
    if isinstance(python, str):
        return {"stringValue": python}
    if isinstance(python, bool):
        return {"booleanValue": python}
    if isinstance(python, int):
        return {"integerValue": str(python)}
    if isinstance(python, datetime.datetime):
        return {"timestampValue": python.isoformat()}
    if isinstance(python, dict):
        return {"mapValue": {"fields": {k: value(v) for k, v in python.items()}}}
    if isinstance(python, list):
        return {"arrayValue": {"values": [value(v) for v in python]}}
    raise TypeError(python)


def create(path: str, fields: dict, token: str | None, server_time: tuple[str, ...] = ()) -> int:
    """Create a document as a client SDK would, `server_time` fields set to the request time."""
    write = {
        "update": {"name": f"{DOCUMENTS}/{path}",
                   "fields": {k: value(v) for k, v in fields.items()}},
        "updateTransforms": [{"fieldPath": f, "setToServerValue": "REQUEST_TIME"}
                             for f in server_time],
        "currentDocument": {"exists": False},
    }
    return requests.post(f"{base()}:commit", json={"writes": [write]}, headers=headers(token),
                         timeout=10).status_code


def read(path: str, token: str | None) -> int:
    return requests.get(f"{base()}/{path}", headers=headers(token), timeout=10).status_code


def update(path: str, fields: dict, token: str | None) -> int:
    mask = "&".join(f"updateMask.fieldPaths={k}" for k in fields)
    return requests.patch(f"{base()}/{path}?{mask}", headers=headers(token), timeout=10,
                          json={"fields": {k: value(v) for k, v in fields.items()}}).status_code


def delete(path: str, token: str | None) -> int:
    return requests.delete(f"{base()}/{path}", headers=headers(token), timeout=10).status_code


TASK = {"type": "order", "action": "sendConfirmationEmail", "state": "scheduled", "data": {}}


@pytest.fixture
def order(people, uid):
    path = f"orders/{uid}"
    assert create(path, {"uid": people["owner"].uid, "email": "o@example.com"},
                  people["owner"].token) == 200
    return path


CONFIRMATION = "sendConfirmationEmail"  # the id a client's confirmation task must have


@pytest.fixture
def task(order, people):
    path = f"{order}/tasks/{CONFIRMATION}"
    assert create(path, TASK, people["owner"].token, ("createdAt",)) == 200
    return path


def test_an_owner_creates_orders_only_for_themselves(people, uid):
    owner = people["owner"]
    assert create(f"orders/{uid}-mine", {"uid": owner.uid}, owner.token) == 200
    assert create(f"orders/{uid}-theirs", {"uid": people["stranger"].uid}, owner.token) == 403
    assert create(f"orders/{uid}-anon", {"uid": owner.uid}, None) == 403


def test_an_owner_creates_a_scheduled_task(task):
    assert task


@pytest.mark.parametrize(
    ("change", "server_time"),
    [({"state": "completed"}, ("createdAt",)),
     ({"state": "running"}, ("createdAt",)),
     ({"attempts": 3}, ("createdAt",)),
     ({"result": "forged"}, ("createdAt",)),
     ({"data": "not a map"}, ("createdAt",)),
     ({"type": ""}, ("createdAt",)),
     ({"createdAt": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)}, ()),
     ({}, ())],
    ids=["completed", "running", "attempts", "result", "data-string", "empty-type",
         "backdated", "no-createdAt"],
)
def test_an_owner_cannot_create_a_task_the_processor_would_trust_wrongly(
        order, people, change, server_time):
    fields = {**TASK, **change}
    assert create(f"{order}/tasks/{CONFIRMATION}", fields, people["owner"].token,
                  server_time) == 403


def test_optional_client_fields_are_allowed(order, people):
    fields = {**TASK, "runAt": datetime.datetime.now(datetime.UTC), "maxAttempts": 3}
    assert create(f"{order}/tasks/{CONFIRMATION}", fields, people["owner"].token,
                  ("createdAt",)) == 200


def test_strangers_and_anonymous_users_cannot_create_tasks(order, people):
    path = f"{order}/tasks/{CONFIRMATION}"
    assert create(path, TASK, people["stranger"].token, ("createdAt",)) == 403
    assert create(path, TASK, None, ("createdAt",)) == 403
    assert create(f"orders/nobody-has-this/tasks/{CONFIRMATION}", TASK, people["owner"].token,
                  ("createdAt",)) == 403


def test_the_rules_let_clients_create_exactly_what_the_registry_allows():
    rules = (ROOT / "firestore.rules").read_text()
    assert client_rules.generated_part(rules) is not None
    assert client_rules.with_function(rules, shop_registry) == rules, (
        "firestore.rules and shop.handlers disagree: run "
        "`firetasks rules --handlers shop.handlers --write firestore.rules`")


@pytest.mark.parametrize(
    ("type_", "action"),
    [("order", "initiateProcessing"), ("inventory", "mutations.initiateOrderProcessing"),
     ("order", "refundEverything")],
    ids=["initiateProcessing", "mutations.initiateOrderProcessing", "no-handler"])
def test_an_owner_cannot_create_server_only_tasks(order, people, type_, action):
    fields = {**TASK, "type": type_, "action": action}
    for task_id in (action, "t"):
        assert create(f"{order}/tasks/{task_id}", fields, people["owner"].token,
                      ("createdAt",)) == 403


def test_one_confirmation_per_order_with_its_own_id_and_data(order, people):
    owner = people["owner"].token
    path = f"{order}/tasks/{CONFIRMATION}"
    assert create(path, {**TASK, "data": {"to": "x@example.com"}}, owner, ("createdAt",)) == 403
    assert create(f"{order}/tasks/another", TASK, owner, ("createdAt",)) == 403
    assert create(path, {**TASK, "data": {"orderId": "o-1"}}, owner, ("createdAt",)) == 200
    assert create(path, TASK, owner, ("createdAt",)) == 409  # the second one: it exists
    assert update(path, TASK, owner) == 403  # nor may it be overwritten


def test_a_client_s_key_is_its_task_s_id_and_a_second_create_is_refused(order, people):
    owner = people["owner"].token
    path = f"{order}/tasks/{CONFIRMATION}"
    assert create(path, {**TASK, "key": "other"}, owner, ("createdAt",)) == 403
    assert create(path, {**TASK, "key": CONFIRMATION}, owner, ("createdAt",)) == 200
    assert create(path, {**TASK, "key": CONFIRMATION}, owner, ("createdAt",)) == 409


@pytest.mark.parametrize(("change", "status"), [
    ({"state": "waiting", "after": ["charge"]}, 200),
    ({"state": "waiting", "after": ["charge"], "onDependencyFailure": "skip"}, 200),
    ({"state": "waiting"}, 403),
    ({"state": "waiting", "after": []}, 403),
    ({"after": ["charge"]}, 403),
    ({"state": "waiting", "after": ["charge"], "onDependencyFailure": "ignore"}, 403),
], ids=["waiting", "skip", "no-after", "empty-after", "scheduled-with-after", "bad-policy"])
def test_a_client_s_task_waits_for_others_only_as_a_waiting_task(order, people, change, status):
    assert create(f"{order}/tasks/{CONFIRMATION}", {**TASK, **change}, people["owner"].token,
                  ("createdAt",)) == status
