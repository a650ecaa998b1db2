"""The dashboard in headless Chromium (Debian's, driven by Playwright) against the emulator suite:
what a support agent sees and does. Set FIRETASKS_SCREENSHOTS=docs/screenshots to refresh the
README's screenshots."""

from __future__ import annotations

import json
import re
import time
from types import SimpleNamespace

import pytest
from firebase_admin import auth
from google.cloud import firestore
from playwright.sync_api import Browser, Page, expect

from firetasks import NewTask, add_tasks, operations
from firetasks import db as firetasks_db
from shop.orders import create_order
from tests.support import dashboard_url, task_fields, wait_for_state, wait_until

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def signed_in(browser: Browser, person, viewport=DESKTOP, url: str = "") -> Page:
    page = browser.new_page(viewport=viewport)
    page.goto(dashboard_url() + url)
    sign_in_on(page, person)
    return page


def sign_in_on(page: Page, person) -> None:
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", person.password)
    page.click("#sign-in-form button[type=submit]")


def failed_email_task(db, order_id: str, email: str):
    order = create_order(db, order_id, email=email, items=["tea"])
    [task] = order.collection("tasks").where(
        filter=firestore.FieldFilter("action", "==", "sendConfirmationEmail")).get()
    wait_for_state(task.reference)
    return order, task.reference


def show_order(page: Page, order_id: str) -> None:
    """The Tasks view, filtered to one parent through the form."""
    page.click("#nav a[data-view=tasks]")
    expect(page.locator("#list")).to_be_visible()
    page.fill("#filters input[name=parent]", order_id)
    page.click("#filters button[type=submit]")


def test_an_admin_sees_why_a_task_failed_retries_it_and_sees_it_complete(
        browser, db, uid, people, shots):
    order, task = failed_email_task(db, uid, "not-an-email")
    page = browser.new_page(viewport=DESKTOP)
    page.goto(dashboard_url())
    expect(page.locator("#sign-in")).to_be_visible()
    shots(page, "sign-in")
    page.close()

    page = signed_in(browser, people["admin"])
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#states .failed strong")).not_to_have_text("0")
    show_order(page, uid)
    row = page.locator(f"tr[data-path='{task.path}']")
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text("no valid email address: 'not-an-email'")
    shots(page, "overview")

    row.click()
    expect(page.locator("#detail-fields")).to_contain_text("OrderError")
    traceback = page.locator("#detail-traceback")  # where it failed, collapsed
    expect(traceback).to_be_visible()
    expect(traceback.locator("pre")).to_be_hidden()
    traceback.locator("summary").click()
    expect(traceback.locator("pre")).to_contain_text("Traceback (most recent call last):")
    expect(traceback.locator("pre")).to_contain_text("shop/handlers.py")
    expect(page.locator("#history details.traceback")).to_have_count(1)
    expect(page.locator("#retry")).to_be_visible()
    expect(page.locator("#detail-hint")).to_be_hidden()  # it has a handler
    shots(page, "task")

    order.update({"email": "fixed@example.com"})  # customer care fixed the order elsewhere
    page.click("#retry")
    expect(page.locator(".actions #action-message")).to_contain_text("failed → scheduled")
    wait_for_state(task, ("completed",))
    # The open detail follows the task by itself: no click, no reload.
    expect(page.locator("#detail-fields")).to_contain_text("completed")
    expect(page.locator("#history tbody tr")).to_have_count(2)
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#retry")).to_be_visible()
    expect(row).to_contain_text("completed")
    expect(page.locator("#audit-log")).to_contain_text(people["admin"].email)

    phone = signed_in(browser, people["admin"], viewport=PHONE)
    expect(phone.locator("#app")).to_be_visible()
    show_order(phone, uid)
    expect(phone.locator(f"tr[data-path='{task.path}']")).to_contain_text("completed")
    shots(phone, "phone")


def test_a_user_without_the_admin_claim_is_refused(browser, people):
    page = signed_in(browser, people["agent"])
    expect(page.locator("#message")).to_contain_text("lacks the 'admin' claim")
    expect(page.locator("#app")).to_be_hidden()
    expect(page.locator("#sign-in")).to_be_visible()


def test_task_data_never_runs_as_code(browser, db, uid, people):
    probe = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    _, task = failed_email_task(db, uid, probe)
    task.update({"data": {"note": probe}})
    page = signed_in(browser, people["admin"])
    show_order(page, uid)
    row = page.locator(f"tr[data-path='{task.path}']")
    expect(row).to_contain_text("onerror=")  # shown as text
    row.click()
    expect(page.locator("#detail-data")).to_contain_text("<script>window.__xss=2</script>")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#tasks img, #detail img, #tasks script, #detail script").count() == 0


