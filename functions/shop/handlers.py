"""The shop's task handlers: the seed's `order.sendConfirmationEmail` and `initiateProcessing`, the
customer's debounced `order.notifyChanged`, and the rest of an order's workflow (shop.orders):
`payment.charge` before them, `shipping.ship` after."""

from __future__ import annotations

import datetime
import re
import time
from typing import Any

from google.cloud import firestore

from firetasks import ClientAccess, HandlerRegistry, PermanentError, RetentionPolicy, Task
from shop.orders import ORDERS

registry = HandlerRegistry()
# The order's owner approves it from the browser, once: for a durable handler's wait_for.
registry.client_event("order.approved", once=True, data="data.keys().hasOnly(['orderId'])")

MAIL_COLLECTION = "mail"  # watched by the "Trigger Email from Firestore" extension
REPORTS = "reports"  # the daily reports: reports/daily-{YYYY-MM-DD}
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
DECLINED_CARD = "4000000000000002"  # the simulated payment provider's test card that declines


class OrderError(PermanentError):
    """The task's order cannot be worked on as it stands: retrying cannot help until someone fixes
    the order and then retries the task."""


def _order(task: Task) -> dict[str, Any]:
    if task.parent is None:
        raise OrderError(f"task {task.path} has no parent order")
    order = task.parent.get()
    if not order.exists:
        raise OrderError(f"order {task.parent.path} does not exist")
    return order.to_dict() or {}


# The order's owner may ask for the confirmation mail from the web app, once per order (the task's
# id is `sendConfirmationEmail`). Processing an order is for servers only: a client could
# otherwise push an unpaid order into fulfilment. Both handlers only write to Firestore, so both
# are atomic: their writes commit with the task's completion, exactly once, unclaimed. An order's
# tasks carry its id in data.orderId (shop.orders), which operators search by (searchable=).
@registry.handler("order", "sendConfirmationEmail", atomic=True, searchable=("orderId",),
                  client=ClientAccess(once_per_parent=True,
                                      data="data.keys().hasOnly(['orderId'])"))
def send_confirmation_email(task: Task) -> dict[str, str]:
    """Queue the confirmation mail in the Trigger Email extension's format."""
    order, order_id = _order(task), task.parent.id
    lines = "\n".join(f"- {item}" for item in order.get("items") or []) or "- (no items)"
    return _mail(task, order, f"Your order {order_id} is confirmed",
                 f"Thank you for your order {order_id}.\n\n{lines}\n")


# The order's owner changes the order in the web app, and each change enqueues this task debounced
# (key "changed": docs/guides/flow-control.md#debounce): a burst of changes sends one mail, naming
# the last one (data.change). A client may not enqueue processing, so it is only a mail.
@registry.handler("order", "notifyChanged", atomic=True, searchable=("orderId",),
                  client=ClientAccess(data="data.keys().hasOnly(['orderId', 'change'])"))
def notify_changed(task: Task) -> dict[str, str]:
    """Queue the "your order changed" mail in the Trigger Email extension's format."""
    change = str(task.data.get("change", "it was updated"))
    return _mail(task, _order(task), f"Your order {task.parent.id} changed",
                 f"{change}\n") | {"change": change}


def _mail(task: Task, order: dict[str, Any], subject: str, text: str) -> dict[str, str]:
    """Stage a mail to the order's address (the Trigger Email extension sends it): its id."""
    email = order.get("email")
    if not isinstance(email, str) or not EMAIL_PATTERN.fullmatch(email):
        raise OrderError(f"order {task.parent.path} has no valid email address: {email!r}")
    mail = task.writes.create(task.client.collection(MAIL_COLLECTION).document(), {
        "to": email,
        "message": {"subject": subject, "text": text},
        "orderId": task.parent.id,
        "taskPath": task.path,
        "attempt": task.attempt,
        "createdAt": firestore.SERVER_TIMESTAMP,
    })
    return {"mailId": mail.id, "to": email}


