"""firetasks: a job queue on Firestore documents, processed by Python Cloud Functions."""

from firetasks.config import TaskQueue
from firetasks.enqueue import add_tasks, create_with_tasks
from firetasks.errors import FiretasksError, InvalidTask, PermanentError, RetryAfter
from firetasks.events import event_trigger, send_event
from firetasks.flow import limited_triggers
from firetasks.handler import Task
from firetasks.limits import Rate
from firetasks.new_task import NewTask
from firetasks.periodic import periodic_trigger, periodic_triggers
from firetasks.processor import TaskProcessor, task_trigger
from firetasks.recovery import sweep, sweep_trigger
from firetasks.registry import ClientAccess, HandlerRegistry
from firetasks.retention import RetentionPolicy
from firetasks.retry import RetryPolicy
from firetasks.task import State
from firetasks.wakeup import wake_trigger

__all__ = [
    "ClientAccess",
    "FiretasksError",
    "HandlerRegistry",
    "InvalidTask",
    "NewTask",
    "PermanentError",
    "Rate",
    "RetentionPolicy",
    "RetryAfter",
    "RetryPolicy",
    "State",
    "Task",
    "TaskProcessor",
    "TaskQueue",
    "add_tasks",
    "create_with_tasks",
    "event_trigger",
    "limited_triggers",
    "periodic_trigger",
    "periodic_triggers",
    "send_event",
    "sweep",
    "sweep_trigger",
    "task_trigger",
    "wake_trigger",
]
