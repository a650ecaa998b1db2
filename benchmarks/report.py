"""The benchmark's figures summarised: medians over the runs, ratios to naive taken within each
repetition against the baseline runs beside the system's (where the machine's state was the same),
their ranges, and the ratios too noisy to publish."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

FIGURES = ["completed", "throughput", "throughput_quiet", "p50_ms", "p95_ms", "p99_ms",
           "start_p50_ms", "start_p95_ms", "start_p99_ms", "invocations_per_task",
           "reads_per_task", "writes_per_task", "cpu_ms_per_invocation", "cpu_ms_per_task",
           "cpu_ms_per_create", "cpu_ms_per_update"]
# Tail latencies (p95, p99) rest on a few tasks a run: their ratios are reported, not gated.
GATED = {"throughput", "throughput_quiet", "p50_ms", "start_p50_ms", "invocations_per_task",
         "reads_per_task", "writes_per_task", "cpu_ms_per_task"}
TOLERANCE = 0.15  # a gated ratio's range must lie within ±15 % of its median
BASELINE = "naive"
BESIDE = "beside"  # a repetition's baseline figures beside each system's run (bench.py)


def mean(runs: list[dict[str, float]]) -> dict[str, float]:
    """Several runs' figures, averaged figure by figure."""
    return {name: round(statistics.mean(run[name] for run in runs), 3) for name in runs[0]}


def baseline_of(repetition: dict[str, dict], system: str) -> dict[str, float]:
    """The baseline's figures that `system`'s are divided by in one repetition: its runs just
    before and after the system's, if recorded; else its figures in the repetition."""
    return repetition.get(BESIDE, {}).get(system, repetition[BASELINE])


def summary(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """Per figure: each system's median over the repetitions, and each ratio to naive: its
    median, min and max over the repetitions."""
    systems = [name for name in runs[0] if name != BESIDE]
    figures: dict[str, dict] = {}
    for figure in FIGURES:
        if figure not in runs[0][systems[0]]:
            continue
        row: dict[str, Any] = {}
        for system in systems:
            row[system] = statistics.median(run[system][figure] for run in runs)
            if system != BASELINE and BASELINE in runs[0]:
                ratios = [run[system][figure] / base[figure] for run in runs
                          if (base := baseline_of(run, system))[figure]]
                if ratios:
                    row[f"{system}/{BASELINE}"] = {"median": round(statistics.median(ratios), 2),
                                                   "min": round(min(ratios), 2),
                                                   "max": round(max(ratios), 2)}
        figures[figure] = row
    return figures


def noisy(results: dict[str, dict[str, dict]]) -> list[str]:
    """The gated ratios whose range reaches outside ±TOLERANCE of their median."""
    found = []
    for scenario, figures in results.items():
        for figure, row in figures.items():
            for name, ratio in row.items():
                if figure in GATED and isinstance(ratio, dict) and ratio["median"] and max(
                        ratio["max"] / ratio["median"] - 1, 1 - ratio["min"] / ratio["median"],
                ) > TOLERANCE:
                    found.append(f"{scenario} {figure} {name} {ratio['median']:.2f} "
                                 f"({ratio['min']:.2f}-{ratio['max']:.2f})")
    return found


def table(results: dict[str, dict[str, dict]]) -> str:
    """The summaries as a Markdown table: medians, and ratios as `median (min-max)`."""
    rows = []
    for name, figures in results.items():
        first = next(iter(figures.values()))
        columns = [c for c in first if not isinstance(first[c], dict)]
        ratios = [c for c in first if isinstance(first[c], dict)]
        rows += ["", f"**{name}**", "",
                 "| figure | " + " | ".join([*columns, *ratios]) + " |",
                 "|---|" + "---:|" * (len(columns) + len(ratios))]
        for figure, row in figures.items():
            cells = [str(round(row[column], 3)) for column in columns]
            cells += [f"{row[r]['median']:.2f} ({row[r]['min']:.2f}-{row[r]['max']:.2f})"
                      if r in row else "-" for r in ratios]
            rows.append(f"| {figure} | " + " | ".join(cells) + " |")
    return "\n".join(rows).strip()


def line(system: str, scenario: str, figures: dict[str, float]) -> str:
    """One run's figures, printed as it ends."""
    rate = (f"{figures['throughput']}/s (quiet {figures['throughput_quiet']}/s)  "
            if "throughput" in figures else "")
    return (f"  {system:7} {scenario:10} {figures['tasks']:>6} tasks  {rate}"
            f"p50 {figures['p50_ms']:.0f} ms  start p50 {figures['start_p50_ms']:.0f} ms  "
            f"{figures['invocations_per_task']} inv, {figures['reads_per_task']} r, "
            f"{figures['writes_per_task']} w, {figures['cpu_ms_per_task']} CPU ms per task")


def machine(root: Path) -> dict:
    firebase = json.loads((root / "node_modules/firebase-tools/package.json").read_text())
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "firebase_tools": firebase["version"],
        "emulated": True,
    }


def commit(root: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"
