"""Throughput, latency and cost per task: firetasks' claim and atomic modes beside the source
design's naive processor.

Run by `make bench` inside the emulator suite, with FIRETASKS_TESTING=1 (the baseline function and
the workloads) and FIRETASKS_METER_FILE (each invocation's Firestore reads and writes, counted by
functions/testing/meter.py). The three systems run the same handler bodies (functions/testing/
workloads.py), in the same run, one after the other, in an order that rotates from one repetition
to the next; each writes its tasks in batches of one parent's tasks and is timed from its first
write to its last terminal state. Each scenario runs `--repeat` times (3 by default); the table
gives the median of each figure and of each ratio to naive, and the ratio's range.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

from google.cloud import firestore  # noqa: E402

from firetasks import NewTask, add_tasks  # noqa: E402
from shop.orders import ORDERS, create_order  # noqa: E402

FINAL = ["completed", "failed"]
RESULTS = ROOT / "benchmarks" / "results"


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


SCENARIOS = {
    s.name: s for s in [
        Scenario("noop", 1000, 100, "noop", "no-op handler"),
        Scenario("work", 1000, 100, "work", "50 ms handler, 10% of runs fail"),
        Scenario("mail", 1000, 100, "mail", "creates one mail document"),
        Scenario("noop-5000", 5000, 500, "noop", "no-op handler, N = 5,000"),
        Scenario("mail-5000", 5000, 500, "mail", "creates one mail document, N = 5,000"),
    ]
}


class Meter:
    """Reads the lines the functions append to the meter file, from a starting offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def offset(self) -> int:
        return self.path.stat().st_size

    def settle(self, quiet: float = 5.0, deadline: float = 90.0) -> None:
        """Wait until no invocation has ended for `quiet` seconds: the last ones are the
        processor's own writes echoing back through the trigger."""
        limit = time.monotonic() + deadline
        size, since = self.offset(), time.monotonic()
        while time.monotonic() - since < quiet and time.monotonic() < limit:
            time.sleep(0.2)
            if self.offset() != size:
                size, since = self.offset(), time.monotonic()

    def since(self, offset: int, fn: str) -> list[dict]:
        with self.path.open() as lines:
            lines.seek(offset)
            return [entry for line in lines if (entry := json.loads(line))["fn"] == fn]


def enqueue(db: firestore.Client, scenario: Scenario, system: System, run: str) -> None:
    per_parent = scenario.tasks // scenario.parents
    parents = [db.collection(f"bench-{run}").document(f"{system.name}-{n:04}")
               for n in range(scenario.parents)]
    specs = [NewTask(system.type, scenario.action, {"run": run}) for _ in range(per_parent)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda parent: add_tasks(parent, specs, collection=system.collection),
                      parents))


def finished(db: firestore.Client, system: System, run: str) -> int:
    query = (db.collection_group(system.collection)
             .where(filter=firestore.FieldFilter("data.run", "==", run))
             .where(filter=firestore.FieldFilter("state", "in", FINAL)))
    return query.count().get()[0][0].value


def measure(db: firestore.Client, meter: Meter, scenario: Scenario, system: System) -> dict:
    run = uuid.uuid4().hex[:8]
    offset = meter.offset()
    started = datetime.datetime.now(datetime.UTC)
    enqueue(db, scenario, system, run)
    deadline = time.monotonic() + 60 + scenario.tasks / 5
    while (done := finished(db, system, run)) < scenario.tasks:
        print(f"\r  {system.name:7} {scenario.name:10} {done:5}/{scenario.tasks}", end="",
              flush=True)
        if time.monotonic() > deadline:
            raise SystemExit(f"\n{system.name} {scenario.name}: only {done} tasks finished in time")
        time.sleep(0.5)
    print(f"\r  {system.name:7} {scenario.name:10} {scenario.tasks:5}/{scenario.tasks} done",
          flush=True)
    snapshots = list(db.collection_group(system.collection)
                     .where(filter=firestore.FieldFilter("data.run", "==", run)).stream())
    meter.settle()
    invocations = meter.since(offset, system.fn)
    ends = [s.update_time.ToDatetime(tzinfo=datetime.UTC) for s in snapshots]
    latencies = sorted(
        (end - s.create_time.ToDatetime(tzinfo=datetime.UTC)).total_seconds() * 1000
        for s, end in zip(snapshots, ends, strict=True))
    n = len(snapshots)
    return {
        "tasks": n,
        "completed": sum(s.get("state") == "completed" for s in snapshots),
        "seconds": round((max(ends) - started).total_seconds(), 3),
        "throughput": round(n / (max(ends) - started).total_seconds(), 1),
        "p50_ms": round(_percentile(latencies, 50), 1),
        "p95_ms": round(_percentile(latencies, 95), 1),
        "p99_ms": round(_percentile(latencies, 99), 1),
        "invocations_per_task": round(len(invocations) / n, 3),
        "reads_per_task": round(sum(i["reads"] for i in invocations) / n, 3),
        "writes_per_task": round(sum(i["writes"] for i in invocations) / n, 3),
    }


