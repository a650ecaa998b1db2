"""Flow control without Firestore: the limits' declaration, the queue functions and their Cloud
Tasks limits, and the processor's queuing of a limited handler's tasks (on MemoryQueue, whose
dispatcher stands in for Cloud Tasks: no Cloud Tasks can run here). The limits themselves are
measured through the emulators in tests/emulator/test_limits.py."""

from __future__ import annotations

import datetime

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.protobuf.timestamp_pb2 import Timestamp

import main
from firetasks import HandlerRegistry, NewTask, Rate, RetryPolicy, Task, limited_triggers
from firetasks.flow import Admitted, dispatch_id, function_name
from firetasks.key_slots import KeySlots
from firetasks.limits import Limits
from firetasks.rate_gate import RateGate
from firetasks.testing import MemoryQueue


@pytest.mark.parametrize(("text", "count", "per"), [
    ("10/s", 10, 1.0), ("600/m", 600, 60.0), (" 100 / h ", 100, 3600.0), ("1/s", 1, 1.0),
])
def test_rates_parse_per_second_minute_and_hour(text, count, per):
    rate = Rate.parse(text)
    assert (rate.count, rate.per) == (count, per)
    assert Rate.parse(rate) is rate
    assert str(rate) == text.replace(" ", "")


@pytest.mark.parametrize(("text", "message"), [
    ("10", "not like"), ("10/d", "not like"), ("0/s", "count >= 1"), ("501/s", "500"),
    ("-1/s", "not like"),
])
def test_bad_rates_are_refused_with_the_reason(text, message):
    with pytest.raises(ValueError, match=message):
        Rate.parse(text)


def test_the_queue_is_declared_with_the_limits():
    limits = Limits.of(5, "10/s")
    assert limits is not None
    declared = limits.rate_limits()
    assert declared.max_concurrent_dispatches == 5
    assert declared.max_dispatches_per_second == 10
    only_rate = Limits.of(None, "600/m")
    assert only_rate is not None
    assert only_rate.rate_limits().max_concurrent_dispatches == 1000
    assert Limits.of(None, None) is None
    with pytest.raises(ValueError, match="concurrency"):
        Limits.of(0, None)
    assert str(limits) == "concurrency 5, rate 10/s"


def test_queue_names_are_letters_and_digits_and_ids_name_one_version():
    assert function_name("mail", "send") == "limitedMailSend"
    assert function_name("order", "mutations.initiate_payment") == (
        "limitedOrderMutationsInitiatePayment")
    main_queue = MemoryQueue(HandlerRegistry())
    ref = main_queue.store.client.document("orders/o/tasks/t")
    assert dispatch_id(ref, 1) == dispatch_id(ref, 1) != dispatch_id(ref, 2)
    assert dispatch_id(ref, 1) != dispatch_id(ref.parent.document("u"), 1)


def test_a_version_names_one_dispatch_however_it_was_read():
    """A write's result, a get and a query give one update time as three types: the hand-over
    deletes the Cloud Task that the queuing named, so they must name it alike."""
    ref = MemoryQueue(HandlerRegistry()).store.client.document("orders/o/tasks/t")
    read = DatetimeWithNanoseconds(2030, 1, 1, 12, 0, 0, nanosecond=123456789, tzinfo=datetime.UTC)
    queried = Timestamp(seconds=int(read.timestamp()), nanos=123456789)
    assert dispatch_id(ref, queried) == dispatch_id(ref, read) != dispatch_id(
        ref, read.replace(microsecond=123457))


def limited_queue(**limits: object) -> tuple[MemoryQueue, list[int]]:
    registry = HandlerRegistry()
    runs: list[int] = []

    @registry.handler("mail", "send", retry=RetryPolicy(max_attempts=2, min_delay=1, max_delay=1),
                      **limits)  # type: ignore[arg-type]
    def send(task: Task) -> None:
        runs.append(task.attempt)
        if task.data.get("fail") and task.attempt == 1:
            raise RuntimeError("provider down")

    return MemoryQueue(registry), runs


def test_the_registry_lists_its_limited_handlers():
    queue, _ = limited_queue(concurrency=2, rate="5/s")
    [(type, action, limits)] = queue.queue.registry.limited()
    assert (type, action, limits) == ("mail", "send", Limits(2, Rate(5, 1.0)))


