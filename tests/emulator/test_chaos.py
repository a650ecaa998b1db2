"""Chaos (issue 21): a burst of every kind of task while the Functions workers fail a share of
their Firestore commits (half after they applied) and reads, crash at the probes of
functions/testing/chaos.py, and trigger events are dropped (the emulator hub); then sweeps until
every task is final, a retry of each failure cascade's cause, and checks from the effects the
handlers recorded. `make test` runs about 120 tasks; `make chaos` 1,000 (FIRETASKS_CHAOS_TASKS),
printing the report (FIRETASKS_CHAOS_REPORT: also as JSON to that file)."""

from __future__ import annotations

import collections
import contextlib
import datetime
import itertools
import json
import os
import time
from collections.abc import Callable
from typing import Any

from google.cloud import firestore

import main
from firetasks import NewTask, create_with_tasks, operations, sweep
from firetasks.recovery import STALE_AFTER
from testing import chaos
from tests.emulator.test_sweeper import events_lost
from tests.support import drained

CHAOS_TASKS = int(os.environ.get("FIRETASKS_CHAOS_TASKS", "120"))
SHARES = {"commit": 0.03, "read": 0.03, "crash": 0.03}
DROPPED = 50  # one order in DROPPED is enqueued while the hub drops trigger events (2 %)
IDLE = 4.0  # seconds without a task changing: quiet, or stuck until a sweep
DEADLINE = 120 + CHAOS_TASKS * 0.6  # seconds, to each quiescence
CLAIMED = {"claim", "spawn", "cause", "limited", "keyed", "rated"}  # claim-mode handlers
CASCADE = {"cause", "d1", "d2"}  # the keys of the tasks a failure cascade fails
SECOND = datetime.timedelta(seconds=1)
Tasks = dict[str, dict[str, Any]]


def order(n: int, run: str) -> list[NewTask]:
    """One order's tasks: claim-mode, atomic, a spawner, a 3-way fan-in and its join, limited and
    keyed handlers, every 4th a rated one, every 8th a failure cascade (a cause, two dependents)."""
    data = {"run": run}
    tasks = [NewTask("chaos", "claim", data), NewTask("chaos", "atomic", data),
             NewTask("chaos", "spawn", data),
             *(NewTask("chaos", "claim", data, key=f"b{b}") for b in range(3)),
             NewTask("chaos", "claim", data | {"join": True}, key="join",
                     after=["b0", "b1", "b2"]),
             NewTask("chaos", "limited", data), NewTask("chaos", "keyed", data | {"shop": n % 4})]
    if n % 4 == 0:
        tasks.append(NewTask("chaos", "rated", data))
    if n % 8 == 0:
        tasks += [NewTask("chaos", "cause", data, key="cause"),
                  NewTask("chaos", "claim", data, key="d1", after=["cause"]),
                  NewTask("chaos", "atomic", data, key="d2", after=["d1"])]
    return tasks


def tasks_of(db: firestore.Client, run: str) -> Tasks:
    found = db.collection_group("tasks").where(
        filter=firestore.FieldFilter("data.run", "==", run)).stream()
    return {snapshot.reference.path: snapshot.to_dict() | {"version": snapshot.update_time}
            for snapshot in found}


def settle(db: firestore.Client, run: str, report: dict[str, Any],
           done: Callable[[Tasks], bool]) -> Tasks:
    """Poll until `done(tasks)`; each time nothing changed for IDLE seconds, sweep as the
    scheduled sweeper would once STALE_AFTER passed (crashed attempts, lost events)."""
    seen, quiet, deadline = None, time.monotonic(), time.monotonic() + DEADLINE
    while True:
        tasks = tasks_of(db, run)
        if done(tasks):
            return tasks
        assert time.monotonic() < deadline, collections.Counter(t["state"] for t in tasks.values())
        versions = {path: task["version"] for path, task in tasks.items()}
        if versions != seen:
            seen, quiet = versions, time.monotonic()
        elif time.monotonic() - quiet > IDLE:
            stale = datetime.datetime.now(datetime.UTC) + STALE_AFTER + SECOND
            sweep(main.processor, db, collections=["tasks"], now=stale)
            report["sweeps"] += 1
            quiet = time.monotonic()
        time.sleep(0.5)


def final(tasks: Tasks) -> bool:
    return bool(tasks) and all(t["state"] in ("completed", "failed", "cancelled")
                               for t in tasks.values())


