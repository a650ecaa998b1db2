"""firestore.rules, enforced by the Firestore emulator on REST calls that carry real (emulator)
ID tokens of an owner, a stranger, an admin, or none at all."""

from __future__ import annotations

import datetime
import os

import pytest
import requests

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


@pytest.fixture
def task(order, people):
    path = f"{order}/tasks/t"
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
    assert create(f"{order}/tasks/bad", fields, people["owner"].token, server_time) == 403


def test_optional_client_fields_are_allowed(order, people):
    fields = {**TASK, "runAt": datetime.datetime.now(datetime.UTC), "maxAttempts": 3}
    assert create(f"{order}/tasks/later", fields, people["owner"].token, ("createdAt",)) == 200


def test_strangers_and_anonymous_users_cannot_create_tasks(order, people):
    assert create(f"{order}/tasks/s", TASK, people["stranger"].token, ("createdAt",)) == 403
    assert create(f"{order}/tasks/a", TASK, None, ("createdAt",)) == 403
    assert create("orders/nobody-has-this/tasks/t", TASK, people["owner"].token,
                  ("createdAt",)) == 403


def test_who_reads_a_task(task, people):
    assert read(task, people["owner"].token) == 200
    assert read(task, people["admin"].token) == 200
    assert read(task, people["stranger"].token) == 403
    assert read(task, people["agent"].token) == 403
    assert read(task, None) == 403


@pytest.mark.parametrize("role", ["owner", "stranger", "admin", None])
def test_nobody_updates_or_deletes_a_task_from_a_client(task, people, role):
    token = people[role].token if role else None
    assert update(task, {"state": "completed"}, token) == 403
    assert delete(task, token) == 403
