"""The overview's charts in headless Chromium against the emulator suite: a day of finished tasks,
seeded in closed hours, drawn per hour for all handlers and for one. Set
FIRETASKS_SCREENSHOTS=docs/screenshots to refresh the README's docs/screenshots/charts.png."""

from __future__ import annotations

import datetime
import math

from playwright.sync_api import expect

import main
from firetasks.charts import CHARTS_COLLECTION
from tests.browser.test_dashboard import signed_in

SEEDED_HOURS = range(2, 23)  # hours back from this one: closed, inside the charts' day


def seed_day(db, uid: str, action: str) -> dict[str, tuple[int, int, float]]:
    """Finished tasks of `chart.<action>` in each of SEEDED_HOURS, written directly; returns each
    hour's (completed, failed, p50 in ms) by its start."""
    now = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    batch, expected = db.batch(), {}
    for back in SEEDED_HOURS:
        start = now - datetime.timedelta(hours=back)
        completed, failed = back % 5 + 1, int(back % 4 == 0)
        took = [float(back + 4 * n) for n in range(completed + failed)]  # s, created to finished
        for n, seconds in enumerate(took):
            finished = start + datetime.timedelta(minutes=2 * n + 1)
            batch.set(db.document(f"charts/{uid}/tasks/h{back}-{n}"), {
                "type": "chart", "action": action, "data": {},
                "state": "completed" if n < completed else "failed", "attempts": 1,
                "createdAt": finished - datetime.timedelta(seconds=seconds),
                "finishedAt": finished})
        median = took[math.ceil(len(took) / 2) - 1]  # the nearest rank: `took` is sorted
        expected[start.isoformat()] = (completed, failed, median * 1000)
    batch.commit()
    return expected


def test_the_overview_charts_the_last_day_per_hour_and_per_handler(browser, db, uid, people, shots):
    action = f"seeded{uid}"
    expected = seed_day(db, uid, action)
    # Closed hours are summarised once: forget what earlier tests' refreshes summarised.
    db.collection(CHARTS_COLLECTION).document("+".join(main.queue.collections)).delete()
    page = signed_in(browser, people["admin"])
    bars = page.locator("#chart-finished g.hour")
    expect(bars).to_have_count(24)
    for start, (completed, failed, _) in expected.items():  # all handlers: these and others
        bar = page.locator(f"#chart-finished g.hour[data-start='{start}']")
        assert int(bar.get_attribute("data-completed")) >= completed
        assert int(bar.get_attribute("data-failed")) >= failed
    expect(page.locator("#chart-latency polyline").first).to_be_attached()
    shots(page.locator("#charts"), "charts")

    page.select_option("#chart-handler", f"chart.{action}")
    start, (completed, failed, p50) = next(iter(expected.items()))
    bar = page.locator(f"#chart-finished g.hour[data-start='{start}']")
    expect(bar).to_have_attribute("data-completed", str(completed))
    for start, (completed, failed, p50) in expected.items():  # one handler: exactly these
        bar = page.locator(f"#chart-finished g.hour[data-start='{start}']")
        assert (bar.get_attribute("data-completed"), bar.get_attribute("data-failed")) == (
            str(completed), str(failed))
        point = page.locator(f"#chart-latency g.hour[data-start='{start}']")
        assert float(point.get_attribute("data-p50")) == p50
    expect(bar.locator("title")).to_contain_text(f"{completed} completed, {failed} failed")
    unseeded = page.locator("#chart-finished g.hour").last  # the hour in progress: none of these
    expect(unseeded).to_have_attribute("data-completed", "0")