# The seed's pseudo-code names this handler both ways; the second shows a dotted action.
@registry.handler("order", "initiateProcessing", atomic=True, searchable=("orderId",))
@registry.handler("inventory", "mutations.initiateOrderProcessing", atomic=True,
                  searchable=("orderId",))
def initiate_processing(task: Task) -> dict[str, Any]:
    """Move the order to `processing`; doing it again changes nothing."""
    order = _order(task)
    if order.get("status") == "processing":
        return {"status": "processing", "changed": False}
    task.writes.update(task.parent,
                       {"status": "processing", "processingAt": firestore.SERVER_TIMESTAMP})
    return {"status": "processing", "changed": True}


# Every morning at 6 in Berlin, a task counts the orders of the 24 hours before (a periodic task:
# firetasks.periodic). Its task is kept 90 days once completed, failures the default 30.
@registry.periodic("reports", "daily", schedule="every day 06:00", timezone="Europe/Berlin",
                   retention=RetentionPolicy(completed=datetime.timedelta(days=90)))
def daily_report(task: Task) -> dict[str, Any]:
    """Write reports/daily-{date}: the number of orders created in the day before the firing."""
    until = datetime.datetime.fromisoformat(task.data["fireTime"])
    since = until - datetime.timedelta(days=1)
    orders = (task.client.collection(ORDERS)
              .where(filter=firestore.FieldFilter("createdAt", ">=", since))
              .where(filter=firestore.FieldFilter("createdAt", "<", until)))
    [[count]] = orders.count().get()
    report = task.client.collection(REPORTS).document(f"daily-{since.date().isoformat()}")
    report.set({"orders": count.value, "since": since, "until": until, "taskPath": task.path})
    return {"orders": count.value, "report": report.path}


# A charge calls a payment provider: an external effect that must not repeat, so claim mode (the
# default): the claim makes sure one invocation per attempt calls the provider.
@registry.handler("payment", "charge", searchable=("orderId",))
def charge(task: Task) -> dict[str, str]:
    """Charge the order's card (simulated: the provider declines DECLINED_CARD)."""
    order = _order(task)
    if order.get("card") == DECLINED_CARD:
        raise OrderError(f"card ending {DECLINED_CARD[-4:]} was declined")
    return {"chargeId": f"ch_{task.parent.id}"}


@registry.handler("shipping", "ship", atomic=True, searchable=("orderId",))
def ship(task: Task) -> dict[str, Any]:
    """Mark the order shipped, once its confirmation and processing are done."""
    done = task.dependency_results()
    task.writes.update(task.parent, {"status": "shipped", "shippedAt": firestore.SERVER_TIMESTAMP})
    return {"status": "shipped", "after": sorted(done)}


PICKED = "warehouse.picked"  # the warehouse's event: the order is picked, {"orderId": ...}


# A durable handler (docs/guides/durable.md): each step runs once, and the wait for the warehouse
# holds no invocation. Orders placed with dispatch=True have it (shop.orders).
@registry.handler("shipping", "dispatch")
def dispatch(task: Task) -> dict[str, Any]:
    """Reserve a carrier slot, wait (up to 2 days) for the warehouse's `warehouse.picked` event
    for this order, then book the label."""
    order_id = task.data["orderId"]
    slot = task.step("reserve-carrier", lambda: {"carrier": "parcel-co", "slot": "next-day"})
    picked = task.wait_for("picked", event=PICKED, match={"orderId": order_id},
                           timeout=datetime.timedelta(days=2))
    if picked is None:
        return {"status": "not picked in time", **slot}
    label = task.step("book-label", lambda: {"label": f"LBL-{order_id}"})
    return {"status": "label booked", **slot, **label}


@registry.handler("reports", "export")
def export(task: Task) -> dict[str, int]:
    """A long job that reports its progress: `data.parts` parts (default 10) of `data.seconds`
    each (default 1)."""
    parts = int(task.data.get("parts", 10))
    seconds = float(task.data.get("seconds", 1.0))
    for part in range(parts):
        task.progress(part / parts, f"exporting part {part + 1} of {parts}")
        time.sleep(seconds)  # the work of one part
    task.progress(1.0, f"exported {parts} parts")
    return {"parts": parts}
