"""Events and the waits for them: `task.wait_for(name, event=..., match={...}, timeout=...)` in a
durable handler (firetasks.steps), and event documents under the task's parent:
`{parent}/events/{eventId} = {name, data, createdAt}`, written by `send_event` (or any server, or a
client where the rules allow it).

A wait is delivered an event by one write, conditional on the version of the task that registered
the wait (`transitions.resume`): the event is saved as the wait's step and the task is due at once.
Of any number of deliverers of one wait, one wins; a wait whose step is saved is never delivered
again. So each wait gets at most one event; that it gets one, whatever the order of the writes:

1. The wait is registered by a write (`transitions.suspend`: `suspended.kind == "wait"`); that
   write's trigger event (its echo) then reads the parent's events and delivers the first that
   matches (`deliver_waiting`, from the processor).
2. An event's trigger reads the parent's registered waits and delivers the event to each that
   matches (`on_event`).

Both are a write followed by a read, of each other's documents. Firestore's reads see every write
committed before them, so if the event's read missed the wait, the wait was registered after it,
so after the event was written: the echo's read, after the registration, sees the event. An event
written before the wait, during it or after it is found by one of the two, or both (and then the
conditional write makes one of them the delivery). A run of the handler that finds a matching event
before it registers the wait takes it at once (`find_event`).

Lost trigger events: a lost echo or a lost event trigger leaves the other (2 above), and the
sweeper reads each event once more after STALE_AFTER (`sweep_events`, by `createdAt` from a mark)
and delivers it to the waits registered by then. A wait whose echo was lost too, registered after
its event's sweep, gets the event at the latest when its timeout wakes it: the handler looks once
more before it takes the timeout. Duplicated trigger events find the wait delivered (its step saved,
its version gone) and write nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, Unpack, cast

from firebase_functions import firestore_fn, logger
from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference
from google.cloud.firestore_v1.field_path import FieldPath

from firetasks import db, transitions
from firetasks.conditional import with_backoff
from firetasks.config import TaskQueue
from firetasks.errors import StepError
from firetasks.record import TaskRecord
from firetasks.registry import EVENT_NAME
from firetasks.store import TaskStore
from firetasks.task import SUSPENDED, State
from firetasks.trigger_options import TaskTriggerOptions

EVENTS = "events"  # the subcollection of a parent that holds its events
SCALARS = (str, int, float, bool)


def step_path(name: str) -> str:
    """The field path of a step's entry in the task (quoted: names may hold dots, dashes)."""
    return str(FieldPath("steps", name).to_api_repr())


def check_event(name: object, data: object, match: object = None) -> None:
    """StepError naming the field, unless `name` is an event's name (`order.approved`), `data` a
    map and `match` (if given) a map of top-level data fields to strings, numbers or booleans."""
    if not isinstance(name, str) or not EVENT_NAME.fullmatch(name):
        raise StepError(f"'event' must be a dotted name like 'order.approved', got {name!r}")
    if not isinstance(data, dict):
        raise StepError(f"an event's 'data' must be a map, got {data!r}")
    if match is not None and not (isinstance(match, dict) and all(
            isinstance(key, str) and isinstance(value, SCALARS)
            for key, value in match.items())):
        raise StepError(f"'match' must map data fields to strings, numbers or booleans, "
                        f"got {match!r}")


def send_event(parent: DocumentReference, name: str, data: Mapping[str, Any] | None = None,
               *, id: str | None = None) -> DocumentReference:
    """Write the event `name` with `data` under `parent` (an order, say): every wait of its tasks
    that matches it gets it. With `id`, a second send of the same id is a no-op. Its ref."""
    ref, fields = event_document(parent, name, data, id)
    with contextlib.suppress(exceptions.AlreadyExists):  # sent already: the same event
        with_backoff(lambda: ref.create(fields))
    return ref


