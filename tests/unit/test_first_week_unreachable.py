"""With FIRESTORE_EMULATOR_HOST naming an emulator that is not running, the CLI and the enqueue
helper say so within seconds, and where they tried, instead of retrying in silence."""

from __future__ import annotations

import socket
import time

import pytest
from google.cloud import firestore

from firetasks import HandlerRegistry, NewTask, add_tasks, cli
from firetasks.errors import Unreachable
from firetasks.testing import MemoryQueue


@pytest.fixture
def dead_emulator(monkeypatch: pytest.MonkeyPatch) -> str:
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{free.getsockname()[1]}"
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
    monkeypatch.setenv("GCLOUD_PROJECT", "demo-unreachable")
    return host


def test_the_cli_says_at_once_that_the_emulator_does_not_answer(
    dead_emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    began = time.monotonic()
    assert cli.main(["list"]) == 1
    assert time.monotonic() - began < 5
    err = capsys.readouterr().err
    assert f"the Firestore emulator at {dead_emulator} (FIRESTORE_EMULATOR_HOST)" in err
    assert "does not answer" in err


def test_the_enqueue_helper_says_so_too(dead_emulator: str) -> None:
    client = firestore.Client(project="demo-unreachable")
    began = time.monotonic()
    with pytest.raises(Unreachable, match=dead_emulator):
        add_tasks(client.document("orders/o-1"), [NewTask("order", "send")])
    assert time.monotonic() - began < 5


def test_a_running_task_written_by_hand_without_a_lease_does_not_break_the_sweep() -> None:
    """It raised KeyError in expire_leases(); the sweeper finds running tasks by their lease, so
    such a document is left alone (write it `scheduled` to have it run)."""
    registry = HandlerRegistry()
    registry.register("order", "send", lambda task: None)
    queue = MemoryQueue(registry)
    ref = queue.write("orders/o-1/tasks/t", {"type": "order", "action": "send",
                                             "state": "running", "data": {}})
    queue.run()
    queue.clock.advance(3600)
    assert queue.expire_leases() == 0
    assert queue.get(ref).state == "running"
