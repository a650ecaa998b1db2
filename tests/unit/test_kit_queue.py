"""MemoryQueue as a new user meets it: it takes the app's TaskQueue, runs only what a deployed
trigger runs, starts its clock where told, logs where caplog sees, raises a handler's error when
asked, and retries or cancels a task by its path."""

from __future__ import annotations

import datetime
import logging

import pytest

from firetasks import HandlerRegistry, NewTask, RetryPolicy, Task, TaskQueue
from firetasks.testing import START, MemoryQueue, UntriggeredTask, UntriggeredTaskWarning


def registry() -> HandlerRegistry:
    handlers = HandlerRegistry()

    @handlers.handler("invoice", "send", retry=RetryPolicy(max_attempts=2))
    def send(task: Task) -> str:
        if task.data.get("fail"):
            raise ConnectionError("mail server busy")
        return "sent"

    return handlers


def test_it_takes_a_task_queue_and_honours_its_collections_and_timeout():
    kit = MemoryQueue(TaskQueue(registry(), collections=("jobs",), timeout_sec=30))
    ref = kit.enqueue("invoices/i-1", NewTask("invoice", "send"))
    assert ref.parent.id == "jobs"
    assert kit.queue.lease == datetime.timedelta(seconds=90)
    kit.run()
    assert kit.get(ref).state == "completed"


def test_bad_arguments_fail_naming_what_it_takes():
    with pytest.raises(TypeError, match=r"TaskQueue .* or a HandlerRegistry, not str"):
        MemoryQueue("main.queue")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a TaskQueue names its own collections"):
        MemoryQueue(TaskQueue(registry()), collections=("jobs",))
    assert MemoryQueue(registry(), collections=("jobs",)).queue.collections == ("jobs",)


def test_tasks_under_nested_parents_run_only_where_a_trigger_is_declared():
    kit = MemoryQueue(TaskQueue(registry(), collections=("jobs",)))
    with pytest.raises(UntriggeredTask, match="customers/c-1/invoices/i-1/jobs"):
        kit.enqueue("customers/c-1/invoices/i-1", NewTask("invoice", "send"))
    path = "customers/c-1/invoices/i-1/jobs/x"
    kit.write(path, {"type": "invoice", "action": "send", "state": "scheduled", "data": {}})
    with pytest.warns(UntriggeredTaskWarning, match="documents="):
        kit.run()
    assert kit.get(path).state == "scheduled"

    nested = MemoryQueue(TaskQueue(registry(), collections=("jobs",)),
                         documents=["customers/{customerId}/invoices/{invoiceId}/jobs/{jobId}"])
    ref = nested.enqueue("customers/c-1/invoices/i-1", NewTask("invoice", "send"))
    nested.run()
    assert nested.get(ref).state == "completed"
    with pytest.raises(UntriggeredTask):
        nested.enqueue("invoices/i-1", NewTask("invoice", "send"))


def test_the_clock_starts_at_2030_or_where_told():
    assert MemoryQueue(registry()).clock() == START == datetime.datetime(2030, 1, 1,
                                                                         tzinfo=datetime.UTC)
    start = datetime.datetime(2026, 3, 1, 9, tzinfo=datetime.UTC)
    kit = MemoryQueue(registry(), start=start)
    ref = kit.enqueue("invoices/i-1", NewTask("invoice", "send",
                                              run_at=kit.clock() + datetime.timedelta(hours=1)))
    kit.run()
    assert kit.get(ref).state == "completed"
    assert kit.clock() == start + datetime.timedelta(hours=1)


def test_caplog_sees_the_processor_s_logs(caplog):
    kit = MemoryQueue(registry())
    kit.enqueue("invoices/i-1", NewTask("invoice", "send", {"fail": True}))
    with caplog.at_level(logging.INFO, logger="firetasks"):
        kit.run()
    [error, *_] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert error.name == "firetasks"
    assert error.getMessage().startswith("error processing task (error=ConnectionError(")
    assert error.fields["error"] == "ConnectionError('mail server busy')"
    assert "start processing task" in caplog.text


def test_raise_errors_re_raises_a_handler_s_exception_after_its_outcome_is_written():
    handlers = registry()
    kit = MemoryQueue(handlers, raise_errors=True)
    ref = kit.enqueue("invoices/i-1", NewTask("invoice", "send", {"fail": True}))
    with pytest.raises(ConnectionError, match="mail server busy"):
        kit.run()
    assert kit.get(ref).state == "retrying"
    with pytest.raises(ConnectionError):
        kit.run()
    assert kit.get(ref).state == "failed"
    assert handlers.lookup("invoice", "send").handler.__name__ == "send"  # the user's, as it was
    quiet = MemoryQueue(handlers)
    quiet.enqueue("invoices/i-1", NewTask("invoice", "send", {"fail": True}))
    quiet.run()


def test_retry_and_cancel_take_a_path():
    kit = MemoryQueue(registry())
    ref = kit.enqueue("invoices/i-1", NewTask("invoice", "send", {"fail": True}))
    kit.run()
    assert kit.get(ref.path).state == "failed"
    kit.retry(ref.path)
    assert kit.get(ref.path).state == "scheduled"
    kit.cancel(ref.path)
    assert kit.get(ref).state == "cancelled"
