"""How the `firetasks` command prints: task tables, outcome reports, JSON."""

from __future__ import annotations

import json
from typing import Any

from firetasks.task import State, handler_name

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
