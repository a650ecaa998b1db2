"""Durable handlers for the emulator tests: steps that record each run, a crash between steps."""

from __future__ import annotations

import datetime
import os

from google.cloud import firestore

from firetasks import HandlerRegistry, Task
from testing.probes import QUICK

STEP_RUNS = "probeStepRuns"  # one document per run of a step's function: what the tests count

registry = HandlerRegistry()


def run_step(task: Task, name: str) -> dict[str, int]:
    """A step's function: records its run; the effect it stages counts its committed runs."""
    task.client.collection(STEP_RUNS).add({"taskPath": task.path, "step": name,
                                           "attempt": task.attempt,
                                           "at": firestore.SERVER_TIMESTAMP})
    task.writes.set(task.client.document(task.data["counter"]),
                    {name: firestore.Increment(1)}, merge=True)
    return {"attempt": task.attempt}


@registry.handler("probe", "durable", retry=QUICK, lease=datetime.timedelta(seconds=2))
def durable(task: Task) -> list[int]:
    """Four atomic steps; with `data.crashAfter` (a step's number), the worker process dies right
    after that step on the first attempt, as a crash or an out-of-memory kill would."""
    done = []
    for number in range(1, 5):
        done.append(task.step(f"step{number}", run_step, task, f"step{number}")["attempt"])
        if task.attempt == 1 and number == task.data.get("crashAfter"):
            os._exit(1)
    return done


@registry.handler("probe", "durableSleep", retry=QUICK)
def durable_sleep(task: Task) -> dict[str, str]:
    """Sleeps `data.seconds` between two steps; returns when each ran."""
    def now() -> str:
        return datetime.datetime.now(datetime.UTC).isoformat()

    before = task.step("before", now)
    task.sleep("nap", datetime.timedelta(seconds=task.data["seconds"]))
    return {"before": before, "after": task.step("after", now)}


@registry.handler("probe", "durableWait", retry=QUICK)
def durable_wait(task: Task) -> dict[str, object]:
    """Waits for `data.event` (`warehouse.picked` by default) with this task's `data.orderId`, for
    `data.timeout` seconds; records each run past the wait (what "resumed once" counts)."""
    event = task.wait_for("picked", event=task.data.get("event", "warehouse.picked"),
                          match={"orderId": task.data["orderId"]},
                          timeout=datetime.timedelta(seconds=task.data["timeout"]))
    task.client.collection(STEP_RUNS).add({"taskPath": task.path, "step": "resumed",
                                           "attempt": task.attempt})
    return {"event": event}
