"""A second tasks collection (main.py's `jobs`, under invoices) is processed, swept, counted,
listed and operable like the first: one TaskQueue holds both, and one line adds its trigger."""

from __future__ import annotations

import datetime

import main
from firetasks import NewTask, add_tasks, sweep
from firetasks.recovery import STALE_AFTER
from tests.emulator.test_dashboard_api import call
from tests.emulator.test_sweeper import events_lost
from tests.support import task_fields, wait_for_state


def test_invoice_jobs_are_processed_listed_counted_and_retried(db, uid, people):
    admin = people["admin"].token
    _, before = call("api/stats", token=admin)
    job = db.document(f"invoices/{uid}/jobs/j")
    job.set(task_fields("probe", "permanent"))
    assert wait_for_state(job)["state"] == "failed"  # processed by process_jobs

    _, listed = call("api/tasks", token=admin, collection="jobs", parent=f"invoices/{uid}")
    assert [task["path"] for task in listed["tasks"]] == [job.path]
    _, after = call("api/stats", token=admin)
    failed = [stats["recent"]["lastHour"]["failed"] for stats in (before, after)]
    assert failed[1] >= failed[0] + 1  # the jobs collection is counted (others may fail too)
    status, outcome = call("api/retry", token=admin, body={"path": job.path})
    assert (status, outcome["after"]) == (200, "scheduled")
    assert wait_for_state(job, ("failed",))["attempts"] == 2


def test_invoice_jobs_whose_events_are_lost_are_swept(db, uid):
    with events_lost():
        [job] = add_tasks(db.document(f"invoices/{uid}"), [NewTask("probe", "flaky")],
                          collection="jobs")
    later = datetime.datetime.now(datetime.UTC) + STALE_AFTER + datetime.timedelta(seconds=1)
    assert sweep(main.processor, db, now=later).rewoken >= 1  # the queue's collections: both
    assert wait_for_state(job)["state"] == "completed"
