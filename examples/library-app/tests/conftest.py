from __future__ import annotations

import os
import uuid

import pytest
from google.cloud import firestore

from support import PROJECT


@pytest.fixture(scope="session")
def db() -> firestore.Client:
    """The Admin-side client the library's servers use (no security rules apply to it)."""
    if "FIRESTORE_EMULATOR_HOST" not in os.environ:
        pytest.fail("FIRESTORE_EMULATOR_HOST is not set: run these tests with `make test-example`")
    return firestore.Client(project=PROJECT)


@pytest.fixture
def uid() -> str:
    """A prefix that keeps each test's documents apart."""
    return uuid.uuid4().hex[:10]
