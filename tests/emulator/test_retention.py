"""Retention on the emulator: the real trigger gives finished tasks their handler's `expireAt`, a
TTL delete's event is skipped, and `firetasks prune` (the emulator runs no TTL) deletes only
finished tasks that expired or are old enough, in audited batches."""

from __future__ import annotations

import datetime
import sys
import types

import pytest
from google.cloud import firestore

import main
from firetasks import TaskQueue, cli, operations
from firetasks.audit import AUDIT_COLLECTION, Actor
from firetasks.pruning import PRUNE_BATCH
from firetasks.store import FirestoreStore
from tests.emulator.test_delivery import log_lines
from tests.firestore_events import written_event
from tests.support import task_fields, wait_for_state

DAY = datetime.timedelta(days=1)
OPERATOR = Actor(uid=None, email="pruner@example.com", via="cli")


def kept_for(fields: dict) -> datetime.timedelta:
    """How long after it finished the task expires, to the nearest minute (the processor's
    clock and the server's timestamp differ by milliseconds)."""
    kept = fields["expireAt"] - fields["finishedAt"]
    return datetime.timedelta(minutes=round(kept.total_seconds() / 60))


def test_the_trigger_sets_expire_at_by_the_final_state(db, uid, failed_task):
    done = order_task(db, uid, "done")
    assert kept_for(wait_for_state(done)) == 7 * DAY
    assert kept_for(failed_task.get().to_dict()) == 30 * DAY


def test_a_cancelled_task_expires_and_a_retried_one_expires_anew(db, uid, failed_task):
    later = db.document(f"orders/{uid}/untriggered/later")  # waiting, as a task not yet due
    later.set(task_fields("order", "initiateProcessing"))
    operations.cancel(later, queue=main.queue)
    assert kept_for(later.get().to_dict()) == 30 * DAY

    first = failed_task.get().to_dict()
    operations.retry(failed_task)
    again = wait_for_state(failed_task, ("failed",))
    assert again["attempts"] == 2
    assert again["expireAt"] > first["expireAt"]


def order_task(db: firestore.Client, uid: str, task_id: str) -> firestore.DocumentReference:
    """A task that completes: it moves the order (made if missing) to `processing`."""
    db.document(f"orders/{uid}").set({"status": "created"}, merge=True)
    ref = db.document(f"orders/{uid}/tasks/{task_id}")
    ref.set(task_fields("order", "initiateProcessing"))
    return ref


def test_a_ttl_delete_s_event_is_the_cheap_deleted_task_skip(db, uid, capsys):
    done = order_task(db, uid, "done")
    wait_for_state(done)
    before = done.get()
    done.delete()  # as Firestore's TTL does once expireAt has passed
    capsys.readouterr()
    main.process_tasks(written_event(before, None, project=db.project))
    [line] = log_lines(capsys)
    assert line["message"] == "skip processing deleted task"
    assert (line["taskId"], line["state"]) == ("done", "completed")
    assert not done.get().exists


@pytest.fixture
def queue(uid) -> TaskQueue:
    """A queue of a tasks collection of this test's own: prune sees no other test's tasks."""
    return TaskQueue(main.registry, collections=(f"prune{uid}",))


def put(db, queue, name: str, state: str, **fields) -> firestore.DocumentReference:
    ref = db.document(f"parents/p/{queue.collections[0]}/{name}")
    ref.set(task_fields("order", "initiateProcessing", state=state) | fields)
    return ref


