"""The charts' hourly figures (firetasks.charts.summarise), from task documents in memory."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

from firetasks.charts import summarise

T0 = datetime.datetime(2026, 11, 28, 3, tzinfo=datetime.UTC)


def finished(state: str, seconds: float, name: str = "order.ship") -> SimpleNamespace:
    type_, action = name.split(".")
    fields = {"state": state, "type": type_, "action": action, "createdAt": T0,
              "finishedAt": T0 + datetime.timedelta(seconds=seconds)}
    return SimpleNamespace(to_dict=lambda: fields)


def test_an_hour_counts_completed_and_failed_and_the_nearest_rank_percentiles():
    tasks = [finished("completed", n) for n in range(1, 20)] + [finished("failed", 100)]
    figures = summarise(tasks)
    assert (figures["completed"], figures["failed"]) == (19, 1)
    assert (figures["p50Ms"], figures["p95Ms"]) == (10_000.0, 19_000.0)
    assert figures["sampled"] is False


def test_cancelled_tasks_are_not_counted_and_each_handler_has_its_own_figures():
    figures = summarise([finished("completed", 1), finished("cancelled", 50),
                         finished("failed", 3, "order.charge")], sampled=True)
    assert (figures["completed"], figures["failed"]) == (1, 1)
    assert figures["handlers"]["order.ship"] == {
        "completed": 1, "failed": 0, "p50Ms": 1000.0, "p95Ms": 1000.0, "sampled": True}
    assert figures["handlers"]["order.charge"]["failed"] == 1
    assert summarise([])["p50Ms"] is None