def operator(uid: str):
    """A new admin of the Auth emulator (revoking it leaves the shared `people` alone)."""
    email, password = f"op-{uid}@example.com", f"pw-{uid}"
    user = auth.create_user(email=email, password=password, app=firetasks_db.app())
    auth.set_custom_user_claims(user.uid, {"admin": True}, app=firetasks_db.app())
    return user, SimpleNamespace(email=email, password=password)


def test_an_expired_session_is_renewed_without_signing_in_again(browser, uid):
    _, person = operator(uid)
    page = signed_in(browser, person)
    expect(page.locator("#app")).to_be_visible()
    # The one mock here: firebase-admin does not check an emulator token's expiry, so the API's
    # answer to an expired token is played once; the refresh and the retried call are real.
    calls = []

    def expire_once(route):
        calls.append(route.request.headers.get("authorization"))
        if len(calls) > 1:
            route.continue_()
            return
        route.fulfill(status=401, content_type="application/json",
                      body=json.dumps({"error": "your session expired: sign in again",
                                       "reason": "expired"}))

    page.route("**/api/stats", expire_once)
    with page.expect_request("**/securetoken.googleapis.com/v1/token**"):
        page.reload()
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#message")).not_to_contain_text("expired")
    assert len(calls) >= 2  # the call was made again, with the refreshed token, and answered
    token = page.evaluate("sessionStorage.getItem('firetasks.token')")
    assert calls[1] == f"Bearer {token}"


def test_a_revoked_operator_is_asked_to_sign_in_again_and_told_why(browser, uid):
    user, person = operator(uid)
    page = signed_in(browser, person)
    expect(page.locator("#app")).to_be_visible()
    token = page.evaluate("sessionStorage.getItem('firetasks.token')")
    issued = auth.verify_id_token(token, app=firetasks_db.app())["iat"]
    wait_until(lambda: time.time() >= issued + 1, what="the next second")  # revocation: seconds
    auth.revoke_refresh_tokens(user.uid, app=firetasks_db.app())
    page.reload()
    expect(page.locator("#message")).to_contain_text("your session was ended")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()


def test_an_action_on_a_task_that_moved_on_says_so_next_to_its_button(browser, db, uid, people):
    order, task = failed_email_task(db, uid, "not-an-email")
    page = signed_in(browser, people["admin"])
    show_order(page, uid)
    page.locator(f"tr[data-path='{task.path}']").click()
    expect(page.locator("#retry")).to_be_visible()
    order.update({"email": "fixed@example.com"})
    operations.retry(task)  # another agent, meanwhile
    wait_for_state(task, ("completed",))
    page.click("#retry")
    message = page.locator(".actions #action-message")
    expect(message).to_contain_text("retry failed")
    expect(message).to_contain_text(re.compile("changed since it was shown|completed now"))
    expect(page.locator("#detail-fields")).to_contain_text("completed")  # shown as it is now
    expect(page.locator("#message")).to_be_hidden()


def test_a_task_without_a_handler_says_so_and_can_be_cancelled(browser, db, uid, people):
    task = db.document(f"orders/{uid}/tasks/orphan")
    task.set(task_fields("nobody", "handlesThis", createdAt=firestore.SERVER_TIMESTAMP))
    page = signed_in(browser, people["admin"])
    show_order(page, uid)
    row = page.locator(f"tr[data-path='{task.path}']")
    expect(row).to_contain_text("no handler in this deployment")
    row.click()
    expect(page.locator("#detail-hint")).to_contain_text(
        "no handler in this deployment: nobody.handlesThis")
    page.click("#cancel")
    expect(page.locator(".actions #action-message")).to_contain_text(
        "cancel: scheduled → cancelled")
    expect(page.locator("#detail-fields")).to_contain_text("cancelled")
    expect(page.locator("#cancel")).to_be_hidden()
    assert task.get().get("state") == "cancelled"


def test_a_task_waiting_for_its_handler_s_limit_says_throttled_and_how_many_are_ahead(
        browser, db, uid, people):
    parent = db.document(f"orders/{uid}")  # probe.limitedCrash: one at a time
    [first] = add_tasks(parent, [NewTask("probe", "limitedCrash", {"seconds": 6})])
    wait_for_state(first, ("running",))
    waiting = [add_tasks(parent, [NewTask("probe", "limitedCrash")])[0] for _ in range(2)]
    for task in waiting:
        wait_until(lambda task=task: "limitKey" in (task.get().to_dict() or {}),
                   what="the task to wait in its handler's queue")
    page = signed_in(browser, people["admin"])
    show_order(page, uid)
    for task in waiting:
        expect(page.locator(f"tr[data-path='{task.path}'] .throttled")).to_have_text("throttled")
    page.locator(f"tr[data-path='{waiting[1].path}']").click()
    expect(page.locator("#detail-throttled")).to_contain_text(
        "Throttled, 1 ahead: it waits for its handler's limits")
    for task in waiting:  # handed over in turn, and the page follows
        wait_for_state(task, ("completed",))
    expect(page.locator("#detail-throttled")).to_be_hidden()
    expect(page.locator("#detail-fields")).to_contain_text("completed")


