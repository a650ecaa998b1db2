"""A model-based test of the processor through the in-memory kit: hypothesis plays random
workflows, handler failures, operators' retries and cancels, time passing, prunes and sweeps,
and after each settled run checks what must always hold:

- a task never starts before its dependencies allow it (completed, or finished under "run", at
  least once: an operator may re-run a dependency after its dependent was released);
- a waiting task waits for something: not every dependency it still has is settled;
- a finished task carries no cancel request, and only finished tasks expire;
- every task is in a state of the machine, and none is left running or due.
"""

from __future__ import annotations

import datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from firetasks import HandlerRegistry, NewTask, PermanentError, Task
from firetasks.errors import IllegalTransition
from firetasks.record import TaskRecord
from firetasks.task import FINAL_STATES, State
from firetasks.testing import MemoryQueue

ACTIONS = ("a", "b", "c")
DAY = 86_400


class KitModel(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.broken: set[str] = set()
        # path -> at each start: the task's policy and how each dependency has ended so far
        self.started: dict[str, list[tuple[str, dict[str, set[str]]]]] = {}
        registry = HandlerRegistry()
        for action in ACTIONS:
            registry.register("model", action, self.handler(action))
        self.queue = MemoryQueue(registry)
        self.flows = 0

    def handler(self, action: str):  # type: ignore[no-untyped-def]
        def handle(task: Task) -> str:
            record = self.queue.get(task.ref)
            self.started.setdefault(task.path, []).append((
                record.fields.get("onDependencyFailure", "fail"),
                {id: outcomes(found) for id, found in zip(task.after, self.queue.store.read_all(
                    [task.ref.parent.document(id) for id in task.after]), strict=True)}))
            assert record.state in (State.RUNNING, State.SCHEDULED, State.RETRYING)
            if action in self.broken:
                raise PermanentError(f"{action} is broken")
            return action
        return handle

    @rule(shape=st.lists(st.tuples(st.sampled_from(ACTIONS),
                                   st.lists(st.integers(0, 3), max_size=2, unique=True),
                                   st.sampled_from(["fail", "skip", "run"]),
                                   st.sampled_from([0, 0, 3600, 9 * DAY])),
                         min_size=1, max_size=4))
    def add_workflow(self, shape: list[tuple[str, list[int], str, int]]) -> None:
        self.flows += 1
        now = self.queue.clock()
        tasks = [NewTask("model", action, key=f"t{n}",
                         after=[f"t{d}" for d in deps if d < n],
                         on_dependency_failure=policy,  # type: ignore[arg-type]
                         run_at=now + datetime.timedelta(seconds=delay) if delay else None)
                 for n, (action, deps, policy, delay) in enumerate(shape)]
        self.queue.add(f"orders/o-{self.flows}", tasks)

    @rule(action=st.sampled_from(ACTIONS))
    def toggle(self, action: str) -> None:
        self.broken ^= {action}

    @precondition(lambda self: self.queue.tasks())
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(self.queue.tasks()))
        try:
            self.queue.retry(task.ref)
        except IllegalTransition:
            assert task.state not in FINAL_STATES
        else:
            assert task.state in FINAL_STATES

    @precondition(lambda self: self.queue.tasks())
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(self.queue.tasks()))
        try:
            self.queue.cancel(task.ref)
        except IllegalTransition:
            assert task.state in FINAL_STATES

    @rule(seconds=st.sampled_from([60, 3600, DAY, 8 * DAY]))
    def time_passes(self, seconds: int) -> None:
        self.queue.clock.advance(seconds)
        self.queue.prune()
        self.queue.sweep()

    @rule()
    def run(self) -> None:
        self.queue.run(until=self.queue.clock())

    @invariant()
    def no_task_started_before_its_dependencies_allowed(self) -> None:
        for path, starts in self.started.items():
            for policy, dependencies in starts:
                allowed = FINAL_STATES if policy == "run" else {State.COMPLETED}
                assert all(ended & allowed or ended == {"gone"}
                           for ended in dependencies.values()), (path, dependencies)

    @invariant()
    def every_task_is_consistent(self) -> None:
        self.queue.run(until=self.queue.clock())
        for task in self.queue.tasks():
            assert task.state is not None
            assert task.state != State.RUNNING
            finished = task.state in FINAL_STATES
            assert not (finished and task.cancel_requested), task.path
            assert ("expireAt" in task.fields) == finished, task.path
            if task.state == State.SCHEDULED:
                assert task.run_at is not None, task.path
                assert task.run_at > self.queue.clock(), task.path
            if task.state == State.WAITING:
                found = [dep for dep in self.queue.store.read_all(
                    [task.ref.parent.document(id) for id in task.fields["after"]]) if dep]
                assert not all(dep.state == State.COMPLETED for dep in found), task.path


def outcomes(dependency: TaskRecord | None) -> set[str]:
    """How a dependency has ended so far: its state, and the outcome of each of its attempts.
    (A dependent released once its dependency completed may start after an operator's retry of
    that dependency ended otherwise: it was released by the completion.)"""
    if dependency is None:
        return {"gone"}
    return {str(dependency.state), *(entry["outcome"] for entry in dependency.history)}


TestKitModel = KitModel.TestCase
TestKitModel.settings = settings(max_examples=150, stateful_step_count=25, deadline=None,
                                 suppress_health_check=[HealthCheck.too_slow])
