"""Throughput, latency and cost per task: firetasks beside the source design's naive processor.

Run by `make bench` inside the emulator suite, with FIRETASKS_TESTING=1 (the baseline function and
the workloads) and FIRETASKS_METER_FILE (each invocation's Firestore reads and writes, counted by
functions/testing/meter.py). Both systems run the same handlers, in the same run, one after the
other; each writes its tasks in batches of one parent's tasks and is timed from its first write to
its last terminal state.
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

SYSTEMS = {"naive": "naiveTasks", "firetasks": "tasks"}  # system -> its tasks subcollection
FINAL = ["completed", "failed"]
RESULTS = ROOT / "benchmarks" / "results"


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
        Scenario("noop-5000", 5000, 500, "noop", "no-op handler, N = 5,000"),
    ]
}


class Meter:
    """Reads the lines the functions append to the meter file, from a starting offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def offset(self) -> int:
        return self.path.stat().st_size

    def settle(self, quiet: float = 2.0, deadline: float = 60.0) -> None:
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


def enqueue(db: firestore.Client, scenario: Scenario, system: str, run: str) -> None:
    per_parent = scenario.tasks // scenario.parents
    parents = [db.collection(f"bench-{run}").document(f"{system}-{n:04}")
               for n in range(scenario.parents)]
    specs = [NewTask("bench", scenario.action, {"run": run}) for _ in range(per_parent)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda parent: add_tasks(parent, specs, collection=SYSTEMS[system]),
                      parents))


def finished(db: firestore.Client, system: str, run: str) -> int:
    query = (db.collection_group(SYSTEMS[system])
             .where(filter=firestore.FieldFilter("data.run", "==", run))
             .where(filter=firestore.FieldFilter("state", "in", FINAL)))
    return query.count().get()[0][0].value


def measure(db: firestore.Client, meter: Meter, scenario: Scenario, system: str) -> dict:
    run = uuid.uuid4().hex[:8]
    offset = meter.offset()
    started = datetime.datetime.now(datetime.UTC)
    enqueue(db, scenario, system, run)
    deadline = time.monotonic() + 60 + scenario.tasks / 5
    while (done := finished(db, system, run)) < scenario.tasks:
        print(f"\r  {system:9} {scenario.name:10} {done:5}/{scenario.tasks}", end="", flush=True)
        if time.monotonic() > deadline:
            raise SystemExit(f"\n{system} {scenario.name}: only {done} tasks finished in time")
        time.sleep(0.5)
    print(f"\r  {system:9} {scenario.name:10} {scenario.tasks:5}/{scenario.tasks} done",
          flush=True)
    snapshots = list(db.collection_group(SYSTEMS[system])
                     .where(filter=firestore.FieldFilter("data.run", "==", run)).stream())
    meter.settle()
    invocations = meter.since(offset, system)
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


def _percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


FIGURES = ["throughput", "p50_ms", "p95_ms", "p99_ms", "invocations_per_task", "reads_per_task",
           "writes_per_task"]


def table(results: dict[str, dict[str, dict]]) -> str:
    rows = [f"{'scenario':10} {'figure':22} {'naive':>10} {'firetasks':>10} {'ratio':>7}"]
    for name, systems in results.items():
        for figure in ["completed", *FIGURES]:
            naive, ours = systems["naive"][figure], systems["firetasks"][figure]
            ratio = f"{ours / naive:.2f}" if naive else "-"
            rows.append(f"{name:10} {figure:22} {naive:>10} {ours:>10} {ratio:>7}")
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
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []],
                        help="default: all of them")
    parser.add_argument("--out", type=Path, help="JSON file (default: results/<commit>.json)")
    args = parser.parse_args(argv)
    meter_file = os.environ.get("FIRETASKS_METER_FILE")
    if not meter_file or not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        raise SystemExit("bench: run it with `make bench` (it needs the emulators and the meter)")
    db = firestore.Client(project=os.environ.get("GCLOUD_PROJECT", "demo-firetasks"))
    meter = Meter(Path(meter_file))
    warmup = Scenario("warm-up", 40, 4, "noop", "")
    for system in SYSTEMS:  # start the functions' workers before timing anything
        measure(db, meter, warmup, system)
    results: dict[str, dict[str, dict]] = {}
    names = args.scenarios or list(SCENARIOS)
    for name in names:
        scenario = SCENARIOS[name]
        print(f"{name}: {scenario.tasks} tasks over {scenario.parents} parents, {scenario.about}")
        results[name] = {system: measure(db, meter, scenario, system) for system in SYSTEMS}
    report = {"commit": commit(), "at": datetime.datetime.now(datetime.UTC).isoformat(),
              "machine": machine(), "scenarios": {n: SCENARIOS[n].__dict__ for n in results},
              "results": results}
    out = args.out or RESULTS / f"{report['commit']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + table(results))
    print(f"\nmachine: {report['machine']}\nwritten to {out}")


if __name__ == "__main__":
    main()
