from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from google.cloud import firestore

EMULATOR_TESTS = Path(__file__).parent / "emulator"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if EMULATOR_TESTS in Path(item.path).parents:
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
