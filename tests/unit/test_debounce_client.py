"""Debounce from clients (firetasks.debounce.fold): a task document written as the web SDK writes
it, with raw `key`, `debounce` and `maxWait` (seconds), is folded by the processor into its key's
burst, whatever the order and number of the deliveries; bad values fail the request naming the
field. The emulator's tests/emulator/test_debounce.py writes such requests under the rules."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from google.cloud import firestore
from hypothesis import given, settings
from hypothesis import strategies as st

from firetasks import HandlerRegistry, NewTask, Task
from firetasks.debounce import pointer_ref
from firetasks.recovery import STALE_AFTER
from firetasks.testing import MemoryQueue

SECONDS = datetime.timedelta(seconds=1)
TASKS = "products/p-1/tasks"


def kit() -> tuple[MemoryQueue, list[tuple[datetime.datetime, Any]]]:
    registry = HandlerRegistry()
    runs: list[tuple[datetime.datetime, Any]] = []
    queue: MemoryQueue

    @registry.handler("product", "reindex", client=True)
    def reindex(task: Task) -> None:
        runs.append((queue.clock(), task.data["edit"]))

    queue = MemoryQueue(registry)
    return queue, runs


def request(queue: MemoryQueue, n: int, **fields: Any) -> str:
    """A client's debounced enqueue, as the web SDK writes it (createdAt: the request's time)."""
    path = f"{TASKS}/request-{n}"
    queue.write(path, {"type": "product", "action": "reindex", "state": "scheduled",
                       "data": {"edit": n}, "key": "reindex", "debounce": 30, "maxWait": 300,
                       "createdAt": firestore.SERVER_TIMESTAMP} | fields)
    return path


def burst(queue: MemoryQueue) -> list[Any]:
    """The tasks of the kit's collection: after a burst's deliveries, its one task."""
    return queue.tasks()


def test_ten_requests_fold_into_the_first_and_run_once_with_the_last_data_30_s_later() -> None:
    queue, runs = kit()
    for n in range(10):
        request(queue, n)
        queue.run(until=queue.clock())
        queue.clock.advance(1)
    last = queue.clock() - SECONDS
    [task] = burst(queue)
    assert task.path == f"{TASKS}/request-0"  # the first request became the burst's task
    assert (task.data, task.run_at) == ({"edit": 9}, last + 30 * SECONDS)
    assert task.fields["debounceUntil"] == last - 9 * SECONDS + 300 * SECONDS
    queue.run()
    assert runs == [(last + 30 * SECONDS, 9)]


def test_requests_delivered_in_reverse_keep_the_newest_data_and_its_run_time() -> None:
    queue, runs = kit()
    for n in range(5):
        request(queue, n)
        queue.clock.advance(1)
    newest = queue.clock() - SECONDS
    queue.store.events.reverse()  # the newest request's event first
    queue.run(until=queue.clock())
    [task] = burst(queue)
    assert task.path == f"{TASKS}/request-4"
    assert (task.data, task.run_at) == ({"edit": 4}, newest + 30 * SECONDS)
    queue.run()
    assert runs == [(newest + 30 * SECONDS, 4)]


def test_an_older_request_delivered_after_its_burst_ran_is_spent_not_run() -> None:
    queue, runs = kit()
    request(queue, 1)
    queue.clock.advance(1)
    request(queue, 2)
    late = queue.store.events.pop(0)  # request 1's event, held back
    queue.run()
    queue.store.events.append(late)
    queue.run()
    assert [data for _, data in runs] == [2]
    assert [task.path for task in burst(queue)] == [f"{TASKS}/request-2"]


def test_duplicate_deliveries_fold_each_request_once() -> None:
    queue, runs = kit()
    request(queue, 1)
    queue.deliver()  # starts the burst
    queue.clock.advance(1)
    request(queue, 2)
    while queue.store.events:
        queue.deliver()
    for delivered in range(len(queue.delivered)):
        queue.redeliver(delivered)  # each as it was first delivered, request 2's deleted since
    [task] = burst(queue)
    assert task.data == {"edit": 2}
    assert queue.document(pointer_ref(queue.client.collection(TASKS), "reindex").path) == {
        "task": task.path}
    queue.run()
    assert [data for _, data in runs] == [2]


def test_a_request_after_the_burst_ran_starts_the_next_burst() -> None:
    queue, runs = kit()
    request(queue, 1)
    queue.run()
    request(queue, 2)
    queue.run()
    assert [data for _, data in runs] == [1, 2]


def test_a_request_whose_event_was_lost_is_folded_by_the_sweeper_s_wake_up() -> None:
    queue, runs = kit()
    request(queue, 1, debounce=600, maxWait=900)
    queue.run(until=queue.clock())
    queue.clock.advance(1)
    request(queue, 2, debounce=600, maxWait=900)
    queue.store.events.clear()  # request 2's create event is lost
    queue.clock.advance(STALE_AFTER.total_seconds() + 1)
    assert queue.sweep().rewoken == 1
    queue.run()
    assert [data for _, data in runs] == [2]
    assert [task.path for task in burst(queue)] == [f"{TASKS}/request-1"]


def test_a_server_enqueue_and_a_client_request_of_one_key_share_the_burst() -> None:
    queue, runs = kit()
    server = queue.enqueue("products/p-1", NewTask("product", "reindex", {"edit": 1},
                                                   key="reindex", debounce=30 * SECONDS))
    queue.clock.advance(1)
    request(queue, 2)
    queue.run()
    assert [data for _, data in runs] == [2]
    assert [task.path for task in burst(queue)] == [server.path]


@pytest.mark.parametrize(("fields", "message"), [
    ({"debounce": "30"}, "'debounce' must be a number of seconds above 0"),
    ({"debounce": 0}, "'debounce' must be a number of seconds above 0"),
    ({"debounce": True}, "'debounce' must be a number of seconds above 0"),
    ({"debounce": 10 ** 12}, "'debounce' must be a number of seconds above 0"),
    ({"maxWait": 10}, "'maxWait' must be a number of seconds at least 'debounce'"),
    ({"maxWait": [300]}, "'maxWait' must be a number of seconds at least 'debounce'"),
    ({"key": 7}, "'key' must be a string"),
    ({"key": firestore.DELETE_FIELD}, "'debounce' needs a 'key'"),
    ({"runAt": datetime.datetime(2030, 1, 2, tzinfo=datetime.UTC)}, "takes no 'after' or 'runAt'"),
    ({"debounce": firestore.DELETE_FIELD}, "'maxWait' needs 'debounce'"),
], ids=["string", "zero", "bool", "huge", "max-wait-short", "max-wait-list", "key-number",
        "no-key", "run-at", "max-wait-alone"])
def test_a_bad_request_fails_naming_its_field(fields: dict[str, Any], message: str) -> None:
    queue, runs = kit()
    path = request(queue, 1, **fields)
    queue.run()
    task = queue.get(path)
    assert task.state == "failed"
    assert task.fields["error"]["type"] == "InvalidTask"
    assert message in task.fields["error"]["message"]
    assert runs == []


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(6)), duplicates=st.lists(st.integers(0, 5), max_size=4),
       gaps=st.lists(st.integers(1, 40), min_size=6, max_size=6))
def test_any_delivery_order_with_duplicates_runs_each_burst_once_with_its_newest_data(
        order: list[int], duplicates: list[int], gaps: list[int]) -> None:
    """Six requests, `gaps` seconds apart (a tie would go to the later delivery), their events
    delivered in `order` (some twice): the newest request's data runs last, once; no request is
    left; each run ran newer data than the one before."""
    queue, runs = kit()
    for n, gap in enumerate(gaps):
        request(queue, n)
        queue.clock.advance(gap)
    events = list(queue.store.events)
    queue.store.events = [events[n] for n in order]
    while queue.store.events:
        queue.deliver()
    for n in duplicates:
        if n < len(queue.delivered):
            queue.redeliver(n)
    queue.run()
    edits = [data for _, data in runs]
    assert edits[-1] == 5
    assert edits == sorted(set(edits))
    assert all(task.state == "completed" for task in burst(queue))
    assert len(burst(queue)) == len(runs)
