"""Workflows through the real processor over firetasks.testing's in-memory store: dependencies,
failure policies, operator retries that reopen a workflow, spawned tasks and unique keys."""

from __future__ import annotations

import pytest

from firetasks import HandlerRegistry, NewTask, PermanentError, Task
from firetasks.errors import InvalidTask
from firetasks.testing import MemoryQueue

ORDER = "orders/o-1"


@pytest.fixture
def runs() -> list[str]:
    return []


@pytest.fixture
def queue(runs) -> MemoryQueue:
    registry = HandlerRegistry()

    @registry.handler("step", "ok")
    def ok(task: Task) -> dict:
        runs.append(task.id)
        return {"step": task.id, "seen": task.dependency_results()}

    @registry.handler("step", "declined")
    def declined(task: Task) -> None:
        runs.append(task.id)
        if not task.data.get("fixed"):
            raise PermanentError("card declined")

    @registry.handler("step", "sees")
    def sees(task: Task) -> dict:
        runs.append(task.id)
        return {"errors": task.dependency_errors()}

    @registry.handler("step", "spawner")
    def spawner(task: Task) -> None:
        runs.append(task.id)
        task.spawn(NewTask("step", "ok", key="child"))
        task.spawn(NewTask("step", "ok", key="grandchild"), after=["child", task.id])

    @registry.handler("step", "returns")
    def returns(task: Task) -> list[NewTask]:
        runs.append(task.id)
        return [NewTask("step", "ok", key="returned")]

    @registry.handler("step", "spawnsThenFails")
    def spawns_then_fails(task: Task) -> None:
        task.spawn(NewTask("step", "ok", key="never"))
        raise PermanentError("no")

    return MemoryQueue(registry)


def flow(queue: MemoryQueue, first: str = "ok", policy: str = "fail") -> dict[str, str]:
    """charge -> {email, processing} -> ship, by keys; the states after running it."""
    queue.add(ORDER, [
        NewTask("step", first, key="charge"),
        NewTask("step", "ok", key="email", after=["charge"], on_dependency_failure=policy),
        NewTask("step", "ok", key="processing", after=["charge"]),
        NewTask("step", "ok", key="ship", after=["email", "processing"]),
    ])
    queue.run()
    return states(queue)


def states(queue: MemoryQueue) -> dict[str, str]:
    return {record.ref.id: str(record.state) for record in queue.tasks()}


def test_a_flow_runs_in_dependency_order_and_results_flow_forward(queue, runs):
    assert set(flow(queue).values()) == {"completed"}
    assert (runs[0], runs[-1]) == ("charge", "ship")
    ship = queue.get(f"{ORDER}/tasks/ship")
    assert ship.fields["result"]["seen"] == {
        "email": {"step": "email", "seen": {"charge": {"step": "charge", "seen": {}}}},
        "processing": {"step": "processing", "seen": {"charge": {"step": "charge", "seen": {}}}},
    }


def test_a_fan_in_is_released_once_with_one_write(queue, runs):
    branches = [NewTask("step", "ok", key=f"b{n}") for n in range(20)]
    join = NewTask("step", "ok", key="join", after=[f"b{n}" for n in range(20)])
    queue.add(ORDER, [*branches, join])
    written = []
    commit = queue.store.commit
    queue.store.commit = lambda writes: (  # a spy on every conditional write
        written.extend((write.ref.path, (write.fields or {}).get("state")) for write in writes),
        commit(writes))[1]
    queue.run()
    assert runs.count("join") == 1
    assert [state for path, state in written if path.endswith("/join")] == [
        "scheduled", "running", "completed"]


