"""The dashboard's JSON API, served by the `dashboard` function in the Functions emulator, called
with real ID tokens from the Auth emulator."""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from firebase_admin import auth
from google.cloud import firestore

import main
from firetasks import NewTask, TaskQueue, add_tasks, charts, queries
from firetasks import db as firetasks_db
from testing.meter import measure, metered
from tests.support import (
    dashboard_url,
    probe_runs,
    sign_in,
    task_fields,
    wait_for_state,
    wait_until,
)

URL = dashboard_url()


def call(endpoint, token=None, body=None, csrf=True, content_type="application/json", **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is None:
        response = requests.get(URL + endpoint, headers=headers, params=params, timeout=30)
    else:
        if csrf:
            headers["X-Firetasks-CSRF"] = "1"
        headers["Content-Type"] = content_type
        response = requests.post(URL + endpoint, headers=headers, data=json.dumps(body),
                                 timeout=30)
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:200]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return response.status_code, response.json()


@pytest.fixture
def admin(people):
    return people["admin"].token


@pytest.mark.parametrize("path", ["api/stats", "api/tasks", "api/task", "api/audit"])
def test_every_endpoint_needs_a_token(path):
    status, body = call(path)
    assert status == 401
    assert "sign in" in body["error"]


def test_a_bad_token_is_refused():
    assert call("api/stats", token="not-a-token")[0] == 401


@pytest.mark.parametrize("path", ["api/stats", "api/tasks", "api/audit"])
def test_a_user_without_the_admin_claim_is_forbidden(people, path):
    status, body = call(path, token=people["agent"].token)
    assert status == 403
    assert "lacks the 'admin' claim" in body["error"]


@pytest.mark.parametrize("path", ["api/retry", "api/cancel", "api/bulk-retry"])
def test_posts_need_a_token_and_the_admin_claim(people, path):
    assert call(path, body={})[0] == 401
    assert call(path, token=people["agent"].token, body={})[0] == 403


@pytest.mark.parametrize("path", ["api/retry", "api/cancel", "api/bulk-retry"])
def test_posts_without_the_csrf_header_are_refused(admin, failed_task, path):
    status, body = call(path, token=admin, body={"path": failed_task.path}, csrf=False)
    assert status == 403
    assert "CSRF" in body["error"]
    assert failed_task.get().get("state") == "failed"


def test_posts_must_be_json(admin, failed_task):
    status, _ = call("api/retry", token=admin, body={"path": failed_task.path},
                     content_type="text/plain")
    assert status == 415


def test_stats_count_states_and_handlers(admin, failed_task):
    status, stats = call("api/stats", token=admin)
    assert status == 200
    assert stats["byHandler"]["probe.permanent"]["failedLastDay"] >= 1
    assert stats["recent"]["lastHour"]["failed"] >= 1
    assert stats["recent"]["lastDay"]["failed"] >= stats["recent"]["lastHour"]["failed"]
    assert set(stats) == {"byState", "recent", "byHandler", "oldestWaiting", "countCap"}


@pytest.mark.parametrize(
    ("params", "message"),
    [({"state": "bogus"}, "state must be one of"), ({"type": "a b"}, "type must be a name"),
     ({"limit": "0"}, "limit must be from 1 to 100"), ({"limit": "x"}, "limit must be a whole"),
     ({"since": "yesterday"}, "since must be an ISO 8601 time"),
     ({"parent": "orders/x/tasks"}, "is not a document path"),
     ({"colour": "red"}, "unknown filter(s): colour"), ({"cursor": "%%%"}, "cursor")],
)
def test_bad_filters_are_400_with_the_reason(admin, params, message):
    status, body = call("api/tasks", token=admin, **params)
    assert status == 400
    assert message in body["error"]


def test_pages_follow_cursors_without_repeats(admin, db, uid):
    order = db.document(f"orders/{uid}")
    refs = add_tasks(order, [NewTask("nobody", "handlesThis", {"n": n}) for n in range(5)])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"parent": uid, "limit": "2"} | ({"cursor": cursor} if cursor else {})
        status, page = call("api/tasks", token=admin, **params)
        assert status == 200
        seen += [task["path"] for task in page["tasks"]]
        pages += 1
        cursor = page["next"]
        if not cursor:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ref.path for ref in refs)


