"""Counts, per function invocation, the Firestore documents read and written through firetasks'
client, by wrapping that client's RPC stubs: what the benchmark reports, measured, not estimated.

Each invocation appends one JSON line to the file named by FIRETASKS_METER_FILE: `{"fn":
"firetasks", "doc": "<task path>", "event": "create", "start": <epoch s>, "end": <epoch s>,
"cpu_ms": <this thread's CPU time>, "reads": 0, "writes": 1}` (`event`: `create`, `update`,
`delete` or `wake-up`); and each run of a benchmark handler one `{"fn": "handler", "doc": ...,
"at": <epoch s>}` (`handler_started`): the trigger latency is `at` minus the task's create time.
Loaded by main.py only when that is set.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from firebase_functions.core import Change
from google.cloud import firestore

from firetasks import TaskProcessor, db
from firetasks.flow import Admitted
from testing.naive import NaiveProcessor

T = TypeVar("T")
_counts = threading.local()
_file_lock = threading.Lock()
_path: str | None = None  # the meter file, once installed


def _count(kind: str, n: int) -> None:
    setattr(_counts, kind, getattr(_counts, kind, 0) + n)


def _writes(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def commit(*args: Any, request: Any = None, **kwargs: Any) -> Any:
        _count("writes", len(request["writes"] if isinstance(request, dict) else request.writes))
        return call(*args, request=request, **kwargs)

    return commit


def _reads(call: Callable[..., Any], found: str) -> Callable[..., Any]:
    @functools.wraps(call)
    def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for response in call(*args, **kwargs):
            if getattr(response, found, None):
                _count("reads", 1)
            yield response

    return stream


def _aggregations(call: Callable[..., Any]) -> Callable[..., Any]:
    """Count aggregations as billed: one read per 1,000 index entries counted, at least one."""

    @functools.wraps(call)
    def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for response in call(*args, **kwargs):
            result = getattr(response, "result", None)
            if result is not None and "result" in response:
                counts = [value.integer_value for value in result.aggregate_fields.values()]
                _count("reads", max([1, *(math.ceil(n / 1000) for n in counts)]))
            yield response

    return stream


def metered(client: firestore.Client) -> firestore.Client:
    """`client`, counting the documents it reads and writes (on this thread) from now on, count
    aggregations as the reads they are billed."""
    api = client._firestore_api
    api.commit = _writes(api.commit)
    api.batch_get_documents = _reads(api.batch_get_documents, "found")
    api.run_query = _reads(api.run_query, "document")
    api.run_aggregation_query = _aggregations(api.run_aggregation_query)
    return client


def measure(call: Callable[[], T]) -> tuple[T, int, int]:
    """`call()`'s result, and the documents it read and wrote through metered clients."""
    _counts.reads = _counts.writes = 0
    result = call()
    return result, _counts.reads, _counts.writes


def _metered_client(make: Callable[[str], firestore.Client]) -> Callable[[str], firestore.Client]:
    @functools.cache
    def client(database: str = db.DEFAULT_DATABASE) -> firestore.Client:
        return metered(make(database))

    return client


def _append(entry: dict[str, Any]) -> None:
    if _path is not None:
        with _file_lock, open(_path, "a") as out:
            out.write(json.dumps(entry) + "\n")


def handler_started(path: str) -> None:
    """Record that a handler started for the task at `path` (a no-op unless installed)."""
    _append({"fn": "handler", "doc": path, "at": time.time()})


def _document(arg: Any) -> str | None:
    """The task path of an invocation's argument: a trigger's event or a wake-up's reference."""
    return getattr(arg, "document", None) or getattr(arg, "path", None)


def _event(arg: Any) -> str:
    """What an invocation handles: a trigger's `create`, `update` (a task's echo, most often) or
    `delete` event, or a `wake-up` (Cloud Tasks', or a limited handler's queue's)."""
    change = getattr(arg, "data", None)
    if not isinstance(change, Change):
        return "wake-up"
    before = change.before is not None and change.before.exists
    after = change.after is not None and change.after.exists
    return "update" if before and after else "create" if after else "delete"


def _invocation(fn_name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def invoke(self: Any, arg: Any, *args: Any, **kwargs: Any) -> Any:
        _counts.reads = _counts.writes = 0
        start, cpu = time.time(), time.thread_time()
        try:
            return call(self, arg, *args, **kwargs)
        finally:
            _append({"fn": fn_name, "doc": _document(arg), "event": _event(arg),
                     "start": start, "end": time.time(),
                     "cpu_ms": round((time.thread_time() - cpu) * 1000, 3),
                     "reads": _counts.reads, "writes": _counts.writes})

    return invoke


def install(path: str) -> None:
    global _path
    _path = path
    db.client = _metered_client(db.client.__wrapped__)
    TaskProcessor.on_write = _invocation("firetasks", TaskProcessor.on_write)
    TaskProcessor.wake = _invocation("firetasks", TaskProcessor.wake)
    Admitted.wake = _invocation("firetasks", Admitted.wake)  # a limited handler's queue
    NaiveProcessor.on_write = _invocation("naive", NaiveProcessor.on_write)