def test_only_a_task_something_runs_after_looks_for_its_dependents_when_it_finishes(queue):
    looked = []
    dependents = queue.store.dependents
    queue.store.dependents = lambda ref, states=None: (  # a spy on the dependents query
        looked.append(ref.id), dependents(ref, states))[1]
    flow(queue)
    assert {record.ref.id: record.fields["hasDependents"] for record in queue.tasks()} == {
        "charge": True, "email": True, "processing": True, "ship": False}
    assert set(looked) == {"charge", "email", "processing"}  # (the kit delivers documents as
    # they are now, so each event of a finished task reads finished)


def test_a_dependent_added_while_its_dependency_runs_marks_it_and_its_finish_releases_it(runs):
    registry = HandlerRegistry()

    @registry.handler("step", "ok")
    def ok(task: Task) -> None:
        runs.append(task.id)

    @registry.handler("step", "adds")
    def adds(task: Task) -> None:  # a dependent of this task arrives while it runs
        runs.append(task.id)
        kit.add(ORDER, [NewTask("step", "ok", key="later", after=[task.id])])
        kit.deliver(len(kit.store.events) - 1)
        assert kit.get(f"{ORDER}/tasks/later").state == "waiting"

    kit = MemoryQueue(registry)
    [first] = kit.add(ORDER, [NewTask("step", "adds", key="first")])
    assert kit.get(first).fields["hasDependents"] is False
    kit.run()
    assert runs == ["first", "later"]  # run once: its finish was rebuilt on the marked version
    assert kit.get(first).fields["hasDependents"] is True


def test_a_failed_dependency_fails_its_dependents_by_policy_and_says_which(queue):
    assert flow(queue, first="declined") == {
        "charge": "failed", "email": "failed", "processing": "failed", "ship": "failed"}
    email = queue.get(f"{ORDER}/tasks/email").fields["error"]
    assert email["type"] == "DependencyFailed"
    assert email["message"] == "dependency charge (step.declined) failed: card declined"
    assert queue.get(f"{ORDER}/tasks/ship").fields["error"]["dependency"] in ("email", "processing")


def test_skip_cancels_and_run_runs_anyway_seeing_the_error():
    registry = HandlerRegistry()
    seen = {}

    @registry.handler("step", "declined")
    def declined(task: Task) -> None:
        raise PermanentError("card declined")

    @registry.handler("step", "sees")
    def sees(task: Task) -> None:
        seen.update(task.dependency_errors())

    queue = MemoryQueue(registry)
    queue.add(ORDER, [
        NewTask("step", "declined", key="charge"),
        NewTask("step", "sees", key="skipped", after=["charge"], on_dependency_failure="skip"),
        NewTask("step", "sees", key="anyway", after=["charge"], on_dependency_failure="run"),
    ])
    queue.run()
    assert states(queue) == {"charge": "failed", "skipped": "cancelled", "anyway": "completed"}
    assert seen == {"charge": {"type": "PermanentError", "message": "card declined"}}


def test_an_operator_retry_of_the_failed_dependency_finishes_the_workflow(queue, runs):
    flow(queue, first="declined")
    charge = f"{ORDER}/tasks/charge"
    queue.write(charge, {"data": {"fixed": True}})  # someone fixes the card, then retries
    queue.run()
    assert queue.retry(queue.get(charge).ref) == {
        "before": "failed", "after": "scheduled", "reopened": 3}
    queue.run()
    assert set(states(queue).values()) == {"completed"}
    assert runs.count("ship") == 1


def test_spawned_tasks_are_created_with_the_completion_only(queue, runs):
    queue.enqueue(ORDER, NewTask("step", "spawner", key="parent"))
    queue.enqueue(ORDER, NewTask("step", "returns", key="returner"))
    queue.enqueue(ORDER, NewTask("step", "spawnsThenFails", key="failer"))
    queue.run()
    assert states(queue) == {"parent": "completed", "returner": "completed", "failer": "failed",
                             "child": "completed", "grandchild": "completed",
                             "returned": "completed"}
    assert queue.get(f"{ORDER}/tasks/grandchild").fields["spawnedBy"] == "parent"
    assert queue.get(f"{ORDER}/tasks/returner").fields["result"] == {"spawned": ["returned"]}


