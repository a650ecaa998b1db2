"""Debounce through the real trigger and wake-ups (firetasks.debounce): 20 enqueues of one key
within 10 s run the handler once, with the last data, about 30 s after the last enqueue. The long
case (every 5 s for 10 minutes: a run at most every max_wait) runs on the kit's fake clock, in
tests/unit/test_debounce.py."""

from __future__ import annotations

import datetime
import time

from google.cloud import firestore

from firetasks import NewTask, add_tasks
from tests.support import drained, probe_runs, wait_for_state

DEBOUNCE = datetime.timedelta(seconds=30)


def test_20_enqueues_of_one_key_within_10_s_run_once_with_the_last_data_30_s_later(
        db: firestore.Client, uid: str) -> None:
    parent = db.document(f"debounce/{uid}")
    refs = []
    for n in range(20):
        [ref] = add_tasks(parent, [NewTask("probe", "debounced", {"edit": n}, key="reindex",
                                           debounce=DEBOUNCE,
                                           max_wait=datetime.timedelta(minutes=5))])
        refs.append(ref)
        last = datetime.datetime.now(datetime.UTC)
        time.sleep(0.5)  # the burst's pace, not a wait for anything
    assert len({ref.path for ref in refs}) == 1
    fields = wait_for_state(refs[0], ("completed",), timeout=90)
    assert fields["result"] == {"edit": 19}
    started = fields["startedAt"] - last
    assert DEBOUNCE - datetime.timedelta(seconds=1) <= started <= DEBOUNCE + datetime.timedelta(
        seconds=15), started
    assert probe_runs(db, refs[0]) == [1]
    drained(db)