def test_a_limited_task_waits_queued_then_runs_when_its_queue_dispatches_it():
    queue, runs = limited_queue(concurrency=1)
    ref = queue.enqueue("orders/o", NewTask("mail", "send", {}))
    record = queue.get(ref)
    queue.processor.handle(record)  # its create event: queued, not run
    waiting = queue.get(ref)
    assert waiting.state == "scheduled"
    assert "queuedAt" in waiting.fields
    assert runs == []
    assert queue.dispatcher.pending == [ref]
    queue.processor.handle(waiting)  # the queuedAt write's own event: the same Cloud Task
    assert queue.dispatcher.pending == [ref]
    queue.processor.wake(ref)  # a sweeper's wake-up (its Cloud Task may be lost): a new one
    assert queue.dispatcher.pending == [ref, ref]
    queue.run()  # the second dispatch finds the task completed, and runs nothing
    done = queue.get(ref)
    assert done.state == "completed"
    assert runs == [1]
    assert "queuedAt" not in done.fields


def test_a_retry_of_a_limited_task_goes_through_its_queue_again():
    queue, runs = limited_queue(rate="10/s")
    ref = queue.enqueue("orders/o", NewTask("mail", "send", {"fail": True}))
    queue.run()
    done = queue.get(ref)
    assert done.state == "completed"
    assert done.attempts == 2
    assert runs == [1, 2]
    assert len(queue.dispatcher.ids) == 2  # one Cloud Task per attempt


def test_main_deploys_one_queue_function_per_limited_handler():
    triggers = limited_triggers(main.processor)
    assert set(triggers) == {function_name(type, action)
                             for type, action, _ in main.registry.limited()}
    assert all(hasattr(main, name) for name in triggers)
    queue, _ = limited_queue(concurrency=3)
    assert set(limited_triggers(queue.processor)) == {"limitedMailSend"}


def test_two_handlers_with_one_queue_name_are_refused():
    registry = HandlerRegistry()
    registry.register("a", "b_c", lambda task: None, limits=Limits(1))
    registry.register("a", "bC", lambda task: None, limits=Limits(1))
    with pytest.raises(ValueError, match="queue name"):
        limited_triggers(MemoryQueue(registry).processor)


def test_limits_per_key_are_declared_with_their_key_and_leave_the_queue_unlimited():
    limits = Limits.of(1, "2/s", key=lambda task: task.data["warehouse"])
    assert limits is not None
    assert str(limits) == "concurrency 1, rate 2/s per key"
    declared = limits.rate_limits()  # Firestore holds per-key limits, not the queue
    assert declared.max_concurrent_dispatches == 1000
    assert declared.max_dispatches_per_second == 500
    with pytest.raises(ValueError, match="needs a concurrency or a rate"):
        Limits.of(None, None, key=lambda task: "k")
    with pytest.raises(ValueError, match="per key must be from 1 to 100"):
        Limits.of(101, None, key=lambda task: "k")
    with pytest.raises(ValueError, match="needs a claim"):
        HandlerRegistry().handler("a", "b", atomic=True, concurrency=1, key=lambda task: "k")(
            lambda task: None)


def test_a_keyed_task_waits_with_its_limit_key_and_the_claim_removes_it():
    queue, runs = limited_queue(concurrency=1, key=lambda task: task.data["warehouse"])
    ref = queue.enqueue("orders/o", NewTask("mail", "send", {"warehouse": "w/1"}))
    queue.processor.handle(queue.get(ref))  # its create event: queued with its key
    waiting = queue.get(ref)
    assert waiting.fields["limitKey"] == "mail.send:w/1"
    assert queue.dispatcher.pending == [ref]
    queue.run()
    done = queue.get(ref)
    assert (done.state, runs) == ("completed", [1])
    assert "limitKey" not in done.fields


def test_a_key_function_that_fails_ends_its_task_failed_as_invalid():
    queue, runs = limited_queue(concurrency=1, key=lambda task: task.data["warehouse"])
    ref = queue.enqueue("orders/o", NewTask("mail", "send", {}))
    queue.run()
    failed = queue.get(ref)
    assert failed.state == "failed"
    assert failed.fields["error"]["type"] == "InvalidTask"
    assert "its limit key failed: KeyError('warehouse')" in failed.fields["error"]["message"]
    assert runs == []


def test_an_attempt_hands_its_slot_to_the_oldest_waiting_task_with_its_outcome():
    queue, runs = limited_queue(concurrency=1, lease=datetime.timedelta(seconds=10))
    refs = [queue.enqueue("orders/o", NewTask("mail", "send", {"n": n})) for n in range(3)]
    for ref in refs:  # their create events: all three queued
        queue.processor.handle(queue.get(ref))
    assert [queue.get(ref).fields["limitKey"] for ref in refs] == ["mail.send"] * 3
    queue.clock.advance(1)  # the tasks waited for their slot: a look for the next is worth it
    queue.processor.run_admitted(queue.dispatcher.pending.pop(0))  # ONE dispatch runs all three
    done = [queue.get(ref) for ref in refs]
    assert [record.state for record in done] == ["completed"] * 3
    assert runs == [1, 1, 1]
    assert queue.dispatcher.pending == []  # the hand-overs deleted the others' Cloud Tasks


