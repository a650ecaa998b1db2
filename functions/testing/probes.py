"""Handlers that fail on purpose, for the fault tests."""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

from google.cloud import firestore

from firetasks import HandlerRegistry, NewTask, PermanentError, RetryAfter, RetryPolicy, Task

RUNS = "probeRuns"  # one document per handler run: what the tests count
QUICK = RetryPolicy(max_attempts=3, min_delay=1.0, max_delay=4.0)


def record(task: Task) -> None:
    task.client.collection(RUNS).add({
        "taskPath": task.path, "attempt": task.attempt, "at": firestore.SERVER_TIMESTAMP,
    })


registry = HandlerRegistry()


@registry.handler("probe", "flaky", retry=QUICK)
def flaky(task: Task) -> dict[str, int]:
    """Fails its first `data.failTimes` attempts."""
    record(task)
    if task.attempt <= task.data.get("failTimes", 0):
        raise RuntimeError(f"flaky failure on attempt {task.attempt}")
    return {"attempt": task.attempt}


@registry.handler("probe", "permanent", retry=QUICK)
def permanent(task: Task) -> None:
    record(task)
    raise PermanentError("card declined")


@registry.handler("probe", "rateLimited", retry=QUICK)
def rate_limited(task: Task) -> dict[str, int]:
    """Answers its first attempt with 'retry after `data.seconds`'."""
    record(task)
    if task.attempt == 1:
        raise RetryAfter(task.data["seconds"], "rate limited by the provider")
    return {"attempt": task.attempt}


@registry.handler("probe", "slow", retry=QUICK)
def slow(task: Task) -> dict[str, int]:
    """Takes `data.seconds`, failing if `data.fail`."""
    record(task)
    time.sleep(task.data.get("seconds", 1))
    if task.data.get("fail"):
        raise RuntimeError("slow failure")
    return {"attempt": task.attempt}


@registry.handler("probe", "crash", retry=QUICK, lease=datetime.timedelta(seconds=2))
def crash(task: Task) -> dict[str, int]:
    """Kills its own worker process on the first attempt, as a crash or an out-of-memory kill
    would: no outcome is written, and the short lease lets the sweeper find it soon."""
    record(task)
    if task.attempt == 1:
        os._exit(1)
    return {"attempt": task.attempt}


EFFECTS = "probeEffects"  # one document per committed effect of an atomic probe


@registry.handler("probe", "atomicCount", atomic=True, retry=QUICK)
def atomic_count(task: Task) -> None:
    """Counts its committed runs: +1 on the document `data.counter`, staged."""
    record(task)
    task.writes.set(task.client.document(task.data["counter"]),
                    {"runs": firestore.Increment(1)}, merge=True)


@registry.handler("probe", "atomicCrash", atomic=True, retry=QUICK)
def atomic_crash(task: Task) -> None:
    """Stages an effect, then kills its worker on its first run, before the commit."""
    record(task)
    task.writes.create(task.client.collection(EFFECTS).document(), {"taskPath": task.path})
    runs = task.client.collection(RUNS).where(
        filter=firestore.FieldFilter("taskPath", "==", task.path)).count().get()
    if runs[0][0].value == 1:
        os._exit(1)


@registry.handler("probe", "spawn", retry=QUICK)
def spawn(task: Task) -> None:
    """Spawns `data.children` tasks without keys, then fails if `data.fail`: only a completed
    attempt creates them."""
    record(task)
    for _ in range(task.data.get("children", 1)):
        task.spawn(NewTask("probe", "flaky", {"spawnedBy": task.id}))
    if task.data.get("fail"):
        raise PermanentError("failed after spawning")


@registry.handler("probe", "atomicSpawn", atomic=True, retry=QUICK)
def atomic_spawn(task: Task) -> None:
    """`probe.spawn` in atomic mode."""
    spawn(task)


@registry.handler("probe", "limitedFive", retry=QUICK, concurrency=5,
                  lease=datetime.timedelta(seconds=30))
def limited_five(task: Task) -> None:
    """At most 5 at once (firetasks.limits); takes `data.seconds`. Its lease, shorter than the
    timeout, lets an attempt hand its slot to the next waiting task."""
    time.sleep(task.data.get("seconds", 0.2))


@registry.handler("probe", "limitedRate", retry=QUICK, rate="10/s", concurrency=10)
def limited_rate(task: Task) -> None:
    """At most 10 starts a second (firetasks.limits). The concurrency keeps the Functions
    emulator from starting a worker per dispatch of a burst at once: its workers then collide on
    ports and fail to load."""


@registry.handler("probe", "limitedPerKey", retry=QUICK, concurrency=1,
                  key=lambda task: task.data["key"], lease=datetime.timedelta(seconds=2))
def limited_per_key(task: Task) -> dict[str, int]:
    """One at a time per `data.key` (firetasks.key_slots); takes `data.seconds`; kills its
    worker on the first attempt if `data.crash`, as `probe.crash`."""
    record(task)
    if task.data.get("crash") and task.attempt == 1:
        os._exit(1)
    time.sleep(task.data.get("seconds", 0))
    return {"attempt": task.attempt}


@registry.handler("probe", "limitedPaused", retry=QUICK, concurrency=5,
                  lease=datetime.timedelta(seconds=30))
def limited_paused(task: Task) -> None:
    """At most 5 at once, as `probe.limitedFive`, for the pause tests (firetasks.pauses): a
    handler of their own, paused and resumed by them alone."""
    record(task)


@registry.handler("probe", "limitedOne", retry=QUICK, concurrency=1,
                  lease=datetime.timedelta(seconds=30))
def limited_one(task: Task) -> None:
    """One at a time, handing its slot over (firetasks.limits), for the priorities' test; takes
    `data.seconds`."""
    time.sleep(task.data.get("seconds", 0))


@registry.handler("probe", "debounced", retry=QUICK)
def debounced(task: Task) -> dict[str, Any]:
    """Records its run; its result is the data it ran with (firetasks.debounce)."""
    record(task)
    return dict(task.data)


@registry.handler("probe", "sharedFour", retry=QUICK, concurrency=4,
                  key=lambda task: task.data["merchant"], shared=True,
                  lease=datetime.timedelta(seconds=30))
def shared_four(task: Task) -> None:
    """4 at once in all, shared in turn between the merchants (firetasks.fair_shares); takes
    `data.seconds`."""
    time.sleep(task.data.get("seconds", 0))


@registry.handler("probe", "limitedCrash", retry=QUICK, concurrency=1,
                  lease=datetime.timedelta(seconds=2))
def limited_crash(task: Task) -> dict[str, int]:
    """One at a time; kills its worker on the first attempt if `data.crash`, as `probe.crash`."""
    record(task)
    if task.data.get("crash") and task.attempt == 1:
        os._exit(1)
    time.sleep(task.data.get("seconds", 0))
    return {"attempt": task.attempt}
