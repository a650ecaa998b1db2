"""Staged writes: how an atomic handler changes Firestore.

An atomic handler (`@registry.handler(..., atomic=True)`) is never claimed. It reads what it likes
and stages its writes in `task.writes`; the processor commits them in one batch with the task's
outcome, conditional on the version of the task that was delivered. So:

- a duplicate, concurrent or stale delivery finds a newer version: its batch fails as a whole,
  and nothing it staged is written;
- a crash before the commit writes nothing: the task stays as it was, and the sweeper's wake-up
  runs it again;
- a failed attempt (the handler raised) commits its `retrying` or `failed` outcome alone.

Each effect happens exactly once, though the handler itself may run more than once. So it must not
make calls whose effects must not repeat (send mail through an API, charge a card): stage a
document that an extension or another task acts on instead, or keep such a handler in claim mode.
One batch holds at most 500 writes, the task's own included.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

MAX_STAGED = 499  # Firestore's 500 writes per batch, less the task's own

Operation = Literal["create", "set", "update", "delete"]


@dataclass(frozen=True)
class StagedWrite:
    operation: Operation
    ref: DocumentReference
    fields: Mapping[str, Any] | None = None
    merge: bool = False
    if_version: Any = None  # an update only if the document is still at this version


class Batch(Protocol):
    """What staged writes are applied to: a Firestore WriteBatch (or the test kit's stand-in)."""

    def create(self, reference: DocumentReference, document_data: dict[str, Any]) -> Any: ...

    def set(
        self, reference: DocumentReference, document_data: dict[str, Any], merge: bool = False
    ) -> Any: ...

    def update(self, reference: DocumentReference, field_updates: dict[str, Any],
               option: Any = None) -> Any: ...

    def delete(self, reference: DocumentReference) -> Any: ...


class StagedWrites:
    """Writes an atomic handler stages, in order; committed with the task's outcome or not at
    all. The methods mirror a Firestore WriteBatch's."""

    def __init__(self, writes: Iterable[StagedWrite] = ()) -> None:
        self._writes: list[StagedWrite] = list(writes)

    def create(self, ref: DocumentReference, fields: Mapping[str, Any]) -> DocumentReference:
        """Create the document; the commit (and the attempt) fails if it exists."""
        return self._stage(StagedWrite("create", ref, dict(fields)))

    def set(
        self, ref: DocumentReference, fields: Mapping[str, Any], *, merge: bool = False
    ) -> DocumentReference:
        return self._stage(StagedWrite("set", ref, dict(fields), merge))

    def update(self, ref: DocumentReference, fields: Mapping[str, Any], *,
               if_version: Any = None) -> DocumentReference:
        """Update fields of the document; the commit (and the attempt) fails if it is missing,
        or with `if_version` (an update time), if it changed since."""
        return self._stage(StagedWrite("update", ref, dict(fields), if_version=if_version))

    def delete(self, ref: DocumentReference) -> DocumentReference:
        return self._stage(StagedWrite("delete", ref))

    def __iter__(self) -> Iterator[StagedWrite]:
        return iter(self._writes)

    def __len__(self) -> int:
        return len(self._writes)

    def apply(self, batch: Batch) -> None:
        for write in self._writes:
            fields = dict(write.fields or {})
            if write.operation == "create":
                batch.create(write.ref, fields)
            elif write.operation == "set":
                batch.set(write.ref, fields, merge=write.merge)
            elif write.operation == "update" and write.if_version is not None:
                batch.update(write.ref, fields, option=firestore.Client.write_option(
                    last_update_time=write.if_version))
            elif write.operation == "update":
                batch.update(write.ref, fields)
            else:
                batch.delete(write.ref)

    def _stage(self, write: StagedWrite) -> DocumentReference:
        if len(self._writes) >= MAX_STAGED:
            raise ValueError(f"an atomic handler may stage at most {MAX_STAGED} writes (one "
                             "Firestore batch, with the task's own)")
        self._writes.append(write)
        return write.ref
