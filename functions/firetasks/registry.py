"""The table of handlers, keyed by a task's `type` and `action`, each with its retry policy."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from firetasks.handler import Task
from firetasks.limits import Limits, Rate
from firetasks.retention import DEFAULT_RETENTION, RetentionPolicy
from firetasks.retry import DEFAULT_RETRY, RetryPolicy
from firetasks.schedule import Schedule
from firetasks.task import ACTION_PATTERN, TYPE_PATTERN, handler_name

EVENT_NAME = ACTION_PATTERN  # an event's name: dotted names, `order.approved`

Handler = Callable[[Task], Any]
H = TypeVar("H", bound=Handler)
"""A decorated handler keeps its own type (`-> dict[str, Any]`, say): the decorators return it."""
SEARCHABLE_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
"""A searchable data field: a top-level field of `data` named as in a field path, unquoted."""


@dataclass(frozen=True)
class ClientAccess:
    """Lets client SDKs (web, mobile) create a handler's tasks, under the security rules that
    `firetasks rules` writes. Without it, a handler's tasks are created by servers only."""

    once_per_parent: bool = False
    """The task's id must be the action's name, so a parent has at most one such task: a second
    create is refused (e.g. one confirmation mail per order)."""
    data: str = "true"
    """A security-rules expression the task's `data` must satisfy, e.g.
    `data.keys().hasOnly(['orderId'])`."""


@dataclass(frozen=True)
class ClientEvent:
    """Lets client SDKs send the event `name` under a parent they own (`{parent}/events/{id}`), for
    a durable handler's `task.wait_for`, under the rules `firetasks rules` writes."""

    name: str
    once: bool = False
    """The event's id must be its name, so a parent gets it at most once from a client."""
    data: str = "true"
    """A security-rules expression the event's `data` must satisfy."""


@dataclass(frozen=True, kw_only=True)
class Registration:
    handler: Handler
    retry: RetryPolicy
    client: ClientAccess | None = None
    lease: datetime.timedelta | None = None
    """How long an attempt may run before the sweeper takes it for crashed; default: the
    processor's (the function's timeout and a margin). Shorter finds crashes sooner; it must
    exceed the handler's longest run, or a slow attempt is run again beside itself."""
    atomic: bool = False
    """Run without a claim: the handler stages its Firestore writes in `task.writes`, and they
    are committed in one batch with the task's outcome, conditional on the version of the task
    that was delivered. Exactly-once effects at 2 invocations per task, for handlers whose every
    effect is a Firestore write (see firetasks.staging)."""
    retention: RetentionPolicy = DEFAULT_RETENTION
    """How long its finished tasks are kept: their `expireAt` (firetasks.retention)."""
    schedule: Schedule | None = None
    """For a periodic handler: when its tasks are created (firetasks.periodic)."""
    limits: Limits | None = None
    """At most so many attempts at once, starts at most at a rate: its tasks run through a Cloud
    Tasks queue of its own (firetasks.limits)."""
    searchable: tuple[str, ...] = ()
    """Fields of its tasks' `data` that operators may search by (`data.orderId == "o-1"`):
    `firetasks indexes` indexes them, the dashboard and `firetasks list --data` search them."""


