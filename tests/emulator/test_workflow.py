"""Workflows on the emulator, through the real trigger: fan-in released once when its branches
finish at the same instant, the shop's order flow, failure and retry, spawning under duplicate
deliveries, and unique keys under concurrent enqueues."""

from __future__ import annotations

import datetime
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.cloud import firestore

import main
from firetasks import NewTask, add_tasks, cli, operations, sweep
from firetasks.recovery import STALE_AFTER
from shop.handlers import DECLINED_CARD
from shop.orders import TEST_CARD, create_order
from tests.firestore_events import written_event
from tests.support import mails_for, probe_runs, task_fields, wait_for_state, wait_until

UTC = datetime.UTC
FLOW = ("charge", "sendConfirmationEmail", "initiateProcessing", "ship")


@pytest.fixture
def tasks(db, uid):
    return db.document(f"jobs/{uid}").collection("tasks")


def concurrently(call, times: int = 8) -> list:
    start = threading.Barrier(times)

    def run(n: int):
        start.wait()
        return call(n)

    with ThreadPoolExecutor(times) as pool:
        return list(pool.map(run, range(times)))


def test_a_100_way_fan_in_whose_branches_finish_at_once_runs_the_join_once(db, tasks):
    branches = [tasks.document(f"b{n:03}") for n in range(100)]
    lease = datetime.datetime.now(UTC) + datetime.timedelta(hours=1)
    batch = db.batch()
    for branch in branches:  # running as far as anyone knows: no processor touches them
        batch.set(branch, task_fields("probe", "flaky", state="running", attempts=1,
                                      leaseExpiresAt=lease))
    join = tasks.document("join")
    batch.set(join, task_fields("probe", "flaky", state="waiting", after=[b.id for b in branches],
                                createdAt=firestore.SERVER_TIMESTAMP))
    batch.commit()
    finish = db.batch()  # all 100 finish in one commit: 100 echoes race to release the join
    for branch in branches:
        finish.update(branch, {"state": "completed", "finishedAt": firestore.SERVER_TIMESTAMP,
                               "leaseExpiresAt": firestore.DELETE_FIELD})
    finish.commit()
    done = wait_for_state(join, timeout=60)
    assert (done["state"], done["attempts"]) == ("completed", 1)
    assert probe_runs(db, join) == [1]


def test_a_dependent_added_while_its_dependency_runs_is_released_by_its_finish(db, tasks):
    # The dependency runs as far as anyone knows (no processor touches it), added with no
    # dependents; no sweeper runs here, so only its finish's echo can release the dependent, and
    # that echo looks for dependents only if the dependent's arrival marked it.
    first = tasks.document("first")
    first.set(task_fields("probe", "flaky", state="running", attempts=1, hasDependents=False,
                          leaseExpiresAt=datetime.datetime.now(UTC) + datetime.timedelta(hours=1)))
    [later] = add_tasks(tasks.parent, [NewTask("probe", "flaky", after=["first"])])
    wait_until(lambda: first.get().get("hasDependents"), what="the dependent to mark it")
    assert later.get().get("state") == "waiting"
    first.update({"state": "completed", "finishedAt": firestore.SERVER_TIMESTAMP,
                  "leaseExpiresAt": firestore.DELETE_FIELD})
    assert wait_for_state(later, timeout=60)["state"] == "completed"


def test_the_order_flow_runs_in_dependency_order(db, uid):
    order = create_order(db, f"{uid}-ok", email="ada@example.com", items=["tea"])
    fields = {id: wait_for_state(order.collection("tasks").document(id), timeout=60)
              for id in FLOW}
    assert {id: f["state"] for id, f in fields.items()} == dict.fromkeys(FLOW, "completed")
    for first, then in [("charge", "sendConfirmationEmail"), ("charge", "initiateProcessing"),
                        ("sendConfirmationEmail", "ship"), ("initiateProcessing", "ship")]:
        assert fields[first]["finishedAt"] <= fields[then]["startedAt"], (first, then)
    assert order.get().get("status") == "shipped"
    assert len(mails_for(db, order.collection("tasks").document("sendConfirmationEmail"))) == 1
    assert fields["ship"]["result"] == {
        "status": "shipped", "after": ["initiateProcessing", "sendConfirmationEmail"]}


def test_placing_the_same_order_twice_creates_nothing_new(db, uid):
    first = create_order(db, f"{uid}-twice", email="ada@example.com", items=["tea"])
    wait_for_state(first.collection("tasks").document("ship"), timeout=60)
    again = create_order(db, f"{uid}-twice", email="ada@example.com", items=["tea"])
    assert again.path == first.path
    assert sorted(doc.id for doc in first.collection("tasks").stream()) == sorted(FLOW)
    assert len(mails_for(db, first.collection("tasks").document("sendConfirmationEmail"))) == 1


