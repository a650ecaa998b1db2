"""Periodic tasks: schedules in both syntaxes and their fire times (time zones, daylight saving),
one task per firing on a fake clock, missed firings skipped, and the scheduled functions."""

from __future__ import annotations

import datetime

import pytest

import main
from firetasks import HandlerRegistry, Task, periodic_triggers
from firetasks.periodic import PERIODIC_COLLECTION, function_name
from firetasks.schedule import Schedule, to_cron
from firetasks.testing import START, MemoryQueue


def utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=datetime.UTC)


@pytest.mark.parametrize(("text", "cron"), [
    ("every day 06:00", "0 6 * * *"),
    ("every  Day 6:05", "5 6 * * *"),
    ("every monday 09:30", "30 9 * * 1"),
    ("every mon,wed,friday 18:00", "0 18 * * 1,3,5"),
    ("every 15 minutes", "*/15 * * * *"),
    ("every 1 minutes", "* * * * *"),
    ("every 6 hours", "0 */6 * * *"),
    ("0 6 * * *", "0 6 * * *"),
    ("*/5 8-18 * * MON-Fri", "*/5 8-18 * * 1-5"),
    ("0 0 * * sunday,sat", "0 0 * * 0,6"),
])
def test_both_syntaxes_become_cron_for_cloud_scheduler(text, cron):
    assert to_cron(text) == cron
    assert Schedule.parse(text).cron == cron


@pytest.mark.parametrize(("text", "message"), [
    ("every 7 minutes", "N dividing 60"),
    ("every 5 hours", "N dividing 24"),
    ("every funday 06:00", "funday is not a day of the week"),
    ("every day 25:00", "neither a cron expression"),
    ("60 * * * *", "outside 0-59"),
    ("0 6 * *", "neither a cron expression"),
    ("0 0 31 2 *", "never fires"),
    ("0 6 * * abc", "is not a number"),
    ("0 6 * * 1~5", r"is not \*, N, A-B or a step"),
])
def test_bad_schedules_are_refused_with_the_reason(text, message):
    with pytest.raises(ValueError, match=message):
        Schedule.parse(text)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        Schedule.parse("every day 06:00", "Mars/Olympus")


def test_the_latest_fire_time_is_at_or_before_now_in_the_schedule_s_zone():
    berlin = Schedule.parse("every day 06:00", "Europe/Berlin")
    assert berlin.latest(utc(2026, 11, 28, 5, 0)) == utc(2026, 11, 28, 5, 0)  # CET: UTC+1
    assert berlin.latest(utc(2026, 11, 28, 4, 59)) == utc(2026, 11, 27, 5, 0)
    assert berlin.latest(utc(2026, 7, 1, 12, 0)) == utc(2026, 7, 1, 4, 0)  # CEST: UTC+2
    quarter = Schedule.parse("*/15 * * * *")
    assert quarter.latest(utc(2026, 11, 28, 10, 44, 59)) == utc(2026, 11, 28, 10, 30)
    leap = Schedule.parse("0 0 29 2 *")
    assert leap.latest(utc(2027, 6, 1)) == utc(2024, 2, 29)


def test_restricted_day_fields_match_either_as_in_cron():
    first_or_monday = Schedule.parse("0 0 1 * 1")
    assert first_or_monday.latest(utc(2026, 12, 2, 12)) == utc(2026, 12, 1)  # Tuesday the 1st
    assert first_or_monday.latest(utc(2026, 11, 30, 12)) == utc(2026, 11, 30)  # a Monday
    weekdays = Schedule.parse("0 9 * * mon-fri")
    assert weekdays.latest(utc(2026, 11, 29, 12)) == utc(2026, 11, 27, 9)  # Sunday: Friday's


def test_daylight_saving_skips_a_missing_wall_time_and_fires_a_repeated_one_once():
    night = Schedule.parse("30 2 * * *", "Europe/Berlin")
    # 29 March 2026: 02:00 CET became 03:00 CEST, so 02:30 did not exist: the day before's
    assert night.latest(utc(2026, 3, 29, 12)) == utc(2026, 3, 28, 1, 30)
    # 25 October 2026: 02:30 came twice (00:30 and 01:30 UTC); it fires the first time only
    assert night.latest(utc(2026, 10, 25, 0, 45)) == utc(2026, 10, 25, 0, 30)
    assert night.latest(utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)


@pytest.fixture
def queue() -> MemoryQueue:
    registry = HandlerRegistry()

    @registry.periodic("reports", "daily", schedule="every day 06:00", timezone="Europe/Berlin")
    def daily(task: Task) -> dict:
        return {"fireTime": task.data["fireTime"]}

    @registry.handler("order", "ship")
    def ship(task: Task) -> None: ...

    return MemoryQueue(registry)


def test_a_firing_creates_one_task_that_runs_like_any_other(queue):
    queue.clock.now = utc(2030, 1, 1, 5, 0, 20)  # 06:00:20 in Berlin
    ref = queue.tick("reports", "daily")
    assert ref is not None
    assert ref.path == f"{PERIODIC_COLLECTION}/reports.daily/tasks/reports.daily@20300101T0500Z"
    queue.clock.advance(3600)
    assert queue.tick("reports", "daily") is None  # the scheduler fired twice: still one task
    queue.run()
    task = queue.get(ref)
    assert (task.state, task.attempts) == ("completed", 1)
    assert task.fields["result"] == {"fireTime": "2030-01-01T05:00:00+00:00"}
    assert task.data == {"fireTime": "2030-01-01T05:00:00+00:00", "schedule": "every day 06:00",
                         "timezone": "Europe/Berlin"}
    assert task.fields["runAt"] == utc(2030, 1, 1, 5, 0)


def test_missed_firings_are_skipped_a_tick_creates_the_latest_only(queue):
    queue.clock.now = START
    assert queue.tick("reports", "daily") is not None  # 31 December's firing
    queue.clock.advance(4 * 86400)  # three firings missed while nothing ticked
    assert queue.tick("reports", "daily") is not None
    queue.run()
    assert [task.path.rsplit("@")[-1] for task in queue.tasks()] == ["20291231T0500Z",
                                                                    "20300104T0500Z"]


def test_only_periodic_handlers_tick(queue):
    with pytest.raises(ValueError, match=r"'order\.ship' is not a periodic handler"):
        queue.tick("order", "ship")


def test_each_periodic_handler_deploys_as_a_scheduled_function_on_its_schedule(queue):
    triggers = periodic_triggers(queue.queue)
    assert list(triggers) == ["periodicReportsDaily"]
    endpoint = triggers["periodicReportsDaily"].__firebase_endpoint__  # type: ignore[attr-defined]
    assert endpoint.scheduleTrigger["schedule"] == "0 6 * * *"
    assert endpoint.scheduleTrigger["timeZone"] == "Europe/Berlin"
    assert function_name("inventory", "mutations.recount") == "periodicInventoryMutationsRecount"
    assert main.periodicReportsDaily.__firebase_endpoint__.scheduleTrigger["schedule"] == (
        "0 6 * * *")
