"""The demo `make dev` runs: seeded orders end as the README says, the retry works, and the
dispatch order waits for the warehouse until the command the demo prints sends its event."""

import os
import subprocess

from firetasks import operations
from tests.support import ROOT, wait_for_state
from tools import demo


def test_the_demo_seeds_one_failure_that_customer_care_can_fix(db, capsys):
    demo.seed(db)
    tasks = demo.wait_processed(db)
    states = {(t.reference.parent.parent.id, t.get("action")): t.get("state") for t in tasks}
    assert states.pop((demo.BAD_ORDER, "sendConfirmationEmail")) == "failed"
    assert states.pop((demo.BAD_ORDER, "ship")) == "failed"  # it depends on the mail
    assert {action: states.pop((demo.DECLINED_ORDER, action)) for action in (
        "charge", "sendConfirmationEmail", "initiateProcessing", "ship")} == {
        "charge": "failed", "sendConfirmationEmail": "cancelled",
        "initiateProcessing": "failed", "ship": "failed"}
    assert set(states.values()) == {"completed"}
    [failed] = [t.reference for t in tasks if t.get("action") == "sendConfirmationEmail"
                and t.reference.parent.parent.id == demo.BAD_ORDER]
    charge = db.document(f"orders/{demo.DECLINED_ORDER}/tasks/charge")
    order = failed.parent.parent
    capsys.readouterr()
    assert demo.retry(db) == [failed.path, charge.path]
    out = capsys.readouterr().out
    assert f"email 'not-an-email' is not valid, changed to '{demo.FIXED_EMAIL}'" in out
    assert f"retried {failed.path}: failed -> scheduled" in out
    assert "card ending 0002 was declined, changed to the test card ending 4242" in out
    assert f"retried {charge.path}: failed -> scheduled" in out
    retried = demo.wait_processed(db)
    assert {t.get("state") for t in retried} == {"completed"}

    assert demo.retry(db) == []  # nothing failed: it says so and changes nothing
    assert "no failed tasks to retry" in capsys.readouterr().out
    assert order.get().get("email") == demo.FIXED_EMAIL


def test_the_demo_retry_keeps_an_email_customer_care_already_fixed(db, capsys):
    demo.seed(db)
    order = db.document(f"orders/{demo.BAD_ORDER}")
    [task] = [t for t in demo.wait_processed(db)
              if t.reference.parent.parent.id == demo.BAD_ORDER
              and t.get("action") == "sendConfirmationEmail"]
    if task.get("state") != "failed":  # the first test fixed it: make it fail again
        order.update({"email": "still-not-an-email"})
        operations.retry(task.reference)
        demo.wait_processed(db)
    order.update({"email": "care-fixed@example.org"})
    capsys.readouterr()
    assert task.reference.path in demo.retry(db)
    assert "email 'care-fixed@example.org' kept" in capsys.readouterr().out
    assert wait_for_state(task.reference)["state"] == "completed"
    assert order.get().get("email") == "care-fixed@example.org"


def test_the_demo_s_dispatch_order_waits_for_the_warehouse_and_the_printed_command_resumes_it(db):
    task = demo.seed_dispatch(db)
    assert demo.seed_dispatch(db) == task  # seeding again keeps the order as it is
    fields = task.get().to_dict() or {}
    if fields.get("state") == "completed":  # an earlier run sent the event: place it anew
        db.recursive_delete(db.document(f"orders/{demo.DISPATCH_ORDER}"))
        task = demo.seed_dispatch(db)
    assert demo.wait_dispatching(task).startswith(
        "waiting for wait 'picked' for warehouse.picked matching {\"orderId\": \"demo-1005\"}")
    assert task.get().get("steps")["reserve-carrier"]["result"] == {
        "carrier": "parcel-co", "slot": "next-day"}
    command = demo.send_picked_command(os.environ["FIRESTORE_EMULATOR_HOST"], db.project)
    sent = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(f"sent warehouse.picked as orders/{demo.DISPATCH_ORDER}/events/")
    done = wait_for_state(task, ("completed",), timeout=60)
    assert done["result"] == {"status": "label booked", "carrier": "parcel-co",
                              "slot": "next-day", "label": f"LBL-{demo.DISPATCH_ORDER}"}
    assert done["attempts"] == 1
