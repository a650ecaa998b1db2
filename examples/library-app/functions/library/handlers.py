"""The loans' background jobs, run by firetasks: `loan.sendReceipt` and `loan.sendReminder` each
write a notification, which the library's mailer (not part of this example) sends;
`loan.archive` files a returned loan in the archive, exactly once."""

from __future__ import annotations

from typing import Any

from firetasks import ClientAccess, HandlerRegistry, PermanentError, Task
from google.cloud import firestore

registry = HandlerRegistry()

NOTIFICATIONS = "notifications"


class LoanError(PermanentError):
    """The job's loan cannot be worked on as it stands: retrying cannot help."""


def _loan(task: Task) -> dict[str, Any]:
    loan = task.parent.get() if task.parent else None
    if loan is None or not loan.exists:
        raise LoanError(f"job {task.path} has no loan")
    return loan.to_dict() or {}


def _notify(task: Task, kind: str) -> dict[str, str]:
    """The notification has a fixed id per loan and kind: a second attempt rewrites it."""
    loan = _loan(task)
    notification = task.client.collection(NOTIFICATIONS).document(f"{task.parent.id}-{kind}")
    notification.set({
        "kind": kind,
        "to": loan.get("email"),
        "memberUid": loan.get("memberUid"),
        "title": loan.get("title"),
        "dueAt": loan.get("dueAt"),
        "loan": task.parent.path,
        "job": task.path,
        "attempt": task.attempt,
        "createdAt": firestore.SERVER_TIMESTAMP,
    })
    return {"notification": notification.path}


# Lending a book queues its receipt (servers only: the default).
@registry.handler("loan", "sendReceipt")
def send_receipt(task: Task) -> dict[str, str]:
    return _notify(task, "receipt")


# A member may ask the app for a reminder of their loan, once per loan (the job's id is
# `sendReminder`), with no data: the loan says it all.
@registry.handler("loan", "sendReminder", client=ClientAccess(
    once_per_parent=True, data="data.size() == 0"))
def send_reminder(task: Task) -> dict[str, str]:
    return _notify(task, "reminder")


ARCHIVE = "archive"


# A returned loan is filed in the archive and marked archived, in one commit with the job's
# completion (atomic: the writes happen if and only if the job completes, exactly once).
@registry.handler("loan", "archive", atomic=True)
def archive(task: Task) -> dict[str, str]:
    loan = _loan(task)  # the job's parent: the loan
    if loan.get("status") != "returned":
        raise LoanError(f"loan {task.parent.path} is {loan.get('status')}, not returned")
    entry = task.client.collection(ARCHIVE).document(task.parent.id)
    task.writes.set(entry, {"memberUid": loan.get("memberUid"), "title": loan.get("title"),
                            "archivedAt": firestore.SERVER_TIMESTAMP})
    task.writes.update(task.parent, {"status": "archived"})
    return {"archive": entry.path}