# The limited scenario: the same workloads unlimited (claim mode) and limited (firetasks.limits,
# handlers in functions/testing/workloads.py), throughput against the limit and the extra cost.
LIMITED = [
    (Scenario("unlimited", 300, 30, "work", "50 ms handler, no limit"),
     System("claim", "tasks", "bench", "firetasks")),
    (Scenario("concurrency=10", 300, 30, "work", "50 ms handler, at most 10 at once"),
     System("limited", "tasks", "benchLimited", "firetasks")),
    (Scenario("unlimited", 300, 30, "noop", "no-op handler, no limit"),
     System("claim", "tasks", "bench", "firetasks")),
    (Scenario("rate=20/s", 300, 30, "noop", "no-op handler, at most 20 starts a second"),
     System("limited", "tasks", "benchLimited", "firetasks")),
    (Scenario("concurrency=1 per key", 300, 30, "work",
              "50 ms handler, one at a time per parent (30 keys)"),
     System("perKey", "tasks", "benchPerKey", "firetasks")),
]


def measure_limited(db: firestore.Client, meter: Meter) -> list[dict]:
    return [{"limit": scenario.name, "action": scenario.action}
            | measure(db, meter, scenario, system) for scenario, system in LIMITED]


WORKFLOW_ORDERS = 200


def measure_workflow(db: firestore.Client, meter: Meter, orders: int = WORKFLOW_ORDERS) -> dict:
    """The shop's order flow (charge -> email, processing -> ship) for `orders` orders placed at
    once: its cost per task, and the time from the first create to the last `completed`."""
    run = uuid.uuid4().hex[:8]
    offset = meter.offset()
    started = datetime.datetime.now(datetime.UTC)
    ids = [f"bench-{run}-{n:04}" for n in range(orders)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda id: create_order(db, id, email="ada@example.com", items=["tea"]),
                      ids))
    ships = [db.document(f"{ORDERS}/{id}/tasks/ship") for id in ids]
    deadline = time.monotonic() + 600
    while (done := sum(s.get("state") == "completed" for s in db.get_all(ships))) < orders:
        print(f"\r  workflow   {done:5}/{orders} orders shipped", end="", flush=True)
        if time.monotonic() > deadline:
            raise SystemExit(f"\nworkflow: only {done} orders shipped in time")
        time.sleep(0.5)
    last = max(s.update_time for s in db.get_all(ships))  # get_all's times are datetimes
    print(f"\r  workflow   {orders:5}/{orders} orders shipped", flush=True)
    meter.settle()
    invocations = meter.since(offset, "firetasks")
    tasks = orders * 4
    return {
        "orders": orders,
        "tasks": tasks,
        "seconds": round((last - started).total_seconds(), 3),
        "invocations_per_task": round(len(invocations) / tasks, 3),
        "reads_per_task": round(sum(i["reads"] for i in invocations) / tasks, 3),
        "writes_per_task": round(sum(i["writes"] for i in invocations) / tasks, 3),
    }


def _percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


FIGURES = ["completed", "throughput", "p50_ms", "p95_ms", "p99_ms", "invocations_per_task",
           "reads_per_task", "writes_per_task"]


