"""A failed attempt keeps where it failed: a bounded traceback with its error, on the task and in
its history (shown collapsed by the dashboard, and by `firetasks show`)."""

from __future__ import annotations

from firetasks import HandlerRegistry, NewTask, RetryPolicy, Task
from firetasks.attempts import TRACEBACK_CHARS
from firetasks.testing import MemoryQueue

registry = HandlerRegistry()


def render_line(order: dict[str, str]) -> str:
    return order["sku"]  # KeyError: the failure's innermost frame


@registry.handler("invoice", "render", retry=RetryPolicy(max_attempts=2, min_delay=1))
def render(task: Task) -> str:
    return render_line(task.data)


@registry.handler("invoice", "deep", retry=RetryPolicy(max_attempts=1))
def deep(task: Task) -> None:
    try:
        raise KeyError("x" * 10_000)  # a cause with a long message: a long traceback
    except KeyError as exc:
        raise ValueError("bottom") from exc


def test_a_failed_attempt_keeps_its_traceback_on_the_task_and_in_its_history() -> None:
    queue = MemoryQueue(registry)
    ref = queue.enqueue("invoices/i-1", NewTask("invoice", "render", {}))
    queue.run()
    task = queue.get(ref)
    assert task.state == "failed"
    assert task.fields["error"] == {"type": "KeyError", "message": "'sku'"}  # as before
    trace = task.history[-1]["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "in render_line" in trace
    assert trace.endswith("KeyError: 'sku'")
    assert [entry["traceback"] for entry in task.history] == [trace, trace]


def test_a_long_traceback_keeps_its_innermost_frames_within_the_bound() -> None:
    queue = MemoryQueue(registry)
    ref = queue.enqueue("invoices/i-1", NewTask("invoice", "deep", {}))
    queue.run()
    trace = queue.get(ref).history[-1]["traceback"]
    assert len(trace) <= TRACEBACK_CHARS + 30
    assert trace.startswith("… (outer frames cut)")
    assert trace.endswith("ValueError: bottom")
