"""What steps, sleeps and waits cost, measured on the emulator: the documents each invocation reads
and writes, counted by the meter on the processor's client (testing.meter). Each invocation of the
real processor is made by hand, on tasks in a collection no trigger watches, so that the test sees
every one of them (the trigger's echoes included) and nothing else runs them; wake-ups are kept
(firetasks.testing's RecordingWaker) instead of going to Cloud Tasks."""

from __future__ import annotations

import datetime
import uuid

from google.cloud import firestore

from firetasks import HandlerRegistry, Task, TaskProcessor, TaskQueue, events
from firetasks.clock import utc_now
from firetasks.events import send_event
from firetasks.record import TaskRecord
from firetasks.testing import RecordingWaker
from testing.meter import measure, metered
from tests.support import task_fields

COLLECTION = "measuredTasks"
registry = HandlerRegistry()


@registry.handler("measure", "steps")
def steps(task: Task) -> int:
    return sum(task.step(f"s{n}", lambda n=n: n) for n in range(task.data["steps"]))


@registry.handler("measure", "sleep")
def sleep(task: Task) -> None:
    task.sleep("nap", datetime.timedelta(hours=task.data["hours"]))


@registry.handler("measure", "wait")
def wait(task: Task) -> object:
    return task.wait_for("approved", event="order.approved", match={"orderId": "o"},
                         timeout=datetime.timedelta(days=1))


class Meter:
    """Delivers versions of tasks to a processor on a metered client, counting what it reads and
    writes and the deliveries that act (each write also fires one echo that finds the task
    `running` or as it left it, and returns without a read: the event carries the document)."""

    def __init__(self, db: firestore.Client) -> None:
        self.client = metered(firestore.Client(project=db.project))
        self.waker = RecordingWaker()
        self.ahead = datetime.timedelta()  # the processor's clock, moved on (a sleep passed)
        self.processor = TaskProcessor(TaskQueue(registry, collections=(COLLECTION,)),
                                       waker=self.waker, clock=lambda: utc_now() + self.ahead)
        self.invocations = self.reads = self.writes = 0

    def deliver(self, ref: firestore.DocumentReference, wake: bool = False) -> TaskRecord:
        """One invocation: the trigger's (of the task's latest write) or a wake-up's."""
        record = TaskRecord.from_snapshot(ref.get())
        assert record is not None
        _, reads, writes = measure((lambda: self.processor.wake(ref)) if wake else (
            lambda: self.processor.handle(record)))
        self.invocations += 1
        self.reads += reads
        self.writes += writes
        after = TaskRecord.from_snapshot(ref.get())
        assert after is not None
        if after.version == record.version:
            self.invocations -= not wake  # an echo that did nothing: not counted
        return after

    def run(self, ref: firestore.DocumentReference) -> TaskRecord:
        """Deliver the task's writes until a delivery writes nothing."""
        record = self.deliver(ref)
        while (after := self.deliver(ref)).version != record.version:
            record = after
        return after

    @property
    def figures(self) -> tuple[int, int, int]:
        return self.invocations, self.reads, self.writes


def task(meter: Meter, name: str, data: dict) -> firestore.DocumentReference:
    ref = meter.client.document(f"orders/{uuid.uuid4().hex}/{COLLECTION}/t")
    ref.set(task_fields("measure", name, data))
    return ref


def test_a_step_costs_one_write(db):
    figures = {}
    for n in (0, 4):
        meter = Meter(db)
        assert meter.run(task(meter, "steps", {"steps": n})).state == "completed"
        figures[n] = meter.figures
    assert figures[0] == (1, 0, 2)  # one invocation: the claim and the outcome
    assert figures[4] == (1, 0, 6)  # and one write per step


def test_a_sleep_costs_one_wake_up_one_invocation_and_the_claim_again(db):
    meter = Meter(db)
    ref = task(meter, "sleep", {"hours": 6})
    assert meter.run(ref).state == "scheduled"
    assert len(meter.waker.pending) == 1  # its echo armed the wake-up
    assert meter.figures == (1, 0, 2)  # the claim, the pause
    meter.ahead = datetime.timedelta(hours=7)
    meter.deliver(ref, wake=True)
    assert meter.run(ref).state == "completed"
    assert meter.figures == (2, 1, 4)  # the wake-up reads the task, claims it, completes it


def test_a_wait_costs_one_write_to_register_and_one_to_deliver(db):
    meter = Meter(db)
    ref = task(meter, "wait", {})
    assert meter.run(ref).fields["suspended"]["kind"] == "wait"
    assert meter.figures == (1, 0, 2)  # the claim, the registration (and 2 empty queries)
    event = send_event(ref.parent.parent, "order.approved", {"orderId": "o"})
    fields = event.get().to_dict() or {}
    _, reads, writes = measure(lambda: events.on_event(event, fields, [COLLECTION],
                                                       meter.processor.store))
    assert (reads, writes) == (1, 1)  # the event's trigger: the waiting task, the delivery
    done = meter.run(ref)
    assert done.fields["result"] == {"orderId": "o"}
    assert meter.figures == (2, 0, 4)  # the claim again and the outcome
