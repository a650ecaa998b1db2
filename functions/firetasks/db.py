"""The Firestore client the processor and the handlers share, made once per database."""

from __future__ import annotations

import datetime
import functools
from typing import Any, cast

import firebase_admin
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

DEFAULT_DATABASE = "(default)"


def app() -> firebase_admin.App:
    try:
        return firebase_admin.get_app()
    except ValueError:
        return firebase_admin.initialize_app()


@functools.cache
def client(database: str = DEFAULT_DATABASE) -> firestore.Client:
    """A client for the app's project.

    `google.cloud.firestore.Client` rather than `firebase_admin.firestore.client()`: it honours
    FIRESTORE_EMULATOR_HOST without Application Default Credentials, which the Functions emulator
    does not provide, and in production it finds the same credentials as the Admin SDK.
    """
    return firestore.Client(project=app().project_id, database=database)


def as_version(stamp: Any) -> DatetimeWithNanoseconds:
    """A document's version, its update time to the nanosecond, as one type: a `get` and a query
    give it as different ones (api-core's or proto-plus' datetime, or a protobuf Timestamp)."""
    if hasattr(stamp, "ToDatetime"):
        return cast(DatetimeWithNanoseconds, DatetimeWithNanoseconds.from_timestamp_pb(stamp))
    return DatetimeWithNanoseconds(
        *stamp.timetuple()[:6], nanosecond=getattr(stamp, "nanosecond", stamp.microsecond * 1000),
        tzinfo=stamp.tzinfo or datetime.UTC)


def client_of(ref: DocumentReference) -> firestore.Client:
    # DocumentReference has no public accessor for its client (and its attribute no type)
    return cast(firestore.Client, ref._client)


def database_of(ref: DocumentReference) -> str:
    return cast(str, client_of(ref)._database)
