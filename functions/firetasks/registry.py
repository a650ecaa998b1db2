"""The table of handlers, keyed by a task's `type` and `action`, each with its retry policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firetasks.retry import DEFAULT_RETRY, RetryPolicy
from firetasks.task import ACTION_PATTERN, TYPE_PATTERN, Task

Handler = Callable[[Task], Any]


@dataclass(frozen=True)
class Registration:
    handler: Handler
    retry: RetryPolicy


class HandlerRegistry:
    """Maps `type.action` to a handler; `action` may be dotted (`mutations.initiateProcessing`).

    >>> registry = HandlerRegistry()
    >>> @registry.handler("order", "sendConfirmationEmail", retry=RetryPolicy(max_attempts=3))
    ... def send_confirmation_email(task: Task) -> None: ...
    """

    def __init__(self) -> None:
        self._registrations: dict[tuple[str, str], Registration] = {}

    def handler(
        self, type: str, action: str, *, retry: RetryPolicy = DEFAULT_RETRY
    ) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            self.register(type, action, func, retry=retry)
            return func

        return register

    def register(
        self, type: str, action: str, func: Handler, *, retry: RetryPolicy = DEFAULT_RETRY
    ) -> None:
        if not TYPE_PATTERN.fullmatch(type):
            raise ValueError(f"handler type {type!r} is not a name like 'order'")
        if not ACTION_PATTERN.fullmatch(action):
            raise ValueError(f"handler action {action!r} is not a name or dotted path")
        if (type, action) in self._registrations:
            raise ValueError(f"a handler for '{type}.{action}' is already registered")
        self._registrations[type, action] = Registration(func, retry)

    @classmethod
    def combine(cls, *registries: HandlerRegistry) -> HandlerRegistry:
        """One registry serving the handlers of several (a name may appear in only one)."""
        combined = cls()
        for registry in registries:
            for (type, action), registration in registry._registrations.items():
                combined.register(type, action, registration.handler, retry=registration.retry)
        return combined

    def lookup(self, type: str, action: str) -> Registration | None:
        return self._registrations.get((type, action))

    def names(self) -> list[str]:
        return sorted(f"{type}.{action}" for type, action in self._registrations)