def event_document(parent: DocumentReference, name: str, data: Mapping[str, Any] | None,
                   id: str | None = None) -> tuple[DocumentReference, dict[str, Any]]:
    """The ref and fields of the event `name` with `data` under `parent`, checked (StepError)."""
    fields = {} if data is None else data
    check_event(name, fields)
    events = parent.collection(EVENTS)
    ref: DocumentReference = events.document(id) if id else events.document()
    return ref, {"name": name, "data": dict(fields), "createdAt": firestore.SERVER_TIMESTAMP}


def is_event(path: str) -> bool:
    """Whether `path` is an event document's: `{collection}/{id}/events/{eventId}`."""
    parts = path.split("/")
    return len(parts) == 4 and parts[2] == EVENTS


def matches(event: Mapping[str, Any], name: object, match: object) -> bool:
    """Whether the event document's fields match a wait for `name` with `match`."""
    data = event.get("data")
    return (event.get("name") == name and isinstance(data, dict) and isinstance(match, dict)
            and all(data.get(key) == value for key, value in match.items()))


def find_event(task: DocumentReference, name: str,
               match: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The first event (by `createdAt`, then id) under the task's parent that matches: its id and
    data."""
    parent = task.parent.parent
    if parent is None:
        return None
    query = parent.collection(EVENTS).where(filter=firestore.FieldFilter("name", "==", name))
    for key, value in match.items():
        query = query.where(filter=firestore.FieldFilter(
            FieldPath("data", key).to_api_repr(), "==", value))
    found = [snapshot for snapshot in with_backoff(lambda: list(query.stream()))
             if matches(snapshot.to_dict() or {}, name, match)]
    if not found:
        return None
    first = min(found, key=lambda snapshot: (_created(snapshot.to_dict()), snapshot.id))
    return first.id, dict(first.get("data"))


def waiting(record: TaskRecord) -> dict[str, Any] | None:
    """What a `scheduled` task waits for (its `suspended`), if it waits for an event whose step
    is not saved yet."""
    suspension = record.fields.get(SUSPENDED)
    steps = record.fields.get("steps") or {}
    if (record.state != State.SCHEDULED or not isinstance(suspension, dict)
            or suspension.get("kind") != "wait"):
        return None
    step = steps.get(suspension.get("step")) if isinstance(steps, dict) else None
    return None if isinstance(step, dict) and "finishedAt" in step else suspension


def ended(record: TaskRecord, result: Mapping[str, Any] | None,
          ending: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fields that end the task's wait with `result` (its wait_for's return value) and
    `ending` (how: the event's id, say) and make it due; None if it does not wait."""
    suspension = waiting(record)
    if suspension is None:
        return None
    entry = {"result": None if result is None else dict(result), **ending,
             "startedAt": suspension.get("since"), "until": suspension.get("until"),
             "finishedAt": firestore.SERVER_TIMESTAMP}
    return transitions.resume(record, {step_path(suspension["step"]): entry})


def deliver(record: TaskRecord, event_id: str, data: Mapping[str, Any], store: TaskStore) -> bool:
    """Save the event as the wait's step and make the task due, if it is still at the version
    read: whether this call delivered it."""
    fields = ended(record, data, {"event": event_id})
    return fields is not None and store.write_if_unchanged(
        record.ref, record.version, fields) is not None


def deliver_waiting(record: TaskRecord, store: TaskStore) -> bool:
    """The echo of a wait's registration (1 in the module docstring): deliver the first event
    that matches, if there is one; whether it was delivered."""
    suspension = waiting(record)
    if suspension is None:
        return False
    found = find_event(record.ref, suspension.get("event", ""), suspension.get("match") or {})
    return found is not None and deliver(record, *found, store)


def on_event(event: DocumentReference, fields: Mapping[str, Any], collections: Sequence[str],
             store: TaskStore) -> int:
    """An event's trigger (2 in the module docstring): deliver it to every registered wait of
    its parent's tasks that matches; how many."""
    parent = event.parent.parent
    try:
        check_event(fields.get("name"), fields.get("data"))
    except StepError:
        return 0
    delivered = 0
    for collection in collections if parent is not None else ():
        query = (parent.collection(collection)
                 .where(filter=firestore.FieldFilter("state", "==", State.SCHEDULED.value))
                 .where(filter=firestore.FieldFilter(f"{SUSPENDED}.event", "==", fields["name"])))
        for snapshot in with_backoff(lambda: list(query.stream())):  # noqa: B023
            record = TaskRecord.from_snapshot(snapshot)
            suspension = waiting(record) if record else None
            if record and suspension and matches(fields, suspension.get("event"),
                                                 suspension.get("match")):
                delivered += deliver(record, event.id, fields["data"], store)
    return delivered


def sweep_events(client: firestore.Client, store: TaskStore, collections: Sequence[str],
                 before: datetime.datetime, in_time: Callable[[], bool]) -> int:
    """Deliver each event created before `before`, once, after the sweeper's mark (in the marks
    document EVENTS), while `in_time()`; how many deliveries were made."""
    mark = store.marks(client, EVENTS).get("events") or {}
    query = client.collection_group(EVENTS).where(
        filter=firestore.FieldFilter("createdAt", "<", before))
    if "at" in mark:
        query = query.where(filter=firestore.FieldFilter("createdAt", ">=", mark["at"]))
    snapshots = sorted(with_backoff(lambda: list(query.stream())),
                       key=lambda snapshot: (_created(snapshot.to_dict()), snapshot.reference.path))
    delivered = 0
    for snapshot in snapshots:
        key = (snapshot.get("createdAt"), snapshot.reference.path)
        if "at" in mark and key <= (mark["at"], mark["path"]):
            continue
        if not in_time():
            break
        delivered += on_event(snapshot.reference, snapshot.to_dict() or {}, collections, store)
        mark = {"at": key[0], "path": key[1]}
    if mark:
        store.save_marks(client, EVENTS, {"events": mark})
    return delivered


def describe_suspension(suspension: Mapping[str, Any]) -> str:
    """What a suspended task sleeps or waits for, in words: the dashboard's and the CLI's."""
    waits = (f" for {suspension.get('event')} matching {json.dumps(suspension.get('match') or {})}"
             if suspension.get("kind") == "wait" else "")
    return (f"{suspension.get('kind')} '{suspension.get('step')}'{waits} "
            f"until {suspension.get('until')} (since {suspension.get('since')})")


def _created(fields: Mapping[str, Any] | None) -> datetime.datetime:
    created = (fields or {}).get("createdAt")
    return created if isinstance(created, datetime.datetime) else datetime.datetime.max.replace(
        tzinfo=datetime.UTC)


class EventSink(Protocol):
    """What an event's trigger delivers through: a TaskProcessor."""

    queue: TaskQueue
    store: TaskStore


def event_trigger(processor: EventSink, *, name: str = "deliver_events",
                  **options: Unpack[TaskTriggerOptions]) -> Callable[[Any], None]:
    """A Cloud Function named `name` that delivers each event written under a document of any
    top-level collection (`{parent}/events/{eventId}`) to the waits of its tasks (`on_event`).
    Assign it to a module-level variable of the same name in main.py."""

    def trigger(event: Any) -> None:
        after = event.data.after
        if after is None or not after.exists:
            return
        ref = db.client(event.database).document(event.document)
        fields = after.to_dict() or {}
        delivered = on_event(ref, fields, processor.queue.collections, processor.store)
        logger.info("event delivered", event=ref.path, name=fields.get("name"),
                    waits=delivered)

    trigger.__name__ = trigger.__qualname__ = name
    document = f"{{parentCollection}}/{{parentId}}/{EVENTS}/{{eventId}}"
    return cast(Callable[[Any], None],
                firestore_fn.on_document_written(document=document, **options)(trigger))
