"""The dashboard in headless Chromium (Debian's, driven by Playwright) against the emulator suite:
what a support agent sees and does. Set FIRETASKS_SCREENSHOTS=docs/screenshots to refresh the
README's screenshots."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from firebase_admin import auth
from google.cloud import firestore
from playwright.sync_api import Browser, Page, expect, sync_playwright

from firetasks import db as firetasks_db
from shop.orders import create_order
from tests.support import dashboard_url, wait_for_state, wait_until

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("FIRETASKS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return lambda page, name: page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def signed_in(browser: Browser, person, viewport=DESKTOP) -> Page:
    page = browser.new_page(viewport=viewport)
    page.goto(dashboard_url())
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", person.password)
    page.click("#sign-in-form button[type=submit]")
    return page


def failed_email_task(db, order_id: str, email: str):
    order = create_order(db, order_id, email=email, items=["tea"])
    [task] = order.collection("tasks").where(
        filter=firestore.FieldFilter("action", "==", "sendConfirmationEmail")).get()
    wait_for_state(task.reference)
    return order, task.reference


def show_order(page: Page, order_id: str) -> None:
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
    expect(page.locator("#retry")).to_be_visible()
    shots(page, "task")

    order.update({"email": "fixed@example.com"})  # customer care fixed the order elsewhere
    page.click("#retry")
    expect(page.locator("#message")).to_contain_text("failed → scheduled")
    wait_for_state(task, ("completed",))
    row.click()
    expect(page.locator("#detail-fields")).to_contain_text("completed")
    expect(page.locator("#history tbody tr")).to_have_count(2)
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
