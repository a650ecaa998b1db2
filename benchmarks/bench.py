"""Throughput, latency and cost per task: firetasks' claim and atomic modes beside the source
design's naive processor.

Run by `make bench` inside the emulator suite, with FIRETASKS_TESTING=1 (the baseline function and
the workloads) and FIRETASKS_METER_FILE (each invocation's Firestore reads and writes, times and
CPU time, and each handler's start, written by functions/testing/meter.py). The three systems run
the same handler bodies (functions/testing/workloads.py), one after the other, each run drained
before the next starts (benchmarks/measure.py). In each repetition naive runs before and after each
firetasks mode (naive, claim, naive, atomic, naive, then atomic, naive, claim, naive: the modes'
order rotates, and a repetition's last naive run begins the next), and a mode's ratios are taken
against the mean of the two naive runs beside it: the machine's speed drifts within a bench (other
tenants of its host), and neighbours share it. Each figure is printed as its run ends and the JSON
is rewritten after each repetition, so an interrupted benchmark keeps what it measured. The run
fails (exit 1) when a ratio's range is wider than ±15 % of its median (benchmarks/report.py):
noisy figures are flagged, not published.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

from google.cloud import firestore  # noqa: E402
from measure import (  # noqa: E402
    SYSTEMS,
    Meter,
    Scenario,
    System,
    at,
    deployed_latency,
    drain,
    measure,
    trickle,
    wait_count,
)
from report import BESIDE, commit, line, machine, mean, noisy, summary, table  # noqa: E402

from shop.orders import ORDERS, create_order  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
LATENCY = Scenario("latency", 20, 20, "noop", "trigger latency at low load: 1 task a second "
                   "per system, 20 s", repeat=3)
SCENARIOS = {
    s.name: s for s in [
        Scenario("noop", 1000, 100, "noop", "no-op handler"),
        Scenario("mail", 1000, 100, "mail", "creates one mail document"),
        LATENCY,
        Scenario("work", 1000, 100, "work", "50 ms handler, 10% of runs fail"),
        Scenario("noop-5000", 5000, 500, "noop", "no-op handler, N = 5,000", repeat=3),
        Scenario("mail-5000", 5000, 500, "mail", "creates one mail document, N = 5,000",
                 repeat=3),
        Scenario("noop-20000", 20000, 2000, "noop", "no-op handler, N = 20,000", repeat=3),
    ]
}
DEFAULT = ["noop", "mail", "latency"]  # about 14 minutes on 2 cores; the others by name


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


# The durable scenario: what steps and a sleep add to a claim-mode task (firetasks.steps).
DURABLE = [
    (Scenario("no steps", 300, 30, "noop", "no-op handler"),
     System("claim", "tasks", "bench", "firetasks")),
    (Scenario("3 steps", 300, 30, "steps", "three steps of no work"),
     System("durable", "tasks", "benchDurable", "firetasks")),
    (Scenario("1 sleep", 300, 30, "sleep", "one sleep of 1 s"),
     System("durable", "tasks", "benchDurable", "firetasks")),
]


def measure_rows(db: firestore.Client, meter: Meter,
                 rows: list[tuple[Scenario, System]]) -> list[dict]:
    """The limited or durable scenario: each row's figures, firetasks only."""
    return [{"limit": scenario.name, "action": scenario.action}
            | measure(db, meter, scenario, system) for scenario, system in rows]


WORKFLOW_ORDERS = 200


def measure_workflow(db: firestore.Client, meter: Meter, orders: int = WORKFLOW_ORDERS) -> dict:
    """The shop's order flow (charge -> email, processing -> ship) for `orders` orders placed at
    once: its cost per task, and the time from the first create to the last `completed`."""
    run = uuid.uuid4().hex[:8]
    offset, started = meter.offset(), time.time()
    ids = [f"bench-{run}-{n:04}" for n in range(orders)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda id: create_order(db, id, email="ada@example.com", items=["tea"]),
                      ids))
    ships = [db.document(f"{ORDERS}/{id}/tasks/ship") for id in ids]

    def shipped() -> int:
        return sum(s.get("state") == "completed" for s in db.get_all(ships))

    wait_count(f"workflow: all {orders} orders shipped", shipped, orders, 600,
               "workflow   orders shipped")
    last = max(s.update_time for s in db.get_all(ships))  # get_all's times are datetimes
    drain(db, meter, SYSTEMS[1])
    invocations = [entry for entry in meter.since(offset)
                   if entry["fn"] == "firetasks" and f"bench-{run}-" in (entry["doc"] or "")]
    tasks = orders * 4
    return {
        "orders": orders,
        "tasks": tasks,
        "seconds": round(last.timestamp() - started, 3),
        "invocations_per_task": round(len(invocations) / tasks, 3),
        "reads_per_task": round(sum(i["reads"] for i in invocations) / tasks, 3),
        "writes_per_task": round(sum(i["writes"] for i in invocations) / tasks, 3),
    }


