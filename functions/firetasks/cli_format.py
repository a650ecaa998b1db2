"""How the `firetasks` command prints: task tables, outcome reports, JSON."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from firetasks.events import describe_suspension
from firetasks.task import SUSPENDED, State, handler_name

COLUMNS = [("path", 48), ("type.action", 34), ("state", 10), ("attempts", 8), ("createdAt", 25),
           ("error", 60)]  # the error of a failed or retrying task, shortened


def report(outcomes: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(outcomes)
        return
    for outcome in outcomes:
        if "error" in outcome:
            print(f"{outcome['path']}: {outcome['error']}")
        elif "would" in outcome:
            print(f"{outcome['path']}: would {outcome['would']}")
        else:
            print(f"{outcome['path']}: {outcome['before']} -> {outcome['after']}")
    print(f"{len(outcomes)} task(s)")


def table(rows: list[dict[str, Any]]) -> None:
    print(" ".join(f"{name.upper():{width}}" for name, width in COLUMNS))
    for row in rows:
        cells = [row["path"], handler_name(row['type'], row['action']), row["state"],
                 str(row.get("attempts") or 0), row.get("createdAt") or "", error_cell(row)]
        print(" ".join(f"{cell:{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True))
              .rstrip())
    print(f"{len(rows)} task(s)")


def error_cell(row: dict[str, Any]) -> str:
    error = row.get("error")
    if row["state"] not in (State.FAILED, State.RETRYING) or not isinstance(error, dict):
        return ""
    text = " ".join(f"{error.get('type', 'Error')}: {error.get('message', '')}".split())
    width = COLUMNS[-1][1]
    return text if len(text) <= width else text[:width - 1] + "…"


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def print_task(task: dict[str, Any]) -> None:
    """`firetasks show`: one task (queries.detail) with its data, error, steps, links, history."""
    fields = task["fields"]
    for name in ("type", "action", "state", "attempts", "createdAt", "startedAt", "finishedAt",
                 "runAt", "expireAt"):
        print(f"{name:11} {fields.get(name, '')}")
    error = fields.get("error")
    if error:
        print(f"{'error':11} {error['type']}: {error['message']}")
        traces = [entry["traceback"] for entry in fields.get("history") or []
                  if entry.get("traceback")]
        if traces and fields.get("state") in (State.FAILED, State.RETRYING):
            print(textwrap.indent(traces[-1], " " * 12))
    print(f"{'data':11} {json.dumps(fields.get('data'), ensure_ascii=False)}")
    if "result" in fields:
        print(f"{'result':11} {json.dumps(fields['result'], ensure_ascii=False)}")
    if isinstance(fields.get(SUSPENDED), dict):
        print(f"{'suspended':11} {describe_suspension(fields[SUSPENDED])}")
    for name, step in (fields.get("steps") or {}).items():  # a durable handler's (steps.py)
        print(f"  step {name}: {json.dumps(step.get('result'), ensure_ascii=False, default=str)} "
              f"{step.get('startedAt', '')} - {step.get('finishedAt', 'not finished')}")
    for label, key in (("after", "dependencies"), ("dependents", "dependents")):
        if task[key]:
            print(f"{label:11} " + ", ".join(f"{link['id']} ({link['state'] or 'missing'})"
                                              for link in task[key]))
    for entry in fields.get("history") or []:
        error = entry.get("error") or {}
        print(f"  attempt {entry['attempt']}: {entry['outcome']} {entry.get('finishedAt', '')} "
              f"{error.get('message', '')}")