def key_of(path: str) -> str:
    return path.rsplit("/", 1)[1]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most of `spans` (start, end) open at one instant."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def check(db: firestore.Client, run: str, tasks: Tasks) -> dict[str, int]:
    """Every invariant, from the effects the handlers recorded: how many cases each checked."""
    runs = [snapshot.to_dict() for snapshot in db.collection(chaos.RUNS).where(
        filter=firestore.FieldFilter("run", "==", run)).stream()]
    per_attempt = collections.Counter((r["task"], r["attempt"]) for r in runs)
    counts: collections.Counter[str] = collections.Counter()
    for path, task in tasks.items():
        assert task["state"] == "completed", (path, task["state"], task.get("error"))
        counts["tasks completed"] += 1
        completed = [e["attempt"] for e in task.get("history", []) if e["outcome"] == "completed"]
        if task["action"] in CLAIMED:
            for attempt in range(1, task["attempts"] + 1):
                assert per_attempt[(path, attempt)] <= 1, (path, attempt)
                counts["claimed attempts run at most once"] += 1
            for attempt in completed:
                assert per_attempt[(path, attempt)] == 1, (path, attempt)
                counts["completed claimed attempts with one recorded run"] += 1
        if task["action"] == "atomic":
            effect = db.document(f"{chaos.EFFECTS}/{path.replace('/', '-')}").get().to_dict()
            assert (effect or {}).get("count") == len(completed) == 1, (path, effect)
            counts["atomic effects committed exactly once"] += 1
        if task["action"] == "spawn":
            children = [p for p, t in tasks.items() if t.get("spawnedBy") == key_of(path)
                        and p.rsplit("/", 1)[0] == path.rsplit("/", 1)[0]]
            assert len(children) == 1, (path, children)
            counts["spawned children existing once"] += 1
    for r in runs:
        if r["action"] == "claim" and r["task"].endswith("/join"):
            assert r["deps"] == ["completed"] * 3, r
            counts["joins run after their 3 dependencies"] += 1
    joins = [(path, task) for path, task in tasks.items() if path.endswith("/join")]
    for path, task in joins:  # once per attempt, and once to completion (claimed, above)
        assert all(per_attempt[(path, n)] <= 1 for n in range(1, task["attempts"] + 1)), path
    counts["joins completed by exactly one run"] = len(joins)
    counts["join runs of attempts a crash or a fault ended"] = sum(
        r["task"].endswith("/join") for r in runs) - len(joins)
    spans = [(r["start"], r["end"]) for r in runs if r["action"] == "limited" and "end" in r]
    assert most_at_once(spans) <= 2, most_at_once(spans)
    counts["limited runs (concurrency 2 held)"] = len(spans)
    for shop in range(4):
        keyed = [(r["start"], r["end"]) for r in runs
                 if r["action"] == "keyed" and r.get("key") == shop and "end" in r]
        assert most_at_once(keyed) <= 1, (shop, most_at_once(keyed))
        counts["keyed runs (concurrency 1 per key held)"] += len(keyed)
    starts = sorted(r["start"] for r in runs if r["action"] == "rated")
    worst = max((sum(s <= t < s + 1.0 for t in starts) for s in starts), default=0)
    assert worst <= 5, worst
    counts["rated starts (5/s held in every 1 s window)"] = len(starts)
    return dict(counts)


@contextlib.contextmanager
def chaos_on(db: firestore.Client) -> Any:
    for snapshot in db.collection(chaos.FAULTS).stream():
        snapshot.reference.delete()
    db.document(chaos.CONFIG).set(SHARES | {"fixed": False})
    try:
        yield
    finally:
        db.document(chaos.CONFIG).delete()


def test_a_burst_under_faults_loses_nothing_and_doubles_no_effect(db, uid):
    report: dict[str, Any] = {"tasks enqueued": 0, "orders enqueued with events dropped": 0,
                              "sweeps": 0}
    started = time.monotonic()
    with chaos_on(db):
        for n in itertools.count():
            if report["tasks enqueued"] >= CHAOS_TASKS:
                break
            tasks = order(n, uid)
            dropped = n % DROPPED == 1
            with events_lost() if dropped else contextlib.nullcontext():
                create_with_tasks(db.document(f"chaosOrders/{uid}-{n}"), {"run": uid}, tasks)
            report["tasks enqueued"] += len(tasks)
            report["orders enqueued with events dropped"] += dropped
        tasks = settle(db, uid, report, final)
        failed = {key_of(p) for p, t in tasks.items() if t["state"] != "completed"}
        assert failed <= CASCADE, failed
        report["seconds to the first quiescence"] = round(time.monotonic() - started, 1)
        db.document(chaos.CONFIG).update({"fixed": True})
        for path in (p for p in tasks if key_of(p) == "cause"):
            operations.retry(db.document(path))
        tasks = settle(db, uid, report, lambda found: final(found) and all(
            t["state"] == "completed" for t in found.values()))
        report["seconds to quiescence"] = round(time.monotonic() - started, 1)
    report["faults injected"] = dict(collections.Counter(
        snapshot.get("kind") for snapshot in db.collection(chaos.FAULTS).stream()))
    report["invariants"] = check(db, uid, tasks)
    drained(db, timeout=600)  # the run's last echoes and wake-ups, before the next test's
    print("chaos report:", json.dumps(report, indent=2))
    if os.environ.get("FIRETASKS_CHAOS_REPORT"):
        with open(os.environ["FIRETASKS_CHAOS_REPORT"], "w") as out:
            json.dump(report, out, indent=2)
