"""Pause and resume on the test kit (firetasks.pauses): a paused handler's (or key's) due tasks are
held, none runs, fails or is lost; a resume starts them oldest first, within the handler's limits;
pausing costs nothing to the tasks of other handlers. Through the real processor on MemoryQueue;
tests/emulator/test_pauses.py runs it through the real triggers."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core.exceptions import ServiceUnavailable

from firetasks import HandlerRegistry, NewTask, RetryPolicy, Task, pauses
from firetasks.audit import Actor
from firetasks.errors import BadRequest
from firetasks.pauses import Pauses
from firetasks.testing import MemoryQueue

CARE = Actor(uid="u-1", email="care@example.com", via="dashboard")


def kit(**limits: Any) -> tuple[MemoryQueue, list[Any]]:
    """`mail.send` (with `limits`) and an unlimited `report.build`; each run's `data["n"]`."""
    registry = HandlerRegistry()
    runs: list[Any] = []

    @registry.handler("mail", "send", retry=RetryPolicy(max_attempts=3, min_delay=1, max_delay=1),
                      **limits)
    def send(task: Task) -> None:
        runs.append(task.data.get("n"))
        if task.data.get("fail") and task.attempt == 1:
            raise RuntimeError("provider down")

    @registry.handler("report", "build")
    def build(task: Task) -> None:
        runs.append(("report", task.data.get("n")))

    return MemoryQueue(registry), runs


def enqueue(queue: MemoryQueue, count: int, **data: Any) -> list[Any]:
    """`count` tasks of `mail.send`, a second apart."""
    refs = []
    for n in range(count):
        refs.append(queue.enqueue("orders/o", NewTask("mail", "send", {"n": n, **data})))
        queue.clock.advance(1)
    return refs


@pytest.mark.parametrize("limits", [{}, {"concurrency": 2, "lease": datetime.timedelta(
    seconds=10)}, {"rate": "5/s"}])
def test_a_paused_handler_holds_its_tasks_and_a_resume_runs_each_once_oldest_first(
        limits: dict[str, Any]) -> None:
    queue, runs = kit(**limits)
    paused = queue.pause("mail.send", actor=CARE)
    assert paused["target"] == "mail.send"
    assert paused["reason"].startswith("paused by care@example.com, since ")
    refs = enqueue(queue, 5)
    other = queue.enqueue("orders/o", NewTask("report", "build", {"n": 0}))
    queue.run()
    assert runs == [("report", 0)]  # the other handler runs
    assert queue.get(other).state == "completed"
    for ref in refs:
        held = queue.get(ref)
        assert held.state == "scheduled"
        assert held.fields["pausedFor"] == "mail.send"
        assert "queuedAt" in held.fields
        assert "limitKey" not in held.fields
    assert queue.resume("mail.send", actor=CARE) == {"target": "mail.send", "paused": False,
                                                     "resumed": 5}
    queue.run()
    assert sorted(runs[1:]) == [0, 1, 2, 3, 4]  # each once
    if "concurrency" not in limits:  # a hand-over picks one of the `concurrency` oldest
        assert runs[1:] == [0, 1, 2, 3, 4]
    assert [queue.get(ref).state for ref in refs] == ["completed"] * 5
    assert all("pausedFor" not in queue.get(ref).fields for ref in refs)
    audit = [entry.to_dict() for entry in queue.client.collection("firetasksAudit").stream()]
    assert sorted((entry["action"], entry["task"], entry["actor"]["email"]) for entry in audit) == [
        ("pause", "mail.send", "care@example.com"), ("resume", "mail.send", "care@example.com")]


def test_a_retry_of_a_paused_handler_waits_too_and_running_attempts_finish() -> None:
    queue, runs = kit(concurrency=1)
    [ref] = enqueue(queue, 1, fail=True)
    queue.processor.handle(queue.get(ref))  # queued for its limit
    queue.processor.run_admitted(queue.dispatcher.pending.pop(0))  # attempt 1 fails: retrying
    assert queue.get(ref).state == "retrying"
    queue.pause("mail.send")
    queue.run()  # its wake-up finds the handler paused
    held = queue.get(ref)
    assert (held.state, held.fields["pausedFor"], runs) == ("retrying", "mail.send", [0])
    queue.resume("mail.send")
    queue.run()
    assert (queue.get(ref).state, runs) == ("completed", [0, 0])


def test_a_pause_of_one_key_holds_only_that_key() -> None:
    queue, runs = kit(concurrency=1, key=lambda task: task.data["shop"])
    a = enqueue(queue, 2, shop="a")
    [b] = enqueue(queue, 1, shop="b")
    assert queue.pause("mail.send", key="a")["target"] == "mail.send:a"
    queue.run()
    assert runs == [0]
    assert queue.get(b).state == "completed"
    assert [queue.get(ref).fields["pausedFor"] for ref in a] == ["mail.send:a"] * 2
    assert queue.resume("mail.send", key="a")["resumed"] == 2
    queue.run()
    assert runs == [0, 0, 1]