def test_a_duplicate_delivery_spawns_nothing_twice(queue, runs):
    ref = queue.enqueue(ORDER, NewTask("step", "spawner", key="parent"))
    delivered = queue.get(ref)
    queue.processor.process(delivered)
    queue.processor.process(delivered)
    queue.run()
    assert runs.count("parent") == 1
    assert runs.count("child") == 1


def test_a_key_makes_enqueue_idempotent(queue, runs):
    first = queue.enqueue(ORDER, NewTask("step", "ok", {"n": 1}, key="charge"))
    second = queue.enqueue(ORDER, NewTask("step", "ok", {"n": 2}, key="charge"))
    assert first.path == second.path == f"{ORDER}/tasks/charge"
    assert queue.get(first).data == {"n": 1}
    queue.run()
    assert runs == ["charge"]


def test_a_global_key_is_unique_across_parents(queue):
    welcome = NewTask("step", "ok", key="welcome-u1", unique="global")
    first = queue.enqueue("users/u1", welcome)
    second = queue.enqueue("carts/c9", welcome)
    assert second.path == first.path == "users/u1/tasks/welcome-u1"
    assert [record.ref.path for record in queue.tasks()] == [first.path]


@pytest.mark.parametrize(("tasks", "message"), [
    ([NewTask("step", "ok", key="a", after=["a"])], "task 'a' runs after itself"),
    ([NewTask("step", "ok", key="a", after=["nope"])], "runs after unknown task(s): nope"),
    ([NewTask("step", "ok", key="a", after=["b"]), NewTask("step", "ok", key="b", after=["a"])],
     "make a cycle: a -> b -> a"),
])
def test_bad_graphs_are_refused_by_the_enqueue_helper(queue, tasks, message):
    with pytest.raises(InvalidTask, match=message.replace("(", r"\(").replace(")", r"\)")):
        queue.add(ORDER, tasks)
    assert queue.tasks() == []


@pytest.mark.parametrize(("documents", "message"), [
    ({"a": ["a"]}, "'after' names the task itself (a)"),
    ({"a": ["ghost"]}, "'after' names unknown task(s): ghost"),
    ({"a": ["b"], "b": ["a"]}, "'after' makes a cycle"),
])
def test_client_written_bad_graphs_end_failed_as_invalid(queue, documents, message):
    for id, after in documents.items():
        queue.write(f"{ORDER}/tasks/{id}",
                    {"type": "step", "action": "ok", "state": "waiting", "data": {},
                     "after": after})
    queue.run()
    errors = [record.fields.get("error") for record in queue.tasks()]
    assert any(error and error["type"] == "InvalidTask" and message in error["message"]
               for error in errors)
    assert "completed" not in states(queue).values()


def test_a_malformed_waiting_task_ends_failed_as_invalid(queue):
    ref = queue.write(f"{ORDER}/tasks/a", {"type": "step", "action": "ok", "state": "waiting",
                                           "data": {}, "after": "charge"})
    queue.run()
    task = queue.get(ref)
    assert (task.state, task.fields["error"]["type"]) == ("failed", "InvalidTask")
    assert "'after' must be a list of task ids" in task.fields["error"]["message"]


def test_a_late_echo_of_a_failure_does_not_fail_the_dependents_a_retry_reopened(queue, runs):
    flow(queue, first="declined")
    stale = queue.get(f"{ORDER}/tasks/processing")  # its failed version's event ...
    charge = f"{ORDER}/tasks/charge"
    queue.write(charge, {"data": {"fixed": True}})
    queue.run()
    queue.retry(queue.get(charge).ref)
    queue.processor.handle(stale, "waiting")  # ... arrives after the retry reopened the flow
    assert queue.get(f"{ORDER}/tasks/ship").state == "waiting"
    queue.run()
    assert set(states(queue).values()) == {"completed"}
