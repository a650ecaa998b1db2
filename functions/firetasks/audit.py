"""The audit log of operator actions: who did what to which task, and its state before and after."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from google.cloud import firestore

AUDIT_COLLECTION = "firetasksAudit"


@dataclass(frozen=True)
class Actor:
    uid: str | None
    email: str | None
    via: str  # "dashboard", "cli" or "kit" (MemoryQueue)


def entry_ref(client: firestore.Client) -> firestore.DocumentReference:
    return client.collection(AUDIT_COLLECTION).document()


def entry(actor: Actor, action: str, path: str, outcome: dict[str, Any]) -> dict[str, Any]:
    """An audit record; `outcome` holds the task's state `before` and `after` the action."""
    return {
        "at": firestore.SERVER_TIMESTAMP,
        "actor": asdict(actor),
        "action": action,
        "task": path,
        "before": outcome["before"],
        "after": outcome["after"],
    }


def recent(client: firestore.Client, limit: int = 50) -> list[dict[str, Any]]:
    query = (client.collection(AUDIT_COLLECTION)
             .order_by("at", direction=firestore.Query.DESCENDING).limit(limit))
    return [snapshot.to_dict() or {} for snapshot in query.stream()]
