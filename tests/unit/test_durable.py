"""Durable handlers in the test kit: steps run once across failures and crashes, atomic steps
commit their writes with their results, sleeps suspend the task on the fake clock."""

from __future__ import annotations

import argparse
import datetime
import logging
from typing import Any

import pytest

from firetasks import HandlerRegistry, NewTask, RetryPolicy, Task, cli
from firetasks.client_rules import rules_function
from firetasks.errors import StepError
from firetasks.steps import MAX_RESULT_BYTES
from firetasks.testing import START, MemoryQueue
from tests.support import ROOT
from tests.unit.test_readme import python_block

RETRY = RetryPolicy(max_attempts=3, min_delay=1, jitter=0)
DURABLE_GUIDE = ROOT / "docs" / "guides" / "durable.md"


class Crash(BaseException):
    """What a killed worker leaves: no outcome written (a BaseException escapes the kit)."""


def durable_queue(fail: dict[int, str] | None = None) -> tuple[MemoryQueue, list[tuple[str, int]]]:
    """A queue with `order.ship`: four steps; `fail` maps an attempt to the step after which it
    fails ("crash:stepN" kills the worker instead). The steps' runs, as (name, attempt)."""
    registry = HandlerRegistry()
    runs: list[tuple[str, int]] = []

    def run(task: Task, name: str) -> str:
        runs.append((name, task.attempt))
        task.writes.set(task.client.document(f"effects/{name}"), {"by": task.attempt})
        return f"{name} done"

    @registry.handler("order", "ship", retry=RETRY)
    def ship(task: Task) -> list[str]:
        results = []
        for name in ("reserve", "charge", "pick", "label"):
            results.append(task.step(name, run, task, name))
            planned = (fail or {}).get(task.attempt)
            if planned == f"crash:{name}":
                raise Crash
            if planned == name:
                raise RuntimeError(f"failed after {name}")
        return results

    return MemoryQueue(registry), runs


def test_a_failure_after_step_2_retries_from_step_3() -> None:
    queue, runs = durable_queue({1: "charge"})
    ref = queue.enqueue("orders/o-1", NewTask("order", "ship", {}))
    queue.run()
    record = queue.get(ref)
    assert (record.state, record.attempts) == ("completed", 2)
    assert runs == [("reserve", 1), ("charge", 1), ("pick", 2), ("label", 2)]
    assert record.fields["result"] == ["reserve done", "charge done", "pick done", "label done"]
    steps = record.fields["steps"]
    assert [steps[name]["attempt"] for name in ("reserve", "charge", "pick", "label")] == [
        1, 1, 2, 2]
    assert queue.document("effects/charge") == {"by": 1}


def test_a_crash_after_step_2_resumes_at_step_3_once_the_lease_expires() -> None:
    queue, runs = durable_queue({1: "crash:charge"})
    ref = queue.enqueue("orders/o-1", NewTask("order", "ship", {}))
    with pytest.raises(Crash):
        queue.run()
    assert queue.get(ref).state == "running"
    queue.clock.advance(queue.queue.lease_of("order", "ship").total_seconds() + 1)
    assert queue.expire_leases() == 1
    queue.run()
    assert queue.get(ref).state == "completed"
    assert runs == [("reserve", 1), ("charge", 1), ("pick", 2), ("label", 2)]


def test_an_atomic_step_s_writes_commit_with_its_result_or_not_at_all() -> None:
    registry = HandlerRegistry()

    def charge(task: Task) -> str:
        task.writes.set(task.client.document("payments/p-1"), {"amount": 5})
        if task.attempt == 1:
            raise RuntimeError("card network down")
        return "p-1"

    @registry.handler("payment", "charge", retry=RETRY)
    def handler(task: Task) -> Any:
        return task.step("charge", charge, task)

    queue = MemoryQueue(registry)
    ref = queue.enqueue("orders/o-1", NewTask("payment", "charge", {}))
    queue.run(until=queue.clock())
    assert queue.get(ref).state == "retrying"
    assert queue.document("payments/p-1") is None  # the failed step's writes were dropped
    queue.run()
    assert queue.get(ref).fields["result"] == "p-1"
    assert queue.document("payments/p-1") == {"amount": 5}


def one_step_queue(handler: Any, **options: Any) -> tuple[MemoryQueue, Any]:
    registry = HandlerRegistry()
    registry.register("order", "ship", handler, retry=RETRY, **options)
    queue = MemoryQueue(registry)
    ref = queue.enqueue("orders/o-1", NewTask("order", "ship", {}))
    queue.run()
    return queue, queue.get(ref)


