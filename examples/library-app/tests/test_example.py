"""The library app in its emulator suite: its jobs are processed by the functions that its main.py
defines with firetasks, installed from the wheel its requirements.txt names."""

from __future__ import annotations

import datetime

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from library.handlers import NOTIFICATIONS
from support import call_function, client_create, client_read, sign_up, wait_for_end


def a_loan(db: firestore.Client, uid: str, member_uid: str = "member-1") -> DocumentReference:
    loan = db.collection("loans").document(f"loan-{uid}")
    loan.create({"memberUid": member_uid, "email": "ada@example.com", "title": "Middlemarch",
                 "dueAt": datetime.datetime.now(datetime.UTC) + datetime.timedelta(weeks=3),
                 "status": "lent"})
    return loan


def test_a_job_written_by_a_server_completes(db, uid):
    loan = a_loan(db, uid)
    job = loan.collection("jobs").document()
    job.create({"type": "loan", "action": "sendReceipt", "state": "scheduled", "data": {},
                "createdAt": firestore.SERVER_TIMESTAMP})

    fields = wait_for_end(job)

    assert fields["state"] == "completed", fields.get("error")
    assert fields["attempts"] == 1
    notification = db.collection(NOTIFICATIONS).document(f"{loan.id}-receipt").get()
    assert fields["result"] == {"notification": notification.reference.path}
    assert notification.exists
    assert notification.get("kind") == "receipt"
    assert notification.get("to") == "ada@example.com"
    assert notification.get("job") == job.path


def test_a_librarian_lends_a_book_and_its_receipt_is_sent(db, uid):
    _, librarian = sign_up(f"librarian-{uid}@example.com", f"pw-{uid}-l", {"librarian": True})
    lending = {"memberUid": f"m-{uid}", "email": "bo@example.com", "title": "Emma"}

    status, answer = call_function("lend_book", lending, librarian)

    assert status == 200, answer
    loan = db.document(answer["result"]["loan"])
    [job_path] = answer["result"]["jobs"]
    assert job_path.startswith(f"{loan.path}/jobs/")
    fields = wait_for_end(db.document(job_path))
    assert fields["state"] == "completed", fields.get("error")
    notification = db.collection(NOTIFICATIONS).document(f"{loan.id}-receipt").get()
    assert notification.get("to") == "bo@example.com"
    assert notification.get("title") == "Emma"


def test_only_librarians_lend_and_only_whole_loans(uid):
    _, member = sign_up(f"reader-{uid}@example.com", f"pw-{uid}-r")
    _, librarian = sign_up(f"librarian2-{uid}@example.com", f"pw-{uid}-l", {"librarian": True})
    lending = {"memberUid": f"m-{uid}", "email": "x@example.com", "title": "Persuasion"}

    assert call_function("lend_book", lending, None)[0] == 401
    assert call_function("lend_book", lending, member)[0] == 403
    status, answer = call_function("lend_book", {**lending, "memberUid": ""}, librarian)
    assert status == 400
    assert "memberUid" in answer["error"]["message"]


def test_a_member_asks_for_a_reminder_of_their_loan_as_the_rules_allow(db, uid):
    member_uid, member = sign_up(f"member-{uid}@example.com", f"pw-{uid}-member")
    _, stranger = sign_up(f"stranger-{uid}@example.com", f"pw-{uid}-stranger")
    loan = a_loan(db, uid, member_uid)
    reminder = {"type": "loan", "action": "sendReminder", "state": "scheduled", "data": {}}
    jobs = f"{loan.path}/jobs"

    # Refused: someone else's loan, a server-only handler, another id, data the rule forbids.
    assert client_create(f"{jobs}/sendReminder", reminder, stranger) == 403
    assert client_create(f"{jobs}/sendReceipt", {**reminder, "action": "sendReceipt"},
                         member) == 403
    assert client_create(f"{jobs}/another", reminder, member) == 403
    assert client_create(f"{jobs}/sendReminder", {**reminder, "data": {"x": "y"}}, member) == 403
    assert client_create(f"{jobs}/sendReminder", {**reminder, "state": "completed"},
                         member) == 403

    assert client_create(f"{jobs}/sendReminder", reminder, member) == 200
    fields = wait_for_end(db.document(f"{jobs}/sendReminder"))

    assert fields["state"] == "completed", fields.get("error")
    notification = db.collection(NOTIFICATIONS).document(f"{loan.id}-reminder").get()
    assert notification.get("kind") == "reminder"
    assert notification.get("memberUid") == member_uid
    assert client_read(f"{jobs}/sendReminder", member) == 200
    assert client_read(f"{jobs}/sendReminder", stranger) == 403
