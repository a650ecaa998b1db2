"""CloudEvents built like the ones Firestore sends a `document.v1.written` trigger.

Used to deliver one write to the processor more than once, or from several threads at once: the
real event bus cannot be told to duplicate a delivery on demand.
"""

from __future__ import annotations

import datetime
import uuid

from cloudevents.http import CloudEvent
from google.cloud.firestore import DocumentSnapshot
from google.cloud.firestore_v1 import _helpers
from google.events.cloud import firestore as events

WRITTEN = "google.cloud.firestore.document.v1.written"


def written_event(
    before: DocumentSnapshot | None, after: DocumentSnapshot | None, *, project: str
) -> CloudEvent:
    snapshot = after or before
    assert snapshot is not None, "an event needs at least one snapshot"
    database = snapshot.reference._client._database
    document = snapshot.reference.path
    data = events.DocumentEventData(value=_document(after), old_value=_document(before))
    attributes = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"//firestore.googleapis.com/projects/{project}/databases/{database}",
        "type": WRITTEN,
        "subject": f"documents/{document}",
        "time": datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/protobuf",
        "location": "us-central1",
        "project": project,
        "database": database,
        "namespace": "(default)",
        "document": document,
    }
    return CloudEvent(attributes, events.DocumentEventData.serialize(data))


def _document(snapshot: DocumentSnapshot | None) -> events.Document | None:
    if snapshot is None or not snapshot.exists:
        return None
    fields = {
        name: events.Value.deserialize(type(value).serialize(value))
        for name, value in _helpers.encode_dict(snapshot.to_dict()).items()
    }
    return events.Document(
        name=snapshot.reference._document_path,
        fields=fields,
        create_time=snapshot.create_time,
        update_time=snapshot.update_time,
    )
