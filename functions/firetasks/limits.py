"""Flow control: at most N attempts of a handler running at once, at most R starts per window.

A limited handler gets a Cloud Tasks queue of its own, served by a task-queue function
(`limited_triggers`) declared with `rate_limits` (max_concurrent_dispatches, max_dispatches_per_
second): Cloud Tasks, not firetasks, holds the count of running attempts and the rate's tokens,
across every instance. The trigger does not run a limited handler's task: it marks it `queuedAt`
and `limitKey` (the task stays `scheduled` or `retrying`, visibly waiting) and enqueues a Cloud
Task naming it. The queue dispatches it when a slot and a token are free; the dispatch runs the
task through the processor (the same claim or atomic commit as any task) and returns when the
attempt ends, which frees the slot. With a concurrency alone, an attempt hands its slot straight to
a waiting task, claimed in the batch of its outcome (TaskProcessor._run), while the function's
timeout leaves room; limits per key are held in Firestore (firetasks.key_slots). A crashed
attempt's dispatch fails at once (its slot is free again); its task is
retried by the sweeper when its lease expires, through the queue again.

The Cloud Task's id derives from the task's path and the version that was queued, so a duplicate
enqueue of one queued version (the mark's own event) is refused by Cloud Tasks, not dispatched
twice. A rate is also held by a RateGate in Firestore, strictly in every window (Cloud Tasks'
token bucket lets bursts through); a start records the time the gate admitted it as `startedAt`.

A waiting task costs one write (`queuedAt`), one extra trigger invocation (that write's event),
one enqueue and one dispatch, and a rate three reads and a write more; docs/scaling.md has the
ceilings and the measurements.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Unpack, cast

import flask
from firebase_functions import logger, options
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import db
from firetasks.key_slots import MAX_KEY_CONCURRENCY, KeySlots, key_id, put_if_unchanged
from firetasks.store import with_backoff
from firetasks.task import LIMIT_KEY, WAKE_STATES, Task
from firetasks.trigger_options import RuntimeOptions
from firetasks.wakeup import CloudTasksWaker, wake_trigger

if TYPE_CHECKING:
    from firetasks.processor import TaskProcessor

FUNCTION_PREFIX = "limited"
MAX_DISPATCHES_PER_SECOND = 500.0  # Cloud Tasks' ceiling per queue
MAX_CONCURRENT_DISPATCHES = 5000  # Cloud Tasks' ceiling per queue (and the emulator's)
UNLIMITED_CONCURRENCY = 1000  # Cloud Tasks' default when only a rate is set
MIN_DEADLINE_SEC, MAX_DEADLINE_SEC = 15, 1800  # Cloud Tasks' bounds on a dispatch deadline
RATE_COLLECTION = "firetasksRates"  # {type.action}/slots/{0..count-1}: the rate gates' slots
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"\s*(\d+)\s*/\s*([smh])\s*")


@dataclass(frozen=True)
class Rate:
    """At most `count` starts per `per` seconds: `Rate.parse("10/s")`, `Rate.parse("600/m")`."""

    count: int
    per: float = 1.0

    def __post_init__(self) -> None:
        if self.count < 1 or self.per <= 0:
            raise ValueError(f"a rate needs a count >= 1 and a period > 0, got {self}")
        if self.per_second > MAX_DISPATCHES_PER_SECOND:
            raise ValueError(f"{self} exceeds Cloud Tasks' {MAX_DISPATCHES_PER_SECOND:.0f} "
                             "dispatches per second per queue")

    @classmethod
    def parse(cls, text: str | Rate) -> Rate:
        if isinstance(text, Rate):
            return text
        match = _RATE.fullmatch(text)
        if match is None:
            raise ValueError(f"rate {text!r} is not like '10/s', '600/m' or '100/h'")
        return cls(int(match[1]), UNITS[match[2]])

    @property
    def per_second(self) -> float:
        return self.count / self.per

    def __str__(self) -> str:
        unit = {seconds: name for name, seconds in UNITS.items()}.get(self.per)
        return f"{self.count}/{unit}" if unit else f"{self.count} per {self.per:g}s"


@dataclass(frozen=True)
class Limits:
    """A handler's limits: at most `concurrency` attempts at once, starts at most at `rate`;
    with a `key`, for each value it gives a task (`key=lambda task: task.data["merchantId"]`)."""

    concurrency: int | None = None
    rate: Rate | None = None
    key: Callable[[Task], object] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        most = MAX_KEY_CONCURRENCY if self.key else MAX_CONCURRENT_DISPATCHES
        if self.concurrency is not None and not 1 <= self.concurrency <= most:
            raise ValueError(f"concurrency{' per key' if self.key else ''} must be from 1 to "
                             f"{most}, got {self.concurrency}")

    @classmethod
    def of(cls, concurrency: int | None, rate: str | Rate | None,
           key: Callable[[Task], object] | None = None) -> Limits | None:
        """The limits of a registration; None for a handler without any."""
        if concurrency is None and rate is None:
            if key is not None:
                raise ValueError("a key needs a concurrency or a rate to apply per key")
            return None
        return cls(concurrency, None if rate is None else Rate.parse(rate), key)

    def rate_limits(self) -> options.RateLimits:
        """The Cloud Tasks queue's limits that enforce these (none, per key: Firestore holds
        per-key limits, firetasks.key_slots)."""
        per_second = self.rate.per_second if self.rate and not self.key else (
            MAX_DISPATCHES_PER_SECOND)
        concurrency = None if self.key else self.concurrency
        return options.RateLimits(
            max_concurrent_dispatches=concurrency or UNLIMITED_CONCURRENCY,
            # Cloud Tasks takes a double ("600/m" is 10, "100/m" 1.67); firebase-functions
            # annotates an int but passes the value on as it is.
            max_dispatches_per_second=cast(int, per_second))

    def __str__(self) -> str:
        parts = ([f"concurrency {self.concurrency}"] if self.concurrency else []) + (
            [f"rate {self.rate}"] if self.rate else [])
        return ", ".join(parts) + (" per key" if self.key else "")


def function_name(type: str, action: str) -> str:
    """The task-queue function (and Cloud Tasks queue id: letters and digits only) of a limited
    handler: `limitedMailSend` for `mail.send`, `limitedOrderMutationsInitiate` for
    `order.mutations.initiate`."""
    parts = re.split(r"[^A-Za-z0-9]+", f"{type}.{action}")
    return FUNCTION_PREFIX + "".join(part[:1].upper() + part[1:] for part in parts)


def dispatch_id(ref: DocumentReference, version: Any) -> str:
    """The Cloud Task's id for one queued version of a task (or a tuple naming one enqueue of
    it): enqueued twice, dispatched once."""
    parts = version if isinstance(version, tuple) else (version,)
    # DatetimeWithNanoseconds (a Firestore update time) keeps its nanoseconds in rfc3339()
    stamp = "@".join(part.rfc3339() if hasattr(part, "rfc3339") else part.isoformat()
                     if isinstance(part, datetime.datetime) else str(part) for part in parts)
    return hashlib.sha256(f"{ref.path}@{stamp}".encode()).hexdigest()[:40]


class RateGate:
    """Holds a limited handler's starts to its rate in every window, not on average.

    Cloud Tasks paces dispatches with a token bucket, which lets a burst of up to about a
    second's tokens through at once (then the rate): a window can hold nearly twice the rate.
    The gate admits each start through one of `count` slot documents, each taken again only a
    full period after its last start, with a write conditional on the version read: so no window
    of the period holds more than `count` starts, across instances. The start records the time
    it was admitted as its `startedAt`, so the windows hold by that field exactly.

    Slot `i` is due during the `i`-th `period / count` of each cycle (its turn); a start reads
    the slot of the current turn and of the LOOK_BACK turns before it (one read each, in one
    call) and takes the one free the longest, so a turn that nobody used is caught up; if none is
    free it waits for the earliest to free or the next turn. Steady starts cost LOOK_BACK + 1
    reads and one write. Each slot is written about once a period: within Firestore's sustained
    rate of one write a second per document for periods of a second and more.
    """

    LOOK_BACK = 2

    def __init__(
        self, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.clock = clock
        self.sleep = sleep

    def admit(self, client: firestore.Client, name: str, rate: Rate) -> float:
        """Wait until `name` may start once more at `rate`; the time it may (seconds since the
        epoch), which the start records as its `startedAt`."""
        slots = client.collection(RATE_COLLECTION).document(name).collection("slots")
        turn = rate.per / rate.count
        looked = min(self.LOOK_BACK, rate.count - 1)
        while True:
            index = math.floor(self.clock() / turn)
            refs = [slots.document(str((index - back) % rate.count))
                    for back in range(looked, -1, -1)]
            snapshots = _read_all(client, refs)
            frees = [_last(snapshot) + rate.per for snapshot in snapshots]
            now = self.clock()
            oldest = min(range(len(refs)), key=lambda i: frees[i])
            if now < frees[oldest]:  # all taken this cycle: wait for one, or for the next turn
                self.sleep(max(0.0, min(frees[oldest], (index + 1) * turn) - now))
                continue
            if put_if_unchanged(snapshots[oldest], {"at": now}) is not None:
                return now


def _read_all(client: firestore.Client, refs: list[DocumentReference]) -> list[Any]:
    """The snapshots of `refs`, in their order (one call)."""
    found = {snapshot.reference.path: snapshot
             for snapshot in with_backoff(lambda: list(client.get_all(refs)))}
    return [found[ref.path] for ref in refs]


def _last(snapshot: Any) -> float:
    """When the slot was last taken (seconds since the epoch), -inf if never."""
    last = snapshot.get("at") if snapshot.exists else None
    return last if isinstance(last, float) else -math.inf


class Dispatcher(Protocol):
    def dispatch(self, ref: DocumentReference, function: str, id: str, timeout_sec: int) -> bool:
        """Enqueue the task on the queue of the limited handler's `function`, as Cloud Task
        `id`, for a function that runs up to `timeout_sec`; whether it is queued (a duplicate of
        a queued id counts)."""


class CloudTasksDispatcher:
    """Enqueues onto the limited handlers' Cloud Tasks queues (firetasks.wakeup does the call)."""

    def dispatch(self, ref: DocumentReference, function: str, id: str, timeout_sec: int) -> bool:
        # Cloud Tasks holds the slot until the dispatch answers or its deadline passes: the
        # deadline covers the function's timeout, so a slow attempt is not counted out early.
        deadline = min(max(timeout_sec, MIN_DEADLINE_SEC), MAX_DEADLINE_SEC)
        return CloudTasksWaker(function).enqueue(ref, task_id=id, deadline_sec=deadline)


