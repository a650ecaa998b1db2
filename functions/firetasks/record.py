"""A task as read: one version of its document, with typed access to the fields the processor,
the sweeper and operators decide on (after `task.problems` found none wrong)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from google.cloud import firestore
from google.cloud.firestore import DocumentReference, DocumentSnapshot

from firetasks import db
from firetasks.task import HAS_DEPENDENTS, State, is_state


@dataclass(frozen=True)
class TaskRecord:
    ref: DocumentReference
    fields: Mapping[str, Any]  # the document as stored, possibly malformed
    version: Any  # its update time: what a conditional write names
    created: datetime.datetime | None = None  # the document's creation time

    @classmethod
    def from_snapshot(
        cls,
        snapshot: DocumentSnapshot[DocumentReference] | None,
        ref: DocumentReference | None = None,
    ) -> TaskRecord | None:
        """The record of a snapshot, None for a missing (or deleted) document. `ref` replaces the
        snapshot's own reference: a trigger event's snapshots come with a client of their own,
        and the processor writes through the shared one (firetasks.db)."""
        if snapshot is None or not snapshot.exists:
            return None
        created = snapshot.create_time
        return cls(ref or snapshot.reference, snapshot.to_dict() or {}, snapshot.update_time,
                   None if created is None else db.as_version(created))

    def changes(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A write of `fields` conditional on this version, without the deletes of fields it
        lacks: they change nothing, and the client library's encoding of a write costs CPU per
        field (a third of it, in an atomic attempt's: docs/benchmarks.md)."""
        return {name: value for name, value in fields.items()
                if value is not firestore.DELETE_FIELD or name in self.fields}

    @property
    def path(self) -> str:
        return cast(str, self.ref.path)  # google-cloud-firestore leaves it unannotated

    @property
    def state(self) -> State | None:
        """The task's state; None if its `state` field holds none (an invalid document: its
        value as stored is `fields["state"]`)."""
        value = self.fields.get("state")
        return State(value) if is_state(value) else None

    @property
    def type(self) -> str:
        return str(self.fields.get("type"))

    @property
    def action(self) -> str:
        return str(self.fields.get("action"))

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.fields.get("data") or {})

    @property
    def attempts(self) -> int:
        return int(self.fields.get("attempts") or 0)

    @property
    def retry_base(self) -> int:
        """`attempts` when the task was last `scheduled`: its attempt budget counts from here."""
        return int(self.fields.get("retryBase") or 0)

    @property
    def max_attempts(self) -> int | None:
        return self.fields.get("maxAttempts")

    @property
    def run_at(self) -> datetime.datetime | None:
        value = self.fields.get("runAt")
        if not isinstance(value, datetime.datetime):
            return None
        return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)

    @property
    def cancel_requested(self) -> bool:
        return self.fields.get("cancelRequested") is True

    @property
    def may_have_dependents(self) -> bool:
        """Whether a task may name this one in `after` (False only where firetasks knows none
        does: `hasDependents` false)."""
        return self.fields.get(HAS_DEPENDENTS) is not False

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.fields.get("history") or [])

    def describe(self) -> dict[str, Any]:
        """The structured log fields that identify the task."""
        return {
            "taskId": self.ref.id,
            "path": self.path,
            "type": self.fields.get("type"),
            "action": self.fields.get("action"),
            "state": self.fields.get("state"),
            "attempt": self.fields.get("attempts", 0),
        }

