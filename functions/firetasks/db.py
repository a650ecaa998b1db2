"""The Firestore client the processor and the handlers share, made once per database."""

from __future__ import annotations

import functools

import firebase_admin
from google.cloud import firestore

DEFAULT_DATABASE = "(default)"


@functools.cache
def client(database: str = DEFAULT_DATABASE) -> firestore.Client:
    """A client for the app's project.

    `google.cloud.firestore.Client` rather than `firebase_admin.firestore.client()`: it honours
    FIRESTORE_EMULATOR_HOST without Application Default Credentials, which the Functions emulator
    does not provide, and in production it finds the same credentials as the Admin SDK.
    """
    try:
        app = firebase_admin.get_app()
    except ValueError:
        app = firebase_admin.initialize_app()
    return firestore.Client(project=app.project_id, database=database)
