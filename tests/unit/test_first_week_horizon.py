"""Long delays (issue 23, item 10): Cloud Tasks refuses a scheduleTime more than 30 days ahead, so
a wake-up due later is scheduled at the horizon (29 days) and scheduled again from there; a task
due in 90 days starts at its runAt, on the kit's fake clock, with a waker that refuses what Cloud
Tasks refuses."""

from __future__ import annotations

import datetime

from google.cloud.firestore import DocumentReference

from firetasks import HandlerRegistry, NewTask, Task
from firetasks.processor import TaskProcessor
from firetasks.testing import MemoryQueue
from firetasks.wakeup import (
    TASKS_EMULATOR,
    WAKE_HORIZON,
    CloudTasksWaker,
    HorizonWaker,
    Waker,
    horizon_at,
)

DAY = datetime.timedelta(days=1)
CLOUD_TASKS_LIMIT = 30 * DAY
NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


class CloudTasksLimits:
    """A waker that refuses what Cloud Tasks refuses (a scheduleTime over 30 days ahead)."""

    def __init__(self, waker: Waker, clock) -> None:
        self.waker, self.clock = waker, clock
        self.refused: list[datetime.datetime] = []
        self.scheduled: list[datetime.datetime] = []

    def wake_at(self, ref: DocumentReference, at: datetime.datetime) -> bool:
        if at - self.clock() > CLOUD_TASKS_LIMIT:
            self.refused.append(at)
            return False
        self.scheduled.append(at)
        return self.waker.wake_at(ref, at)


def test_a_task_due_in_90_days_starts_at_its_run_at_through_wake_ups_within_the_horizon():
    registry = HandlerRegistry()
    starts: list[datetime.datetime] = []

    @registry.handler("invoice", "remind")
    def remind(task: Task) -> None:
        starts.append(queue.clock())

    queue = MemoryQueue(registry)
    limits = CloudTasksLimits(queue.waker, queue.clock)
    queue.processor = TaskProcessor(  # the kit's processor, its wake-ups through the limits
        queue.queue, waker=HorizonWaker(limits, queue.clock), store=queue.store,
        clock=queue.clock, dispatcher=queue.dispatcher, sleep=queue.clock.advance)
    start = queue.clock()
    due = start + 90 * DAY
    ref = queue.enqueue("invoices/i-1", NewTask("invoice", "remind", run_at=due))
    queue.run()
    assert limits.refused == []
    assert limits.scheduled == [start + 29 * DAY, start + 58 * DAY, start + 87 * DAY, due]
    assert (queue.get(ref).state, starts) == ("completed", [due])


def test_horizon_at_keeps_a_near_time_and_brings_a_far_one_to_the_horizon():
    assert horizon_at(NOW + DAY, NOW) == NOW + DAY
    assert horizon_at(NOW + 29 * DAY, NOW) == NOW + 29 * DAY
    assert horizon_at(NOW + 90 * DAY, NOW) == NOW + WAKE_HORIZON
    assert NOW + WAKE_HORIZON < NOW + CLOUD_TASKS_LIMIT


def test_the_cloud_tasks_waker_schedules_at_most_the_horizon_ahead(monkeypatch):
    # As deployed: under the Cloud Tasks emulator (`make test`) far wake-ups are the sweeper's.
    monkeypatch.delenv(TASKS_EMULATOR, raising=False)
    queued: list[datetime.datetime | None] = []
    waker = CloudTasksWaker(clock=lambda: NOW)
    monkeypatch.setattr(waker, "enqueue", lambda ref, *, at=None, **options: queued.append(at)
                        or True)
    ref = MemoryQueue(HandlerRegistry()).store.client.document("invoices/i-1/tasks/t")
    assert waker.wake_at(ref, NOW + 90 * DAY)
    assert waker.wake_at(ref, NOW + 3 * DAY)
    assert queued == [NOW + WAKE_HORIZON, NOW + 3 * DAY]