def test_links_name_the_task_or_the_list_and_open_it_after_sign_in(browser, db, uid, people):
    _, task = failed_email_task(db, uid, "not-an-email")
    page = signed_in(browser, people["admin"])
    show_order(page, uid)
    assert "#/tasks?" in page.url
    assert f"parent={uid}" in page.url
    page.locator(f"tr[data-path='{task.path}']").click()
    expect(page.locator("#detail")).to_be_visible()
    assert page.url.endswith(f"#/task/{task.path}")
    task_link = page.url
    page.click("#detail-parent")
    assert "#/tasks?" in page.url
    assert f"parent=orders%2F{uid}" in page.url
    list_link = page.url

    shared = signed_in(browser, people["admin"], url=task_link.split("/dashboard/")[1])
    expect(shared.locator("#detail-path")).to_have_text(task.path)
    expect(shared.locator("#detail-fields")).to_contain_text("OrderError")
    shared = signed_in(browser, people["admin"], url=list_link.split("/dashboard/")[1])
    expect(shared.locator("#filters input[name=parent]")).to_have_value(f"orders/{uid}")
    expect(shared.locator("#tasks tbody tr")).to_have_count(len(task.parent.get()))
    expect(shared.locator("#detail")).to_be_hidden()


@pytest.mark.parametrize("wrong", ["password", "email"])
def test_a_failed_sign_in_says_why_in_words(browser, people, wrong):
    admin = people["admin"]
    person = SimpleNamespace(
        email=admin.email if wrong == "password" else f"nobody-{admin.email}",
        password="not-the-password" if wrong == "password" else admin.password)
    page = signed_in(browser, person)
    expect(page.locator("#message")).to_have_text("Wrong email or password.")
    expect(page.locator("#sign-in")).to_be_visible()


def test_no_request_of_the_page_fails_and_ids_wrap_only_between_names(browser, db, uid, people):
    _, task = failed_email_task(db, f"{uid}-customer-order-with-a-long-id", "x")
    page = browser.new_page(viewport=PHONE)
    failed: list[str] = []
    page.on("response", lambda response: failed.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    page.on("requestfailed", lambda request: failed.append(f"failed {request.url}"))
    page.goto(dashboard_url())
    sign_in_on(page, people["admin"])
    show_order(page, task.parent.parent.path)
    expect(page.locator("#tasks tbody tr")).to_have_count(len(task.parent.get()))  # its own
    cell = page.locator(f"tr[data-path='{task.path}'] td").first
    expect(cell).to_have_text(task.path)
    breaks = cell.evaluate(LINE_BREAKS)
    assert breaks, "the path should need more than one line at phone width"
    assert set(breaks) <= {"/", "."}, breaks
    assert page.locator("link[rel=icon]").get_attribute("href").startswith("data:image/")
    assert failed == []


LINE_BREAKS = """(cell) => {
  // The character before each line break of the cell's text.
  const chars = [];
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      chars.push([node.data[i], range.getBoundingClientRect().top]);
    }
  }
  return chars.slice(1).flatMap(([, top], i) => (top > chars[i][1] + 2 ? [chars[i][0]] : []));
}"""

COUNT_STATS_CALLS = """() => {
  window.statsCalls = 0;
  const fetched = window.fetch;
  window.fetch = (url, ...rest) => {
    if (String(url).startsWith("api/stats")) window.statsCalls += 1;
    return fetched(url, ...rest);
  };
}"""

SET_VISIBILITY = """(state) => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
  Object.defineProperty(document, "hidden", { configurable: true, get: () => state === "hidden" });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_the_overview_refreshes_slowly_while_the_tab_is_hidden(browser, people):
    page = browser.new_page(viewport=DESKTOP)
    page.clock.install()  # the page's timers run when the test moves this clock
    page.add_init_script(f"({COUNT_STATS_CALLS})()")
    page.goto(dashboard_url())
    sign_in_on(page, people["admin"])
    expect(page.locator("#app")).to_be_visible()
    page.clock.pause_at(page.evaluate("Date.now()") + 100)  # from here, only run_for moves it

    def calls_after(milliseconds: int) -> int:
        before = page.evaluate("window.statsCalls")
        page.clock.run_for(milliseconds)
        return page.evaluate("window.statsCalls") - before

    assert calls_after(5_000) == 1  # visible: every 5 s
    assert calls_after(10_000) == 2
    page.evaluate(SET_VISIBILITY, "hidden")
    assert calls_after(59_000) == 0  # hidden: every 60 s
    assert calls_after(2_000) == 1
    before = page.evaluate("window.statsCalls")
    page.evaluate(SET_VISIBILITY, "visible")
    assert page.evaluate("window.statsCalls") == before + 1  # at once when shown again
    assert calls_after(5_000) == 1
