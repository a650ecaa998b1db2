"""The table of handlers, keyed by a task's `type.action`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from firetasks.task import ACTION_PATTERN, TYPE_PATTERN, Task

Handler = Callable[[Task], Any]


class HandlerRegistry:
    """Maps `type.action` to a handler; `action` may be dotted (`mutations.initiateProcessing`).

    >>> registry = HandlerRegistry()
    >>> @registry.handler("order", "sendConfirmationEmail")
    ... def send_confirmation_email(task: Task) -> None: ...
    """

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], Handler] = {}

    def handler(self, type: str, action: str) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            self.register(type, action, func)
            return func

        return register

    def register(self, type: str, action: str, func: Handler) -> None:
        if not TYPE_PATTERN.fullmatch(type):
            raise ValueError(f"handler type {type!r} is not a name like 'order'")
        if not ACTION_PATTERN.fullmatch(action):
            raise ValueError(f"handler action {action!r} is not a name or dotted path")
        if (type, action) in self._handlers:
            raise ValueError(f"a handler for '{type}.{action}' is already registered")
        self._handlers[type, action] = func

    def lookup(self, type: str, action: str) -> Handler | None:
        return self._handlers.get((type, action))

    def names(self) -> list[str]:
        return sorted(f"{type}.{action}" for type, action in self._handlers)