def test_a_hand_over_reads_one_waiting_task(monkeypatch):
    queue, runs = limited_queue(concurrency=10, lease=datetime.timedelta(seconds=10))
    refs = [queue.enqueue("orders/o", NewTask("mail", "send", {"n": n})) for n in range(5)]
    for ref in refs:
        queue.processor.handle(queue.get(ref))
    reads: list[int] = []
    oldest_waiting = queue.store.oldest_waiting
    monkeypatch.setattr(queue.store, "oldest_waiting", lambda *args: reads.append(1) or
                        oldest_waiting(*args))
    queue.clock.advance(1)  # the tasks waited for their slot: a look for the next is worth it
    queue.processor.run_admitted(queue.dispatcher.pending.pop(0))
    assert runs == [1] * 5
    assert len(reads) == 5  # one query of one task a hand-over, and the last finds none


def test_a_task_that_started_at_once_does_not_look_for_a_waiting_one(monkeypatch):
    """Its slot was free when it was queued: nothing waited beside it, so no read is spent."""
    queue, runs = limited_queue(concurrency=10, lease=datetime.timedelta(seconds=10))
    ref = queue.enqueue("orders/o", NewTask("mail", "send", {}))
    queue.processor.handle(queue.get(ref))
    monkeypatch.setattr(queue.store, "oldest_waiting", lambda *args: pytest.fail("a read"))
    queue.processor.run_admitted(queue.dispatcher.pending.pop(0))
    assert (queue.get(ref).state, runs) == ("completed", [1])


def test_a_hand_over_that_loses_its_claim_gives_its_slot_back_to_the_queue(monkeypatch):
    queue, runs = limited_queue(concurrency=2, lease=datetime.timedelta(seconds=10))
    refs = [queue.enqueue("orders/o", NewTask("mail", "send", {"n": n})) for n in range(3)]
    for ref in refs:
        queue.processor.handle(queue.get(ref))
    oldest_waiting, reads = queue.store.oldest_waiting, []

    def raced(beside, key, count=1):  # the first in line changes once, after it was read
        found = oldest_waiting(beside, key, count)
        reads.append(found[0].ref if found else None)
        if len(reads) == 1:
            queue.store.write_if_unchanged(found[0].ref, found[0].version, {"data": {"n": 1}})
        return found
    monkeypatch.setattr(queue.store, "oldest_waiting", raced)
    queue.clock.advance(1)  # the tasks waited for their slot: a look for the next is worth it
    queue.processor.run_admitted(queue.dispatcher.pending.pop(0))
    assert [queue.get(ref).state for ref in refs] == ["completed", "scheduled", "scheduled"]
    assert reads == [refs[1]]  # one read, and the lost claim ends the chain
    queue.run()  # the queue's next dispatches run the others
    assert [queue.get(ref).state for ref in refs] == ["completed"] * 3
    assert runs == [1, 1, 1]


def test_without_a_lease_shorter_than_the_timeout_a_slot_goes_back_to_the_queue():
    queue, runs = limited_queue(concurrency=1)  # the default lease outlasts the timeout
    refs = [queue.enqueue("orders/o", NewTask("mail", "send", {"n": n})) for n in range(2)]
    for ref in refs:
        queue.processor.handle(queue.get(ref))
    queue.clock.advance(1)  # the tasks waited for their slot: a look for the next is worth it
    queue.processor.run_admitted(queue.dispatcher.pending.pop(0))
    assert [queue.get(ref).state for ref in refs] == ["completed", "scheduled"]
    assert runs == [1]


def test_a_keyed_task_is_read_once_a_dispatch(monkeypatch):
    """Through the limited handler's queue function's Admitted (its key slot taken and freed in
    the kit's store): the task read to find its key is the one the claim is conditional on."""
    queue, runs = limited_queue(concurrency=1, key=lambda task: task.data["warehouse"])
    ref = queue.enqueue("orders/o", NewTask("mail", "send", {"warehouse": "w-1"}))
    queue.processor.handle(queue.get(ref))  # queued with its key
    reads = []
    read = queue.store.read
    monkeypatch.setattr(queue.store, "read", lambda ref: reads.append(ref.path) or read(ref))
    # The release's query for the key's next task is one query in Firestore; the kit's store
    # answers it by reading every task: left out here.
    monkeypatch.setattr(queue.processor.flow, "start_waiting", lambda beside, key: None)
    registration = queue.queue.registry.lookup("mail", "send")
    admitted = Admitted(queue.processor, "mail.send", registration.limits, RateGate(), KeySlots())
    admitted.wake(ref)
    assert reads.count(ref.path) == 1
    assert (queue.get(ref).state, runs) == ("completed", [1])