def test_filters_narrow_the_list(admin, failed_task):
    status, page = call("api/tasks", token=admin, state="failed", type="probe",
                        action="permanent", parent=failed_task.parent.parent.path)
    assert status == 200
    assert [task["path"] for task in page["tasks"]] == [failed_task.path]
    assert page["tasks"][0]["error"]["message"] == "card declined"


def test_task_detail_and_unknown_ids(admin, failed_task):
    status, task = call("api/task", token=admin, path=failed_task.path)
    assert status == 200
    assert task["fields"]["history"][0]["outcome"] == "failed"
    assert call("api/task", token=admin, path=failed_task.path + "x")[0] == 404
    assert call("api/task", token=admin, path="orders/x")[0] == 400


def test_retry_and_cancel_follow_the_state_machine_and_are_audited(admin, people, failed_task):
    status, outcome = call("api/retry", token=admin, body={"path": failed_task.path})
    assert (status, outcome) == (200, {"before": "failed", "after": "scheduled"})
    wait_for_state(failed_task, ("failed",))
    status, body = call("api/cancel", token=admin, body={"path": failed_task.path})
    assert status == 409
    assert "a failed task cannot become cancelled" in body["error"]
    assert call("api/retry", token=admin, body={"path": "orders/no/tasks/none"})[0] == 404
    _, audit = call("api/audit", token=admin)
    [entry] = [e for e in audit["entries"] if e["task"] == failed_task.path]
    assert entry["actor"]["email"] == people["admin"].email
    assert (entry["action"], entry["before"], entry["after"]) == ("retry", "failed", "scheduled")


def test_concurrent_retry_clicks_on_one_failed_task_run_it_once(admin, db, uid):
    task = db.document(f"orders/{uid}/tasks/t")
    task.set(task_fields("probe", "flaky", {"failTimes": 1}, maxAttempts=1))
    wait_for_state(task)
    _, shown = call("api/task", token=admin, path=task.path)
    click = {"path": task.path, "state": shown["state"], "version": shown["version"]}
    start = threading.Barrier(8)

    def press(_: int) -> int:
        start.wait()
        return call("api/retry", token=admin, body=click)[0]

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(press, range(8)))
    assert statuses == {200: 1, 409: 7}
    assert wait_for_state(task)["state"] == "completed"
    status, body = call("api/retry", token=admin, body=click)  # a late click, same page
    assert status == 409
    assert "changed since it was shown" in body["error"]
    assert task.get().get("state") == "completed"
    assert probe_runs(db, task) == [1, 2]


def test_an_action_on_a_task_whose_state_moved_on_is_409(admin, failed_task):
    status, body = call("api/cancel", token=admin, body={"path": failed_task.path,
                                                         "state": "running"})
    assert (status, body["error"]) == (409, f"{failed_task.path} is failed now, not running: "
                                            "reload it")
    assert call("api/retry", token=admin, body={"path": failed_task.path,
                                                "version": "yesterday"})[0] == 400


@pytest.mark.parametrize(
    ("endpoint", "extra", "field"),
    [("api/retry", {"maxAttempts": 0}, "maxAttempts"),
     ("api/retry", {"maxAttempts": 1_000_000_000}, "maxAttempts"),
     ("api/retry", {"maxAttempts": True}, "maxAttempts"),
     ("api/retry", {"path": ["orders/x/tasks/t"]}, "path"),
     ("api/bulk-retry", {"filters": "x", "dryRun": True}, "filters"),
     ("api/bulk-retry", {"filters": {}, "dryRun": True, "maxAttempts": 1_000_000_000},
      "maxAttempts")],
)
def test_bad_bodies_are_json_400_naming_the_field(admin, failed_task, endpoint, extra, field):
    body = ({"path": failed_task.path} if endpoint == "api/retry" else {}) | extra
    status, answered = call(endpoint, token=admin, body=body)
    assert status == 400
    assert field in answered["error"]
    assert failed_task.get().get("state") == "failed"