@pytest.mark.parametrize(("handler", "message"), [
    (lambda task: [task.step("a", int), task.step("a", int)], "step name 'a' is used twice"),
    (lambda task: task.step("a b", int), "a step's name is 1 to 100 letters"),
    (lambda task: task.step("big", lambda: "x" * MAX_RESULT_BYTES), "a step's result is at most"),
    (lambda task: task.step("set", set), "step 'set' returned a value that is not JSON-able"),
    (lambda task: task.sleep("nap", 5), "the duration must be a timedelta"),
])
def test_a_misused_step_fails_the_task_at_once_saying_why(handler: Any, message: str) -> None:
    _, record = one_step_queue(handler)
    assert record.state == "failed", record.fields
    assert message in record.fields["error"]["message"]


def test_an_atomic_handler_has_no_steps() -> None:
    _, record = one_step_queue(lambda task: task.step("a", int), atomic=True)
    assert record.state == "failed"
    assert "task.step is for handlers in claim mode" in record.fields["error"]["message"]


def sleeper(task: Task) -> dict[str, Any]:
    before = task.step("before", lambda: task.attempt)
    task.sleep("cool-off", datetime.timedelta(days=task.data["days"]))
    return {"before": before, "after": task.step("after", lambda: task.attempt)}


@pytest.mark.parametrize("days", [0.25, 90])
def test_a_sleep_suspends_the_task_until_its_end_without_being_an_attempt(days: float) -> None:
    registry = HandlerRegistry()
    registry.register("order", "cool", sleeper, retry=RETRY)
    queue = MemoryQueue(registry)
    start = queue.clock()
    end = start + datetime.timedelta(days=days)
    ref = queue.enqueue("orders/o-1", NewTask("order", "cool", {"days": days}))
    queue.run(until=start)
    suspended = queue.get(ref)
    assert (suspended.state, suspended.attempts, suspended.run_at) == ("scheduled", 0, end)
    assert suspended.fields["suspended"] == {"step": "cool-off", "kind": "sleep", "until": end,
                                          "since": start}
    assert suspended.fields["steps"]["cool-off"]["until"] == end
    queue.run()
    done = queue.get(ref)
    assert (done.state, done.attempts) == ("completed", 1)
    assert done.fields["result"] == {"before": 1, "after": 1}
    assert "suspended" not in done.fields
    assert done.fields["steps"]["after"]["finishedAt"] == end
    assert len(done.history) == 1


def test_a_sleeping_task_can_be_cancelled() -> None:
    registry = HandlerRegistry()
    registry.register("order", "cool", sleeper, retry=RETRY)
    queue = MemoryQueue(registry)
    ref = queue.enqueue("orders/o-1", NewTask("order", "cool", {"days": 1}))
    queue.run(until=queue.clock())
    queue.cancel(ref)
    queue.run()
    assert queue.get(ref).state == "cancelled"


def test_the_durable_guide_s_example_passes() -> None:
    namespace: dict[str, Any] = {}
    exec(python_block("## Steps", DURABLE_GUIDE), namespace)
    namespace["test_steps_run_once_and_the_sleep_passes_on_the_fake_clock"]()


def waiter(task: Task) -> dict[str, Any] | None:
    return task.wait_for("picked", event="warehouse.picked", match={"orderId": task.data["id"]},
                         timeout=datetime.timedelta(days=2))


def wait_queue() -> MemoryQueue:
    registry = HandlerRegistry()
    registry.register("shipping", "ship", waiter, retry=RETRY)
    return MemoryQueue(registry)


def test_an_event_sent_before_or_after_the_wait_is_delivered_once() -> None:
    queue = wait_queue()
    queue.send_event("orders/o-1", "warehouse.picked", {"orderId": "o-1", "bin": 1})
    early = queue.enqueue("orders/o-1", NewTask("shipping", "ship", {"id": "o-1"}))
    late = queue.enqueue("orders/o-2", NewTask("shipping", "ship", {"id": "o-2"}))
    queue.run(until=queue.clock())
    assert queue.get(early).fields["result"] == {"orderId": "o-1", "bin": 1}
    suspended = queue.get(late)
    assert (suspended.state, suspended.fields["suspended"]["event"]) == ("scheduled",
                                                                         "warehouse.picked")
    queue.send_event("orders/o-2", "warehouse.picked", {"orderId": "other"})  # no match
    queue.send_event("orders/o-2", "warehouse.picked", {"orderId": "o-2", "bin": 2})
    queue.send_event("orders/o-2", "warehouse.picked", {"orderId": "o-2", "bin": 3})
    queue.run(until=queue.clock())
    done = queue.get(late)
    assert (done.state, done.attempts, done.fields["result"]) == (
        "completed", 1, {"orderId": "o-2", "bin": 2})
    assert "event" in done.fields["steps"]["picked"]


