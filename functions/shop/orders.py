"""Placing an order: the order document and its tasks, written together (the seed's createOrder)."""

from __future__ import annotations

from collections.abc import Sequence

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks import NewTask, create_with_tasks

ORDERS = "orders"


def create_order(
    client: firestore.Client, order_id: str, *, email: str, items: Sequence[str], uid: str = ""
) -> DocumentReference:
    order = client.collection(ORDERS).document(order_id)
    create_with_tasks(
        order,
        {
            "email": email,
            "items": list(items),
            "uid": uid,
            "status": "created",
            "createdAt": firestore.SERVER_TIMESTAMP,
        },
        [
            NewTask("order", "sendConfirmationEmail", {"orderId": order_id}),
            NewTask("order", "initiateProcessing", {"orderId": order_id}),
        ],
    )
    return order
