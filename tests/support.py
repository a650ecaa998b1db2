"""Helpers for tests against the emulators: polling with a deadline and reading side effects."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import requests
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks.task import FINAL_STATES
from shop.handlers import MAIL_COLLECTION
from testing import probes

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def wait_until(probe: Callable[[], T], *, timeout: float = 30.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def wait_for_state(
    ref: DocumentReference, states: Collection[str] = FINAL_STATES, timeout: float = 30.0
) -> dict[str, Any]:
    """The task's fields once its state is one of `states`."""

    def probe() -> dict[str, Any] | None:
        fields = ref.get().to_dict() or {}
        state = fields.get("state")
        return fields if isinstance(state, str) and state in states else None

    return wait_until(probe, timeout=timeout,
                      what=f"{ref.path} to reach {'/'.join(sorted(states))}")


def mails_for(db: firestore.Client, task: DocumentReference) -> list[dict[str, Any]]:
    query = db.collection(MAIL_COLLECTION).where(
        filter=firestore.FieldFilter("taskPath", "==", task.path)
    )
    return [snapshot.to_dict() for snapshot in query.stream()]


def task_fields(type: str, action: str, data: dict | None = None, **extra: Any) -> dict:
    return {"type": type, "action": action, "state": "scheduled", "data": data or {}, **extra}


def drained(db: firestore.Client, timeout: float = 180.0) -> None:
    """Wait until the Functions emulator has worked through the trigger events queued so far: a
    task written now completes after them (it runs them about one at a time, in order). A test
    that leaves hundreds of echoes behind (a burst's final writes) calls it last, or the next
    test's first task waits behind them, past that test's deadline."""
    sentinel = db.collection("drain").document().collection("tasks").document("t")
    sentinel.set(task_fields("probe", "flaky", createdAt=firestore.SERVER_TIMESTAMP))
    wait_for_state(sentinel, ("completed",), timeout=timeout)


def probe_runs(db: firestore.Client, task: DocumentReference) -> list[int]:
    """The attempt numbers of every run of a probe handler for `task`, in order."""
    query = db.collection(probes.RUNS).where(
        filter=firestore.FieldFilter("taskPath", "==", task.path))
    return sorted(snapshot.get("attempt") for snapshot in query.stream())


def dashboard_url() -> str:
    """The dashboard function's URL in the Functions emulator (ends with a slash)."""
    config = json.loads((ROOT / "firebase.json").read_text())
    port = config["emulators"]["functions"]["port"]
    project = os.environ.get("GCLOUD_PROJECT", "demo-firetasks")
    return f"http://127.0.0.1:{port}/{project}/us-central1/dashboard/"


def sign_in(email: str, password: str) -> str:
    """A real ID token from the Auth emulator, as the dashboard's sign-in page gets one."""
    host = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    response = requests.post(
        f"http://{host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=x",
        json={"email": email, "password": password, "returnSecureToken": True}, timeout=10)
    response.raise_for_status()
    return response.json()["idToken"]