class HandlerRegistry:
    """Maps `type.action` to a handler; `action` may be dotted (`mutations.initiateProcessing`).

    >>> registry = HandlerRegistry()
    >>> @registry.handler("order", "sendConfirmationEmail", retry=RetryPolicy(max_attempts=3))
    ... def send_confirmation_email(task: Task) -> None: ...
    """

    def __init__(self) -> None:
        self._registrations: dict[tuple[str, str], Registration] = {}
        self._client_events: dict[str, ClientEvent] = {}

    def handler(
        self,
        type: str,
        action: str,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        client: ClientAccess | bool = False,
        lease: datetime.timedelta | None = None,
        atomic: bool = False,
        retention: RetentionPolicy = DEFAULT_RETENTION,
        concurrency: int | None = None,
        rate: str | Rate | None = None,
        key: Callable[[Task], object] | None = None,
        searchable: Sequence[str] = (),
        shared: bool = False,
    ) -> Callable[[H], H]:
        """Register the decorated function; `client=True` (or a ClientAccess) lets client SDKs
        create its tasks; `atomic=True` commits its staged writes with its outcome;
        `concurrency=5` runs at most 5 of its attempts at once, `rate="10/s"` (or "600/m")
        starts at most that many (firetasks.limits); with `key=lambda task: ...`, both hold
        per value of the key (firetasks.key_slots), or with `shared=True` for the handler as a
        whole, its waiting tasks starting in turn between the key's values
        (firetasks.fair_shares); `searchable=("orderId",)` lets operators
        find its tasks by `data.orderId`."""

        def register(func: H) -> H:
            self.register(type, action, func, retry=retry, client=client, lease=lease,
                          atomic=atomic, retention=retention,
                          limits=Limits.of(concurrency, rate, key, shared), searchable=searchable)
            return func

        return register

    def periodic(
        self,
        type: str,
        action: str,
        *,
        schedule: str,
        timezone: str = "UTC",
        retry: RetryPolicy = DEFAULT_RETRY,
        lease: datetime.timedelta | None = None,
        retention: RetentionPolicy = DEFAULT_RETENTION,
        searchable: Sequence[str] = (),
    ) -> Callable[[H], H]:
        """Register the decorated function as a handler whose tasks a schedule creates, e.g.
        `schedule="every day 06:00", timezone="Europe/Berlin"` or `schedule="0 6 * * *"`
        (firetasks.schedule); `periodic_triggers` deploys one Cloud Scheduler job for each."""
        parsed = Schedule.parse(schedule, timezone)

        def register(func: H) -> H:
            self.register(type, action, func, retry=retry, lease=lease, retention=retention,
                          schedule=parsed, searchable=searchable)
            return func

        return register

    def register(
        self,
        type: str,
        action: str,
        func: Handler,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        client: ClientAccess | bool = False,
        lease: datetime.timedelta | None = None,
        atomic: bool = False,
        retention: RetentionPolicy = DEFAULT_RETENTION,
        schedule: Schedule | None = None,
        limits: Limits | None = None,
        searchable: Sequence[str] = (),
    ) -> None:
        if not TYPE_PATTERN.fullmatch(type):
            raise ValueError(f"handler type {type!r} is not a name like 'order'")
        if not ACTION_PATTERN.fullmatch(action):
            raise ValueError(f"handler action {action!r} is not a name or dotted path")
        if (type, action) in self._registrations:
            raise ValueError(f"a handler for '{type}.{action}' is already registered")
        if atomic and lease is not None:
            raise ValueError(f"'{type}.{action}': an atomic handler takes no lease (it is never "
                             "claimed)")
        if atomic and limits is not None and limits.per_key and limits.concurrency:
            raise ValueError(f"'{type}.{action}': concurrency per key needs a claim (an atomic "
                             "attempt is never marked running, so a second could start beside "
                             "it): drop atomic=True")
        access = ClientAccess() if client is True else client or None
        unbalanced = unbalanced_expression(access.data) if access else None
        if access and unbalanced:
            raise ValueError(f"'{type}.{action}': the client rules expression {access.data!r} "
                             f"{unbalanced}")
        self._registrations[type, action] = Registration(
            handler=func, retry=retry, client=access, lease=lease, atomic=atomic,
            retention=retention, schedule=schedule, limits=limits,
            searchable=searchable_fields(f"{type}.{action}", searchable))

    @classmethod
    def combine(cls, *registries: HandlerRegistry) -> HandlerRegistry:
        """One registry serving the handlers of several (a name may appear in only one)."""
        combined = cls()
        for registry in registries:
            for (type, action), registration in registry._registrations.items():
                if (type, action) in combined._registrations:
                    raise ValueError(f"a handler for '{type}.{action}' is already registered")
                combined._registrations[type, action] = registration
            for event in registry.client_events():
                combined.client_event(event.name, once=event.once, data=event.data)
        return combined

    def client_event(self, name: str, *, once: bool = False, data: str = "true") -> None:
        """Let client SDKs send the event `name` under a parent they own (firetasks.events):
        `once`, at most once per parent; `data`, a rules expression its data must satisfy."""
        if not EVENT_NAME.fullmatch(name) or name in self._client_events:
            raise ValueError(f"client event {name!r}: a dotted name like 'order.approved', "
                             "declared once")
        unbalanced = unbalanced_expression(data)
        if unbalanced:
            raise ValueError(f"client event {name!r}: the rules expression {data!r} {unbalanced}")
        self._client_events[name] = ClientEvent(name, once, data)

    def client_events(self) -> list[ClientEvent]:
        """The events client SDKs may send, by name."""
        return [self._client_events[name] for name in sorted(self._client_events)]

    def lookup(self, type: str, action: str) -> Registration | None:
        return self._registrations.get((type, action))

    def retention(self, type: str, action: str) -> RetentionPolicy:
        """How long the handler's finished tasks are kept (the default for an unknown one)."""
        registration = self.lookup(type, action)
        return registration.retention if registration else DEFAULT_RETENTION

    def shortest_retention(self, state: str) -> datetime.timedelta | None:
        """The shortest time any handler (or the default) keeps a finished `state` task; None if
        all keep it for ever."""
        kept = [policy.kept(state) for policy in [
            *(registration.retention for registration in self._registrations.values()),
            DEFAULT_RETENTION]]
        return min((k for k in kept if k is not None), default=None)

    def names(self) -> list[str]:
        return sorted(handler_name(type, action) for type, action in self._registrations)

    def client_creatable(self) -> list[tuple[str, str, ClientAccess]]:
        """The handlers whose tasks client SDKs may create, by name."""
        return sorted((type, action, registration.client)
                      for (type, action), registration in self._registrations.items()
                      if registration.client is not None)

    def limited(self) -> list[tuple[str, str, Limits]]:
        """The handlers with limits, and their limits, by name."""
        return sorted(((type, action, registration.limits)
                       for (type, action), registration in self._registrations.items()
                       if registration.limits is not None), key=lambda found: found[:2])

    def searchable(self) -> dict[str, list[str]]:
        """Each searchable data field (by name) and the handlers that declare it."""
        found: dict[str, list[str]] = {}
        for (type, action), registration in sorted(self._registrations.items()):
            for field in registration.searchable:
                found.setdefault(field, []).append(handler_name(type, action))
        return dict(sorted(found.items()))

    def schedules(self) -> list[tuple[str, str, Schedule]]:
        """The periodic handlers and their schedules, by name."""
        return sorted(((type, action, registration.schedule)
                       for (type, action), registration in self._registrations.items()
                       if registration.schedule is not None), key=lambda found: found[:2])


