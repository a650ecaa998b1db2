"""Progress of a long attempt: `task.progress(0.4, "charged card")`.

A report is written to the task's `progress` field (`{fraction, message, at}`) at most once per
MIN_INTERVAL per task; the latest report is written with the attempt's outcome in any case (the
final one). Each write is conditional on the version this attempt holds (its claim's, then its own
last progress write's), so a report never lands on a task that moved on, and the outcome's write
stays conditional on this attempt's own version. A progress write fires the trigger once more: an
echo that finds the task `running` and returns at once (one invocation, no read).

An atomic handler's attempt holds no claim, and a write would change the version its commit is
conditional on: its progress is only written with its outcome.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from google.cloud.firestore import DocumentReference

from firetasks.clock import Clock
from firetasks.store import TaskStore

MIN_INTERVAL = datetime.timedelta(seconds=2)
MAX_MESSAGE = 200  # characters kept of a progress message


class Progress:
    """The progress reports of one attempt, and the task version the attempt holds."""

    def __init__(
        self, ref: DocumentReference, version: Any, store: TaskStore, clock: Clock, *,
        writes: bool = True,
    ) -> None:
        self.ref = ref
        self.version = version
        self.store = store
        self.clock = clock
        self.writes = writes
        self.latest: dict[str, Any] | None = None
        self._written_at: datetime.datetime | None = None

    def report(self, fraction: float, message: str = "") -> None:
        if not isinstance(fraction, int | float) or math.isnan(fraction) or not 0 <= fraction <= 1:
            raise ValueError(f"progress is a fraction from 0 to 1, got {fraction!r}")
        now = self.clock()
        self.latest = {"fraction": float(fraction), "message": str(message)[:MAX_MESSAGE],
                       "at": now}
        if not self.writes or (self._written_at is not None
                               and now - self._written_at < MIN_INTERVAL):
            return
        version = self.store.write_if_unchanged(self.ref, self.version, {"progress": self.latest})
        if version is not None:
            self.version, self._written_at = version, now

    def final(self) -> dict[str, Any]:
        """The fields the outcome's write carries: the latest report, if any."""
        return {} if self.latest is None else {"progress": self.latest}
