"""The demo shop on the emulators: seed orders, wait for their tasks, show them, watch for changes.

Run by `make dev` inside `firebase emulators:exec`. `demo.py retry` (from another terminal, with
FIRESTORE_EMULATOR_HOST set) plays customer care: fixes the bad email and the declined card, retries
the failed tasks, and says what it did (or that there was nothing to retry).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from firebase_admin import auth
from google.api_core import exceptions
from google.cloud import firestore

from firetasks import operations, sweep
from firetasks.audit import Actor
from firetasks.db import app as db_app
from firetasks.errors import TaskChanged
from firetasks.events import describe_suspension
from firetasks.periodic import tick_all
from firetasks.task import FINAL_STATES, State
from main import processor, queue
from shop.handlers import DECLINED_CARD, EMAIL_PATTERN, PICKED
from shop.orders import ORDERS, TEST_CARD, create_order

DEMO_ORDERS = {
    "demo-1001": ("ada@example.com", ["tea", "scones"]),
    "demo-1002": ("grace@example.com", ["coffee"]),
    "demo-1003": ("not-an-email", ["cake"]),  # its confirmation email fails until fixed
    "demo-1004": ("alan@example.com", ["biscuits"]),  # paid with the card the provider declines
}
BAD_ORDER, FIXED_EMAIL = "demo-1003", "linus@example.com"
DECLINED_ORDER = "demo-1004"  # its charge fails, so the rest of its workflow fails or is skipped
# Placed with dispatch=True: its shipping.dispatch (a durable handler) waits for the warehouse.
DISPATCH_ORDER = "demo-1005"
SWEEP_EVERY = 60.0  # seconds, as the deployed schedule
OPERATOR_EMAIL, OPERATOR_PASSWORD = "care@example.com", "firetasks-demo"


def ensure_operator() -> None:
    """The demo's dashboard login: a user with the admin claim, in the Auth emulator."""
    try:
        user = auth.get_user_by_email(OPERATOR_EMAIL, app=db_app())
    except auth.UserNotFoundError:
        user = auth.create_user(email=OPERATOR_EMAIL, password=OPERATOR_PASSWORD, app=db_app())
    auth.set_custom_user_claims(user.uid, {queue.admin_claim: True}, app=db_app())


def seed(db: firestore.Client) -> None:
    for order_id, (email, items) in DEMO_ORDERS.items():
        try:
            create_order(db, order_id, email=email, items=items, uid="demo-user",
                         card=DECLINED_CARD if order_id == DECLINED_ORDER else TEST_CARD)
        except exceptions.AlreadyExists:
            print(f"order {order_id} exists, kept as it is")


def seed_dispatch(db: firestore.Client) -> firestore.DocumentReference:
    """The order whose `shipping.dispatch` waits for the warehouse's event: its task."""
    with contextlib.suppress(exceptions.AlreadyExists):
        create_order(db, DISPATCH_ORDER, email="hedy@example.com", items=["jam"],
                     uid="demo-user", dispatch=True)
    return db.document(f"{ORDERS}/{DISPATCH_ORDER}/tasks/dispatch")


def wait_dispatching(task: firestore.DocumentReference, timeout: float = 60.0) -> str:
    """Wait until the dispatch task waits for its event (or has finished): what it does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = task.get().to_dict() or {}
        if fields.get("state") in FINAL_STATES:
            return f"{fields['state']}: {fields.get('result')}"
        if (fields.get("suspended") or {}).get("kind") == "wait":
            return "waiting for " + describe_suspension(fields["suspended"])
        time.sleep(0.5)
    raise SystemExit(f"demo: {task.path} did not reach its wait after {timeout}s")


def send_picked_command(host: str, project: str) -> str:
    """The command that sends the dispatch order's event (what the warehouse's server would do),
    run from the repository's root."""
    data = json.dumps({"orderId": DISPATCH_ORDER})
    return (f"FIRESTORE_EMULATOR_HOST={host} GCLOUD_PROJECT={project} "
            f"functions/venv/bin/firetasks send-event {ORDERS}/{DISPATCH_ORDER} {PICKED} "
            f"--data '{data}'")


def demo_tasks(db: firestore.Client) -> list[firestore.DocumentSnapshot]:
    return [task for order_id in DEMO_ORDERS
            for task in db.collection(ORDERS).document(order_id).collection("tasks").stream()]


def wait_processed(db: firestore.Client, timeout: float = 60.0) -> list[firestore.DocumentSnapshot]:
    deadline = time.monotonic() + timeout
    while True:
        tasks = demo_tasks(db)
        pending = [task for task in tasks if task.get("state") not in FINAL_STATES]
        if tasks and not pending:
            return tasks
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {len(pending)} task(s) still not processed after {timeout}s")
        print(f"waiting for {len(pending)} of {len(tasks)} task(s)...", flush=True)
        time.sleep(1)


def show(tasks: list[firestore.DocumentSnapshot]) -> None:
    print(f"\n{'TASK':44} {'TYPE.ACTION':32} {'STATE':10} {'ATT':>3}  ERROR")
    for task in sorted(tasks, key=lambda t: t.reference.path):
        fields = task.to_dict() or {}
        error = (fields.get("error") or {}).get("message", "")
        print(f"{task.reference.path:44} {fields['type'] + '.' + fields['action']:32} "
              f"{fields['state']:10} {fields.get('attempts', 0):>3}  {error}")


