"""What MemoryQueue (firetasks.testing) mirrors of a deployment beside the processor: which task
paths its triggers match, and its logs, routed through Python's `logging` while the kit runs.

Triggers: a deployed `task_trigger` matches `{parentCollection}/{parentId}/<collection>/{taskId}`
(a task under a top-level parent) or its `document=` pattern; the kit runs the tasks that one of
those matches and leaves any other as it is, as a deployment would.

Logs: the processor logs through `firebase_functions.logger`, JSON on stdout, which pytest's
`caplog` does not see. While a MemoryQueue runs, the library's modules log to the `firetasks`
logger instead: each record's message is the text and its fields (`error processing task
(error=ValueError('boom'), taskId=...)`), and `record.fields` holds the fields as a dict.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ParamSpec, TypeVar

from firebase_functions import logger as functions_logger

from firetasks import conditional
from firetasks.config import TaskQueue

LOGGER = logging.getLogger("firetasks")
P = ParamSpec("P")
R = TypeVar("R")


class UntriggeredTask(ValueError):
    """A task enqueued where no trigger the kit mirrors (none deployed) would run it."""


class UntriggeredTaskWarning(UserWarning):
    """A task written where no trigger the kit mirrors matches: it stays as it is."""


class Triggers:
    """The document patterns of the queue's triggers: given (`document=` patterns), or one a
    collection under any top-level parent, as `task_trigger` deploys by default."""

    def __init__(self, queue: TaskQueue, documents: Sequence[str] = ()) -> None:
        if isinstance(documents, str):
            raise TypeError("documents= takes a list of patterns, e.g. "
                            "['invoices/{invoiceId}/jobs/{taskId}']")
        self.queue = queue
        self.patterns = [pattern.strip("/") for pattern in documents] or [
            queue.document(collection) for collection in queue.collections]
        for pattern in self.patterns:
            parts = pattern.split("/")
            if len(parts) % 2 or parts[-2] not in queue.collections:
                raise ValueError(f"{pattern!r} is not a task trigger's pattern: a document path "
                                 "whose last collection is one of the queue's "
                                 f"{queue.collections}, like 'invoices/{{invoiceId}}/"
                                 f"{queue.collections[0]}/{{taskId}}'")
        self._warned: set[str] = set()

    def matches(self, path: str) -> bool:
        parts = path.strip("/").split("/")
        return any(_matches(pattern.split("/"), parts) for pattern in self.patterns)

    def runs(self, path: str) -> bool:
        """Whether a deployed trigger would deliver a write at `path`; a task of the queue's
        collections that none matches is warned about, once."""
        if self.matches(path):
            return True
        parts = path.split("/")
        if len(parts) >= 2 and parts[-2] in self.queue.collections and path not in self._warned:
            self._warned.add(path)
            warnings.warn(UntriggeredTaskWarning(self._why(path)), stacklevel=3)
        return False

    def check(self, path: str) -> None:
        if not self.matches(path):
            raise UntriggeredTask(self._why(path.rsplit("/", 1)[0] + "/{taskId}"))

    def _why(self, path: str) -> str:
        return (f"no trigger matches {path} (the kit mirrors {self.patterns}): deployed, its "
                "tasks would not run, so the kit leaves them as they are. A task_trigger "
                "with document='...' runs tasks under nested parents: give the kit the same "
                "pattern, MemoryQueue(queue, documents=['...'])")


def _matches(pattern: list[str], parts: list[str]) -> bool:
    return len(pattern) == len(parts) and all(
        (want.startswith("{") and want.endswith("}")) or want == part
        for want, part in zip(pattern, parts, strict=True))


class LoggingShim:
    """`firebase_functions.logger`'s calls, as records of the `firetasks` logger."""

    def debug(self, *args: Any, **fields: Any) -> None:
        self._log(logging.DEBUG, args, fields)

    def info(self, *args: Any, **fields: Any) -> None:
        self._log(logging.INFO, args, fields)

    log = info

    def warn(self, *args: Any, **fields: Any) -> None:
        self._log(logging.WARNING, args, fields)

    def error(self, *args: Any, **fields: Any) -> None:
        self._log(logging.ERROR, args, fields)

    def write(self, entry: dict[str, Any]) -> None:
        entry = dict(entry)
        level = getattr(logging, str(entry.pop("severity", "INFO")), logging.INFO)
        self._log(level if isinstance(level, int) else logging.INFO,
                  (entry.pop("message", ""),), entry)

    def _log(self, level: int, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        text = " ".join(str(arg) for arg in args)
        if fields:
            text += " (" + ", ".join(f"{name}={value}" for name, value in fields.items()) + ")"
        LOGGER.log(level, "%s", text, extra={"fields": fields}, stacklevel=3)


@contextlib.contextmanager
def routed_logs() -> Iterator[None]:
    """While it lasts, the library's modules log through `logging` (the `firetasks` logger)."""
    shim = LoggingShim()
    patched = [module for name, module in list(sys.modules.items())
               if name.startswith("firetasks.") and module is not None
               and getattr(module, "logger", None) is functions_logger]
    for module in patched:
        module.logger = shim  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.logger = functions_logger  # type: ignore[attr-defined]


def kit_logging(method: Callable[P, R]) -> Callable[P, R]:
    """A MemoryQueue method whose library calls log through `logging` (routed_logs), and back
    off from transient errors on the queue's fake clock."""

    @functools.wraps(method)
    def logged(*args: P.args, **kwargs: P.kwargs) -> R:
        backoff = conditional.SLEEP.set(args[0].clock.advance)  # type: ignore[attr-defined]
        try:
            with routed_logs():
                return method(*args, **kwargs)
        finally:
            conditional.SLEEP.reset(backoff)

    return logged
