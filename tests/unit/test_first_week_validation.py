"""Mistakes refused where they are made, with a message that names them (issue 23, item 5 and 6):
a naive run_at, a data that is no map, an `after` given as one string, an unbalanced client rules
expression, a task no handler runs (a typo); and a naive runAt stored by hand read as UTC."""

from __future__ import annotations

import datetime
import re

import pytest

from firetasks import HandlerRegistry, NewTask, Task
from firetasks.client_rules import rules_function
from firetasks.config import TaskQueue
from firetasks.enqueue import add_tasks, create_with_tasks
from firetasks.errors import InvalidTask
from firetasks.memory import FakeClock, MemoryStore
from firetasks.registry import ClientAccess, unbalanced_expression
from firetasks.testing import MemoryQueue


def test_a_naive_run_at_is_refused_at_construction_naming_run_at():
    with pytest.raises(InvalidTask, match="'run_at' must be timezone-aware"):
        NewTask("invoice", "render", run_at=datetime.datetime(2030, 1, 1, 12))
    aware = datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.UTC)
    assert NewTask("invoice", "render", run_at=aware).document()["runAt"] == aware


def test_data_that_is_no_map_is_refused_as_documented():
    with pytest.raises(InvalidTask, match=r"'data' must be a map, got list \['x'\]"):
        NewTask("invoice", "render", ["x"])  # type: ignore[arg-type]


def test_after_given_as_one_string_is_refused_at_construction():
    with pytest.raises(InvalidTask, match="'after' must be a list of task ids or keys, got str"):
        NewTask("invoice", "render", after="charge")
    assert NewTask("invoice", "render", after=["charge"]).after == ["charge"]


def test_every_problem_is_listed_at_once():
    with pytest.raises(InvalidTask) as raised:
        NewTask("invoice", "render", "x", run_at=datetime.datetime(2030, 1, 1),  # type: ignore[arg-type]
                after="charge")
    assert len(raised.value.problems) == 3


@pytest.mark.parametrize(("expression", "problem"), [
    ("data.keys().hasOnly(['orderId']", "unclosed '('"),
    ("data.keys().hasOnly(['orderId')", "')' at 30 where ']' should close the '['"),
    ("data.kind == 'gift", "unclosed quote '"),
    ("data.size() < 3)", "unmatched ')'"),
])
def test_an_unbalanced_client_rules_expression_is_refused_at_registration(expression, problem):
    registry = HandlerRegistry()
    with pytest.raises(ValueError, match=r"'order\.note'") as raised:
        registry.register("order", "note", lambda task: None, client=ClientAccess(data=expression))
    assert expression in str(raised.value)
    assert problem in str(raised.value)
    assert registry.names() == []


def test_balanced_expressions_pass_quotes_and_escapes_included():
    for expression in ["true", "data.keys().hasOnly(['orderId'])", 'data.note == "a \\" ) ["',
                       "data.tags is list && data.tags.size() <= 3 && data.m == {'a': [1]}"]:
        assert unbalanced_expression(expression) is None, expression
    registry = HandlerRegistry()
    registry.register("order", "note", lambda task: None,
                      client=ClientAccess(data="data.keys().hasOnly(['orderId'])"))
    assert "(data.keys().hasOnly(['orderId']))" in rules_function(registry)


def _registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    for action in ("send", "render", "refund"):
        registry.register("invoice", action, lambda task: None)
    return registry


def test_a_typo_is_refused_naming_the_closest_handlers_given_the_registry():
    store = MemoryStore(FakeClock())
    parent = store.client.document("invoices/i-1")
    with pytest.raises(InvalidTask, match=re.escape(
            "no handler is registered for 'invoice.sned': did you mean 'invoice.send'")):
        add_tasks(parent, [NewTask("invoice", "render"), NewTask("invoice", "sned")],
                  store=store, registry=_registry())
    assert store.documents == {}  # nothing written
    [ref] = add_tasks(parent, [NewTask("invoice", "send")], store=store, registry=_registry())
    assert ref.path.startswith("invoices/i-1/tasks/")


def test_the_queue_checks_too_and_names_its_first_collection():
    store = MemoryStore(FakeClock())
    queue = TaskQueue(_registry(), collections=("jobs",))
    parent = store.client.document("invoices/i-2")
    with pytest.raises(InvalidTask, match=re.escape(
            "'billing.print' (registered: invoice.refund, invoice.render, invoice.send)")):
        create_with_tasks(parent, {}, [NewTask("billing", "print")], store=store, queue=queue)
    [ref] = create_with_tasks(parent, {}, [NewTask("invoice", "send")], store=store, queue=queue)
    assert ref.path.startswith("invoices/i-2/jobs/")


def test_without_a_registry_any_handler_name_is_enqueued_as_before():
    store = MemoryStore(FakeClock())
    [ref] = add_tasks(store.client.document("invoices/i-3"), [NewTask("invoice", "sned")],
                      store=store)
    assert store.documents[ref.path]["action"] == "sned"


def test_a_naive_run_at_stored_by_hand_is_read_as_utc():
    """Firestore stores UTC; a raw document's naive datetime is taken for UTC, not a TypeError."""
    registry = HandlerRegistry()
    runs: list[Task] = []
    registry.register("invoice", "send", runs.append)
    queue = MemoryQueue(registry)
    due = queue.clock() + datetime.timedelta(hours=1)
    ref = queue.write("invoices/i-1/tasks/t", {
        "type": "invoice", "action": "send", "state": "scheduled", "data": {}, "attempts": 0,
        "runAt": due.replace(tzinfo=None)})
    queue.run(until=due - datetime.timedelta(seconds=1))
    assert (queue.get(ref).state, runs) == ("scheduled", [])
    queue.run()
    assert queue.get(ref).state == "completed"
    assert queue.get(ref).history[0]["startedAt"] == due