def test_a_hand_over_does_not_start_a_paused_handler_s_task() -> None:
    queue, runs = kit(concurrency=1, lease=datetime.timedelta(seconds=10))
    refs = enqueue(queue, 3)
    for ref in refs:  # their create events: queued, waiting for the one slot
        queue.processor.handle(queue.get(ref))
    queue.pause("mail.send")
    queue.run()  # every dispatch finds the handler paused; nothing hands over
    assert runs == []
    assert [queue.get(ref).fields.get("pausedFor") for ref in refs] == ["mail.send"] * 3
    queue.resume("mail.send")
    queue.run()
    assert runs == [0, 1, 2]


def test_pausing_reads_nothing_for_the_tasks_of_other_handlers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    queue, runs = kit()
    queue.pause("mail.send")
    reads: list[str] = []
    read = pauses.read
    monkeypatch.setattr(pauses, "read", lambda client, target: reads.append(target) or read(
        client, target))
    for n in range(20):
        queue.enqueue("orders/o", NewTask("report", "build", {"n": n}))
    queue.run()
    assert len(runs) == 20
    assert reads == []  # the cached list of paused targets says it is not paused


def on_a_fake_clock() -> tuple[Pauses, list[float]]:
    """A cache of the list of paused targets for 5 s, on a clock that reads `now[0]`."""
    now = [0.0]
    return Pauses(ttl=5, clock=lambda: now[0]), now


@contextlib.contextmanager
def listings_at(now: list[float]) -> Iterator[list[float]]:
    """The times (by `now`) at which the list of paused targets is read, while in the block."""
    listings: list[float] = []
    real = pauses.listed
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pauses, "listed", lambda client: listings.append(now[0]) or real(client))
        yield listings


def test_the_list_of_paused_targets_is_read_once_a_period_and_a_resume_seen_at_once() -> None:
    queue, _ = kit()
    cache, now = on_a_fake_clock()
    client = queue.client
    with listings_at(now) as listings:
        assert cache.paused(client, ["mail.send"]) is None
        queue.pause("mail.send")
        now[0] = 4.9
        assert cache.paused(client, ["mail.send"]) is None  # within the period: not seen yet
        now[0] = 5.0
        pause = cache.paused(client, ["mail.send"])
        assert pause is not None
        assert pause.by == "kit@firetasks.test"
        queue.resume("mail.send")
        assert cache.paused(client, ["mail.send"]) is None  # its document is read: gone
        assert len(listings) == 2


def test_an_event_past_half_the_lists_life_reads_it_ahead_for_the_next() -> None:
    queue, _ = kit()
    cache, now = on_a_fake_clock()
    client = queue.client
    with listings_at(now) as listings:
        cache.refresh_ahead(client)  # never read: the next check reads it, not the last event
        assert cache.paused(client, ["mail.send"]) is None
        now[0] = 2.4
        cache.refresh_ahead(client)  # young enough
        queue.pause("mail.send")
        now[0] = 2.5
        cache.refresh_ahead(client)
        now[0] = 7.4
        pause = cache.paused(client, ["mail.send"])  # read ahead at 2.5: fresh, no listing
        assert pause is not None
        assert pause.target == "mail.send"
        now[0] = 20.0
        cache.refresh_ahead(client)  # stale: the next check reads it anyway
        assert listings == [0.0, 2.5]


def test_a_wake_up_reads_the_list_ahead_once_its_task_ran() -> None:
    registry = HandlerRegistry()
    cache, now = on_a_fake_clock()

    @registry.handler("report", "build")
    def build(task: Task) -> None:
        now[0] += 3  # the attempt takes the list past half its life

    queue = MemoryQueue(registry)
    queue.processor.flow.pauses = cache
    with listings_at(now) as listings:
        queue.enqueue("orders/o", NewTask("report", "build", run_at=queue.clock.now
                                          + datetime.timedelta(hours=1)))
        queue.run()
    assert queue.tasks()[0].state == "completed"
    assert listings == [0.0, 3.0]  # before the task started, and after its outcome was written


def test_a_failed_read_ahead_is_logged_and_left_to_the_next_check(
        capsys: pytest.CaptureFixture[str]) -> None:
    queue, _ = kit()
    cache, now = on_a_fake_clock()
    assert cache.paused(queue.client, ["mail.send"]) is None
    now[0] = 3.0

    def unavailable(client: Any) -> list[pauses.Pause]:
        raise ServiceUnavailable("emulator restarting")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pauses, "listed", unavailable)
        cache.refresh_ahead(queue.client)
    assert "could not read the list of paused handlers ahead" in capsys.readouterr().out
    queue.pause("mail.send")
    now[0] = 5.0
    assert cache.paused(queue.client, ["mail.send"]) is not None


@pytest.mark.parametrize(("handler", "key", "field"), [
    (None, None, "handler"), (7, None, "handler"), ("mail.nope", None, "handler"),
    ("mail.send", "k", "key"), ("mail.send", 3, "key"),
    ("mail.send", "", "key"), ("mail.send", "x" * 501, "key"),
])
def test_bad_targets_are_refused_naming_the_field(handler: Any, key: Any, field: str) -> None:
    queue, _ = kit()
    with pytest.raises(BadRequest, match=f"^{field}"):
        pauses.target_of(queue.queue, handler, key)


def test_resuming_what_is_not_paused_starts_nothing_and_says_so() -> None:
    queue, runs = kit()
    assert queue.resume("mail.send") == {"target": "mail.send", "paused": False, "resumed": 0}
    assert pauses.listed(queue.client) == []
    assert runs == []
