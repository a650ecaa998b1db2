"""Write if unchanged: the one conditional write every part of firetasks uses (the task store, key
slots, rate gates, staged writes, operators' actions), and the one backoff for transient errors.

A write names the version of the document it read (its update time): of several writers of one
version exactly one wins, and the others learn that they lost, never a transaction's abort. The
Firestore emulator (and, less readily, production) aborts transactions that contend on one
document, so contenders could all fail; a conditional write never aborts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore import DocumentReference
from google.cloud.firestore_v1.transforms import Sentinel, _NumericValue, _ValueList

from firetasks import db
from firetasks.update_encoding import add_update

T = TypeVar("T")
TRANSIENT = (exceptions.Aborted, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded,
             exceptions.InternalServerError, exceptions.TooManyRequests)
LOST = (exceptions.FailedPrecondition, exceptions.NotFound, exceptions.Conflict)  # a race lost
ATTEMPTS = 6
BACKOFF = 0.05  # seconds; doubled per attempt, fully jittered so contenders spread out
MAX_BATCH_WRITES = 500  # Firestore's limit on the writes of one batch

Operation = Literal["create", "set", "update", "delete"]
SLEEP: ContextVar[Callable[[float], None]] = ContextVar("sleep", default=time.sleep)  # the kit's
# fake clock, in MemoryQueue


@dataclass(frozen=True)
class Write:
    """One write of a batch. `if_version`: only if the document is still at this version (an
    update or a delete); a create applies only if the document does not exist."""

    operation: Operation
    ref: DocumentReference
    fields: Mapping[str, Any] | None = None
    merge: bool = False
    if_version: Any = None


def with_backoff(call: Callable[[], T]) -> T:
    """`call()`, tried again after a transient error, ATTEMPTS times in all."""
    for attempt in range(ATTEMPTS - 1):
        try:
            return call()
        except TRANSIENT:
            SLEEP.get()(random.uniform(0, BACKOFF * 2 ** attempt))
    return call()


def unchanged_since(version: Any) -> Any:
    """A precondition: the document's update time is still `version`."""
    return firestore.Client.write_option(last_update_time=version)


def apply(batch: Any, writes: Sequence[Write]) -> None:
    """Add `writes` to a Firestore WriteBatch."""
    for write in writes:
        fields = dict(write.fields or {})
        option = None if write.if_version is None else unchanged_since(write.if_version)
        if write.operation == "create":
            batch.create(write.ref, fields)
        elif write.operation == "set":
            batch.set(write.ref, fields, merge=write.merge)
        elif write.operation == "update":  # encoded here, if it can be (firetasks.update_encoding)
            if not add_update(batch, write.ref, fields, option):
                batch.update(write.ref, fields, option=option)
        else:
            batch.delete(write.ref, option=option)


def commit(writes: Sequence[Write]) -> list[Any] | None:
    """Apply `writes` in one batch: the new versions, in their order, or None if a precondition
    failed (another write came first, a document to update is gone, one to create exists), and
    nothing was written. Transient errors are retried."""
    if len(writes) > MAX_BATCH_WRITES:
        raise ValueError(f"{len(writes)} writes do not fit one atomic batch (at most "
                         f"{MAX_BATCH_WRITES})")
    if not writes:
        return []

    tries = []

    def run() -> list[Any]:
        tries.append(1)
        batch = db.client_of(writes[0].ref).batch()
        apply(batch, writes)
        # retry=None: the client library retries UNAVAILABLE on its own, below this, and a commit
        # whose answer it lost would come back as our precondition failing on its second try
        # (read as a race lost), never reaching `landed`. Here is the one retry of a commit.
        return [result.update_time for result in batch.commit(retry=None)]

    try:
        return with_backoff(run)
    except LOST:
        return landed(writes) if len(tries) > 1 else None


def landed(writes: Sequence[Write]) -> list[Any] | None:
    """After a transient error, a retry of `writes` lost its precondition: the first try may have
    applied (Firestore can commit and still answer DEADLINE_EXCEEDED or UNAVAILABLE), changing
    the very version the retry named. The versions of `writes` if the documents are as they left
    them, all at one update time (a batch's commit time); None if another write came first.
    (A write that landed after ours and left our fields as we wrote them passes for ours.)"""
    snapshots = read_all(db.client_of(writes[0].ref), [write.ref for write in writes])
    if not all(_as_written(snapshot, write) for snapshot, write in zip(snapshots, writes,
                                                                       strict=True)):
        return None
    versions = [snapshot.update_time for snapshot in snapshots if snapshot.exists]
    return versions if len(set(versions)) <= 1 else None


def _as_written(snapshot: Any, write: Write) -> bool:
    """Whether the document read as `snapshot` holds what `write` wrote."""
    if write.operation == "delete" or not snapshot.exists:
        return write.operation == "delete" and not snapshot.exists
    stored = snapshot.to_dict() or {}
    return all(_holds(stored, name.split(".") if write.operation == "update" else [name], value)
               for name, value in (write.fields or {}).items())


def _holds(stored: Any, path: list[str], value: Any) -> bool:
    """Whether `stored` has `value` at the field `path` (a sentinel or a transform: any value;
    DELETE_FIELD: none)."""
    for name in path:
        if not isinstance(stored, Mapping) or name not in stored:
            return value is firestore.DELETE_FIELD
        stored = stored[name]
    if isinstance(value, Mapping):
        return all(_holds(stored, [name], inner) for name, inner in value.items())
    return value is not firestore.DELETE_FIELD and (
        isinstance(value, Sentinel | _ValueList | _NumericValue) or stored == value)


def read_all(client: firestore.Client, refs: Sequence[DocumentReference]) -> list[Any]:
    """The snapshots of `refs` (missing documents too), in their order, in one call."""
    if not refs:
        return []
    found = {snapshot.reference.path: snapshot
             for snapshot in with_backoff(lambda: list(client.get_all(list(refs))))}
    return [found[ref.path] for ref in refs]


def write_if_unchanged(ref: DocumentReference, version: Any,
                       fields: Mapping[str, Any]) -> Any | None:
    """Update the document only if it is still at `version`: its new version, or None."""
    versions = commit([Write("update", ref, fields, if_version=version)])
    return None if versions is None else versions[0]


def put_if_unchanged(snapshot: Any, fields: Mapping[str, Any]) -> Any | None:
    """Write `fields` over the document read as `snapshot` (create it, if it did not exist) if
    it is still as read: the new version, or None if another write came first."""
    write = (Write("update", snapshot.reference, fields, if_version=snapshot.update_time)
             if snapshot.exists else Write("create", snapshot.reference, fields))
    versions = commit([write])
    return None if versions is None else versions[0]


def delete_if_unchanged(ref: DocumentReference, version: Any) -> bool:
    """Delete the document only if it is still at `version`: whether it was."""
    return commit([Write("delete", ref, if_version=version)]) is not None