def test_prune_deletes_only_expired_finished_tasks_and_audits_each(db, queue):
    now = datetime.datetime.now(datetime.UTC)
    past, future, old = now - DAY, now + DAY, now - 40 * DAY
    expired = [put(db, queue, f"{state}-expired", state, finishedAt=old, expireAt=past)
               for state in ("completed", "failed", "cancelled")]
    kept = [
        put(db, queue, "completed-later", "completed", finishedAt=old, expireAt=future),
        put(db, queue, "completed-no-expiry", "completed", finishedAt=old),
        put(db, queue, "scheduled", "scheduled", finishedAt=old, expireAt=past),
        put(db, queue, "running", "running", finishedAt=old, expireAt=past),
        put(db, queue, "retrying", "retrying", finishedAt=old, expireAt=past),
    ]
    counted = operations.prune(db, queue, actor=OPERATOR, dry_run=True)
    assert (counted.matched, counted.deleted) == (3, 0)
    assert all(ref.get().exists for ref in expired)

    lines: list[str] = []
    done = operations.prune(db, queue, actor=OPERATOR, progress=lines.append)
    assert (done.matched, done.deleted, done.changed) == (3, 3, 0)
    assert [ref.id for ref in expired if ref.get().exists] == []
    assert [ref.id for ref in kept if not ref.get().exists] == []
    assert len(lines) == 3  # one batch per state
    audited = db.collection(AUDIT_COLLECTION).where(
        filter=firestore.FieldFilter("actor.email", "==", OPERATOR.email)).stream()
    entries = {entry.get("task"): entry.to_dict() for entry in audited}
    for ref in expired:
        assert entries[ref.path]["action"] == "prune"
        assert entries[ref.path]["after"] == "deleted"


def test_prune_keeps_a_task_that_changed_after_it_was_read(db, queue):
    now = datetime.datetime.now(datetime.UTC)
    refs = [put(db, queue, f"old-{n}", "failed", finishedAt=now - 40 * DAY) for n in range(3)]

    class ReadThenRetry(FirestoreStore):
        def scan(self, *args, **kwargs):
            for page in super().scan(*args, **kwargs):
                if refs[1].id in [record.ref.id for record in page]:
                    refs[1].update({"state": "scheduled"})  # an operator's retry, after the read
                yield page

    done = operations.prune(db, queue, actor=OPERATOR, older_than=30 * DAY,
                            store=ReadThenRetry())
    assert (done.matched, done.deleted, done.changed) == (3, 2, 1)
    assert [ref.id for ref in refs if ref.get().exists] == [refs[1].id]


def test_prune_older_than_goes_by_finished_at_in_batches(db, queue):
    now = datetime.datetime.now(datetime.UTC)
    batch = db.batch()
    for number in range(PRUNE_BATCH + 10):  # two batches
        ref = db.document(f"parents/p/{queue.collections[0]}/old-{number:03}")
        batch.set(ref, task_fields("x", "y", state="completed", finishedAt=now - 31 * DAY))
        if number % 400 == 399:
            batch.commit()
            batch = db.batch()
    batch.commit()
    recent = put(db, queue, "recent", "completed", finishedAt=now - DAY)
    waiting = put(db, queue, "waiting", "retrying", finishedAt=now - 31 * DAY)
    lines: list[str] = []
    done = operations.prune(db, queue, actor=OPERATOR, older_than=30 * DAY, progress=lines.append)
    assert (done.matched, done.deleted) == (PRUNE_BATCH + 10, PRUNE_BATCH + 10)
    assert len(lines) == 2
    left = db.collection(f"parents/p/{queue.collections[0]}").stream()
    assert {snapshot.id for snapshot in left} == {recent.id, waiting.id}


def test_the_prune_command(db, queue, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "prune_queue", types.SimpleNamespace(queue=queue))
    now = datetime.datetime.now(datetime.UTC)
    old = put(db, queue, "old", "failed", finishedAt=now - 31 * DAY, expireAt=now + DAY)
    assert cli.main(["--queue", "prune_queue:queue", "prune", "--older-than", "30d",
                     "--dry-run"]) == 0
    assert "1 finished task(s) would be deleted" in capsys.readouterr().out
    assert old.get().exists
    assert cli.main(["--queue", "prune_queue:queue", "show", old.path]) == 0
    assert f"expireAt    {(now + DAY).isoformat()}" in capsys.readouterr().out
    assert cli.main(["--queue", "prune_queue:queue", "prune"]) == 0  # not expired yet
    assert "0 of 0 finished task(s) deleted" in capsys.readouterr().out
    assert cli.main(["--queue", "prune_queue:queue", "prune", "--older-than", "30d"]) == 0
    out, err = capsys.readouterr()
    assert "1 of 1 finished task(s) deleted" in out
    assert old.path in err  # the progress
    assert not old.get().exists
    with pytest.raises(SystemExit):
        cli.main(["--queue", "prune_queue:queue", "prune", "--older-than", "soon"])
    assert "'soon' is not an age like 30d" in capsys.readouterr().err
