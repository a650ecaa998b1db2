"""Every move of firetasks.transitions from every state: allowed where the state machine says,
refused (IllegalTransition) everywhere else; and no other module writes a task's `state`."""

from __future__ import annotations

import ast
import datetime
from collections.abc import Callable
from typing import Any

import pytest
from google.cloud import firestore

from firetasks import transitions
from firetasks.errors import IllegalTransition
from firetasks.record import TaskRecord
from firetasks.retention import DEFAULT_RETENTION, RetentionPolicy
from firetasks.retry import RetryPolicy
from firetasks.task import State
from firetasks.testing import START, FakeClock, MemoryStore
from firetasks.transitions import Ending
from tests.support import ROOT

NOW = START
RETRY = RetryPolicy(max_attempts=3, min_delay=1, jitter=0)
REF = MemoryStore(FakeClock()).client.document("orders/o-1/tasks/t")


def record(state: str, **fields: Any) -> TaskRecord:
    return TaskRecord(REF, {"type": "order", "action": "send", "state": state, "data": {},
                            "attempts": 1, **fields}, version=None)


def failed_attempt(**options: Any) -> Ending:
    return Ending(1, NOW, NOW, error={"type": "Boom", "message": "no"}, **options)


LATER = NOW + datetime.timedelta(hours=6)
SLEPT = Ending(2, NOW, NOW,
               suspension={"suspended": {"step": "nap", "kind": "sleep", "until": LATER}})


# Each move, and the states it may start from (the rest must refuse it).
MOVES: dict[str, tuple[Callable[[TaskRecord], dict[str, Any]], set[str]]] = {
    "claim": (lambda r: transitions.claim(r, NOW, datetime.timedelta(minutes=1)),
              {"scheduled", "retrying"}),
    "complete": (lambda r: transitions.end_attempt(r, Ending(1, NOW, NOW, result=1), RETRY,
                                                   DEFAULT_RETENTION, used=1),
                 {"running", "scheduled", "retrying"}),
    "fail or retry": (lambda r: transitions.end_attempt(r, failed_attempt(), RETRY,
                                                        DEFAULT_RETENTION, used=1),
                      {"running", "scheduled", "retrying"}),
    "atomic commit": (lambda r: transitions.atomic_commit(r, Ending(1, NOW, NOW, result=1), RETRY,
                                                          DEFAULT_RETENTION),
                      {"scheduled", "retrying"}),
    "expire": (lambda r: transitions.expire(r, NOW, RETRY, DEFAULT_RETENTION), {"running"}),
    "cancel at start": (lambda r: transitions.cancel_at_start(r, NOW, DEFAULT_RETENTION),
                        {"scheduled", "retrying"}),
    "release": (lambda r: transitions.release(r, NOW), {"waiting"}),
    "end by dependency": (lambda r: transitions.end_by_dependency(
        r, "fail", {"type": "DependencyFailed"}, NOW, DEFAULT_RETENTION), {"waiting"}),
    "reopen": (transitions.reopen, {"failed", "cancelled"}),
    "operator retry": (transitions.operator_retry, {"completed", "failed", "cancelled"}),
    "operator retry, dependencies not done": (
        lambda r: transitions.operator_retry(r, dependencies_done=False),
        {"completed", "failed", "cancelled"}),
    "operator cancel": (lambda r: transitions.operator_cancel(r, NOW, DEFAULT_RETENTION),
                        {"waiting", "scheduled", "retrying", "running"}),
    "hold for a pause": (lambda r: transitions.hold_for_pause(r, "order.send"),
                         {"scheduled", "retrying"}),
    "resume a held task": (lambda r: transitions.resume_held(
        record(str(r.state), pausedFor="order.send")), {"scheduled", "retrying"}),
    "suspend (a sleep)": (lambda r: transitions.suspend(r, SLEPT, DEFAULT_RETENTION),
                          {"running"}),
    "resume a wait": (lambda r: transitions.resume(
        record(r.fields["state"], suspended=SLEPT.suspension["suspended"]), {"steps": {}}),
        {"scheduled"}),
    "suspend, cancel requested": (
        lambda r: transitions.suspend(record(r.fields["state"], cancelRequested=True), SLEPT,
                                      DEFAULT_RETENTION), {"running"}),
}
CASES = [(move, state) for move in MOVES for state in [s.value for s in State]]


@pytest.mark.parametrize(("move", "state"), CASES)
def test_every_move_from_every_state(move: str, state: str) -> None:
    build, allowed = MOVES[move]
    if state not in allowed:
        with pytest.raises(IllegalTransition):
            build(record(state))
        return
    fields = build(record(state, expireAt=NOW))  # an expiry a move to an unfinished state drops
    new = fields.get("state", state)
    if new != state:
        transitions.check(state, State(new))  # the move's target is one the machine allows
    expiry = fields.get("expireAt", "absent")
    if "state" not in fields:  # a request noted on the task: its state, and expiry, stay
        assert expiry == "absent"
    elif new in ("completed", "failed", "cancelled"):  # retention: a finished task expires
        assert isinstance(expiry, datetime.datetime)
    else:  # any other never does
        assert expiry is firestore.DELETE_FIELD


def test_an_ended_attempt_expires_by_its_handler_s_retention_and_appends_its_history() -> None:
    kept = RetentionPolicy(completed=datetime.timedelta(days=1))
    history = [{"attempt": n} for n in range(1, 31)]
    fields = transitions.end_attempt(record("running", history=history),
                                     Ending(31, NOW, NOW, result="ok"), RETRY, kept, used=1)
    assert fields["expireAt"] == NOW + datetime.timedelta(days=1)
    assert len(fields["history"]) == transitions.HISTORY_LIMIT
    assert [entry["attempt"] for entry in fields["history"]][-2:] == [30, 31]
    assert fields["history"][-1]["outcome"] == "completed"


