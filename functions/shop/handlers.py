"""The shop's task handlers: the seed's `order.sendConfirmationEmail` and `initiateProcessing`."""

from __future__ import annotations

import re
from typing import Any

from google.cloud import firestore

from firetasks import ClientAccess, HandlerRegistry, PermanentError, Task

registry = HandlerRegistry()

MAIL_COLLECTION = "mail"  # watched by the "Trigger Email from Firestore" extension
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


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
# otherwise push an unpaid order into fulfilment.
@registry.handler("order", "sendConfirmationEmail", client=ClientAccess(
    once_per_parent=True, data="data.keys().hasOnly(['orderId'])"))
def send_confirmation_email(task: Task) -> dict[str, str]:
    """Queue the confirmation mail in the Trigger Email extension's format."""
    order = _order(task)
    email = order.get("email")
    if not isinstance(email, str) or not EMAIL_PATTERN.fullmatch(email):
        raise OrderError(f"order {task.parent.path} has no valid email address: {email!r}")
    order_id = task.parent.id
    items = order.get("items") or []
    lines = "\n".join(f"- {item}" for item in items) or "- (no items)"
    _, mail = task.client.collection(MAIL_COLLECTION).add({
        "to": email,
        "message": {
            "subject": f"Your order {order_id} is confirmed",
            "text": f"Thank you for your order {order_id}.\n\n{lines}\n",
        },
        "orderId": order_id,
        "taskPath": task.path,
        "attempt": task.attempt,
        "createdAt": firestore.SERVER_TIMESTAMP,
    })
    return {"mailId": mail.id, "to": email}


# The seed's pseudo-code names this handler both ways; the second shows a dotted action.
@registry.handler("order", "initiateProcessing")
@registry.handler("inventory", "mutations.initiateOrderProcessing")
def initiate_processing(task: Task) -> dict[str, Any]:
    """Move the order to `processing`; doing it again changes nothing."""
    order = _order(task)
    if order.get("status") == "processing":
        return {"status": "processing", "changed": False}
    task.parent.update({"status": "processing", "processingAt": firestore.SERVER_TIMESTAMP})
    return {"status": "processing", "changed": True}
