"""Pauses: an operator stops a handler (or one key of a handler with limits per key) from
starting tasks, during an incident, and resumes it later.

A pause is a document, `firetasksPauses/{id}` = {target, by, since}, where `target` is a handler's
name (`mail.send`) or a `limitKey` (`warehouse.pick:w-7`). The processor checks, before it queues
or runs a due task, whether the task's handler or key is paused. To cost nothing per task of the
handlers that are not paused, each instance keeps the list of paused targets for CACHE_SECONDS
(one query, one read when there are none); only a task whose target is on that list reads its
pause document, so a resume is seen at once and a pause within CACHE_SECONDS. An event that finds
the list past half its life reads it again once its own work is written (`refresh_ahead`): under a
steady stream of events, no task waits for the listing before its handler starts.

A held task stays `scheduled` (or `retrying`), marked `queuedAt` and `pausedFor` (its target):
without a `limitKey`, no hand-over or release of a key picks it. A resume deletes the pause and
then rewrites each held task, oldest first, without `pausedFor`: the write's event starts it as any
new task (through its handler's queue, within its limits).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from firebase_functions import logger
from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks.conditional import with_backoff
from firetasks.config import TaskQueue
from firetasks.errors import BadRequest
from firetasks.key_slots import key_id
from firetasks.record import TaskRecord
from firetasks.store import TaskStore
from firetasks.task import PAUSED_FOR, WAKE_STATES, State, limit_key, split_handler_name
from firetasks.transitions import resume_held

PAUSES_COLLECTION = "firetasksPauses"
CACHE_SECONDS = 5.0  # how long an instance trusts its list of paused targets
MAX_KEY_LENGTH = 500
_NEVER: tuple[float, frozenset[str]] = (-float("inf"), frozenset())  # a list not read yet


def target_of(queue: TaskQueue, handler: object, key: object = None) -> str:
    """The target an operator pauses: a registered handler's name, or with `key`, its `limitKey`
    (only for a handler with limits per key). Raises BadRequest naming the field at fault."""
    if not isinstance(handler, str) or not handler:
        raise BadRequest("handler must be a handler's name, type.action (like mail.send)")
    registration = queue.registry.lookup(*split_handler_name(handler))
    if registration is None:
        raise BadRequest(f"handler: no handler {handler[:100]!r} is registered; known: "
                         f"{', '.join(queue.registry.names())[:300]}")
    if key is None:
        return handler
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise BadRequest(f"key must be a key's value (text of 1 to {MAX_KEY_LENGTH} characters)")
    if registration.limits is None or not registration.limits.per_key:
        raise BadRequest(f"key: {handler} has no limits per key; pause the handler as a whole")
    return limit_key(handler, key)


@dataclass(frozen=True)
class Pause:
    """A pause of `target` (a handler's name, or a `limitKey`): who paused it and since when."""

    target: str
    by: str
    since: Any  # a timestamp

    @property
    def since_text(self) -> str:
        return self.since.isoformat() if hasattr(self.since, "isoformat") else str(self.since)

    def describe(self) -> str:
        """What the dashboard and the CLI say: "paused by care@example.com, since ..."."""
        return f"paused by {self.by}, since {self.since_text}"

    def as_json(self) -> dict[str, str]:
        return {"target": self.target, "by": self.by, "since": self.since_text,
                "reason": self.describe()}


def pause_ref(client: firestore.Client, target: str) -> DocumentReference:
    return client.collection(PAUSES_COLLECTION).document(key_id(target))


def read(client: firestore.Client, target: str) -> Pause | None:
    """The pause of `target`, None if it is not paused."""
    return _pause(with_backoff(pause_ref(client, target).get))


def listed(client: firestore.Client) -> list[Pause]:
    """Every pause of the database, by target."""
    found = with_backoff(lambda: list(client.collection(PAUSES_COLLECTION).stream()))
    return sorted((pause for pause in map(_pause, found) if pause), key=lambda p: p.target)


def _pause(snapshot: Any) -> Pause | None:
    if not snapshot.exists:
        return None
    fields = snapshot.to_dict() or {}
    return Pause(str(fields.get("target")), str(fields.get("by")), fields.get("since"))


class Pauses:
    """What the processor asks: is one of these targets paused? The list of paused targets is
    kept for `ttl` seconds per database; a target on it is confirmed by a read of its pause."""

    def __init__(self, ttl: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def paused(self, client: firestore.Client, targets: Sequence[str]) -> Pause | None:
        """The pause that holds one of `targets`, if any."""
        loaded, paused = self._cache.get(str(client._database), _NEVER)
        if self.clock() - loaded >= self.ttl:
            paused = self._load(client)
        for target in targets:
            if target in paused:
                pause = read(client, target)
                if pause is not None:
                    return pause
                self.forget()  # resumed since the list was read
        return None

    def refresh_ahead(self, client: firestore.Client) -> None:
        """After an event's work: read the list again if it has passed half its life (and is not
        yet stale, which the next check reads anyway), so that the next event finds it fresh. A
        failure is logged and left to the next check: the event's work is written."""
        loaded = self._cache.get(str(client._database), _NEVER)[0]
        if not self.ttl / 2 <= self.clock() - loaded < self.ttl:
            return
        try:
            self._load(client)
        except exceptions.GoogleAPIError as exc:
            logger.warn("could not read the list of paused handlers ahead", error=repr(exc))

    def _load(self, client: firestore.Client) -> frozenset[str]:
        paused = frozenset(pause.target for pause in listed(client))
        self._cache[str(client._database)] = (self.clock(), paused)
        return paused

    def forget(self) -> None:
        """Read the list afresh at the next check."""
        self._cache.clear()


def held(client: firestore.Client, collections: Sequence[str], target: str,
         page: int = 300) -> Iterator[list[TaskRecord]]:
    """Pages of the tasks held by the pause of `target`, oldest first in each collection."""
    for collection in collections:
        query = (client.collection_group(collection)
                 .where(filter=firestore.FieldFilter(PAUSED_FOR, "==", target))
                 .where(filter=firestore.FieldFilter("state", "in", sorted(WAKE_STATES)))
                 .order_by("createdAt").limit(page))
        while True:
            found = with_backoff(lambda: list(query.stream()))  # noqa: B023
            records = [record for record in map(TaskRecord.from_snapshot, found) if record]
            if records:
                yield records
            if len(found) < page:
                break
            query = query.start_after(found[-1])


def release_held(client: firestore.Client, store: TaskStore, collections: Sequence[str],
                 target: str, wake: Callable[[DocumentReference], object] | None = None) -> int:
    """Rewrite the tasks held for `target` without their mark, oldest first, a page a batch (one
    by one where a task changed meanwhile): each write's event starts a `scheduled` one; `wake`
    (a waker's) starts a `retrying` one, else the sweeper does once it is overdue. How many."""
    released = 0
    for page in held(client, collections, target):
        changes = [(record, resume_held(record)) for record in page]
        if store.write_all_if_unchanged(changes):
            written = page
        else:
            written = [record for record, fields in changes
                       if store.write_if_unchanged(record.ref, record.version, fields) is not None]
        released += len(written)
        for record in written:
            if wake is not None and record.state == State.RETRYING:
                wake(record.ref)
    return released
