"""Debounce on the test kit's fake clock (firetasks.debounce): a burst of enqueues of one key runs
once, with the last data, `debounce` after the last enqueue and never later than `max_wait` after
the first; a key enqueued without pause runs about once every `max_wait`. The emulator's
tests/emulator/test_debounce.py runs a burst through the real triggers."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import pytest

from firetasks import HandlerRegistry, NewTask, Task
from firetasks.errors import InvalidTask
from firetasks.testing import MemoryQueue

SECONDS = datetime.timedelta(seconds=1)


def kit() -> tuple[MemoryQueue, list[tuple[datetime.datetime, Any]]]:
    registry = HandlerRegistry()
    runs: list[tuple[datetime.datetime, Any]] = []
    queue: MemoryQueue

    @registry.handler("product", "reindex")
    def reindex(task: Task) -> None:
        runs.append((queue.clock(), task.data["edit"]))

    queue = MemoryQueue(registry)
    return queue, runs


def edit(queue: MemoryQueue, n: int, max_wait: datetime.timedelta | None = None) -> Any:
    return queue.enqueue("products/p-1", NewTask(
        "product", "reindex", {"edit": n}, key="reindex", debounce=30 * SECONDS,
        max_wait=max_wait))


def test_twenty_enqueues_within_ten_seconds_run_once_with_the_last_data_30_s_later() -> None:
    queue, runs = kit()
    refs = []
    for n in range(20):
        refs.append(edit(queue, n, max_wait=datetime.timedelta(minutes=5)))
        queue.run(until=queue.clock())  # each enqueue's event: not due yet
        queue.clock.advance(0.5)
    last = queue.clock() - 0.5 * SECONDS
    assert len(set(refs)) == 1  # one task, updated by each enqueue
    assert queue.get(refs[0]).fields["data"] == {"edit": 19}
    queue.run()
    assert runs == [(last + 30 * SECONDS, 19)]
    assert queue.get(refs[0]).state == "completed"


def test_a_key_enqueued_every_5_s_for_10_minutes_runs_about_once_every_max_wait() -> None:
    queue, runs = kit()
    start = queue.clock()
    for n in range(120):
        edit(queue, n, max_wait=datetime.timedelta(minutes=5))
        queue.clock.advance(5)
        queue.run(until=queue.clock())
    queue.run()
    times = [at for at, _ in runs]
    assert times[:2] == [start + datetime.timedelta(minutes=5),
                         start + datetime.timedelta(minutes=10)]
    assert len(runs) == 2  # at 5:00 (edits 0-59) and 10:00 (60-119, the last at 9:55)
    assert runs[-1][1] == 119
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap <= datetime.timedelta(minutes=5) for gap in gaps)


def test_after_its_run_the_next_enqueue_starts_a_new_burst() -> None:
    queue, runs = kit()
    first = edit(queue, 1)
    queue.run()
    second = edit(queue, 2)
    queue.run()
    assert first != second
    assert [data for _, data in runs] == [1, 2]


@pytest.mark.parametrize(("options", "message"), [
    ({"debounce": 30 * SECONDS}, "needs a key"),
    ({"key": "k", "debounce": 0 * SECONDS}, "'debounce' must be a positive timedelta"),
    ({"key": "k", "debounce": 30}, "'debounce' must be a positive timedelta"),
    ({"key": "k", "max_wait": 30 * SECONDS}, "'max_wait' needs debounce="),
    ({"key": "k", "debounce": SECONDS, "max_wait": -SECONDS}, "'max_wait' must be a positive"),
])
def test_bad_debounce_options_are_refused_naming_them(options: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        NewTask("product", "reindex", {}, **options)


def test_a_debounced_task_is_added_on_its_own() -> None:
    queue, _ = kit()
    with pytest.raises(InvalidTask, match="on its own"):
        queue.add("products/p-1", [NewTask("product", "reindex", {"edit": 1}, key="k",
                                           debounce=SECONDS), NewTask("product", "reindex")])
