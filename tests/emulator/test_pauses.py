"""Pause and resume through the `firetasks` command, the real triggers and the Cloud Tasks
emulator's queues (firetasks.pauses): a paused handler's tasks stay waiting, none runs; after the
resume each runs once, within the handler's concurrency."""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.cloud import firestore

from firetasks import NewTask, add_tasks, cli
from firetasks.pauses import CACHE_SECONDS
from testing import probes
from tests.emulator.test_limits import overlap
from tests.support import drained, wait_for_state, wait_until

HANDLER = "probe.limitedPaused"  # concurrency 5
HOLD_SECONDS = 30.0


@pytest.fixture(autouse=True)
def queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRETASKS_QUEUE", "main:queue")
    monkeypatch.setenv("FIRETASKS_OPERATOR", "care@example.com")


def command(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    return capsys.readouterr().out


def held_once_paused(db: firestore.Client, uid: str) -> None:
    """Wait until the processor's instances see the pause (their list of paused handlers is
    CACHE_SECONDS old at most): a task written then is held, not run. Earlier ones may run."""
    def held() -> bool:
        ref = db.document(f"pauses/{uid}-canary/tasks/{time.monotonic_ns()}")
        ref.set({"type": "probe", "action": "limitedPaused", "state": "scheduled", "data": {},
                 "createdAt": firestore.SERVER_TIMESTAMP})

        def settled() -> dict[str, Any] | None:
            fields = ref.get().to_dict() or {}
            return fields if {"pausedFor", "finishedAt"} & set(fields) else None

        return "pausedFor" in wait_until(settled, timeout=30, what="the canary, held or run")

    wait_until(held, timeout=CACHE_SECONDS * 6, what="the pause to reach the processor")


def runs_under(db: firestore.Client, parent: str) -> list[dict[str, Any]]:
    query = (db.collection(probes.RUNS)
             .where(filter=firestore.FieldFilter("taskPath", ">=", f"{parent}/"))
             .where(filter=firestore.FieldFilter("taskPath", "<", f"{parent}0")))
    return [snapshot.to_dict() or {} for snapshot in query.stream()]


def test_a_paused_handler_s_200_tasks_wait_then_each_runs_once_after_the_resume(
        db: firestore.Client, uid: str, capsys: pytest.CaptureFixture[str]) -> None:
    parent = f"pauses/{uid}"
    out = command(capsys, "pause", HANDLER)
    assert f"{HANDLER}: paused by care@example.com, since " in out
    try:
        assert HANDLER in command(capsys, "pauses")
        held_once_paused(db, uid)
        refs = add_tasks(db.document(parent),
                         [NewTask("probe", "limitedPaused", {"n": n}) for n in range(200)])
        tasks = db.collection(f"{parent}/tasks")
        held = tasks.where(filter=firestore.FieldFilter("pausedFor", "==", HANDLER)).count()
        wait_until(lambda: int(held.get()[0][0].value) == 200, timeout=120,
                   what="the 200 tasks to be held")
        deadline = time.monotonic() + HOLD_SECONDS
        while time.monotonic() < deadline:  # 30 s held: nothing runs, nothing moves on
            assert runs_under(db, parent) == []
            assert int(held.get()[0][0].value) == 200
            time.sleep(1)
        assert (refs[0].get().to_dict() or {})["state"] == "scheduled"
    finally:
        out = command(capsys, "resume", HANDLER)
    assert f"{HANDLER}: resumed, " in out
    for ref in refs:
        wait_for_state(ref, ("completed",), timeout=120)
    runs = runs_under(db, parent)
    assert sorted(run["taskPath"] for run in runs) == sorted(ref.path for ref in refs)  # once each
    assert {run["attempt"] for run in runs} == {1}
    finished = [snapshot.to_dict() or {} for snapshot in db.get_all(refs)]
    assert overlap([(f["startedAt"], f["finishedAt"]) for f in finished]) <= 5
    assert HANDLER not in command(capsys, "pauses")
    drained(db)
