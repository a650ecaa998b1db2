"""The customer's live view of an order: `/orders/<orderId>` under the dashboard function.

A static page whose script (web/customer.js, bundled with the `firebase` npm package into
customer_static/customer.js by `make web`) signs the customer in with Firebase Auth and follows the
order's tasks with Firestore snapshot listeners, under the project's security rules: the order's
owner may read its tasks, anyone else is denied. Nothing is read through the Admin SDK here; the
function only serves the files and the client configuration (`customer/config.json`).
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
PARENTS = "orders"  # the collection of the documents whose tasks a customer follows
FIRESTORE = "https://firestore.googleapis.com"


def emulator(variable: str) -> str | None:
    """`http://host:port` of the emulator named by an environment variable, when it is set."""
    host = os.environ.get(variable)
    return f"http://{host}" if host else None


def policy() -> str:
    """The page's Content-Security-Policy: the dashboard's, plus the Firestore origin its
    listeners connect to (the Firestore emulator's when it runs)."""
    return content_security_policy(emulator("FIRESTORE_EMULATOR_HOST") or FIRESTORE)


def add_customer_view(app: flask.Flask, queue: TaskQueue) -> None:
    """Serve the page at `/orders/<orderId>`, its files at `/customer/<file>`."""

    def served(body: bytes, content_type: str) -> flask.Response:
        response = flask.Response(body, content_type=content_type)
        response.headers["Content-Security-Policy"] = policy()
        return secured(response)

    @app.get(f"/{PARENTS}/<order_id>")
    def customer_page(order_id: str) -> flask.Response:
        return served((STATIC / "index.html").read_bytes(), "text/html; charset=utf-8")

    @app.get("/customer/<asset>")
    def customer_asset(asset: str) -> flask.Response:
        if asset not in ASSETS:
            response = flask.jsonify({"error": f"no such file: {asset}"})
            response.status_code = 404
            return response
        return served((STATIC / asset).read_bytes(), ASSETS[asset])

    @app.get("/customer/config.json")
    def customer_config() -> flask.Response:
        """What the Firebase JS SDK needs: the project, and the emulators when they run."""
        project = db.app().project_id
        firestore_host = os.environ.get("FIRESTORE_EMULATOR_HOST")
        firestore_emulator = None
        if firestore_host:
            host, _, port = firestore_host.rpartition(":")
            firestore_emulator = {"host": host, "port": int(port)}
        response = flask.jsonify({
            "apiKey": os.environ.get("FIRETASKS_WEB_API_KEY", "emulator-api-key"),
            "projectId": project,
            "authDomain": f"{project}.firebaseapp.com",
            "databaseId": queue.database,
            "parents": PARENTS,
            "collection": queue.collections[0],
            "authEmulator": emulator("FIREBASE_AUTH_EMULATOR_HOST"),
            "firestoreEmulator": firestore_emulator,
        })
        response.headers["Content-Security-Policy"] = policy()
        return secured(response)
