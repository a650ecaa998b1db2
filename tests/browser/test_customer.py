"""The customer's live view of an order (/orders/<orderId> under the dashboard function) in
headless Chromium against the emulator suite: the Firebase JS SDK signs in with the Auth emulator
and follows the order's tasks with snapshot listeners under the real security rules. Set
FIRETASKS_SCREENSHOTS=docs/screenshots to refresh the README's screenshot."""

from __future__ import annotations

import dataclasses

from google.cloud import firestore
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from firetasks import NewTask, add_tasks
from shop.orders import TEST_CARD, create_order, order_workflow
from tests.conftest import Person
from tests.support import dashboard_url

PHONE = {"width": 390, "height": 844}  # a customer's phone
NO_ACCESS = "You have no access to this order"
LIVE = 60_000  # ms: the whole workflow, from the page's first snapshot to the last step

# Records every state and line each task shows, in order, as the page changes them (the page
# re-renders the list on each snapshot): the test sees what a customer watching it saw.
RECORD_STATES = """() => {
  window.seen = {};
  window.loadedOnce = performance.timeOrigin;
  new MutationObserver(() => {
    for (const item of document.querySelectorAll("li[data-task]")) {
      const seen = (window.seen[item.dataset.task] ??= []);
      const shown = `${item.dataset.state}: ${item.querySelector(".detail").textContent}`;
      if (seen[seen.length - 1] !== shown) seen.push(shown);
    }
  }).observe(document, { subtree: true, childList: true });
}"""


def order_page(browser: Browser, order_id: str, person: Person) -> tuple[Page, list[str]]:
    """The order's page, signed in as `person`; and the console's errors, as they come."""
    page = browser.new_page(viewport=PHONE)
    errors: list[str] = []
    page.on("console", lambda message: _errors(message, errors))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(f"({RECORD_STATES})()")
    page.goto(f"{dashboard_url()}orders/{order_id}")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#order-id")).to_have_text(order_id)
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", person.password)
    page.click("#sign-in-form button[type=submit]")
    return page, errors


def _errors(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type == "error":
        errors.append(message.text)


def with_export(order_id: str) -> list[NewTask]:
    """The shop's order workflow with a long step that reports its progress (the shop's
    `reports.export`, 4 parts of 1.5 s: progress is written at 0 s, 3 s and the end) between the
    charge and the shipping."""
    export = NewTask("reports", "export", {"orderId": order_id, "parts": 4, "seconds": 1.5},
                     key="export", after=["charge"])
    workflow = [task if task.key != "ship" else
                dataclasses.replace(task, after=[*task.after, "export"])
                for task in order_workflow(order_id)]
    return [*workflow, export]


def test_a_customer_watches_their_order_complete_live(browser, db, uid, people, shots):
    owner = people["owner"]
    order = db.document(f"orders/{uid}")
    order.set({"email": "owner@example.com", "items": ["tea"], "uid": owner.uid,
               "card": TEST_CARD, "status": "created", "createdAt": firestore.SERVER_TIMESTAMP})
    page, errors = order_page(browser, uid, owner)
    expect(page.locator("#order")).to_be_visible()
    expect(page.locator("#empty")).to_be_visible()  # listening, before the order has any task
    loaded = page.evaluate("window.loadedOnce")

    add_tasks(order, with_export(uid))
    items = page.locator("li[data-task]")
    # In workflow order: the charge, what runs after it, then the shipping after all of them.
    expect(items).to_have_count(5)
    ids = [items.nth(i).get_attribute("data-task") for i in range(5)]
    assert ids == ["charge", "export", "initiateProcessing", "sendConfirmationEmail", "ship"]
    export = page.locator("li[data-task=export]")
    expect(export).to_have_attribute("data-state", "running", timeout=LIVE)
    expect(page.locator("li[data-task=ship] .detail")).to_have_text("waiting for Export")
    expect(export.locator(".detail")).to_have_text("exporting part 3 of 4", timeout=LIVE)
    expect(export.locator(".percent")).to_have_text("50%")
    shots(page, "customer")

    for i in range(5):
        expect(items.nth(i)).to_have_attribute("data-state", "completed", timeout=LIVE)
    expect(page.locator("#summary")).to_have_text("5 of 5 steps done")
    seen = page.evaluate("window.seen")
    assert page.evaluate("window.loadedOnce") == loaded  # one page load: no reload
    # Each step was seen changing on the page, up to `completed`.
    assert seen["ship"][0].startswith("waiting: waiting for "), seen["ship"]
    assert seen["ship"][-1] == "completed: done", seen["ship"]
    assert any(line.startswith("running: exporting part") for line in seen["export"]), seen
    assert all(lines[-1] == "completed: done" for lines in seen.values()), seen
    assert all(seen[id][0].startswith("waiting: ") for id in ids if id != "charge"), seen
    assert not [error for error in errors if "Content Security Policy" in error], errors


def test_a_stranger_sees_nothing_of_someone_elses_order(browser, db, uid, people):
    owner, stranger = people["owner"], people["stranger"]
    create_order(db, uid, email="owner@example.com", items=["secret tea"], uid=owner.uid)
    page, _ = order_page(browser, uid, stranger)
    expect(page.locator("#message")).to_contain_text(NO_ACCESS)  # the rules denied the listener
    expect(page.locator("#order")).to_be_hidden()
    expect(page.locator("li[data-task]")).to_have_count(0)
    assert page.evaluate("window.seen") == {}  # no task was ever on the page
    body = page.locator("body").inner_text()
    assert "Charge" not in body
    assert "secret tea" not in body
    expect(page.locator("#sign-out")).to_be_visible()


def test_an_order_that_does_not_exist_is_no_access_either(browser, uid, people):
    page, _ = order_page(browser, f"{uid}-missing", people["owner"])
    expect(page.locator("#message")).to_contain_text(NO_ACCESS)
    expect(page.locator("li[data-task]")).to_have_count(0)
