"""Priorities through the real trigger and the Cloud Tasks emulator's queue: with concurrency 1,
high-priority tasks queued behind 100 low-priority ones start before any more of the low ones
(the hand-over starts the first by `waitRank`: priority, then age)."""

from __future__ import annotations

import datetime
from typing import Any

from google.cloud import firestore

from firetasks import NewTask, add_tasks
from tests.support import drained, wait_until


def test_5_high_priority_tasks_start_before_any_more_of_100_waiting_low_ones(
        db: firestore.Client, uid: str) -> None:
    parent = db.document(f"priorities/{uid}")
    lows = add_tasks(parent, [NewTask("probe", "limitedOne", {"n": n, "seconds": 0.2})
                              for n in range(100)])
    tasks = db.collection(f"{parent.path}/tasks")
    done = tasks.where(filter=firestore.FieldFilter("state", "==", "completed")).count()
    wait_until(lambda: int(done.get()[0][0].value) >= 3, timeout=60,
               what="the low-priority tasks to start")
    highs = add_tasks(parent, [NewTask("probe", "limitedOne", {"n": n}, priority=9)
                               for n in range(5)])

    def marked() -> bool:  # each high one queued (its create event) or already started
        fields = [snapshot.to_dict() or {} for snapshot in db.get_all(highs)]
        return all("waitRank" in f or "startedAt" in f for f in fields)

    wait_until(marked, timeout=60, what="the high-priority tasks to be queued")
    queued = datetime.datetime.now(datetime.UTC)

    def finished() -> list[dict[str, Any]] | None:
        fields = [snapshot.to_dict() or {} for snapshot in db.get_all(lows + highs)]
        return fields if all(f.get("state") == "completed" for f in fields) else None

    found = wait_until(finished, timeout=120, what="the 105 tasks to complete")
    low, high = found[:100], found[100:]
    last_high = max(f["startedAt"] for f in high)
    # Once the high ones are queued, no low one starts before the last of them, but one whose
    # claim the hand-over under way had read already.
    overtaking = [f["data"]["n"] for f in low if queued < f["startedAt"] < last_high]
    assert len(overtaking) <= 1, f"low-priority tasks {overtaking} started before high ones"
    # The check above means something only if lows were still waiting when the high ones were
    # queued (how many depends on how late the emulator delivers the high ones' create events).
    waiting = sum(f["startedAt"] > queued for f in low)
    assert waiting >= 10, f"only {waiting} low-priority tasks were still waiting"
    drained(db)