def test_a_declined_charge_ends_the_flow_and_a_retry_of_it_completes_the_flow(db, uid):
    order = create_order(db, f"{uid}-declined", email="ada@example.com", items=["tea"],
                         card=DECLINED_CARD)
    tasks = order.collection("tasks")
    ended = {id: wait_for_state(tasks.document(id), timeout=60) for id in FLOW}
    assert {id: f["state"] for id, f in ended.items()} == {
        "charge": "failed", "sendConfirmationEmail": "cancelled",
        "initiateProcessing": "failed", "ship": "failed"}
    assert ended["charge"]["error"]["message"] == "card ending 0002 was declined"
    assert ended["initiateProcessing"]["error"] == {
        "type": "DependencyFailed", "dependency": "charge",
        "message": "dependency charge (payment.charge) failed: card ending 0002 was declined"}
    assert ended["sendConfirmationEmail"]["error"]["dependency"] == "charge"
    assert ended["ship"]["error"]["type"] == "DependencyFailed"
    order.update({"card": TEST_CARD})  # customer care fixes the card, then retries the charge
    assert operations.retry(tasks.document("charge"))["reopened"] == 3
    done = {id: wait_for_state(tasks.document(id), ("completed",), timeout=60) for id in FLOW}
    assert all(fields["attempts"] >= 1 for fields in done.values())
    assert order.get().get("status") == "shipped"
    assert len(mails_for(db, tasks.document("sendConfirmationEmail"))) == 1


@pytest.mark.parametrize("action", ["spawn", "atomicSpawn"])
def test_spawned_tasks_exist_once_under_concurrent_duplicate_deliveries(db, uid, action):
    untriggered = db.document(f"jobs/{uid}").collection("untriggered")
    spawner = untriggered.document("spawner")
    spawner.set(task_fields("probe", action, {"children": 3}))
    event = written_event(None, spawner.get(), project=db.project)
    concurrently(lambda _: main.process_tasks(event))
    children = untriggered.where(filter=firestore.FieldFilter("spawnedBy", "==", "spawner")).get()
    assert len(children) == 3
    assert spawner.get().get("state") == "completed"


def test_a_spawn_of_a_failed_attempt_creates_nothing(db, uid):
    untriggered = db.document(f"jobs/{uid}").collection("untriggered")
    spawner = untriggered.document("spawner")
    spawner.set(task_fields("probe", "spawn", {"children": 2, "fail": True}))
    main.process_tasks(written_event(None, spawner.get(), project=db.project))
    assert spawner.get().get("state") == "failed"
    assert untriggered.where(filter=firestore.FieldFilter("spawnedBy", "==", "spawner")).get() == []


def test_a_key_enqueued_concurrently_creates_one_task_that_runs_once(db, tasks):
    parent = tasks.parent
    refs = concurrently(lambda _: add_tasks(parent, [NewTask("probe", "flaky", key="charge")]))
    assert {ref.path for [ref] in refs} == {f"{parent.path}/tasks/charge"}
    wait_for_state(tasks.document("charge"))
    assert [doc.id for doc in tasks.stream()] == ["charge"]
    assert probe_runs(db, tasks.document("charge")) == [1]


def test_a_global_key_is_unique_across_parents_under_concurrent_enqueues(db, uid):
    welcome = NewTask("probe", "flaky", key=f"welcome-{uid}", unique="global")
    refs = concurrently(lambda n: add_tasks(db.document(f"jobs/{uid}-{n}"), [welcome]))
    paths = {ref.path for [ref] in refs}
    assert len(paths) == 1
    [path] = paths
    wait_for_state(db.document(path))
    created = [n for n in range(8)
               if db.document(f"jobs/{uid}-{n}/tasks/welcome-{uid}").get().exists]
    assert len(created) == 1
    assert wait_until(lambda: probe_runs(db, db.document(path)) == [1], what="one run")


def test_the_sweeper_settles_waiting_tasks_whose_events_were_lost(db, uid):
    # A collection no trigger watches: every event of its tasks is lost by construction.
    collection = f"lost{uid}"
    tasks = db.document(f"jobs/{uid}").collection(collection)

    def later() -> datetime.datetime:
        return datetime.datetime.now(UTC) + STALE_AFTER + datetime.timedelta(seconds=1)

    def sweep_now() -> int:
        return sweep(main.processor, db, collections=[collection], now=later()).settled

    now = firestore.SERVER_TIMESTAMP
    tasks.document("a").set(task_fields("probe", "flaky", state="completed", finishedAt=now))
    tasks.document("b").set(task_fields("probe", "flaky", state="waiting", after=["a"],
                                        createdAt=now))  # its create event: lost
    assert sweep_now() == 1
    assert tasks.document("b").get().get("state") == "scheduled"

    tasks.document("d").set(task_fields("probe", "flaky", state="running"))
    tasks.document("c").set(task_fields("probe", "flaky", state="waiting", after=["d"],
                                        createdAt=now))
    assert sweep_now() == 0  # c waits for d
    tasks.document("d").update({"state": "completed", "finishedAt": now})  # its echo: lost
    assert sweep_now() == 1
    assert tasks.document("c").get().get("state") == "scheduled"
    assert sweep_now() == 0  # every mark has moved past them


def test_show_lists_a_task_s_dependencies_and_dependents(db, uid, capsys, monkeypatch):
    monkeypatch.setenv("FIRETASKS_QUEUE", "main:queue")
    order = create_order(db, f"{uid}-show", email="ada@example.com", items=["tea"],
                         card=DECLINED_CARD)
    wait_for_state(order.collection("tasks").document("ship"), timeout=60)
    assert cli.main(["show", f"{order.path}/tasks/initiateProcessing"]) == 0
    out = capsys.readouterr().out
    assert "after       charge (failed)" in out
    assert "dependents  ship (failed)" in out
    assert "DependencyFailed: dependency charge (payment.charge) failed" in out
