"""A model-based test of the processor under faults, through the in-memory kit (issue 21):
hypothesis interleaves enqueues (workflows with dependencies, keys, delays) of claim-mode,
atomic, spawning and limited handlers; deliveries in order, out of order, twice and late (a
version the task has left); handler failures; commits that fail transiently before or after they
applied (ambiguous writes); workers that crash before or after a commit or inside a handler; time
passing (lease expiry), sweeps, operators' retries and cancels.

After every step:

- no attempt of a claim-mode task ran twice (each attempt number calls the handler at most once);
- an atomic task's effect was committed once per completion its history records, never without
  one (the effect is staged with the outcome);
- a task spawned by a handler exists once, and only if its parent completed;
- a limited handler (concurrency 1) never ran while another of its tasks was running;
- a lease expired only where a worker died (an attempt whose claim landed runs its handler, even
  when the claim's answer was lost);
- no task ran before its dependencies allowed it.

At the end, once the faults stop and time runs past every lease and wake-up with sweeps:

- no task is lost: every task is finished, or waits for a dependency that did not complete;
- a task that failed says why (its `error`: a handler's failure, an expired lease, a dependency).
"""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

from google.cloud import firestore
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from firetasks import HandlerRegistry, NewTask, RetryPolicy, Task
from firetasks.errors import IllegalTransition
from firetasks.limits import Limits
from firetasks.memory_faults import Crash, Fault
from firetasks.task import FINAL_STATES, State
from firetasks.testing import MemoryQueue
from tests.unit.test_kit_model import outcomes

KINDS = ("claim", "atomic", "spawn", "limited")
LEASE = datetime.timedelta(minutes=5)
DAY = 86_400


