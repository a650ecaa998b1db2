"""Chaos in the emulator suite (issue 21), test-only: loaded by main.py under FIRETASKS_TESTING,
installed only in the Functions emulator's workers, inert until a test writes CONFIG.

- Faults: the workers' shared Firestore client (firetasks.db.client) fails a share (`commit`) of
  its commits with a transient error, half of them after the commit applied (UNAVAILABLE once
  Firestore wrote it: an ambiguous write), and a share (`read`) of its reads.
- Crash probes: a share (`crash`) of the claims, outcomes (a claimed attempt's final commit or an
  atomic commit) and handler runs kill the worker (os._exit): before the claim, after it, inside
  the handler, after the final commit, between an atomic commit and its return.
- The workload's handlers (type "chaos") record their effects in RUNS with a client of their own
  (never faulted), for the checks of tests/emulator/test_chaos.py and tools/chaos.py.

Faults strike only requests that name something of the chaos run (`chaos` in the request: its
tasks' documents and fields, its handlers' rate and key slots, its effects), never another test's
tasks (twice the full suite saw the next test's first task crash after the chaos run, with a
share read before CONFIG was deleted). Every fault injected is recorded in FAULTS (its kind),
before it strikes.
"""

from __future__ import annotations

import datetime
import functools
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions
from google.cloud import firestore

from firetasks import HandlerRegistry, NewTask, PermanentError, RetryPolicy, Task, db

CONFIG = "chaosConfig/current"  # {commit, read, crash: shares from 0 to 1, fixed: bool}
FAULTS = "chaosFaults"  # one document per fault injected: {kind}
RUNS = "chaosRuns"  # one document per handler run: {task, attempt, action, deps, start, end}
EFFECTS = "chaosEffects"  # an atomic task's effect: {count}, staged with its completion
REFRESH = 1.0  # seconds between reads of CONFIG in a worker
QUICK = RetryPolicy(max_attempts=6, min_delay=0.5, max_delay=2.0)
LEASE = datetime.timedelta(seconds=20)  # a crashed attempt is swept this soon

_raw: dict[str, firestore.Client] = {}
_config: dict[str, Any] = {"at": 0.0, "values": {}}
_lock = threading.Lock()


def raw_client() -> firestore.Client:
    """A client of its own, never faulted: for CONFIG, FAULTS and the effects handlers record."""
    with _lock:
        if "client" not in _raw:
            _raw["client"] = firestore.Client(project=db.client().project)
        return _raw["client"]


def share(name: str) -> float:
    """CONFIG's share for `name` (0 without CONFIG), read at most every REFRESH seconds."""
    if time.monotonic() - _config["at"] > REFRESH:
        _config["values"] = raw_client().document(CONFIG).get().to_dict() or {}
        _config["at"] = time.monotonic()
    return float(_config["values"].get(name, 0.0))


def strikes(name: str, kind: str) -> bool:
    """Whether a fault of `kind` strikes now (at CONFIG's share for `name`): recorded if so."""
    if random.random() >= share(name):
        return False
    raw_client().collection(FAULTS).add({"kind": kind, "pid": os.getpid()})
    return True


def crash(point: str) -> None:
    """Kill the worker at `point` if a crash strikes."""
    if strikes("crash", f"crash {point}"):
        os._exit(17)


def _writes(request: Any) -> list[Any]:
    return list(request["writes"] if isinstance(request, dict) else request.writes)


def _of_chaos(request: Any) -> bool:
    """Whether a request names something of the chaos run (module docstring)."""
    return "chaos" in str(request)


def _point(request: Any) -> str | None:
    """What a commit is, for the crash probes: a claim (it writes a lease id), an outcome (it
    writes the attempt's history), or neither."""
    for write in _writes(request):
        fields = write.update.fields
        if "leaseId" in fields:
            return "claim"
        if "history" in fields:
            return "outcome"
    return None


