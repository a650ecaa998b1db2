"""Placing an order: the order document and its workflow, written together (the seed's
createOrder, grown into a small workflow):

    payment.charge -> order.sendConfirmationEmail  -> shipping.ship
                   -> order.initiateProcessing     ->

An order placed with `dispatch=True` also gets `shipping.dispatch`, a durable handler that waits
for the warehouse's `warehouse.picked` event (shop.handlers.dispatch).

Every task has a key, so placing the same order twice (a retried request, a double click) creates
nothing new. A declined charge fails processing and shipping (the default policy) and skips the
confirmation mail (`cancelled`), each saying why; an operator's retry of the charge runs the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import NewTask, create_with_tasks

ORDERS = "orders"


TEST_CARD = "4242424242424242"


def order_workflow(order_id: str) -> list[NewTask]:
    data = {"orderId": order_id}
    return [
        NewTask("payment", "charge", data, key="charge"),
        NewTask("order", "sendConfirmationEmail", data, key="sendConfirmationEmail",
                after=["charge"], on_dependency_failure="skip"),
        NewTask("order", "initiateProcessing", data, key="initiateProcessing", after=["charge"]),
        NewTask("shipping", "ship", data, key="ship",
                after=["sendConfirmationEmail", "initiateProcessing"]),
    ]


def create_order(
    client: firestore.Client,
    order_id: str,
    *,
    email: str,
    items: Sequence[str],
    uid: str = "",
    card: str = TEST_CARD,
    dispatch: bool = False,
) -> DocumentReference:
    """Place the order `order_id` with its workflow; with `dispatch`, also its `shipping.dispatch`
    task, which waits for the warehouse's `warehouse.picked` event with `{"orderId": order_id}`."""
    order = client.collection(ORDERS).document(order_id)
    create_with_tasks(
        order,
        {
            "email": email,
            "items": list(items),
            "uid": uid,
            "card": card,
            "status": "created",
            "createdAt": firestore.SERVER_TIMESTAMP,
        },
        order_workflow(order_id) + ([NewTask("shipping", "dispatch", {"orderId": order_id},
                                              key="dispatch")] if dispatch else []),
    )
    return order