def summary(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """Per figure: each system's median over the runs, and each ratio to naive's median and
    range (ratios taken within a run, where the machine's state was the same for all)."""
    figures: dict[str, dict] = {}
    for figure in FIGURES:
        row: dict[str, object] = {}
        for system in SYSTEMS:
            row[system.name] = statistics.median(run[system.name][figure] for run in runs)
            if system.name != "naive":
                ratios = [run[system.name][figure] / run["naive"][figure]
                          for run in runs if run["naive"][figure]]
                if ratios:
                    row[f"{system.name}/naive"] = {"median": round(statistics.median(ratios), 2),
                                                   "min": round(min(ratios), 2),
                                                   "max": round(max(ratios), 2)}
        figures[figure] = row
    return figures


def table(results: dict[str, dict[str, dict]]) -> str:
    """The summaries as a Markdown table: medians, and ratios as `median (min-max)`."""
    columns = [system.name for system in SYSTEMS]
    ratios = [f"{name}/naive" for name in columns[1:]]
    rows = ["| scenario | figure | " + " | ".join([*columns, *ratios]) + " |",
            "|---|---|" + "---:|" * (len(columns) + len(ratios))]
    for name, figures in results.items():
        for figure, row in figures.items():
            cells = [str(round(row[column], 3)) for column in columns]
            cells += [f"{row[r]['median']:.2f} ({row[r]['min']:.2f}-{row[r]['max']:.2f})"
                      if r in row else "-" for r in ratios]
            rows.append(f"| {name} | {figure} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def machine() -> dict:
    firebase = json.loads((ROOT / "node_modules/firebase-tools/package.json").read_text())
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "firebase_tools": firebase["version"],
        "emulated": True,
    }


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, "workflow", "limited", []],
                        help="default: all of them")
    parser.add_argument("--out", type=Path, help="JSON file (default: results/<commit>.json)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each scenario (default 3)")
    args = parser.parse_args(argv)
    meter_file = os.environ.get("FIRETASKS_METER_FILE")
    if not meter_file or not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        raise SystemExit("bench: run it with `make bench` (it needs the emulators and the meter)")
    db = firestore.Client(project=os.environ.get("GCLOUD_PROJECT", "demo-firetasks"))
    meter = Meter(Path(meter_file))
    warmup = Scenario("warm-up", 40, 4, "noop", "")
    for system in SYSTEMS:  # start the functions' workers before timing anything
        measure(db, meter, warmup, system)
    runs: dict[str, list[dict[str, dict]]] = {}
    names = args.scenarios or [*SCENARIOS, "workflow", "limited"]
    workflow = []
    limited: list[list[dict]] = []
    for name in names:
        if name == "limited":
            print("limited: 300 tasks per limit, unlimited and limited, firetasks only")
            limited = [measure_limited(db, meter) for _ in range(args.repeat)]
            continue
        if name == "workflow":
            print(f"workflow: {WORKFLOW_ORDERS} orders of the shop's 4-task flow, firetasks only")
            workflow = [measure_workflow(db, meter) for _ in range(args.repeat)]
            continue
        scenario = SCENARIOS[name]
        print(f"{name}: {scenario.tasks} tasks over {scenario.parents} parents, {scenario.about}")
        for repetition in range(args.repeat):
            print(f" run {repetition + 1} of {args.repeat}")
            order = SYSTEMS[repetition % len(SYSTEMS):] + SYSTEMS[:repetition % len(SYSTEMS)]
            runs.setdefault(name, []).append(
                {system.name: measure(db, meter, scenario, system) for system in order})
    results = {name: summary(scenario_runs) for name, scenario_runs in runs.items()}
    report = {"commit": commit(), "at": datetime.datetime.now(datetime.UTC).isoformat(),
              "machine": machine(), "scenarios": {n: SCENARIOS[n].__dict__ for n in results},
              "repeat": args.repeat, "results": results, "runs": runs, "workflow": workflow,
              "limited": limited}
    out = args.out or RESULTS / f"{report['commit']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + table(results))
    if workflow:
        print("\nworkflow (median of runs): " + ", ".join(
            f"{figure} {statistics.median(run[figure] for run in workflow)}"
            for figure in ["seconds", "invocations_per_task", "reads_per_task",
                           "writes_per_task"]))
    for run in limited:
        print("\nlimited: " + "; ".join(
            f"{row['action']} {row['limit']}: {row['throughput']}/s, invocations "
            f"{row['invocations_per_task']}, reads {row['reads_per_task']}, writes "
            f"{row['writes_per_task']} per task" for row in run))
    print(f"\nmachine: {report['machine']}\nwritten to {out}")


if __name__ == "__main__":
    main()
