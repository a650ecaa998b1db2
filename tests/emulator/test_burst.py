"""A burst of writes through the real trigger: every task ends, each side effect exactly once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from google.cloud import firestore

from firetasks import NewTask, add_tasks
from shop.handlers import MAIL_COLLECTION
from tests.support import drained, wait_until

PARENTS = 20
TASKS_PER_PARENT = 10


def test_200_tasks_across_20_parents_all_complete_once(db, uid):
    orders = [db.document(f"orders/{uid}-{n:02}") for n in range(PARENTS)]
    for order in orders:
        order.set({"email": f"{order.id}@example.com", "status": "created"})

    def enqueue(order):
        tasks = [NewTask("order", "sendConfirmationEmail", {"n": n})
                 for n in range(TASKS_PER_PARENT)]
        return add_tasks(order, tasks)

    with ThreadPoolExecutor(PARENTS) as pool:
        refs = [ref for batch in pool.map(enqueue, orders) for ref in batch]
    assert len(refs) == PARENTS * TASKS_PER_PARENT

    def all_finished():
        states = Counter(snapshot.get("state") for snapshot in db.get_all(refs))
        print(dict(states))
        return states if states["completed"] + states["failed"] == len(refs) else None

    states = wait_until(all_finished, timeout=180, what="200 tasks to finish")
    assert states == {"completed": len(refs)}

    mails = [m.to_dict() for m in db.collection(MAIL_COLLECTION)
             .where(filter=firestore.FieldFilter("orderId", ">=", uid))
             .where(filter=firestore.FieldFilter("orderId", "<", uid + "~")).stream()]
    per_task = Counter(mail["taskPath"] for mail in mails)
    assert set(per_task) == {ref.path for ref in refs}
    assert set(per_task.values()) == {1}
    for snapshot in db.get_all(refs):
        assert snapshot.get("attempts") == 1
    drained(db)
