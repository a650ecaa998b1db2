import pytest

from firetasks.task import InvalidTask, State, problems, validate


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
        ({"state": "bogus"}, "'state' must be one of scheduled, running, retrying, completed"),
        ({"attempts": -1}, "'attempts' must be a whole number >= 0"),
        ({"attempts": True}, "'attempts' must be a whole number >= 0, got bool True"),
        ({"priority": 1}, "unknown field(s) 'priority'; allowed: action, attempts"),
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
        "scheduled", "running", "retrying", "completed", "failed", "cancelled"]
