"""Periodic tasks on the emulator: a tick (what the scheduled function does; the emulator fires no
schedules) creates the firing's task once however often it runs, and the real trigger runs it.
Each test ticks at a time of its own, on a day long past, so that its firing is its alone."""

from __future__ import annotations

import datetime
from concurrent.futures import ThreadPoolExecutor

import flask

import main
from firetasks import periodic
from shop.handlers import REPORTS
from tests.support import wait_for_state

HOUR = datetime.timedelta(hours=1)


def a_day_of_its_own(uid: str) -> datetime.datetime:
    """07:00 UTC (08:00 in Berlin, after the daily report's 06:00) of a day from 2001 to 2025."""
    day = datetime.date(2001, 1, 1) + datetime.timedelta(days=int(uid, 16) % 9000)
    return datetime.datetime.combine(day, datetime.time(7), tzinfo=datetime.UTC)


def test_the_daily_report_s_firing_runs_once_through_the_trigger(db, uid):
    now = a_day_of_its_own(uid)
    fire = periodic.firing(main.queue, "reports", "daily", now).at
    assert fire.astimezone(main.registry.lookup("reports", "daily").schedule.zone).hour == 6
    for name, created in [("a", fire - HOUR), ("b", fire - 23 * HOUR), ("c", fire - 25 * HOUR)]:
        db.document(f"orders/{uid}{name}").set({"createdAt": created, "email": "x@example.com"})

    ref = periodic.tick(db, main.queue, "reports", "daily", now)
    assert ref is not None
    assert ref.path == periodic.firing(main.queue, "reports", "daily", now).path(main.queue)
    assert periodic.tick(db, main.queue, "reports", "daily", now + HOUR) is None  # fired twice
    task = wait_for_state(ref)
    assert (task["state"], task["attempts"]) == ("completed", 1)
    assert task["result"]["orders"] == 2  # a and b: the 24 hours before the firing
    assert task["runAt"] == fire
    assert task["expireAt"] - task["finishedAt"] > datetime.timedelta(days=89)  # its retention
    report = db.document(task["result"]["report"]).get().to_dict()
    assert report["orders"] == 2
    assert task["result"]["report"].startswith(f"{REPORTS}/daily-")


def test_concurrent_ticks_of_one_firing_create_one_task(db, uid):
    now = a_day_of_its_own(uid) + datetime.timedelta(days=1)
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda _: periodic.tick(db, main.queue, "reports", "daily", now),
                                range(8)))
    [ref] = [ref for ref in created if ref is not None]
    assert wait_for_state(ref)["attempts"] == 1
    assert periodic.tick_all(db, main.queue, now) == []  # the demo's tick: nothing new


def test_the_scheduled_function_ticks_for_cloud_scheduler_s_schedule_time(db, uid):
    """The deployed function, called as Cloud Scheduler calls it: the firing is the one of the
    request's scheduleTime, however late the call comes."""
    at = a_day_of_its_own(uid) + datetime.timedelta(days=2)
    fire = periodic.firing(main.queue, "reports", "daily", at)
    headers = {"X-CloudScheduler-ScheduleTime": at.isoformat().replace("+00:00", "Z")}
    with flask.Flask(__name__).test_request_context(method="POST", headers=headers):
        response = main.periodicReportsDaily(flask.request)
    assert response.status_code == 200
    task = wait_for_state(db.document(fire.path(main.queue)))
    assert (task["state"], task["data"]["fireTime"]) == ("completed", fire.at.isoformat())
