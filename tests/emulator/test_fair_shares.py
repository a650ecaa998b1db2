"""Fair shares through the real trigger and the Cloud Tasks emulator's queue: under a shared
concurrency of 4 with key `merchant`, merchant B's 5 tasks, queued behind merchant A's backlog of
hundreds, finish before A has finished 40 more (firetasks.fair_shares).

The Functions emulator delivers trigger events about one at a time, in order, so B's tasks would
be queued only once A's 500 creations (and their queue marks' echoes) have been delivered, while A
runs (and A's hand-overs keep adding events): the test lets A's through first, enqueues B's with
A's backlog still waiting, and counts from the moment B's are queued (their create events
delivered), as a deployment's parallel triggers would queue them at once. A's tasks last 1.2 s, so
that A's own events (about 3 tasks end a second) leave the emulator room to deliver B's, and A's
backlog outlasts B's queuing even when the emulator is slow. The test drains what it started even
when it fails, so that the next test does not start behind A's backlog."""

from __future__ import annotations

import datetime
from typing import Any

from google.cloud import firestore

from firetasks import NewTask, add_tasks
from tests.support import drained, wait_until


def test_5_tasks_of_merchant_b_finish_before_40_more_of_merchant_a_s_backlog(
        db: firestore.Client, uid: str) -> None:
    parent = db.document(f"shares/{uid}")
    a = add_tasks(parent, [NewTask("probe", "sharedFour", {"merchant": "A", "n": n,
                                                           "seconds": 1.2})
                           for n in range(500)])
    try:
        tasks = db.collection(f"{parent.path}/tasks")
        started = tasks.where(filter=firestore.FieldFilter("attempts", ">", 0)).count()
        wait_until(lambda: int(started.get()[0][0].value) > 0, timeout=60,
                   what="merchant A's tasks to start")
        drained(db)  # A's 500 creations and queue marks delivered: B's come next
        enqueued = datetime.datetime.now(datetime.UTC)
        b = add_tasks(parent, [NewTask("probe", "sharedFour", {"merchant": "B", "n": n})
                               for n in range(5)])

        def marked() -> bool:  # each of B's queued (its create event delivered) or started
            fields = [snapshot.to_dict() or {} for snapshot in db.get_all(b)]
            return all("shareKey" in f or "startedAt" in f for f in fields)

        wait_until(marked, timeout=120, what="merchant B's tasks to be queued")
        queued = datetime.datetime.now(datetime.UTC)

        def finished(refs: list[firestore.DocumentReference]) -> list[dict[str, Any]] | None:
            fields = [snapshot.to_dict() or {} for snapshot in db.get_all(refs)]
            return fields if all(f.get("state") == "completed" for f in fields) else None

        b_done = max(f["finishedAt"] for f in wait_until(lambda: finished(b), timeout=60,
                                                           what="merchant B's 5 tasks"))
        a_fields = wait_until(lambda: finished(a), timeout=420, what="merchant A's 500 tasks")
        meanwhile = sum(queued < f["finishedAt"] <= b_done for f in a_fields)
        print(f"merchant A finished {meanwhile} tasks between B's queuing and B's last end "
              f"({(b_done - queued).total_seconds():.1f} s; "
              f"{sum(enqueued < f['finishedAt'] <= queued for f in a_fields)} while B's creations "
              f"waited for the emulator's trigger, {(queued - enqueued).total_seconds():.1f} s)")
        assert meanwhile < 40
        assert sum(f["finishedAt"] > b_done for f in a_fields) >= 40  # A still had a backlog
    finally:
        drained(db, timeout=600)  # A's backlog, even when the test failed
