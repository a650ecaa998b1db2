"""The benchmark's handlers, each registered twice: type `bench` in claim mode (which the naive
baseline also runs) and type `benchAtomic` in atomic mode, with the same body and the same writes.

- `noop`: no work at all;
- `work`: 50 ms of work, failing one run in ten;
- `mail`: the confirmation mail's real effect, one document created in `benchMail`.

A body stages its writes; in claim mode (and for the baseline) the handler commits them itself, in
one batch, as a handler writing directly would; in atomic mode the processor commits them with the
task's outcome. Each handler first tells the meter it started (the trigger latency's end).
"""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Callable

from google.cloud import firestore

from firetasks import HandlerRegistry, RetryPolicy, Task
from firetasks.conditional import apply
from firetasks.limits import Limits, Rate
from firetasks.retry import DEFAULT_RETRY
from firetasks.staging import StagedWrites
from testing.meter import handler_started

Body = Callable[[Task, StagedWrites], None]
MAIL = "benchMail"

registry = HandlerRegistry()


def noop(task: Task, writes: StagedWrites) -> None:
    return None


def work(task: Task, writes: StagedWrites) -> None:
    time.sleep(0.05)
    if random.random() < 0.1:
        raise RuntimeError("one run in ten fails")


def mail(task: Task, writes: StagedWrites) -> None:
    writes.create(task.client.collection(MAIL).document(), {
        "to": "ada@example.com", "taskPath": task.path, "createdAt": firestore.SERVER_TIMESTAMP,
    })


def committing_itself(body: Body) -> Callable[[Task], None]:
    def handler(task: Task) -> None:
        handler_started(task.path)
        writes = StagedWrites()
        body(task, writes)
        if len(writes):
            batch = task.client.batch()
            apply(batch, list(writes))
            batch.commit()

    return handler


def staging(body: Body) -> Callable[[Task], None]:
    def handler(task: Task) -> None:
        handler_started(task.path)
        body(task, task.writes)

    return handler


RETRY = {"work": RetryPolicy(max_attempts=5, min_delay=0.5)}
for action, body in {"noop": noop, "work": work, "mail": mail}.items():
    retry = RETRY.get(action, DEFAULT_RETRY)
    registry.register("bench", action, committing_itself(body), retry=retry)
    registry.register("benchAtomic", action, staging(body), retry=retry, atomic=True)

# The limited scenario's handlers (firetasks.limits): `work` at most 10 at once, `noop` at most
# 20 starts a second; `benchPerKey.work` one at a time per parent (firetasks.key_slots).
LIMITED = {"work": Limits(concurrency=10), "noop": Limits(rate=Rate(20))}
BODIES: dict[str, Body] = {"noop": noop, "work": work, "mail": mail}
for action, limits in LIMITED.items():
    registry.register("benchLimited", action, committing_itself(BODIES[action]),
                      retry=RETRY.get(action, DEFAULT_RETRY), limits=limits,
                      lease=datetime.timedelta(seconds=30))  # < the timeout: hands over
for action in ("work", "noop"):  # noop: the bench's drain sentinel (each type has one)
    registry.register("benchPerKey", action, committing_itself(BODIES[action]),
                      retry=RETRY.get(action, DEFAULT_RETRY),
                      limits=Limits(concurrency=1, key=lambda task: task.ref.parent.parent.id))

# The durable scenario's handlers (firetasks.steps), claim mode: `steps` saves three steps of no
# work, `sleep` sleeps one second once (a wake-up and an invocation more).
def three_steps(task: Task) -> None:
    handler_started(task.path)
    for name in ("one", "two", "three"):
        task.step(name, lambda: None)


def one_sleep(task: Task) -> None:
    handler_started(task.path)
    task.sleep("nap", datetime.timedelta(seconds=1))


registry.register("benchDurable", "steps", three_steps)
registry.register("benchDurable", "sleep", one_sleep)
registry.register("benchDurable", "noop", committing_itself(noop))  # the drain's sentinel
