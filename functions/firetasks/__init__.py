"""firetasks: a job queue on Firestore documents, processed by a Python Cloud Function."""

from firetasks.enqueue import NewTask, add_tasks, create_with_tasks
from firetasks.processor import TaskProcessor, task_trigger
from firetasks.registry import HandlerRegistry
from firetasks.task import InvalidTask, State, Task

__all__ = [
    "HandlerRegistry",
    "InvalidTask",
    "NewTask",
    "State",
    "Task",
    "TaskProcessor",
    "add_tasks",
    "create_with_tasks",
    "task_trigger",
]