class ProcessorModel(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.calls: Counter[tuple[str, int]] = Counter()  # (path, attempt) -> handler calls
        self.crash_in_handler = False
        self.crashes = 0  # workers killed
        self.flows = 0
        retry = RetryPolicy(max_attempts=3, min_delay=1, max_delay=10)
        registry = HandlerRegistry()
        for kind in KINDS:
            registry.register("model", kind, self.handler(kind), retry=retry,
                              lease=None if kind == "atomic" else LEASE,
                              atomic=kind == "atomic",
                              limits=None if kind != "limited" else Limits(concurrency=1))
        self.queue = MemoryQueue(registry)

    def handler(self, kind: str):  # type: ignore[no-untyped-def]
        def handle(task: Task) -> Any:
            self.calls[(task.path, task.attempt)] += 1
            self.check_dependencies_allow(task)
            if kind == "limited":
                running = [t for t in self.queue.tasks([State.RUNNING])
                           if t.action == "limited" and t.path != task.path]
                assert not running, (task.path, [t.path for t in running])
            if self.crash_in_handler:
                self.crash_in_handler = False
                raise Crash("injected: the worker died inside the handler")
            if task.attempt <= task.data.get("fail", 0):
                raise RuntimeError(f"attempt {task.attempt} fails")
            if kind == "atomic":
                task.writes.set(self.queue.client.document(effect(task.path)),
                                {"count": firestore.Increment(1)}, merge=True)
            if kind == "spawn":
                return NewTask("model", "claim", key=f"{task.id}-child")
            return kind
        return handle

    def check_dependencies_allow(self, task: Task) -> None:
        policy = self.queue.get(task.ref).fields.get("onDependencyFailure", "fail")
        allowed = FINAL_STATES if policy == "run" else {State.COMPLETED}
        for found in self.queue.store.read_all([task.ref.parent.document(id)
                                                for id in task.after]):
            ended = outcomes(found)
            assert ended & allowed or ended == {"gone"}, (task.path, found and found.path, ended)

    def act(self, call: Any, *args: Any, **kwargs: Any) -> None:
        """A step of the kit; a crash ends it, as a killed worker's invocation ends."""
        try:
            call(*args, **kwargs)
        except Crash:
            self.crashes += 1

    @rule(shape=st.lists(st.tuples(st.sampled_from(KINDS),
                                   st.lists(st.integers(0, 3), max_size=2, unique=True),
                                   st.sampled_from(["fail", "run"]),
                                   st.sampled_from([0, 0, 3600]),
                                   st.sampled_from([0, 0, 1, 5])),
                         min_size=1, max_size=4))
    def add_workflow(self, shape: list[tuple[str, list[int], str, int, int]]) -> None:
        self.flows += 1
        now = self.queue.clock()
        self.queue.add(f"orders/o-{self.flows}", [
            NewTask("model", kind, {"fail": fail}, key=f"t{n}",
                    after=[f"t{d}" for d in deps if d < n],
                    on_dependency_failure=policy,  # type: ignore[arg-type]
                    run_at=now + datetime.timedelta(seconds=delay) if delay else None)
            for n, (kind, deps, policy, delay, fail) in enumerate(shape)])

    @precondition(lambda self: self.queue.store.events)
    @rule(data=st.data())
    def deliver_out_of_order(self, data: st.DataObject) -> None:
        event = data.draw(st.integers(0, len(self.queue.store.events) - 1))
        self.act(self.queue.deliver, event)

    @precondition(lambda self: self.queue.delivered)
    @rule(data=st.data())
    def deliver_again(self, data: st.DataObject) -> None:
        self.act(self.queue.redeliver, data.draw(st.integers(0, len(self.queue.delivered) - 1)))

    @rule(fault=st.sampled_from(list(Fault)), later=st.integers(0, 6))
    def fail_a_commit(self, fault: Fault, later: int) -> None:
        self.queue.store.faults.arm(fault, later)

    @rule()
    def crash_inside_a_handler(self) -> None:
        self.crash_in_handler = True

    @precondition(lambda self: self.queue.tasks())
    @rule(data=st.data())
    def operator_retries(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(self.queue.tasks()))
        try:
            self.act(self.queue.retry, task.ref)
        except IllegalTransition:
            assert task.state not in FINAL_STATES

    @precondition(lambda self: self.queue.tasks())
    @rule(data=st.data())
    def operator_cancels(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(self.queue.tasks()))
        try:
            self.act(self.queue.cancel, task.ref)
        except IllegalTransition:
            assert task.state in FINAL_STATES

    @rule(seconds=st.sampled_from([1, 60, 600, 3600]))
    def time_passes_and_sweeps(self, seconds: int) -> None:
        self.queue.clock.advance(seconds)
        self.act(self.queue.sweep)

    @rule()
    def run(self) -> None:
        self.act(self.queue.run, until=self.queue.clock())

    @invariant()
    def no_claimed_attempt_ran_twice(self) -> None:
        twice = [call for call, count in self.calls.items() if count > 1
                 and self.queue.get(call[0]).action != "atomic"]
        assert not twice, twice

    @invariant()
    def atomic_effects_once_per_completion(self) -> None:
        for task in self.queue.tasks():
            if task.action == "atomic":
                counted = self.queue.document(effect(task.path)) or {"count": 0}
                completions = sum(entry["outcome"] == State.COMPLETED for entry in task.history)
                assert counted["count"] == completions, (task.path, counted, task.history)

    @invariant()
    def spawned_children_once_after_their_parent_completed(self) -> None:
        for task in self.queue.tasks():
            if task.action == "spawn":
                children = [child for child in self.queue.tasks()
                            if child.fields.get("spawnedBy") == task.ref.id
                            and child.path.rsplit("/", 1)[0] == task.path.rsplit("/", 1)[0]]
                completed = any(entry["outcome"] == State.COMPLETED for entry in task.history)
                assert len(children) == completed, (task.path, [c.path for c in children])

    @invariant()
    def leases_expire_only_where_a_worker_died(self) -> None:
        expired = [task.path for task in self.queue.tasks() for entry in task.history
                   if (entry.get("error") or {}).get("type") == "LeaseExpired"]
        assert len(expired) <= self.crashes, (expired, self.crashes)

    def teardown(self) -> None:
        """Settle: no more faults, time past every lease and wake-up, sweeps; then nothing is
        lost."""
        if not hasattr(self, "queue"):
            return
        self.queue.store.faults.armed.clear()
        self.crash_in_handler = False
        for _ in range(4):
            self.queue.clock.advance(LEASE.total_seconds() + 3600)
            self.queue.sweep()
            self.queue.run(until=self.queue.clock())
        for task in self.queue.tasks():
            assert task.state in (*FINAL_STATES, State.WAITING), (task.path, task.state)
            assert task.state != State.FAILED or task.fields.get("error"), task.path
            if task.state == State.WAITING:
                deps = self.queue.store.read_all(
                    [task.ref.parent.document(id) for id in task.fields["after"]])
                assert not all(dep and dep.state == State.COMPLETED for dep in deps), task.path
        self.no_claimed_attempt_ran_twice()
        self.atomic_effects_once_per_completion()
        self.spawned_children_once_after_their_parent_completed()
        self.leases_expire_only_where_a_worker_died()


def effect(path: str) -> str:
    """Where an atomic task's handler counts its committed effects."""
    return "effects/" + path.replace("/", "-")


TestProcessorModel = ProcessorModel.TestCase
TestProcessorModel.settings = settings(max_examples=200, stateful_step_count=30, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