def test_a_failed_attempt_retries_within_the_budget_then_fails() -> None:
    running = record("running")
    retrying = transitions.end_attempt(running, failed_attempt(), RETRY, DEFAULT_RETENTION,
                                       used=1)
    assert retrying["state"] == "retrying"
    assert retrying["runAt"] == NOW + datetime.timedelta(seconds=1)
    assert retrying["expireAt"] is firestore.DELETE_FIELD
    assert transitions.end_attempt(running, failed_attempt(), RETRY, DEFAULT_RETENTION,
                                   used=3)["state"] == "failed"
    own_budget = record("running", maxAttempts=5)
    assert transitions.end_attempt(own_budget, failed_attempt(), RETRY, DEFAULT_RETENTION,
                                   used=3)["state"] == "retrying"
    assert transitions.end_attempt(running, failed_attempt(permanent=True), RETRY,
                                   DEFAULT_RETENTION, used=1)["state"] == "failed"
    assert transitions.end_attempt(running, failed_attempt(delay=-5), RETRY, DEFAULT_RETENTION,
                                   used=1)["runAt"] == NOW


def test_a_cancel_request_ends_a_failed_attempt_cancelled_and_its_history_says_so() -> None:
    requested = record("running", cancelRequested=True)
    fields = transitions.end_attempt(requested, failed_attempt(), RETRY, DEFAULT_RETENTION,
                                     used=1)
    assert fields["state"] == "cancelled"
    assert "runAt" not in fields
    assert fields["cancelRequested"] is firestore.DELETE_FIELD
    assert fields["history"][-1]["outcome"] == "cancelled"
    completed = transitions.end_attempt(requested, Ending(1, NOW, NOW, result=1), RETRY,
                                        DEFAULT_RETENTION, used=1)
    assert completed["state"] == "completed"  # an attempt that completed stays completed


def test_a_sleep_is_not_an_attempt_and_keeps_the_attempt_budget() -> None:
    fields = transitions.suspend(record("running", attempts=2, retryBase=1), SLEPT,
                                 DEFAULT_RETENTION)
    assert (fields["state"], fields["attempts"], fields["runAt"]) == ("scheduled", 1, LATER)
    assert fields["suspended"]["step"] == "nap"
    suspended = record("scheduled", attempts=1, retryBase=1, suspended=fields["suspended"])
    claim = transitions.claim(suspended, LATER, datetime.timedelta(minutes=1))
    assert (claim["attempts"], claim["retryBase"]) == (2, 1)
    assert claim["suspended"] is firestore.DELETE_FIELD


def test_a_release_keeps_a_later_run_at_of_the_task_s_own() -> None:
    later = NOW + datetime.timedelta(hours=1)
    assert "runAt" not in transitions.release(record("waiting", runAt=later), NOW)
    assert transitions.release(record("waiting"), NOW)["runAt"] is firestore.SERVER_TIMESTAMP


def test_an_operator_s_retry_of_a_task_whose_dependencies_are_not_done_waits_for_them() -> None:
    ended = record("failed", after=["a"], error={"type": "DependencyFailed", "dependency": "a"})
    fields = transitions.operator_retry(ended, dependencies_done=False)
    assert fields["state"] == "waiting"
    assert fields["error"] is firestore.DELETE_FIELD  # the error went with the outcome
    failed_itself = record("failed", after=["a"], error={"type": "Boom"})
    fields = transitions.operator_retry(failed_itself, max_attempts=2)
    assert (fields["state"], fields["maxAttempts"]) == ("scheduled", 2)
    assert "error" not in fields  # shown until the next attempt starts, as before


STATE_NAMES = {state.value for state in State}


def state_writes(source: str) -> list[int]:
    """Lines where a dict literal sets `state` to a state (a State member or its string)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if not (isinstance(key, ast.Constant) and key.value == "state"):
                continue
            named = ast.unparse(value)
            if named.startswith("State.") or (isinstance(value, ast.Constant)
                                              and value.value in STATE_NAMES):
                found.append(node.lineno)
    return found


def test_nothing_outside_transitions_writes_a_task_s_state() -> None:
    package = ROOT / "functions" / "firetasks"
    writes = {path.name: state_writes(path.read_text()) for path in package.glob("*.py")
              if path.name != "transitions.py"}
    assert {name: lines for name, lines in writes.items() if lines} == {}
    assert state_writes((package / "transitions.py").read_text())  # the check sees writes


def test_the_check_finds_a_state_written_by_hand() -> None:
    assert state_writes('fields = {"state": State.FAILED.value, "error": e}') == [1]
    assert state_writes('view = {"state": record.state}') == []  # a view, not a write


def test_a_claim_and_an_atomic_attempt_delete_only_fields_the_task_has() -> None:
    """Their writes are conditional on the version read: a delete of an absent field would change
    nothing, and costs the client library's encoding."""
    due = record("scheduled", progress={"done": 1})
    claimed = transitions.claim(due, NOW, datetime.timedelta(minutes=5))
    atomic = transitions.atomic_commit(due, Ending(2, NOW, NOW, result="ok"), RETRY,
                                       DEFAULT_RETENTION)
    for fields in (claimed, atomic):
        deleted = {name for name, value in fields.items() if value is firestore.DELETE_FIELD}
        assert deleted == {"progress"}
    assert claimed["leaseId"]
    assert "leaseId" not in atomic
    assert atomic["state"] == "completed"
