"""One system through one scenario on the emulator suite, and what it cost, read from the meter.

Every run ends with a drain: a sentinel task of the same system, written once the run's tasks are
final, must complete and its own echo (the invocation its terminal write causes) must be seen
before the next run starts. The Functions emulator works through a function's events about in
order, so the sentinel's echo comes after every event the run caused: the next system starts on an
idle emulator, and the run's quiescence (its last invocation's end) is known. A drain that does not
finish fails the benchmark loudly; it never gives up silently.
"""

from __future__ import annotations

import datetime
import json
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud import firestore

from firetasks import NewTask, add_tasks

FINAL = ["completed", "failed"]
DRAIN_TIMEOUT = 600.0  # seconds; a 20,000-task claim-mode echo tail takes a few minutes


@dataclass(frozen=True)
class System:
    name: str
    collection: str  # its tasks subcollection
    type: str  # its tasks' type: which registration of the workloads runs them
    fn: str  # the meter's name for its invocations


SYSTEMS = [
    System("naive", "naiveTasks", "bench", "naive"),
    System("claim", "tasks", "bench", "firetasks"),
    System("atomic", "tasks", "benchAtomic", "firetasks"),
]


@dataclass(frozen=True)
class Scenario:
    name: str
    tasks: int
    parents: int
    action: str
    about: str
    repeat: int = 5  # repetitions by default: 3 for the large ones and for latency


class Meter:
    """Reads the lines the functions append to the meter file (functions/testing/meter.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def offset(self) -> int:
        return self.path.stat().st_size

    def since(self, offset: int) -> list[dict[str, Any]]:
        """The entries appended since `offset`; a line still being appended (no newline yet, or
        bytes not yet copied in, read as NULs) is left for the next read."""
        with self.path.open() as lines:
            lines.seek(offset)
            return [json.loads(line) for line in lines
                    if line.endswith("\n") and line.startswith("{")]


def wait(what: str, done: Callable[[], bool], timeout: float, every: float = 0.2) -> None:
    """Poll `done` every `every` seconds until it holds; raise SystemExit naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"\nbench: {what} did not happen within {timeout:.0f} s")
        time.sleep(every)


def wait_count(what: str, count: Callable[[], int], target: int, timeout: float,
               label: str) -> None:
    """Poll `count` until it reaches `target`, printing the progress `label n/target`: once a
    second, once in 10 s at 20,000 tasks. One query a poll, as few as will do: the emulator
    answers it by scanning every task it has held (docs/benchmarks.md), which loads the system
    being measured; the figures come from the documents' times, not from the polls."""

    def done() -> bool:
        n = count()
        print(f"\r  {label} {n:5}/{target}", end="", flush=True)
        return n >= target

    wait(what, done, timeout, every=max(1.0, target / 2000))


def add(db: firestore.Client, parent: str, system: System, action: str, run: str,
        n: int) -> list[firestore.DocumentReference]:
    specs = [NewTask(system.type, action, {"run": run}) for _ in range(n)]
    return add_tasks(db.document(parent), specs, collection=system.collection)


def tasks(db: firestore.Client, system: System, run: str) -> firestore.Query:
    """The run's tasks of `system` (claim and atomic share a collection, not a type)."""
    return (db.collection_group(system.collection)
            .where(filter=firestore.FieldFilter("data.run", "==", run))
            .where(filter=firestore.FieldFilter("type", "==", system.type)))


def finished(db: firestore.Client, system: System, run: str) -> int:
    query = tasks(db, system, run).where(filter=firestore.FieldFilter("state", "in", FINAL))
    return int(query.count().get()[0][0].value)


def drain(db: firestore.Client, meter: Meter, system: System) -> None:
    """Wait until `system` has worked through every event so far (see the module's docstring)."""
    offset = meter.offset()
    parent = f"benchDrain/{system.name}-{uuid.uuid4().hex[:8]}"
    [ref] = add(db, parent, system, "noop", "drain", 1)
    final: list[float] = []

    def echoed() -> bool:
        if not final:
            snapshot = ref.get()
            if snapshot.get("state") not in FINAL:
                return False
            final.append(seconds(snapshot.update_time))
        return any(entry["fn"] == system.fn and entry["doc"] == ref.path
                   and entry["start"] >= final[0] for entry in meter.since(offset))

    wait(f"the drain of {system.name} (sentinel {ref.path} and its echo)", echoed, DRAIN_TIMEOUT)


def seconds(time: Any) -> float:
    """A snapshot's create or update time as epoch seconds: a query's are protobuf Timestamps,
    a get's are datetimes."""
    return float(time.timestamp() if isinstance(time, datetime.datetime)
                 else time.ToDatetime(tzinfo=datetime.UTC).timestamp())


