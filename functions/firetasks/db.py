"""The Firestore client the processor and the handlers share, made once per database."""

from __future__ import annotations

import datetime
import functools
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import firebase_admin
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks.errors import BadRequest, Unreachable

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
    check_emulator()
    return firestore.Client(project=app().project_id, database=database)


EMULATOR_HOST = "FIRESTORE_EMULATOR_HOST"
PROBE_SECONDS = 3.0  # how long a connection to the emulator may take before it counts as down


def check_emulator(environ: Mapping[str, str] = os.environ) -> None:
    """Raise Unreachable, naming where it tried, if FIRESTORE_EMULATOR_HOST names an emulator
    that does not take a connection within PROBE_SECONDS: the client would otherwise retry for a
    minute or more in silence. Nothing to check without the variable (production Firestore)."""
    host = environ.get(EMULATOR_HOST)
    if host:
        _probe(host)


@functools.cache
def _probe(host: str) -> None:  # an emulator that answered once is not probed again
    name, _, port = host.rpartition(":")
    try:
        socket.create_connection((name.strip("[]") or "localhost", int(port)),
                                 timeout=PROBE_SECONDS).close()
    except (OSError, ValueError) as exc:
        raise Unreachable(f"the Firestore emulator at {host} ({EMULATOR_HOST}) does not answer "
                          f"({exc}): start it (firebase emulators:start), or unset "
                          f"{EMULATOR_HOST} to use the project's Firestore") from exc


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


def find_project(
    given: str | None = None, *, environ: Mapping[str, str] = os.environ, start: Path | None = None
) -> str:
    """The project to operate, for tools run outside Cloud Functions:
    `given` (a --project flag), else GCLOUD_PROJECT or GOOGLE_CLOUD_PROJECT, else the default
    project of the nearest .firebaserc from `start` (the current directory) upwards. Raises
    BadRequest saying what to set: a client without a project would read another one."""
    if given:
        return given
    for name in ("GCLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        if environ.get(name):
            return environ[name]
    folder = (start or Path.cwd()).resolve()
    for place in (folder, *folder.parents):
        rc = place / ".firebaserc"
        if rc.is_file():
            try:
                project = json.loads(rc.read_text()).get("projects", {}).get("default")
            except (OSError, ValueError, AttributeError) as exc:
                raise BadRequest(f"{rc} is not a readable .firebaserc ({exc}): give --project "
                                  "or set GCLOUD_PROJECT") from exc
            if not isinstance(project, str) or not project:
                raise BadRequest(f"{rc} names no default project: give --project or set "
                                  "GCLOUD_PROJECT")
            return project
    raise BadRequest(f"no project: give --project, set GCLOUD_PROJECT, or run in a Firebase "
                      f"project folder (no .firebaserc in {folder} or above)")
