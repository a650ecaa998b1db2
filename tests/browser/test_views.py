"""The dashboard's views in headless Chromium against the emulator suite: each address shows its
view and only it (overview, tasks, a task, a parent's workflow as a graph); a missing task or a bad
filter in the address shows only the error, naming it, with a way back; no error outlives its
view."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from firetasks import operations
from shop.handlers import DECLINED_CARD
from shop.orders import TEST_CARD, create_order
from tests.browser.test_dashboard import failed_email_task, signed_in
from tests.support import task_fields, wait_for_state

VIEWS = ["#overview", "#audit", "#list", "#detail", "#workflow", "#view-error"]
ORDER = ["charge", "sendConfirmationEmail", "initiateProcessing", "ship"]
EDGES = {("charge", "sendConfirmationEmail"), ("charge", "initiateProcessing"),
         ("sendConfirmationEmail", "ship"), ("initiateProcessing", "ship")}
TIMEOUT = 30_000


def visit(page: Page, view: str) -> None:
    """Go to `#/<view>` as a link or the address bar would."""
    page.evaluate("(view) => { location.hash = `#/${view}`; }", view)


def only(page: Page, *shown: str) -> None:
    for selector in shown:
        expect(page.locator(selector)).to_be_visible()
    for selector in set(VIEWS) - set(shown):
        expect(page.locator(selector)).to_be_hidden()


def test_each_address_shows_its_view_and_only_it(browser, db, uid, people):
    _, task = failed_email_task(db, uid, "not-an-email")
    page = signed_in(browser, people["admin"])
    only(page, "#overview", "#audit")
    expect(page.locator("#chart-finished svg")).to_have_count(1)

    visit(page, f"tasks?parent={uid}")
    only(page, "#list")
    expect(page.locator(f"#tasks tr[data-path='{task.path}']")).to_contain_text("failed")
    expect(page.locator("#filters input[name=parent]")).to_have_value(uid)

    page.locator(f"#tasks tr[data-path='{task.path}']").click()
    only(page, "#detail")
    assert page.url.endswith(f"#/task/{task.path}")
    expect(page.locator("#retry")).to_be_visible()

    page.click("#detail-workflow")
    only(page, "#workflow")
    assert f"#/workflow/orders/{uid}" in page.url
    expect(page.locator("#workflow-graph .node")).to_have_count(len(task.parent.get()))

    page.go_back()
    only(page, "#detail")
    expect(page.locator("#detail-path")).to_have_text(task.path)
    page.click("#nav a[data-view=overview]")
    only(page, "#overview", "#audit")


def test_a_task_s_deep_link_shows_only_the_task(browser, db, uid, people):
    _, task = failed_email_task(db, uid, "not-an-email")
    page = signed_in(browser, people["admin"], url=f"#/task/{task.path}")
    only(page, "#detail")
    expect(page.locator("#detail-fields")).to_contain_text("OrderError")
    expect(page.locator("#tasks tbody tr")).to_have_count(0)  # the list was not even loaded


def test_a_missing_task_shows_only_the_error_and_a_way_back(browser, db, uid, people):
    _, task = failed_email_task(db, uid, "not-an-email")
    page = signed_in(browser, people["admin"], url=f"#/task/{task.path}")
    expect(page.locator("#retry")).to_be_visible()

    visit(page, "task/orders/nope/tasks/zzz")
    only(page, "#view-error")
    expect(page.locator("#view-error-text")).to_have_text("no task at orders/nope/tasks/zzz")
    expect(page.locator("#retry")).to_be_hidden()  # not the previous task's button
    expect(page.locator("#message")).to_be_hidden()

    page.click("#view-error-back")
    only(page, "#overview", "#audit")  # and the error is gone


def test_a_bad_filter_in_the_address_names_it_and_loads_no_list(browser, db, uid, people):
    failed_email_task(db, uid, "not-an-email")
    page = signed_in(browser, people["admin"])
    only(page, "#overview", "#audit")
    lists: list[str] = []
    page.on("request", lambda request: lists.append(request.url)
            if "/api/tasks" in request.url else None)

    visit(page, "tasks?since=not-a-date")
    only(page, "#view-error")
    expect(page.locator("#view-error-text")).to_contain_text("since must be an ISO 8601 time")
    expect(page.locator("#tasks tbody tr")).to_have_count(0)
    assert lists, "the filters should have been sent as they are"
    assert all("since=not-a-date" in url for url in lists), lists  # never unfiltered

    visit(page, f"tasks?parent={uid}")  # a good address: its view, no stale error
    only(page, "#list")
    expect(page.locator("#tasks tbody tr")).not_to_have_count(0)


def test_a_declined_card_order_s_workflow_is_a_graph_that_follows_its_tasks(
        browser, db, uid, people, shots):
    order = create_order(db, uid, email="graph@example.com", items=["tea"], card=DECLINED_CARD)
    tasks = order.collection("tasks")
    states = {task: wait_for_state(tasks.document(task))["state"] for task in ORDER}
    assert states["charge"] == "failed"
    page = signed_in(browser, people["admin"], url=f"#/workflow/orders/{uid}?collection=tasks")
    only(page, "#workflow")
    nodes = page.locator("#workflow-graph .node")
    expect(nodes).to_have_count(4)
    expect(page.locator("#workflow-graph .edge")).to_have_count(4)
    for task, state in states.items():
        node = page.locator(f"#workflow-graph .node[data-path='{tasks.document(task).path}']")
        expect(node).to_have_attribute("data-state", state)
        expect(node).to_have_class(f"node {state}")
        expect(node.locator(".label")).to_have_text(state)
    edges = page.locator("#workflow-graph .edge").evaluate_all(
        "edges => edges.map(edge => [edge.dataset.from, edge.dataset.to])")
    assert {tuple(edge) for edge in edges} == EDGES
    shots(page, "workflow-graph")

    order.update({"card": TEST_CARD})  # fixed, and retried by another agent: the graph follows
    operations.retry(tasks.document("charge"))
    for task in ORDER:
        node = page.locator(f"#workflow-graph .node[data-path='{tasks.document(task).path}']")
        expect(node).to_have_attribute("data-state", "completed", timeout=TIMEOUT)

    page.locator(f"#workflow-graph .node[data-path='{tasks.document('ship').path}']").click()
    only(page, "#detail")
    expect(page.locator("#detail-path")).to_contain_text("ship")


def test_a_task_s_page_shows_its_attempts_as_a_timeline(browser, db, uid, people):
    task = db.document(f"orders/{uid}/tasks/flaky")
    task.set(task_fields("probe", "flaky", {"failTimes": 2}))  # fails twice, then completes
    fields = wait_for_state(task)
    assert fields["state"] == "completed"
    page = signed_in(browser, people["admin"], url=f"#/task/{task.path}")
    only(page, "#detail")
    attempts = page.locator("#timeline li.attempt")
    expect(attempts).to_have_count(3)
    assert attempts.evaluate_all("items => items.map(i => i.dataset.outcome)") == [
        "retrying", "retrying", "completed"]
    expect(attempts.first).to_contain_text("RuntimeError: flaky failure on attempt 1")
    expect(attempts.first).to_contain_text("ran ")
    waits = page.locator("#timeline li.wait")
    expect(waits).to_have_count(2)
    expect(waits.first).to_contain_text("waited ")
    expect(waits.first).to_contain_text("before attempt 2")


def test_a_search_by_an_order_id_finds_the_order_s_tasks(browser, db, uid, people):
    """The tasks view's search box (a searchable data field and a value) lists every task whose
    data names the order, under the order or elsewhere, and the address keeps the search."""
    order = create_order(db, uid, email="search@example.com", items=["tea"])
    elsewhere = db.document(f"invoices/{uid}/tasks/t")  # another parent's task naming the order
    elsewhere.set(task_fields("probe", "permanent", {"orderId": uid}))
    found = sorted([*(order.collection("tasks").document(task).path for task in ORDER),
                    elsewhere.path])
    for path in found:
        wait_for_state(db.document(path))
    page = signed_in(browser, people["admin"])
    page.click("#nav a[data-view=tasks]")
    only(page, "#list")
    page.select_option("#filters select[name=dataField]", "orderId")
    page.fill("#filters input[name=dataValue]", uid)
    page.click("#filters button[type=submit]")
    rows = page.locator("#tasks tbody tr")
    expect(rows).to_have_count(len(found))
    assert sorted(rows.evaluate_all("rows => rows.map(row => row.dataset.path)")) == found
    assert f"data.orderId={uid}" in page.url.split("#/tasks?", 1)[1].split("&")

    visit(page, "")  # the search's own address, opened afresh: the same tasks, the form filled
    only(page, "#overview", "#audit")
    visit(page, f"tasks?data.orderId={uid}")
    only(page, "#list")
    expect(rows).to_have_count(len(found))
    expect(page.locator("#filters select[name=dataField]")).to_have_value("orderId")
    expect(page.locator("#filters input[name=dataValue]")).to_have_value(uid)

    visit(page, "tasks?data.colour=red")  # no handler declares it: the API's 400, naming it
    only(page, "#view-error")
    expect(page.locator("#view-error-text")).to_contain_text(
        "data.colour is not searchable: search by data.orderId")
