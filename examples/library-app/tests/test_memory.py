"""The library's jobs in firetasks' in-memory kit: no emulators, milliseconds a test. The jobs
read their loan (`task.parent.get()`) and write through `task.client` or `task.writes`, which
the kit's in-memory Firestore holds."""

from __future__ import annotations

import datetime

from firetasks import NewTask, TaskQueue
from firetasks.testing import MemoryQueue

from library.handlers import ARCHIVE, NOTIFICATIONS, registry

LOAN = {"memberUid": "m-1", "email": "ada@example.com", "title": "Middlemarch",
        "dueAt": datetime.datetime(2030, 1, 22, tzinfo=datetime.UTC), "status": "lent"}


def kit() -> MemoryQueue:
    """The queue main.py deploys (its jobs under any loan), in memory."""
    return MemoryQueue(TaskQueue(registry, collections=("jobs",)))


def test_the_receipt_job_reads_its_loan_and_writes_a_notification():
    queue = kit()
    queue.write("loans/l-1", LOAN)
    job = queue.enqueue("loans/l-1", NewTask("loan", "sendReceipt"))

    queue.run()

    assert queue.get(job).state == "completed"
    notification = queue.document(f"{NOTIFICATIONS}/l-1-receipt")
    assert notification["to"] == "ada@example.com"
    assert notification["job"] == job.path
    assert notification["createdAt"] == queue.clock()


def test_a_returned_loan_is_archived_with_its_job_s_completion():
    queue = kit()
    queue.write("loans/l-1", LOAN | {"status": "returned"})
    job = queue.enqueue("loans/l-1", NewTask("loan", "archive"))

    queue.run()

    assert queue.get(job).fields["result"] == {"archive": f"{ARCHIVE}/l-1"}
    assert queue.document(f"{ARCHIVE}/l-1") == {
        "memberUid": "m-1", "title": "Middlemarch", "archivedAt": queue.clock()}
    assert queue.document("loans/l-1")["status"] == "archived"


def test_a_loan_still_lent_is_not_archived():
    queue = kit()
    queue.write("loans/l-1", LOAN)
    job = queue.enqueue("loans/l-1", NewTask("loan", "archive"))

    queue.run()

    task = queue.get(job)
    assert task.state == "failed"
    assert "not returned" in task.fields["error"]["message"]
    assert queue.document(f"{ARCHIVE}/l-1") is None
    assert queue.document("loans/l-1")["status"] == "lent"