def searchable_fields(name: str, fields: Sequence[str]) -> tuple[str, ...]:
    """The handler `name`'s searchable data fields, each once; ValueError for anything but a
    sequence of field names (a bare string, `searchable=("orderId")`, is the usual slip)."""
    if isinstance(fields, str):
        raise ValueError(f"'{name}': searchable takes a tuple of field names, like "
                         f"searchable=({fields!r},), not the string {fields!r}")
    for field in fields:
        if not (isinstance(field, str) and SEARCHABLE_FIELD.fullmatch(field)) or (
                field.startswith("__") and field.endswith("__")):
            raise ValueError(f"'{name}': searchable field {field!r} is not a field name like "
                             "'orderId' (letters, digits and _, not starting with a digit, at "
                             "most 100; a top-level field of the task's data)")
    return tuple(dict.fromkeys(fields))


_CLOSING = {"(": ")", "[": "]", "{": "}"}


def unbalanced_expression(expression: str) -> str | None:
    """What is unbalanced in a security-rules expression (its brackets, parentheses, braces and
    quotes, a backslash escaping inside quotes), or None. `firetasks rules` copies a ClientAccess's
    `data` into the rules as written: a slip would break the whole rules file at deploy."""
    opened: list[tuple[str, int]] = []
    quote: tuple[str, int] | None = None
    escaped = False
    for at, char in enumerate(expression):
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote[0]:
                quote = None
        elif char in "'\"":
            quote = (char, at)
        elif char in _CLOSING:
            opened.append((char, at))
        elif char in _CLOSING.values():
            if not opened:
                return f"has an unmatched {char!r} at {at}"
            start, start_at = opened.pop()
            if _CLOSING[start] != char:
                return (f"has {char!r} at {at} where {_CLOSING[start]!r} should close the "
                        f"{start!r} at {start_at}")
    if quote is not None:
        return f"has an unclosed quote {quote[0]} at {quote[1]}"
    if opened:
        char, at = opened[-1]
        return f"has an unclosed {char!r} at {at} (missing {_CLOSING[char]!r})"
    return None
