"""The benchmark's handlers: no work at all, and 50 ms of work failing one run in ten."""

from __future__ import annotations

import random
import time

from firetasks import HandlerRegistry, RetryPolicy, Task

registry = HandlerRegistry()


@registry.handler("bench", "noop")
def noop(task: Task) -> None:
    return None


@registry.handler("bench", "work", retry=RetryPolicy(max_attempts=5, min_delay=0.5))
def work(task: Task) -> None:
    time.sleep(0.05)
    if random.random() < 0.1:
        raise RuntimeError("one run in ten fails")