def test_a_revoked_or_disabled_admin_is_refused_at_once(db, uid):
    email, password = f"revoked-{uid}@example.com", f"pw-{uid}"
    user = auth.create_user(email=email, password=password, app=firetasks_db.app())
    auth.set_custom_user_claims(user.uid, {"admin": True}, app=firetasks_db.app())
    token = sign_in(email, password)
    assert call("api/stats", token=token)[0] == 200
    # Revocation counts in whole seconds: a token issued in the revoking second stays valid.
    issued = auth.verify_id_token(token, app=firetasks_db.app())["iat"]
    wait_until(lambda: time.time() >= issued + 1, what="the next second")
    auth.revoke_refresh_tokens(user.uid, app=firetasks_db.app())
    status, body = call("api/stats", token=token)
    assert (status, body["reason"]) == (401, "revoked")
    token = sign_in(email, password)
    assert call("api/stats", token=token)[0] == 200
    auth.update_user(user.uid, disabled=True, app=firetasks_db.app())
    status, body = call("api/stats", token=token)
    assert (status, body["reason"], body["error"]) == (401, "disabled", "this account is disabled")


def test_bulk_retry_counts_then_needs_the_same_count(admin, db, uid):
    order = db.document(f"orders/{uid}")
    order.set({"email": "x@example.com"})
    tasks = [order.collection("tasks").document(f"t{n}") for n in range(3)]
    for task in tasks:
        task.set(task_fields("probe", "permanent"))
    for task in tasks:
        wait_for_state(task)
    filters = {"parent": order.path}
    status, counted = call("api/bulk-retry", token=admin, body={"filters": filters, "dryRun": True})
    assert (status, counted["count"]) == (200, 3)
    status, body = call("api/bulk-retry", token=admin, body={"filters": filters, "confirm": 2})
    assert status == 409
    assert "3 tasks match now, not 2" in body["error"]
    status, done = call("api/bulk-retry", token=admin, body={"filters": filters, "confirm": 3})
    assert (status, done["retried"]) == (200, 3)
    for task in tasks:
        assert wait_for_state(task, ("failed",))["attempts"] == 2


def test_the_page_is_served_with_a_strict_policy():
    response = requests.get(URL, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert requests.get(URL + "app.js", timeout=30).headers["Content-Type"].startswith(
        "text/javascript")
    missing = requests.get(URL + "nothing-here", timeout=30)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no such page: nothing-here"}


def test_lists_and_details_say_whether_this_deployment_has_a_handler(admin, db, uid, failed_task):
    [orphan] = add_tasks(db.document(f"orders/{uid}"), [NewTask("nobody", "handlesThis")])
    _, page = call("api/tasks", token=admin, parent=uid)
    assert {task["path"]: task["handled"] for task in page["tasks"]} == {
        orphan.path: False, failed_task.path: True}
    _, task = call("api/task", token=admin, path=orphan.path)
    assert (task["state"], task["handled"]) == ("scheduled", False)


ACTIVE = {"waiting": 40, "scheduled": 60, "running": 20, "retrying": 30}  # unfinished, whatever
HISTORY_DAYS = 30  # finished tasks, spread evenly over this many days back from now


def seed_history(db, collection: str, size: int, names: list[str], now: datetime.datetime):
    """`size` tasks under `shops/*/{collection}` written directly in batches of 500 (no trigger
    watches the collection): ACTIVE unfinished ones, the rest finished over HISTORY_DAYS (every
    25th failed, every 100th cancelled). Returns the figures the overview should show."""
    finished = size - sum(ACTIVE.values())
    docs, expected = [], {
        "byState": dict(ACTIVE),
        "recent": {"lastHour": {"completed": 0, "failed": 0},
                   "lastDay": {"completed": 0, "failed": 0, "cancelled": 0}},
        "byHandler": {name: {"failedLastDay": 0} for name in names},
    }
    for n, state in enumerate(s for s, count in ACTIVE.items() for _ in range(count)):
        docs.append({"state": state, "createdAt": now - datetime.timedelta(minutes=n + 1)})
    for n in range(finished):
        at = now - datetime.timedelta(days=HISTORY_DAYS) * (n + 0.5) / finished
        state = "failed" if n % 25 == 0 else "cancelled" if n % 100 == 1 else "completed"
        name = names[n % len(names)]
        docs.append({"state": state, "createdAt": at - datetime.timedelta(seconds=5),
                     "finishedAt": at, "type": name.split(".")[0],
                     "action": name.split(".", 1)[1]})
        for label, span in (("lastHour", datetime.timedelta(hours=1)),
                            ("lastDay", datetime.timedelta(days=1))):
            if at >= now - span and state in expected["recent"][label]:
                expected["recent"][label][state] += 1
        if state == "failed" and at >= now - datetime.timedelta(days=1):
            expected["byHandler"][name]["failedLastDay"] += 1
    for n, doc in enumerate(docs):
        doc.setdefault("type", "probe")
        doc.setdefault("action", "flaky")
        doc |= {"data": {"n": n}, "attempts": 1}

    in_batches(db, [f"shops/s{n // 50}/{collection}/t{n}" for n in range(len(docs))], docs)
    oldest = min((n for n, doc in enumerate(docs) if doc["state"] in ("scheduled", "retrying")),
                 key=lambda n: docs[n]["createdAt"])
    return expected, f"shops/s{oldest // 50}/{collection}/t{oldest}", docs


def finished_per_hour(docs: list[dict], now: datetime.datetime) -> dict[str, dict[str, int]]:
    """Completed and failed tasks per hour (its start, ISO 8601) over the charts' 24 hours."""
    current = now.replace(minute=0, second=0, microsecond=0)
    hours = {(current - datetime.timedelta(hours=back)).isoformat(): {"completed": 0, "failed": 0}
             for back in range(24)}
    for doc in docs:
        if doc["state"] in ("completed", "failed"):
            start = doc["finishedAt"].replace(minute=0, second=0, microsecond=0).isoformat()
            if start in hours:
                hours[start][doc["state"]] += 1
    return hours


def in_batches(db, paths: list[str], docs: list[dict] | None = None) -> None:
    """Write `docs` at `paths`, or delete them, in batches of 500, eight at a time."""

    def commit(start: int) -> None:
        batch = db.batch()
        for n in range(start, min(start + 500, len(paths))):
            if docs is None:
                batch.delete(db.document(paths[n]))
            else:
                batch.set(db.document(paths[n]), docs[n])
        batch.commit()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(commit, range(0, len(paths), 500)))


