"""The sweeper finds tasks whose trigger events were lost, behind any backlog, and reads only its
candidates. Events are lost for real: the emulator hub drops them while the tasks are written."""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator

import requests
from google.cloud import firestore

import main
from firetasks import NewTask, add_tasks, operations, sweep
from firetasks.recovery import STALE_AFTER
from testing.meter import measure, metered
from tests.support import probe_runs, wait_for_state

BACKLOG = 2_000
UTC = datetime.UTC


@contextlib.contextmanager
def events_lost() -> Iterator[None]:
    """Firestore trigger events are dropped inside the block."""
    hub = f"http://{os.environ['FIREBASE_EMULATOR_HUB']}/functions"
    requests.put(f"{hub}/disableBackgroundTriggers", timeout=30).raise_for_status()
    try:
        yield
    finally:
        requests.put(f"{hub}/enableBackgroundTriggers", timeout=30).raise_for_status()


def test_lost_tasks_behind_a_backlog_run_once_and_later_sweeps_read_nothing(db, uid):
    client = metered(firestore.Client(project=db.project))
    collection = f"backlog{uid}"  # its own collection group and marks: exact figures
    tomorrow = datetime.datetime.now(UTC) + datetime.timedelta(days=1)
    later = datetime.datetime.now(UTC) + STALE_AFTER + datetime.timedelta(seconds=1)
    _, empty_reads, _ = measure(
        lambda: sweep(main.processor, client, collections=[collection], now=later))
    with events_lost():
        for n in range(BACKLOG // 500):
            add_tasks(db.document(f"shops/{uid}-{n}"),
                      [NewTask("probe", "flaky", run_at=tomorrow)] * 500, collection=collection)
        lost = add_tasks(db.document(f"shops/{uid}-due"), [NewTask("probe", "flaky")] * 3,
                         collection=collection)
    later = datetime.datetime.now(UTC) + STALE_AFTER + datetime.timedelta(seconds=1)
    first, first_reads, _ = measure(
        lambda: sweep(main.processor, client, collections=[collection], now=later))
    assert (first.rewoken, first.read, first.finished) == (3, BACKLOG + 3, True)
    for task in lost:
        assert wait_for_state(task)["state"] == "completed"
        assert probe_runs(db, task) == [1]
    then, then_reads, _ = measure(
        lambda: sweep(main.processor, client, collections=[collection], now=later))
    assert (then.rewoken, then.read) == (0, 0)
    waiting = (db.collection_group(collection)
               .where(filter=firestore.FieldFilter("state", "==", "scheduled")).count().get())
    assert waiting[0][0].value == BACKLOG
    print(f"sweep reads (documents, metered): no tasks {empty_reads}; {BACKLOG} waiting, first "
          f"sweep {first_reads}, every later sweep {then_reads}")
    # The marks documents at most: the tasks' and the events' (durable handlers' waits); a later
    # sweep also reads again the event at the events' mark, where its scan resumes.
    assert empty_reads <= 2
    assert then_reads <= 3


def test_a_retried_task_whose_event_is_lost_is_found_by_its_run_at(db, failed_task):
    with events_lost():
        operations.retry(failed_task)
    later = datetime.datetime.now(UTC) + STALE_AFTER + datetime.timedelta(seconds=1)
    assert sweep(main.processor, db, collections=["tasks"], now=later).rewoken >= 1
    assert wait_for_state(failed_task)["attempts"] == 2
