"""Helpers for tests against the emulators: polling with a deadline and reading side effects."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from shop.handlers import MAIL_COLLECTION
from testing import probes

T = TypeVar("T")
FINAL_STATES = ("completed", "failed", "cancelled")


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
    ref: DocumentReference, states: tuple[str, ...] = FINAL_STATES, timeout: float = 30.0
) -> dict[str, Any]:
    """The task's fields once its state is one of `states`."""

    def probe() -> dict[str, Any] | None:
        fields = ref.get().to_dict() or {}
        return fields if fields.get("state") in states else None

    return wait_until(probe, timeout=timeout, what=f"{ref.path} to reach {'/'.join(states)}")


def mails_for(db: firestore.Client, task: DocumentReference) -> list[dict[str, Any]]:
    query = db.collection(MAIL_COLLECTION).where(
        filter=firestore.FieldFilter("taskPath", "==", task.path)
    )
    return [snapshot.to_dict() for snapshot in query.stream()]


def task_fields(type: str, action: str, data: dict | None = None, **extra: Any) -> dict:
    return {"type": type, "action": action, "state": "scheduled", "data": data or {}, **extra}


def probe_runs(db: firestore.Client, task: DocumentReference) -> list[int]:
    """The attempt numbers of every run of a probe handler for `task`, in order."""
    query = db.collection(probes.RUNS).where(
        filter=firestore.FieldFilter("taskPath", "==", task.path))
    return sorted(snapshot.get("attempt") for snapshot in query.stream())
