"""A customer's live view of one parent's tasks: `/<parent_alias>/<id>` under the dashboard function
(the shop's `/orders/<orderId>`), mounted when the dashboard is created with `customer_view=True`.

A static page whose script (web/customer.js, bundled with the `firebase` npm package into
customer_static/customer.js by `make web`) signs the customer in with Firebase Auth and follows the
parent's tasks with Firestore snapshot listeners, under the project's security rules: the parent's
owner may read its tasks, anyone else is denied. Nothing is read through the Admin SDK here; the
function only serves the files and the client configuration (`customer/config.json`), which names
the parent collection (the queue's parent_alias) and the tasks collection (its first).
"""

from __future__ import annotations

import os
from pathlib import Path

import flask

from firetasks import db
from firetasks.access import content_security_policy, secured
from firetasks.config import TaskQueue

STATIC = Path(__file__).with_name("customer_static")
ASSETS = {"customer.js": "text/javascript; charset=utf-8",
          "customer.css": "text/css; charset=utf-8"}
PREFIX = "customer"  # the page's files and configuration: /customer/<file>
RESERVED = {PREFIX, "api"}  # the dashboard's own first path segments: no parent collection's
FIRESTORE = "https://firestore.googleapis.com"


def emulator(variable: str) -> str | None:
    """`http://host:port` of the emulator named by an environment variable, when it is set."""
    host = os.environ.get(variable)
    return f"http://{host}" if host else None


def policy() -> str:
    """The page's Content-Security-Policy: the dashboard's, plus the Firestore origin its
    listeners connect to (the Firestore emulator's when it runs)."""
    return content_security_policy(emulator("FIRESTORE_EMULATOR_HOST") or FIRESTORE)


def parents(queue: TaskQueue) -> str:
    """The collection whose documents' tasks customers follow: the queue's parent_alias."""
    if queue.parent_alias is None:
        raise ValueError("the customer view needs the queue's parent_alias, the collection of the "
                         "documents whose tasks a customer follows: TaskQueue(parent_alias=...)")
    if queue.parent_alias in RESERVED:
        raise ValueError(f"the customer view cannot serve /{queue.parent_alias}/<id>: the "
                         f"dashboard uses /{queue.parent_alias}/ itself")
    return queue.parent_alias


def add_customer_view(app: flask.Flask, queue: TaskQueue) -> None:
    """Serve the page at `/<parent_alias>/<id>`, its files at `/customer/<file>`."""
    collection = parents(queue)

    def served(response: flask.Response) -> flask.Response:
        response.headers["Content-Security-Policy"] = policy()
        return secured(response)

    @app.get(f"/{collection}/<parent_id>")
    def customer_page(parent_id: str) -> flask.Response:
        return served(flask.Response((STATIC / "index.html").read_bytes(),
                                     content_type="text/html; charset=utf-8"))

    @app.get(f"/{PREFIX}/<asset>")
    def customer_asset(asset: str) -> flask.Response:
        if asset not in ASSETS:
            response = flask.jsonify({"error": f"no such file: {asset}"})
            response.status_code = 404
            return response
        return served(flask.Response((STATIC / asset).read_bytes(), content_type=ASSETS[asset]))

    @app.get(f"/{PREFIX}/config.json")
    def customer_config() -> flask.Response:
        """What the Firebase JS SDK needs: the project, and the emulators when they run."""
        project = db.app().project_id
        firestore_host = os.environ.get("FIRESTORE_EMULATOR_HOST")
        firestore_emulator = None
        if firestore_host:
            host, _, port = firestore_host.rpartition(":")
            firestore_emulator = {"host": host, "port": int(port)}
        return served(flask.jsonify({
            "apiKey": os.environ.get("FIRETASKS_WEB_API_KEY", "emulator-api-key"),
            "projectId": project,
            "authDomain": f"{project}.firebaseapp.com",
            "databaseId": queue.database,
            "parents": collection,
            "collection": queue.collections[0],
            "authEmulator": emulator("FIREBASE_AUTH_EMULATOR_HOST"),
            "firestoreEmulator": firestore_emulator,
        }))