@dataclass(frozen=True)
class Admitted:
    """What a limited handler's queue calls: per key, a slot of the task's key
    (firetasks.key_slots); its rate gate; then the processor, told the task was admitted."""

    processor: TaskProcessor
    name: str
    limits: Limits
    gate: RateGate
    slots: KeySlots

    def wake(self, ref: DocumentReference) -> None:
        if self.limits.key is None:
            self._start(ref, self.name)
            return
        record = self.processor.store.read(ref)
        if record is None or record.state not in WAKE_STATES:
            logger.info("skip admitted task, not waiting", path=ref.path,
                        state=record.state if record else None)
            return
        key = record.fields.get(LIMIT_KEY)
        if not isinstance(key, str):  # queued before its handler had a key: queue it by its key
            self.processor.process(record, WAKE_STATES)
            return
        if self.limits.concurrency is None:
            self._start(ref, key_id(key))
            return
        client = db.client_of(ref)
        registration = self.processor.registry.lookup(record.type, record.action)
        lease = (registration and registration.lease) or self.processor.queue.lease
        wait = datetime.timedelta(seconds=self.limits.rate.per if self.limits.rate else 0)
        slot = self.slots.take(client, key, self.limits.concurrency, ref, lease + wait)
        if slot is None:
            logger.info("task waits: every slot of its key is held", path=ref.path,
                        limitKey=key)
            return
        try:
            self._start(ref, key_id(key))
        finally:
            self.slots.release(slot)
            self.processor.start_waiting(ref, key)

    def _start(self, ref: DocumentReference, gate: str) -> None:
        """Pass the rate gate `gate` (if the handler has a rate), then run the task."""
        if self.limits.rate is None:
            self.processor.run_admitted(ref)
            return
        began = time.time()
        at = self.gate.admit(db.client_of(ref), gate, self.limits.rate)
        logger.debug("start admitted at the handler's rate", path=ref.path,
                     rate=str(self.limits.rate), waitedMs=round((at - began) * 1000))
        self.processor.run_admitted(ref, datetime.datetime.fromtimestamp(at, datetime.UTC))


def limited_triggers(
    processor: TaskProcessor, **options_: Unpack[RuntimeOptions]
) -> dict[str, Callable[[flask.Request], flask.Response]]:
    """One task-queue function per limited handler, by function name, its queue declared with the
    handler's limits: in main.py, `globals().update(limited_triggers(processor))`. Pass the
    processing functions' options (timeout, memory)."""
    triggers: dict[str, Callable[[flask.Request], flask.Response]] = {}
    for type, action, limits in processor.registry.limited():
        name = function_name(type, action)
        if name in triggers:
            raise ValueError(f"'{type}.{action}': its queue name {name!r} is another limited "
                             "handler's; rename one")
        admitted = Admitted(processor, f"{type}.{action}", limits, RateGate(), KeySlots())
        triggers[name] = wake_trigger(
            admitted, name=name, rate_limits=limits.rate_limits(),
            # Only a crashed or timed-out dispatch fails (a handler's error ends in the task);
            # its retry finds the task `running` and returns at once, so retries are cheap.
            retry_config=options.RetryConfig(max_attempts=100, min_backoff_seconds=1,
                                             max_backoff_seconds=10, max_doublings=3),
            **options_)
    return triggers
