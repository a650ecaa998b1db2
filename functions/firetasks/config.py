"""One queue's configuration: where its tasks live, who handles them, how long an attempt may run,
how operators name a parent, and who may operate. The processor and its triggers, the sweeper,
the queries, the dashboard and the CLI all take it; the library holds no collection names."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from firetasks.db import DEFAULT_DATABASE
from firetasks.registry import HandlerRegistry
from firetasks.task import DEFAULT_COLLECTIONS

DEFAULT_TIMEOUT_SEC = 300
LEASE_MARGIN = datetime.timedelta(seconds=60)  # the platform's own slack beyond the timeout
_COLLECTION_ID = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class TaskQueue:
    """>>> queue = TaskQueue(registry, collections=("tasks", "jobs"), parent_alias="orders")"""

    registry: HandlerRegistry = field(default_factory=HandlerRegistry)
    """The handlers, by `type.action`."""
    collections: tuple[str, ...] = DEFAULT_COLLECTIONS
    """The ids of the task subcollections: `{parent}/{parentId}/<id>/{taskId}` for each. Every
    trigger watches one of them; the sweeper, stats and the dashboard cover all."""
    database: str = DEFAULT_DATABASE
    """The Firestore database the tasks live in."""
    timeout_sec: int = DEFAULT_TIMEOUT_SEC
    """The processing functions' timeout; an attempt's lease is this plus LEASE_MARGIN, unless
    its handler sets a `lease` of its own."""
    parent_alias: str | None = None
    """The collection a bare parent id names for operators (`orders`: `o-123` is
    `orders/o-123`); without it operators give document paths."""
    admin_claim: str = "admin"
    """The custom claim (`true`) that makes a Firebase Auth user an operator."""

    def __post_init__(self) -> None:
        if not self.collections:
            raise ValueError("a TaskQueue needs at least one tasks collection id")
        for name in (*self.collections, self.parent_alias or "x"):
            if not _COLLECTION_ID.fullmatch(name):
                raise ValueError(f"{name!r} is not a collection id like 'tasks'")
        if self.timeout_sec < 1:
            raise ValueError("timeout_sec must be at least 1")

    @property
    def lease(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.timeout_sec) + LEASE_MARGIN

    def lease_of(self, type: str, action: str) -> datetime.timedelta:
        """How long an attempt of the handler may run before the sweeper takes it for crashed:
        its own `lease`, else the queue's."""
        registration = self.registry.lookup(type, action)
        return (registration and registration.lease) or self.lease

    def document(self, collection: str | None = None) -> str:
        """The trigger's path pattern for the tasks of `collection` (the first by default) under
        a document of any top-level collection."""
        collection = collection or self.collections[0]
        if collection not in self.collections:
            raise ValueError(f"{collection!r} is not one of this queue's collections "
                             f"{self.collections}: add it to TaskQueue(collections=...)")
        return f"{{parentCollection}}/{{parentId}}/{collection}/{{taskId}}"
