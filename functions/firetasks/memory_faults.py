"""Faults the test kit can inject into its store's commits: a transient error before the commit
applied (a retry writes it), a transient error after it applied (the write landed, the client
was told it failed: an ambiguous write), and a crash of the worker before or after it applied
(os._exit in a deployment; `Crash` here, which no handler or library code catches)."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum

from google.api_core import exceptions


class Crash(BaseException):
    """The worker died here: nothing after this point of the attempt ran."""


class Fault(StrEnum):
    BEFORE = "transient before"  # DEADLINE_EXCEEDED, nothing written: the retry writes it
    AFTER = "transient after"  # UNAVAILABLE once the commit applied: the retry finds it done
    CRASH_BEFORE = "crash before"  # the worker dies before the commit reached Firestore
    CRASH_AFTER = "crash after"  # the worker dies once the commit applied, before its return


class FaultPlan:
    """Which of the store's commits fail, and how: `arm(fault, later)` makes the commit `later`
    commits from now fail with `fault`. `injected` counts what fired, by kind."""

    def __init__(self) -> None:
        self.commits = 0  # commits seen so far
        self.armed: dict[int, Fault] = {}
        self.injected: Counter[Fault] = Counter()

    def arm(self, fault: Fault, later: int = 0) -> None:
        self.armed[self.commits + later] = fault

    def before(self) -> Fault | None:
        """Called as a commit starts: raises its fault if it fails before applying; the fault
        to raise once it applied, if any."""
        fault = self.armed.pop(self.commits, None)
        self.commits += 1
        if fault is not None:
            self.injected[fault] += 1
        if fault == Fault.BEFORE:
            raise exceptions.DeadlineExceeded(  # type: ignore[no-untyped-call]
                "injected: the commit timed out before it applied")
        if fault == Fault.CRASH_BEFORE:
            raise Crash("injected: the worker died before its commit")
        return fault

    @staticmethod
    def after(fault: Fault | None) -> None:
        """Called once a commit applied, with what `before` returned."""
        if fault == Fault.AFTER:
            raise exceptions.ServiceUnavailable(  # type: ignore[no-untyped-call]
                "injected: the commit applied, and the answer was lost")
        if fault == Fault.CRASH_AFTER:
            raise Crash("injected: the worker died once its commit applied")