def watch(db: firestore.Client) -> None:
    """Print every change of a task anywhere until interrupted, sweeping and ticking the periodic
    tasks once a minute.

    Scheduled functions do not fire in the emulator suite, so this loop stands in for Cloud
    Scheduler: it runs the same sweep as the deployed `sweep_tasks` function, and the same tick as
    the `periodic_*` functions (each creates its handler's latest firing's task, once).
    """

    def on_change(_snapshots, changes, _read_time) -> None:
        for change in changes:
            fields = change.document.to_dict() or {}
            print(f"{change.type.name.lower():8} {change.document.reference.path}: "
                  f"{fields.get('state')} (attempts {fields.get('attempts', 0)})", flush=True)

    db.collection_group("tasks").on_snapshot(on_change)
    stop = threading.Event()
    while not stop.wait(SWEEP_EVERY):
        sweep(processor, db)
        tick_all(db, queue)


def retry(db: firestore.Client) -> list[str]:
    """What customer care does: fix the bad order's email if it is still not valid, and the
    declined order's card, then retry their failed tasks as an operator would (audited; a
    finished task's expireAt goes with it; the dependents a failure ended come back with it).
    Says what it changed; returns the retried tasks' paths."""
    return retry_order(db, BAD_ORDER, fix_email) + retry_order(db, DECLINED_ORDER, fix_card)


def fix_email(order: firestore.DocumentReference, fields: dict) -> None:
    email = fields.get("email")
    if isinstance(email, str) and EMAIL_PATTERN.fullmatch(email):
        print(f"{order.path}: email {email!r} kept (it is valid)")
    else:
        order.update({"email": FIXED_EMAIL})
        print(f"{order.path}: email {email!r} is not valid, changed to {FIXED_EMAIL!r}")


def fix_card(order: firestore.DocumentReference, fields: dict) -> None:
    if fields.get("card") == DECLINED_CARD:
        order.update({"card": TEST_CARD})
        print(f"{order.path}: card ending {DECLINED_CARD[-4:]} was declined, changed to the test "
              f"card ending {TEST_CARD[-4:]}")
    else:
        print(f"{order.path}: card kept")


def retry_order(
    db: firestore.Client,
    order_id: str,
    fix: Callable[[firestore.DocumentReference, dict], None],
) -> list[str]:
    order = db.collection(ORDERS).document(order_id)
    failed = list(order.collection("tasks")
                  .where(filter=firestore.FieldFilter("state", "==", State.FAILED.value)).stream())
    if not failed:
        print(f"no failed tasks to retry under {order.path}; nothing changed")
        return []
    fix(order, order.get().to_dict() or {})
    actor = Actor(uid=None, email=OPERATOR_EMAIL, via="demo")
    retried = []
    for task in failed:
        try:
            outcome = operations.retry(task.reference, actor=actor, if_version=task.update_time)
        except TaskChanged:  # a dependent that an earlier retry here sent back to waiting
            print(f"{task.reference.path}: not failed any more (reopened by a retry above)")
            continue
        print(f"retried {task.reference.path}: {outcome['before']} -> {outcome['after']}")
        retried.append(task.reference.path)
    return retried


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", nargs="?", choices=["seed", "retry"], default="seed")
    parser.add_argument("--watch", action="store_true", help="keep running and print changes")
    args = parser.parse_args()
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if not host:
        raise SystemExit("demo: FIRESTORE_EMULATOR_HOST is not set; run `make dev`")
    db = firestore.Client(project=os.environ.get("GCLOUD_PROJECT", "demo-firetasks"))
    if args.command == "retry":
        retry(db)
        return
    ensure_operator()
    seed(db)
    dispatch = seed_dispatch(db)
    show(wait_processed(db))
    dispatching = wait_dispatching(dispatch)
    print(f"""
firetasks demo ready: Firestore emulator at {host}, project {db.project}.
- Dashboard: http://127.0.0.1:5001/{db.project}/us-central1/dashboard/
  sign in as {OPERATOR_EMAIL} / {OPERATOR_PASSWORD} (an operator with the admin claim).
- Every order is a workflow: payment.charge, then the confirmation mail and processing, then
  shipping. The order {BAD_ORDER} has a bad email, so its confirmation task failed, and shipping
  with it; {DECLINED_ORDER} paid with a declined card, so its charge failed, its mail was skipped
  and processing and shipping failed. Open them in the dashboard (Order or parent: {BAD_ORDER}).
  To play customer care from a terminal instead (fix the email and the card, retry what failed
  first; the rest of each workflow follows):
    FIRESTORE_EMULATOR_HOST={host} functions/venv/bin/python tools/demo.py retry
- {dispatch.path} (shipping.dispatch, a durable handler: a carrier slot reserved, then a wait
  for the warehouse) is {dispatching}.
  Send the warehouse's event and it books the label (or End wait in the dashboard):
    {send_picked_command(host, db.project)}
- The CLI:
    FIRESTORE_EMULATOR_HOST={host} GCLOUD_PROJECT={db.project} FIRETASKS_QUEUE=main:queue \
      functions/venv/bin/firetasks list --parent {BAD_ORDER}
- Write your own tasks to <collection>/<docId>/tasks/<taskId> with any client against {host}.
""", flush=True)
    if args.watch:
        print("Watching every task (Ctrl-C stops the emulators):", flush=True)
        watch(db)


if __name__ == "__main__":
    main()
