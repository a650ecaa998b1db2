"""The dashboard's workflow view in headless Chromium against the emulator suite: an order's tasks
in dependency order with what each waits for or is blocked by, a long task's progress bar, and the
note on an atomic task. FIRETASKS_SCREENSHOTS=docs/screenshots refreshes the README's
docs/screenshots/workflow.png."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from firetasks import NewTask, add_tasks
from shop.handlers import DECLINED_CARD
from shop.orders import TEST_CARD, create_order
from tests.browser.test_dashboard import show_order, signed_in
from tests.support import wait_for_state

ORDER = ["charge", "sendConfirmationEmail", "initiateProcessing", "ship"]
TIMEOUT = 30_000


def task_ids(page) -> list[str]:
    return [path.split("/")[-1] for path in
            page.locator("#tasks tbody tr").evaluate_all("rows => rows.map(r => r.dataset.path)")]


def test_an_order_whose_charge_failed_shows_its_graph_and_completes_after_a_retry(
        browser, db, uid, people, shots):
    order = create_order(db, uid, email="graph@example.com", items=["tea"], card=DECLINED_CARD)
    tasks = order.collection("tasks")
    for task in ORDER:
        wait_for_state(tasks.document(task))
    page = signed_in(browser, people["admin"])
    expect(page.locator("#app")).to_be_visible()
    show_order(page, uid)
    rows = page.locator("#tasks tbody tr")
    expect(rows).to_have_count(4)
    assert task_ids(page) == ORDER  # dependency order
    charge = page.locator(f"tr[data-path='{tasks.document('charge').path}']")
    expect(charge.locator(".state")).to_have_text("failed")
    for dependent in ORDER[1:]:
        row = page.locator(f"tr[data-path='{tasks.document(dependent).path}']")
        expect(row.locator(".state")).to_have_text(re.compile("failed|cancelled"))
        expect(row.locator(".blocked")).to_contain_text("blocked by")
    for dependent in ORDER[1:3]:
        row = page.locator(f"tr[data-path='{tasks.document(dependent).path}']")
        expect(row.locator(".blocked")).to_have_text("blocked by charge")
    shots(page, "workflow")

    # A dependent's detail links to what blocked it and shows its dependencies with their states.
    page.locator(f"tr[data-path='{tasks.document('initiateProcessing').path}']").click()
    expect(page.locator("#detail-blocked")).to_have_text("blocked by charge")
    expect(page.locator("#detail-dependencies")).to_contain_text("charge")
    expect(page.locator("#detail-dependencies")).to_contain_text("failed")
    expect(page.locator("#detail-dependents")).to_contain_text("ship")
    page.locator("#detail-blocked a").click()
    expect(page.locator("#detail-path")).to_contain_text("charge")
    expect(page.locator("#detail-dependents li")).to_have_count(2)

    order.update({"card": TEST_CARD})  # the customer gave a card that works
    page.click("#retry")
    expect(page.locator("#action-message")).to_contain_text("failed → scheduled")
    expect(page.locator("#detail-dependents .state")).to_have_text(["completed", "completed"],
                                                                  timeout=TIMEOUT)
    page.click("#detail-parent")  # the order's list, followed live while a task is unfinished
    expect(page.locator("#list")).to_be_visible()
    for task in ORDER:
        row = page.locator(f"tr[data-path='{tasks.document(task).path}']")
        expect(row.locator(".state")).to_have_text("completed", timeout=TIMEOUT)
    assert task_ids(page) == ORDER
    expect(page.locator("#tasks .blocked")).to_have_count(0)


def test_a_waiting_task_says_what_it_waits_for(browser, db, uid, people):
    parent = db.document(f"reports/{uid}")
    _first, second = add_tasks(parent, [
        NewTask("reports", "export", {"parts": 3, "seconds": 1}, key="first"),
        NewTask("reports", "export", {"parts": 1, "seconds": 0}, key="second", after=["first"]),
    ])
    page = signed_in(browser, people["admin"])
    expect(page.locator("#app")).to_be_visible()
    show_order(page, parent.path)
    row = page.locator(f"tr[data-path='{second.path}']")
    expect(row.locator(".waiting-for")).to_have_text("waiting for first (reports.export)")
    expect(row.locator(".state")).to_have_text("completed", timeout=TIMEOUT)
    expect(row.locator(".waiting-for")).to_have_count(0)


def test_a_long_task_shows_its_progress_while_it_runs(browser, db, uid, people):
    [task] = add_tasks(db.document(f"reports/{uid}"),
                       [NewTask("reports", "export", {"parts": 6, "seconds": 1})])
    page = signed_in(browser, people["admin"], url=f"#/task/{task.path}")
    bar = page.locator("#progress-bar")
    expect(bar).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#progress-text")).to_contain_text("exporting part")
    first = bar.evaluate("bar => bar.value")
    page.wait_for_function(
        f"() => Number(document.querySelector('#progress-bar').value) > {first}", timeout=TIMEOUT)
    expect(page.locator("#detail-fields .state")).to_have_text("completed", timeout=TIMEOUT)
    expect(page.locator("#detail-progress")).to_be_hidden()


def test_an_atomic_task_says_it_never_shows_running(browser, db, uid, people):
    order = create_order(db, uid, email="atomic@example.com", items=["tea"])
    email = order.collection("tasks").document("sendConfirmationEmail")
    wait_for_state(email)
    page = signed_in(browser, people["admin"], url=f"#/task/{email.path}")
    expect(page.locator("#detail-mode")).to_contain_text("Atomic handler: it runs without a claim")
    charge = order.collection("tasks").document("charge")
    page.locator("#detail-dependencies a").click()
    expect(page.locator("#detail-path")).to_contain_text(charge.id)
    expect(page.locator("#detail-mode")).to_be_hidden()