@pytest.mark.parametrize("size", [1_000, 50_000])
def test_an_overview_refresh_reads_at_most_100_documents_whatever_the_history(db, uid, size):
    """The stats, and the charts: their first refresh reads each task of the last day once (to
    summarise the closed hours), every later one the rollup document and the hour in progress."""
    queue = TaskQueue(main.queue.registry, collections=(f"history{uid}",))
    now = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    expected, oldest, docs = seed_history(db, queue.collections[0], size,
                                          queue.registry.names(), now)
    seeded = time.monotonic() - started
    client = metered(firestore.Client(project=db.project))
    try:
        figures, reads, _ = measure(lambda: queries.stats(client, queue, now))
        _, first_chart_reads, _ = measure(lambda: charts.charts(client, queue, now))
        chart, chart_reads, _ = measure(lambda: charts.charts(client, queue, now))
        one = queue.registry.names()[0]
        handler_chart, handler_chart_reads, _ = measure(
            lambda: charts.charts(client, queue, now, one))
    finally:  # the emulator keeps every document until it stops: leave it as lean as it was
        in_batches(db, [snapshot.reference.path for snapshot in
                        db.collection_group(queue.collections[0]).select([]).stream()])
        db.collection(charts.CHARTS_COLLECTION).document(queue.collections[0]).delete()
    print(f"overview refresh at {size:,} tasks of history (seeded in {seeded:.0f} s): "
          f"{reads} reads (metered), {figures['recent']['lastDay']} in the last day; charts: "
          f"first refresh {first_chart_reads} reads, then {chart_reads} (one handler: "
          f"{handler_chart_reads})")
    assert {key: figures[key] for key in expected} == expected
    assert figures["oldestWaiting"]["path"] == oldest
    assert reads <= 100
    assert chart_reads <= 100
    assert handler_chart_reads <= 100
    per_hour = finished_per_hour(docs, now)
    assert {hour["start"]: {"completed": hour["completed"], "failed": hour["failed"]}
            for hour in chart["hours"]} == per_hour
    times = {hour[key] for hour in chart["hours"] for key in ("p50Ms", "p95Ms")} - {None}
    assert times == {5000.0}  # every seeded task finished 5 s after it was created
    one_type, one_action = one.split(".", 1)
    assert sum(hour["completed"] + hour["failed"] for hour in handler_chart["hours"]) == sum(
        1 for doc in docs if doc["state"] in ("completed", "failed")
        and (doc["type"], doc["action"]) == (one_type, one_action)
        and doc["finishedAt"].replace(minute=0, second=0, microsecond=0).isoformat() in per_hour)
