"""Lending: a librarian lends a book to a member, due back in three weeks."""

from __future__ import annotations

import datetime
import functools

from firetasks import NewTask, create_with_tasks
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

LOANS = "loans"
JOBS = "jobs"  # each loan's background jobs: loans/{loanId}/jobs/{jobId}
LOAN_PERIOD = datetime.timedelta(weeks=3)


@functools.cache
def client() -> firestore.Client:
    return firestore.Client()


def lend(member_uid: object, email: object, title: object) -> tuple[DocumentReference, list]:
    """Create the loan and the job that mails its receipt, both or neither."""
    for name, value in (("memberUid", member_uid), ("email", email), ("title", title)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"'{name}' must be a non-empty string")
    loan = client().collection(LOANS).document()
    due = datetime.datetime.now(datetime.UTC) + LOAN_PERIOD
    jobs = create_with_tasks(
        loan,
        {"memberUid": member_uid, "email": email, "title": title, "dueAt": due,
         "status": "lent"},
        [NewTask("loan", "sendReceipt")],
        collection=JOBS,
    )
    return loan, jobs