def test_an_event_sent_while_the_wait_registers_is_delivered_by_the_registration_s_echo(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The event's trigger runs after the handler looked for it and before the wait is
    registered: it finds no wait; the registration's echo finds the event."""
    from firetasks import events, steps

    queue = wait_queue()
    delivered: list[int] = []

    def look_then_race(task: Any, name: str, match: Any) -> Any:
        found = events.find_event(task, name, match)
        ref = queue.send_event("orders/o-1", name, {"orderId": "o-1"})
        delivered.append(events.on_event(ref, queue.document(ref.path) or {},
                                         queue.queue.collections, queue.store))
        return found

    monkeypatch.setattr(steps, "find_event", look_then_race)
    ref = queue.enqueue("orders/o-1", NewTask("shipping", "ship", {"id": "o-1"}))
    queue.run(until=queue.clock())
    assert delivered[0] == 0  # the event's trigger came too early for the wait
    done = queue.get(ref)
    assert (done.state, done.fields["result"]) == ("completed", {"orderId": "o-1"})


def test_a_wait_times_out_and_the_handler_gets_none() -> None:
    queue = wait_queue()
    ref = queue.enqueue("orders/o-1", NewTask("shipping", "ship", {"id": "o-1"}))
    queue.run()
    done = queue.get(ref)
    assert (done.state, done.fields.get("result"), done.attempts) == ("completed", None, 1)
    assert done.fields["steps"]["picked"]["timedOut"] is True
    assert done.fields["steps"]["picked"]["finishedAt"] == START + datetime.timedelta(days=2)


def test_a_sweep_delivers_an_event_whose_trigger_was_lost() -> None:
    queue = wait_queue()
    ref = queue.enqueue("orders/o-1", NewTask("shipping", "ship", {"id": "o-1"}))
    queue.run(until=queue.clock())
    queue.store.put("orders/o-1/events/e1", {"name": "warehouse.picked", "data": {"orderId": "o-1"},
                                              "createdAt": queue.clock()})
    queue.store.events.clear()  # the event's trigger is lost
    queue.clock.advance(180)
    assert queue.sweep().delivered == 1
    assert queue.sweep().delivered == 0
    queue.run(until=queue.clock())
    assert queue.get(ref).fields["result"] == {"orderId": "o-1"}


@pytest.mark.parametrize(("name", "data", "message"), [
    ("bad name!", {}, "'event' must be a dotted name"),
    ("order.approved", ["x"], "an event's 'data' must be a map"),
])
def test_a_bad_event_is_refused_naming_the_field(name: str, data: Any, message: str) -> None:
    with pytest.raises(StepError, match=message):
        wait_queue().send_event("orders/o-1", name, data)


def test_the_durable_guide_s_wait_example_passes() -> None:
    namespace: dict[str, Any] = {}
    exec(python_block("## Waits for events", DURABLE_GUIDE), namespace)
    namespace["test_the_wait_gets_the_warehouse_s_event"]()


def test_client_events_are_written_into_the_rules_and_checked_when_declared() -> None:
    registry = HandlerRegistry()
    registry.client_event("order.approved", once=True, data="data.keys().hasOnly(['orderId'])")
    rules = rules_function(registry, indent="")
    assert ("function clientMaySend(eventId, event) {\n  let data = event.data;\n"
            "  return (event.name == 'order.approved'\n       && eventId == 'order.approved'\n"
            "       && (data.keys().hasOnly(['orderId'])));\n}") in rules
    assert "return false;" in rules_function(HandlerRegistry())  # no client events
    with pytest.raises(ValueError, match="declared once"):
        registry.client_event("order.approved")
    with pytest.raises(ValueError, match="a dotted name"):
        registry.client_event("order approved")
    assert HandlerRegistry.combine(registry).client_events() == registry.client_events()


def test_firetasks_show_prints_the_steps_and_what_the_task_waits_for(capsys) -> None:
    queue = wait_queue()
    ref = queue.enqueue("orders/o-1", NewTask("shipping", "ship", {"id": "o-1"}))
    queue.run(until=queue.clock())
    args = argparse.Namespace(queue=queue.queue, path=ref.path, json=False)
    assert cli.run_show(queue.client, args) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert ("suspended   wait 'picked' for warehouse.picked matching {\"orderId\": \"o-1\"} "
            "until 2030-01-03") in out
    assert "  step picked: null 2030-01-01" in out


def test_a_step_that_would_start_too_close_to_the_timeout_continues_in_a_new_invocation(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from firetasks import steps

    caplog.set_level(logging.INFO, logger="firetasks")
    left = iter([1000.0, 1000.0, 0.0])  # the third step finds the timeout near
    monkeypatch.setattr(steps.Steps, "time_left", lambda self: next(left, 1000.0))
    queue, runs = durable_queue()
    ref = queue.enqueue("orders/o-1", NewTask("order", "ship", {}))
    queue.run(until=queue.clock())
    done = queue.get(ref)
    assert (done.state, done.attempts, len(done.history)) == ("completed", 1, 1)
    assert runs == [("reserve", 1), ("charge", 1), ("pick", 1), ("label", 1)]
    assert sum("task suspended" in record.getMessage() for record in caplog.records) == 1
