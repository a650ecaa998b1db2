from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from firebase_admin import auth
from google.cloud import firestore
from hypothesis import settings

from firetasks import db as firetasks_db
from tests.support import sign_in, task_fields, wait_for_state

# Property-based tests draw the same examples on every run by default, so that the suite passes or
# fails the same way each time (CI included); HYPOTHESIS_PROFILE=explore draws new ones, and more.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

EMULATOR_TESTS = [Path(__file__).parent / "emulator", Path(__file__).parent / "browser"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(folder in Path(item.path).parents for folder in EMULATOR_TESTS):
            item.add_marker(pytest.mark.emulator)


@pytest.fixture(scope="session")
def db() -> firestore.Client:
    if "FIRESTORE_EMULATOR_HOST" not in os.environ:
        pytest.fail("FIRESTORE_EMULATOR_HOST is not set: run these tests with `make test`")
    return firestore.Client(project=os.environ.get("GCLOUD_PROJECT", "demo-firetasks"))


@pytest.fixture
def uid() -> str:
    """A prefix that keeps each test's documents apart in the shared emulator."""
    return uuid.uuid4().hex[:10]


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    uid: str
    token: str


@pytest.fixture(scope="session")
def people(db) -> dict[str, Person]:
    """Users in the Auth emulator: an operator with the admin claim, an agent without it, and two
    shop customers. Their tokens are real (emulator-signed) ID tokens."""
    if "FIREBASE_AUTH_EMULATOR_HOST" not in os.environ:
        pytest.fail("FIREBASE_AUTH_EMULATOR_HOST is not set: run these tests with `make test`")
    run = uuid.uuid4().hex[:8]
    found = {}
    for role, claims in [("admin", {"admin": True}), ("agent", None), ("owner", None),
                         ("stranger", None)]:
        email, password = f"{role}-{run}@example.com", f"pw-{run}-{role}"
        user = auth.create_user(email=email, password=password, app=firetasks_db.app())
        if claims:
            auth.set_custom_user_claims(user.uid, claims, app=firetasks_db.app())
        found[role] = Person(email, password, user.uid, sign_in(email, password))
    return found


@pytest.fixture
def failed_task(db, uid) -> firestore.DocumentReference:
    """A task under orders/{uid} that has failed for good (the probe's permanent error)."""
    order = db.document(f"orders/{uid}")
    order.set({"email": "x@example.com"})
    task = order.collection("tasks").document("t")
    task.set(task_fields("probe", "permanent"))
    wait_for_state(task)
    return task