def _faulty_commit(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def commit(*args: Any, request: Any = None, **kwargs: Any) -> Any:
        if not _of_chaos(request):
            return call(*args, request=request, **kwargs)
        point = _point(request)
        if point == "claim":
            crash("before the claim")
        if strikes("commit", "transient before a commit"):
            raise exceptions.DeadlineExceeded("chaos: the commit timed out")  # type: ignore[no-untyped-call]
        ambiguous = strikes("commit", "ambiguous commit (applied, then UNAVAILABLE)")
        result = call(*args, request=request, **kwargs)
        if point is not None:
            crash(f"after the {point}")
        if ambiguous:
            raise exceptions.ServiceUnavailable("chaos: the answer was lost")  # type: ignore[no-untyped-call]
        return result

    return commit


def _faulty_read(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def read(*args: Any, **kwargs: Any) -> Any:
        if _of_chaos(kwargs.get("request", args[0] if args else None)) and strikes(
                "read", "transient read"):
            raise exceptions.ServiceUnavailable("chaos: the read failed")  # type: ignore[no-untyped-call]
        return call(*args, **kwargs)

    return read


def chaotic(client: firestore.Client) -> firestore.Client:
    """`client`, failing its commits and reads as CONFIG says."""
    api = client._firestore_api
    api.commit = _faulty_commit(api.commit)
    api.batch_get_documents = _faulty_read(api.batch_get_documents)
    api.run_query = _faulty_read(api.run_query)
    return client


def install() -> None:
    """Fault the shared client of a Functions worker (not of a test's own process)."""
    if os.environ.get("FUNCTIONS_EMULATOR") != "true":
        return
    shared = db.client

    @functools.cache
    def client(database: str = db.DEFAULT_DATABASE) -> firestore.Client:
        return chaotic(shared(database))

    db.client = client


registry = HandlerRegistry()


def record(task: Task, **extra: Any) -> Callable[[], None]:
    """Record the run of `task`'s attempt (with its dependencies' states as it starts); call what
    it returns as it ends."""
    client = raw_client()
    deps = [snapshot.to_dict() or {} for snapshot in client.get_all(
        [client.document(f"{task.path.rsplit('/', 1)[0]}/{id}") for id in task.after])]
    ref = client.collection(RUNS).document()
    ref.set({"run": task.data.get("run"), "task": task.path, "attempt": task.attempt,
             "action": task.action,
             "deps": [dep.get("state") for dep in deps], "start": time.time(), **extra})
    return lambda: ref.update({"end": time.time()})


@registry.handler("chaos", "claim", retry=QUICK, lease=LEASE)
def claim(task: Task) -> str:
    ended = record(task)
    crash("inside the handler")
    ended()
    return "done"


@registry.handler("chaos", "atomic", retry=QUICK, atomic=True)
def atomic(task: Task) -> str:
    record(task)
    crash("inside the handler")
    task.writes.set(task.client.document(f"{EFFECTS}/{task.path.replace('/', '-')}"),
                    {"count": firestore.Increment(1)}, merge=True)
    return "done"


@registry.handler("chaos", "spawn", retry=QUICK, lease=LEASE)
def spawn(task: Task) -> NewTask:
    record(task)
    crash("inside the handler")
    return NewTask("chaos", "claim", {"run": task.data.get("run"), "child": True},
                   key=f"{task.id}-child")


@registry.handler("chaos", "cause", retry=QUICK, lease=LEASE)
def cause(task: Task) -> str:
    """Fails (for good) until CONFIG says `fixed`: the cause of a failure cascade."""
    record(task)
    if not (raw_client().document(CONFIG).get().to_dict() or {}).get("fixed"):
        raise PermanentError("chaos: the cause is broken until fixed")
    return "fixed"


@registry.handler("chaos", "limited", retry=QUICK, lease=LEASE, concurrency=2)
def limited(task: Task) -> str:
    ended = record(task)
    crash("inside the handler")
    time.sleep(0.2)  # long enough to overlap, were the limit not held
    ended()
    return "done"


@registry.handler("chaos", "keyed", retry=QUICK, lease=LEASE, concurrency=1,
                  key=lambda task: task.data["shop"])
def keyed(task: Task) -> str:
    ended = record(task, key=task.data["shop"])
    crash("inside the handler")
    time.sleep(0.1)
    ended()
    return "done"


@registry.handler("chaos", "rated", retry=QUICK, lease=LEASE, rate="5/s")
def rated(task: Task) -> str:
    record(task)
    crash("inside the handler")
    return "done"
