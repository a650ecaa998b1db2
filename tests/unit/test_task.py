import datetime

import pytest

from firetasks.errors import IllegalTransition
from firetasks.task import (
    MAX_TASK_BYTES,
    InvalidTask,
    State,
    document_size,
    problems,
    validate,
)
from firetasks.transitions import check


def good(**changes):
    return {"type": "order", "action": "sendConfirmationEmail", "state": "scheduled",
            "data": {}} | changes


def test_a_complete_scheduled_task_is_valid():
    validate(good(attempts=2, createdAt=None, result={"ok": True}))


@pytest.mark.parametrize("action", ["initiateProcessing", "mutations.initiateOrderProcessing",
                                    "a.b.c", "send-email_v2"])
def test_actions_may_be_names_or_dotted_paths(action):
    assert problems(good(action=action)) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"type": 7}, "'type' must be a name like 'order', got int 7"),
        ({"type": "order.email"}, "'type' must be a name"),
        ({"action": "send email"}, "'action' must be a name or a dotted path"),
        ({"action": "a..b"}, "'action' must be a name or a dotted path"),
        ({"action": None}, "got NoneType None"),
        ({"data": ["orderId"]}, "'data' must be a map, got list"),
        ({"state": "bogus"},
         "'state' must be one of waiting, scheduled, running, retrying, completed"),
        ({"state": ["scheduled"]}, "'state' must be one of waiting, scheduled"),
        ({"state": {"is": "scheduled"}}, "'state' must be one of waiting, scheduled"),
        ({"attempts": -1}, "'attempts' must be a whole number >= 0"),
        ({"attempts": True}, "'attempts' must be a whole number >= 0, got bool True"),
        ({"colour": 1}, "unknown field(s) 'colour'; allowed: action, after, attempts"),
    ],
)
def test_each_problem_is_named(changes, expected):
    found = problems(good(**changes))
    assert len(found) == 1
    assert expected in found[0]


def test_missing_fields_are_all_listed():
    with pytest.raises(InvalidTask) as raised:
        validate({"type": "order"})
    assert raised.value.problems == [
        "missing field 'action'", "missing field 'state'", "missing field 'data'"
    ]


def test_long_values_are_shortened_in_messages():
    [message] = problems(good(type="x " * 250))
    assert len(message) < 150
    assert message.endswith("...")


def test_states_are_the_documented_strings():
    assert [state.value for state in State] == [
        "waiting", "scheduled", "running", "retrying", "completed", "failed", "cancelled"]


@pytest.mark.parametrize(
    ("old", "new"),
    [("scheduled", "running"), ("retrying", "running"), ("running", "retrying"),
     ("running", "cancelled"), ("failed", "scheduled"), ("cancelled", "scheduled"),
     ("scheduled", "completed"), ("retrying", "retrying")],  # an atomic attempt: no claim
)
def test_the_state_machine_allows(old, new):
    check(old, State(new))


@pytest.mark.parametrize(
    ("old", "new"),
    [("completed", "running"), ("failed", "cancelled"), ("completed", "retrying"),
     ("cancelled", "running"), ("bogus", "scheduled"), (None, "running"), (["x"], "running")],
)
def test_the_state_machine_refuses(old, new):
    with pytest.raises(IllegalTransition, match=f"cannot become {new}"):
        check(old, State(new))


def test_document_size_follows_firestore_s_rules():
    # "type" (5) + "order" (6); "n" (2) + 8; "tags" (5) + "a" (2) + None (1); "ok" (3) + 1
    assert document_size({"type": "order", "n": 1, "tags": ["a", None], "ok": True}) == 33


def test_oversized_tasks_are_invalid():
    [message] = problems(good(data={"blob": "x" * MAX_TASK_BYTES}))
    assert "at most 921,600 leave room" in message


def test_client_fields_are_checked():
    assert problems(good(runAt=datetime.datetime.now(datetime.UTC), maxAttempts=3,
                         cancelRequested=False)) == []
    assert "'runAt' must be a timestamp" in problems(good(runAt="soon"))[0]
    [message] = problems(good(maxAttempts=101))
    assert "'maxAttempts' must be a whole number from 1 to 100" in message
