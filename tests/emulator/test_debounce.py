"""Debounce through the real trigger and wake-ups (firetasks.debounce): 20 enqueues of one key
within 10 s run the handler once, with the last data, about 30 s after the last enqueue; a
customer's 10 debounced requests, written from the client SDK under the rules, are folded into one
task that runs once with the last one's data, and a request with a bad `debounce` is refused. The
long case (every 5 s for 10 minutes: a run at most every max_wait) and delivery orders run on the
kit's fake clock, in tests/unit/test_debounce.py and test_debounce_client.py."""

from __future__ import annotations

import datetime
import time

import pytest
from google.cloud import firestore

from firetasks import NewTask, add_tasks
from firetasks.debounce import pointer_ref
from tests.emulator.test_atomic import UNTRIGGERED, deliver_concurrently
from tests.emulator.test_rules import create
from tests.firestore_events import written_event
from tests.support import drained, mails_for, probe_runs, wait_for_state, wait_until

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


CHANGED = {"type": "order", "action": "notifyChanged", "state": "scheduled", "key": "changed",
           "debounce": 10, "maxWait": 60}


def test_a_customer_s_10_debounced_requests_run_one_task_once_with_the_last_data(
        db: firestore.Client, people, uid: str) -> None:
    owner = people["owner"]
    assert create(f"orders/{uid}", {"uid": owner.uid, "email": "o@example.com"},
                  owner.token) == 200
    for n in range(10):
        assert create(f"orders/{uid}/tasks/change-{n}",
                      {**CHANGED, "data": {"orderId": uid, "change": f"change {n}"}},
                      owner.token, ("createdAt",)) == 200
    tasks = db.collection(f"orders/{uid}/tasks")

    def folded() -> list[firestore.DocumentSnapshot]:
        found = list(tasks.stream())
        return found if len(found) == 1 and found[0].get("state") == "completed" else []

    [done] = wait_until(folded, timeout=120, what="the requests to fold into one completed task")
    assert done.id == "change-0"  # the first request became the burst's task
    assert (done.get("attempts"), done.get("result")["change"]) == (1, "change 9")
    assert done.get("startedAt") >= done.get("debouncedAt") + datetime.timedelta(seconds=10)
    assert [mail["message"]["text"] for mail in mails_for(db, done.reference)] == ["change 9\n"]


def test_8_concurrent_deliveries_of_each_request_start_one_burst_and_fold_the_next_once(
        db: firestore.Client, uid: str) -> None:
    tasks = db.collection(f"orders/{uid}/{UNTRIGGERED}")  # delivered by the test alone
    first, second = tasks.document("change-0"), tasks.document("change-1")
    for n, request in enumerate((first, second)):
        request.set({**CHANGED, "data": {"orderId": uid, "change": f"change {n}"},
                     "createdAt": firestore.SERVER_TIMESTAMP})
    events = [written_event(None, request.get(), project=db.project) for request in (first, second)]
    deliver_concurrently(events[0])
    burst = first.get().to_dict()
    assert (burst["state"], burst["debouncedAt"]) == ("scheduled", burst["createdAt"])
    deliver_concurrently(events[1])
    assert not second.get().exists
    burst = first.get().to_dict()
    assert burst["data"]["change"] == "change 1"
    assert burst["runAt"] == burst["debouncedAt"] + datetime.timedelta(seconds=10)
    assert pointer_ref(tasks, "changed").get().to_dict() == {"task": first.path}


@pytest.mark.parametrize("change", [
    {"debounce": 0}, {"debounce": "10"}, {"debounce": 10 ** 7}, {"maxWait": 5},
    {"key": None}, {"runAt": datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)},
    {"debounce": None, "maxWait": None, "key": "not-the-id"},
], ids=["zero", "string", "over-30-days", "max-wait-short", "no-key", "run-at", "key-no-debounce"])
def test_the_rules_refuse_a_bad_debounced_request(people, uid: str, change: dict) -> None:
    owner = people["owner"]
    assert create(f"orders/{uid}", {"uid": owner.uid}, owner.token) == 200
    fields = {**CHANGED, "data": {"orderId": uid}, **change}
    fields = {name: value for name, value in fields.items() if value is not None}
    assert create(f"orders/{uid}/tasks/change", fields, owner.token, ("createdAt",)) == 403
