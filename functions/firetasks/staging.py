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
from typing import Any

from google.cloud.firestore import DocumentReference

from firetasks.conditional import Write

MAX_STAGED = 499  # Firestore's 500 writes per batch, less the task's own


class StagedWrites:
    """Writes an atomic handler stages, in order; committed with the task's outcome or not at
    all. The methods mirror a Firestore WriteBatch's."""

    def __init__(self, writes: Iterable[Write] = ()) -> None:
        self._writes: list[Write] = list(writes)

    def create(self, ref: DocumentReference, fields: Mapping[str, Any]) -> DocumentReference:
        """Create the document; the commit (and the attempt) fails if it exists."""
        return self._stage(Write("create", ref, dict(fields)))

    def set(
        self, ref: DocumentReference, fields: Mapping[str, Any], *, merge: bool = False
    ) -> DocumentReference:
        return self._stage(Write("set", ref, dict(fields), merge))

    def update(self, ref: DocumentReference, fields: Mapping[str, Any], *,
               if_version: Any = None) -> DocumentReference:
        """Update fields of the document; the commit (and the attempt) fails if it is missing,
        or with `if_version` (an update time), if it changed since."""
        return self._stage(Write("update", ref, dict(fields), if_version=if_version))

    def delete(self, ref: DocumentReference) -> DocumentReference:
        return self._stage(Write("delete", ref))

    def __iter__(self) -> Iterator[Write]:
        return iter(self._writes)

    def __len__(self) -> int:
        return len(self._writes)

    def _stage(self, write: Write) -> DocumentReference:
        if len(self._writes) >= MAX_STAGED:
            raise ValueError(f"an atomic handler may stage at most {MAX_STAGED} writes (one "
                             "Firestore batch, with the task's own)")
        self._writes.append(write)
        return write.ref
