"""Progress of a long task, watched live through a snapshot listener as the dashboard and the
customer view do, through the real trigger: throttled reports while running, the last one final."""

from __future__ import annotations

import itertools

from firetasks import NewTask, add_tasks
from tests.support import wait_for_state, wait_until


def test_a_long_export_reports_its_progress_live_at_most_every_2_s(db, uid):
    seen: list[tuple[str, float, object]] = []  # state, fraction, update time

    def on_change(docs, changes, read_time) -> None:
        for doc in docs:
            fields = doc.to_dict() or {}
            progress = fields.get("progress") or {}
            seen.append((fields.get("state"), progress.get("fraction"), doc.update_time))

    [task] = add_tasks(db.document(f"reports/{uid}"),
                       [NewTask("reports", "export", {"parts": 5, "seconds": 1})])
    watch = task.on_snapshot(on_change)
    try:
        done = wait_for_state(task, timeout=60)
        wait_until(lambda: any(state == "completed" for state, _, _ in seen),
                   what="the listener to see the completion")
    finally:
        watch.unsubscribe()
    assert (done["state"], done["progress"]["fraction"]) == ("completed", 1.0)
    assert done["progress"]["message"] == "exported 5 parts"
    running = sorted({(fraction, at.timestamp()) for state, fraction, at in seen
                      if state == "running" and fraction is not None}, key=lambda seen: seen[1])
    fractions = [fraction for fraction, _ in running]
    assert len(fractions) >= 2, seen  # 0.0, 0.4, 0.8: one every 2 s of a 5 s run
    assert fractions == sorted(fractions)
    assert all(0 <= fraction < 1 for fraction in fractions)
    times = [at for _, at in running]
    assert all(later - earlier >= 1.9 for earlier, later in itertools.pairwise(times))
