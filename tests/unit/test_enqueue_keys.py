"""The enqueue helper's keys and `after` names, through the in-memory kit: global keys held under
another parent, lock ids that two keys could share, duplicate keys, and names that are keys."""

from __future__ import annotations

import pytest

from firetasks.enqueue import NewTask, add_tasks
from firetasks.errors import InvalidTask
from firetasks.new_task import task_id
from firetasks.registry import HandlerRegistry
from firetasks.testing import MemoryQueue


@pytest.fixture
def queue() -> MemoryQueue:
    registry = HandlerRegistry()

    @registry.handler("step", "ok")
    def ok(task) -> dict:
        return {"step": task.id}

    return MemoryQueue(registry, collections=("tasks", "tasks-x"))


def step(**options) -> NewTask:
    return NewTask("step", "ok", **options)


def add(queue: MemoryQueue, parent: str, tasks: list[NewTask], collection: str = "tasks"):
    return add_tasks(queue.store.client.document(parent), tasks, collection=collection,
                     store=queue.store)


def test_a_batch_that_runs_after_a_global_key_held_under_another_parent_is_refused(queue):
    [held] = add(queue, "users/u1", [step(key="g", unique="global")])
    before = dict(queue.store.documents)
    with pytest.raises(InvalidTask) as refused:
        add(queue, "carts/c9", [step(key="g", unique="global"), step(after=["g"])])
    assert "'g'" in str(refused.value)
    assert held.path in str(refused.value)
    assert queue.store.documents == before  # nothing written
    queue.run()
    assert [record.state for record in queue.tasks()] == ["completed"]


def test_a_global_key_held_elsewhere_that_nothing_runs_after_returns_the_held_task(queue):
    [held] = add(queue, "users/u1", [step(key="g", unique="global")])
    [found, other] = add(queue, "carts/c9", [step(key="g", unique="global"), step(key="h")])
    assert found.path == held.path
    assert other.path == "carts/c9/tasks/h"


def test_global_keys_whose_old_lock_ids_collide_make_two_tasks(queue):
    first = queue.enqueue("users/u1", step(key="x-a", unique="global"), collection="tasks")
    second = queue.enqueue("users/u2", step(key="a", unique="global"), collection="tasks-x")
    assert first.path == "users/u1/tasks/x-a"
    assert second.path == "users/u2/tasks-x/a"
    again = queue.enqueue("users/u3", step(key="a", unique="global"), collection="tasks-x")
    assert again.path == second.path  # the key is still unique


def test_a_key_given_twice_in_one_batch_is_refused(queue):
    with pytest.raises(InvalidTask, match="key 'k' is given twice"):
        add(queue, "users/u1", [step(key="k"), step(key="k", data={"n": 2})])
    assert queue.store.documents == {}


def test_after_may_name_a_batch_task_by_its_key_when_the_key_is_not_an_id(queue):
    first, second = add(queue, "users/u1", [step(key="send welcome"),
                                            step(key="then", after=["send welcome"])])
    assert first.id == task_id("send welcome") != "send welcome"
    assert queue.get(second).fields["after"] == [first.id]
    queue.run()
    assert [record.state for record in queue.tasks()] == ["completed", "completed"]


@pytest.mark.parametrize("name", ["no such/task", "", "a" * 129])
def test_after_naming_neither_an_id_nor_a_batch_key_is_refused_naming_it(queue, name):
    with pytest.raises(InvalidTask) as refused:
        add(queue, "users/u1", [step(key="k"), step(after=["k", name])])
    assert repr(name) in str(refused.value)
    assert queue.store.documents == {}


def test_after_given_as_a_string_is_refused(queue):
    with pytest.raises(InvalidTask, match="must be a list"):
        add(queue, "users/u1", [step(key="ab"), step(after="ab")])


def test_a_spawned_task_may_run_after_a_sibling_named_by_a_key_that_is_not_an_id():
    registry = HandlerRegistry()

    @registry.handler("order", "split")
    def split(task) -> list[NewTask]:
        return [NewTask("step", "ok", key="part #1"),
                NewTask("step", "ok", key="join", after=["part #1"])]

    @registry.handler("step", "ok")
    def ok(task) -> str:
        return task.id

    queue = MemoryQueue(registry)
    ref = queue.enqueue("orders/o-1", NewTask("order", "split"))
    queue.run()
    assert queue.get(ref).state == "completed"
    join = queue.get("orders/o-1/tasks/join")
    assert (join.state, join.fields["after"]) == ("completed", [task_id("part #1")])