def run_scenario(db: firestore.Client, meter: Meter, scenario: Scenario, repetition: int,
                 before: dict[str, float] | None = None) -> tuple[dict[str, dict], dict | None]:
    """One repetition: every system, the modes in an order rotated by the repetition's number,
    naive before and after each mode (`before`: the naive run that ended the previous repetition
    begins this one), unless the systems run side by side (latency). Its figures, and its last
    naive run's."""
    baseline, modes = SYSTEMS[0], SYSTEMS[1:]
    modes = modes[repetition % len(modes):] + modes[:repetition % len(modes)]
    if scenario is LATENCY:  # the systems side by side: their figures come together
        run = trickle(db, meter, scenario, [baseline, *modes])
        for name, figures in run.items():
            print(line(name, scenario.name, figures), flush=True)
        return {system.name: run[system.name] for system in SYSTEMS}, None

    def timed(system: System) -> dict[str, float]:
        figures = measure(db, meter, scenario, system)
        print("\r" + line(system.name, scenario.name, figures), flush=True)
        return figures

    naive, run, beside = [before or timed(baseline)], {}, {}
    for mode in modes:
        run[mode.name] = timed(mode)
        naive.append(timed(baseline))
        beside[mode.name] = mean(naive[-2:])
    in_order = {mode.name: run[mode.name] for mode in SYSTEMS[1:]}  # the table's columns' order
    return {baseline.name: mean(naive), **in_order, BESIDE: beside}, naive[-1]


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*",
                        choices=[*SCENARIOS, "workflow", "limited", "durable", []],
                        help=f"default: {' '.join(DEFAULT)}")
    parser.add_argument("--out", type=Path, help="JSON file (default: results/<commit>.json)")
    parser.add_argument("--repeat", type=int,
                        help="runs of each scenario (default: 5, or 3 for the large ones)")
    parser.add_argument("--project", help="a deployed project: measure the trigger latency of "
                        "--handler there (credentials: gcloud auth application-default login)")
    parser.add_argument("--handler", help="with --project: a quick handler of that project's, as "
                        "type.action")
    args = parser.parse_args(argv)
    if args.project and not args.handler:
        parser.error("--project needs --handler type.action: a quick handler of that project's")
    if args.project:
        figures = deployed_latency(firestore.Client(project=args.project), args.handler, 60)
        print(f"{args.project} {args.handler}, 1 task a second, create to start: {figures}")
        return
    meter_file = os.environ.get("FIRETASKS_METER_FILE")
    if not meter_file or not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        raise SystemExit("bench: run it with `make bench` (it needs the emulators and the meter)")
    db = firestore.Client(project=os.environ.get("GCLOUD_PROJECT", "demo-firetasks"))
    meter = Meter(Path(meter_file))
    # Untimed: the functions' workers start and the emulators' JIT warms up (docs/benchmarks.md).
    warmup = Scenario("warm-up", 1000, 100, "noop", "")
    for system in SYSTEMS:
        measure(db, meter, warmup, system)
    report: dict = {"commit": commit(ROOT), "at": at(), "machine": machine(ROOT),
                    "scenarios": {}, "results": {}, "runs": {}, "workflow": [], "limited": [],
                    "durable": []}
    out = args.out or RESULTS / f"{report['commit']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.scenarios or DEFAULT:
        scenario = SCENARIOS.get(name, Scenario(name, 0, 0, "", "", repeat=3))
        repeat, last = args.repeat or scenario.repeat, None
        for repetition in range(repeat):
            print(f"{name}: run {repetition + 1} of {repeat}: {scenario.about or name}")
            if name in ("limited", "durable"):
                report[name].append(
                    measure_rows(db, meter, LIMITED if name == "limited" else DURABLE))
            elif name == "workflow":
                report["workflow"].append(measure_workflow(db, meter))
            else:
                report["scenarios"][name] = scenario.__dict__
                figures, last = run_scenario(db, meter, scenario, repetition, last)
                report["runs"].setdefault(name, []).append(figures)
                report["results"][name] = summary(report["runs"][name])
            out.write_text(json.dumps(report, indent=2) + "\n")  # what is measured so far
    print("\n" + table(report["results"]))
    if report["workflow"]:
        print("\nworkflow (median of runs): " + ", ".join(
            f"{figure} {statistics.median(run[figure] for run in report['workflow'])}"
            for figure in ["seconds", "invocations_per_task", "reads_per_task",
                           "writes_per_task"]))
    rows = [(kind, run) for kind in ("limited", "durable") for run in report[kind]]
    for kind, run in rows:
        print(f"\n{kind}: " + "; ".join(
            f"{row['action']} {row['limit']}: {row['throughput']}/s, invocations "
            f"{row['invocations_per_task']}, reads {row['reads_per_task']}, writes "
            f"{row['writes_per_task']} per task" for row in run))
    report["noisy"] = noisy(report["results"])
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nmachine: {report['machine']}\nwritten to {out}")
    if report["noisy"]:
        raise SystemExit("bench: ratios too noisy to publish (range beyond ±15 % of the "
                         "median):\n  " + "\n  ".join(report["noisy"]))


if __name__ == "__main__":
    main()