def _percentile(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def _latencies(prefix: str, values: list[float]) -> dict[str, float]:
    return {f"{prefix}p{p}_ms": round(_percentile(sorted(values), p), 1) for p in (50, 95, 99)}


def figures(db: firestore.Client, meter: Meter, system: System, run: str, offset: int,
            started: float) -> dict[str, float]:
    """The run's figures, once drained: both clocks, latencies, cost per task."""
    snapshots = list(tasks(db, system, run).stream())
    entries = [entry for entry in meter.since(offset)
               if f"/{run}-{system.name}-" in (entry["doc"] or "")]
    invocations = [entry for entry in entries if entry["fn"] == system.fn]
    starts: dict[str, float] = {}
    for entry in entries:
        if entry["fn"] == "handler":
            starts.setdefault(entry["doc"], entry["at"])
    created = {s.reference.path: seconds(s.create_time) for s in snapshots}
    ends = [seconds(s.update_time) for s in snapshots]
    last, quiet = max(ends), max(entry["end"] for entry in invocations)
    n = len(snapshots)
    cpu = sum(entry["cpu_ms"] for entry in invocations)
    by_event: dict[str, list[float]] = {}  # the CPU profile: create events apart from echoes
    for entry in invocations:
        by_event.setdefault(entry["event"], []).append(entry["cpu_ms"])
    return {
        "tasks": n,
        "completed": sum(s.get("state") == "completed" for s in snapshots),
        "seconds": round(last - started, 3),
        "throughput": round(n / (last - started), 1),
        "throughput_quiet": round(n / (quiet - started), 1),
        **_latencies("", [(end - created[s.reference.path]) * 1000
                          for s, end in zip(snapshots, ends, strict=True)]),
        **(_latencies("start_", [(at - created[path]) * 1000 for path, at in starts.items()])
           if starts else {}),
        "invocations_per_task": round(len(invocations) / n, 3),
        "reads_per_task": round(sum(entry["reads"] for entry in invocations) / n, 3),
        "writes_per_task": round(sum(entry["writes"] for entry in invocations) / n, 3),
        "cpu_ms_per_invocation": round(cpu / len(invocations), 2),
        "cpu_ms_per_task": round(cpu / n, 2),
        **{f"cpu_ms_per_{event}": round(statistics.mean(values), 2)
           for event, values in by_event.items() if event in ("create", "update")},
    }


def measure(db: firestore.Client, meter: Meter, scenario: Scenario, system: System) -> dict:
    """Write the scenario's tasks at once (a batch per parent), wait for them, drain."""
    run = uuid.uuid4().hex[:8]
    offset, started = meter.offset(), time.time()
    per_parent = scenario.tasks // scenario.parents
    parents = [f"bench-{run}/{run}-{system.name}-{n:04}" for n in range(scenario.parents)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(
            lambda parent: add(db, parent, system, scenario.action, run, per_parent), parents))
    wait_count(f"{system.name} {scenario.name}: all {scenario.tasks} tasks final",
               lambda: finished(db, system, run), scenario.tasks, 120 + scenario.tasks / 5,
               f"{system.name:7} {scenario.name:10}")
    drain(db, meter, system)
    return figures(db, meter, system, run, offset, started)


def trickle(db: firestore.Client, meter: Meter, scenario: Scenario,
            systems: list[System]) -> dict[str, dict]:
    """Trigger latency at low load: one task a second for each system, side by side, each
    system's write at its own fraction of the second (so none queues behind another's),
    `scenario.tasks` seconds; then each system's figures, latencies and cost (the throughput
    of a trickle is its rate: left out)."""
    run = uuid.uuid4().hex[:8]
    offset, started = meter.offset(), time.time()
    for second in range(scenario.tasks):
        for n, system in enumerate(systems):
            time.sleep(max(0.0, started + second + n / len(systems) - time.time()))  # the load
            add(db, f"bench-{run}/{run}-{system.name}-{second:04}", system, scenario.action,
                run, 1)
    for system in systems:
        wait(f"{system.name} {scenario.name}: all {scenario.tasks} tasks final",
             lambda system=system: finished(db, system, run) == scenario.tasks, 120)
        drain(db, meter, system)
    return {system.name: {name: value for name, value
                          in figures(db, meter, system, run, offset, started).items()
                          if not name.startswith("throughput")} for system in systems}


def deployed_latency(db: firestore.Client, handler: str, tasks: int) -> dict[str, float]:
    """Trigger latency in a deployed project, from the task documents alone: one task of
    `handler` (type.action, any quick handler of the project's) a second, `tasks` of them; each
    task's `startedAt` (its attempt's start, written by firetasks) minus its create time."""
    type_, _, action = handler.partition(".")
    run = uuid.uuid4().hex[:8]
    refs, started = [], time.time()
    for second in range(tasks):
        refs += add_tasks(db.document(f"benchLatency/{run}"), [NewTask(type_, action, {})])
        time.sleep(max(0.0, started + second + 1 - time.time()))  # the load: 1 task a second
    wait(f"{handler}: all {tasks} tasks final",
         lambda: all(s.get("state") in FINAL for s in db.get_all(refs)), 300)
    snapshots = list(db.get_all(refs))
    return _latencies("start_", [(s.get("startedAt").timestamp() - seconds(s.create_time))
                                 * 1000 for s in snapshots])


def at() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()
