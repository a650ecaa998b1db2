"""Every exception firetasks raises, or lets handlers raise, under one base class."""

from __future__ import annotations


class FiretasksError(Exception):
    """The base of firetasks' exceptions."""


class InvalidTask(FiretasksError, ValueError):
    """A task document that cannot be run as written; the message lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class IllegalTransition(FiretasksError, ValueError):
    """A move the state machine forbids (the API's 409)."""


class TaskChanged(IllegalTransition):
    """The task is no longer as the operator saw it: another write came first."""


class TaskNotFound(FiretasksError, LookupError):
    """No task at that path."""


class Unreachable(FiretasksError, ConnectionError):
    """Firestore (the emulator named by FIRESTORE_EMULATOR_HOST) does not answer."""


class BadRequest(FiretasksError, ValueError):
    """A filter, path or cursor that cannot be used; the message says which and why."""


class Denied(FiretasksError):
    """A dashboard caller who is not an operator."""

    def __init__(self, status: int, message: str, reason: str = "denied") -> None:
        super().__init__(message)
        self.status = status  # 401: who are you? 403: not allowed
        self.message = message
        self.reason = reason  # for the page: "expired" tokens are refreshed, others sign in again


class PermanentError(FiretasksError):
    """Raised by a handler when trying again cannot help: the task fails at once."""


class RetryAfter(FiretasksError):
    """Raised by a handler to retry after `seconds` (e.g. a provider's rate-limit answer)."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"retry after {seconds:g} s")
        self.seconds = seconds


class StepError(FiretasksError, ValueError):
    """A step, sleep or wait used wrongly: a duplicate or bad name, a result too large."""


class AttemptLost(FiretasksError):
    """A step's result could not be saved: the attempt no longer owns the task (its lease
    expired and another attempt took it over, or it was deleted)."""
