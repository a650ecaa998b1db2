"""The operators' dashboard: a static page and a JSON API, served by one HTTPS function.

Every API call needs an admin's Firebase ID token (firetasks.access). State-changing calls are POSTs
with a JSON body and the `X-Firetasks-CSRF` header, which a cross-site form or a simple request
cannot send, and the token travels in a header, never in a cookie. Task data is shown with
`textContent` only, under a Content-Security-Policy that allows no inline script.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Unpack

import flask
from firebase_functions import https_fn
from google.api_core import exceptions
from google.cloud import firestore
from werkzeug.exceptions import HTTPException

from firetasks import charts, db, operations, queries
from firetasks.access import admin_from_header, auth_origin, secured
from firetasks.audit import Actor, recent
from firetasks.clock import utc_now
from firetasks.config import TaskQueue
from firetasks.customer import add_customer_view
from firetasks.errors import BadRequest, Denied, IllegalTransition, TaskNotFound
from firetasks.queries import TaskFilter
from firetasks.trigger_options import DashboardTriggerOptions

STATIC = Path(__file__).with_name("dashboard_static")
ASSETS = {"": "index.html", "index.html": "index.html", "app.js": "app.js", "app.css": "app.css",
          "charts.js": "charts.js"}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}
CSRF_HEADER = "X-Firetasks-CSRF"


def create_app(queue: TaskQueue, *, customer_view: bool = False) -> flask.Flask:
    """The dashboard's page and API; with `customer_view`, also the customers' pages at
    `/<parent_alias>/<id>` (firetasks.customer), which need the queue's parent_alias."""
    app = flask.Flask(__name__, static_folder=None)

    def client() -> firestore.Client:
        return db.client(queue.database)

    def task_ref(path: object) -> firestore.DocumentReference:
        return queries.task_ref(client(), queue, str(path or ""))

    def json_body() -> dict[str, Any]:
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def admin() -> Actor:
        actor = admin_from_header(flask.request.headers.get("Authorization"), queue.admin_claim)
        if flask.request.method == "POST":
            if flask.request.headers.get(CSRF_HEADER) != "1":
                raise Denied(403, f"missing the {CSRF_HEADER} header (CSRF protection)")
            if flask.request.mimetype != "application/json":
                raise Denied(415, "send JSON (Content-Type: application/json)")
        return actor

    @app.get("/", defaults={"asset": ""})
    @app.get("/<asset>")
    def static_file(asset: str) -> flask.Response:
        if asset not in ASSETS:
            return error(404, f"no such page: {asset}")
        name = ASSETS[asset]
        return flask.Response((STATIC / name).read_bytes(), content_type=TYPES[Path(name).suffix])

    @app.get("/config.json")
    def config() -> flask.Response:
        return flask.jsonify({
            "authUrl": auth_origin("identitytoolkit"),
            "tokenUrl": auth_origin("securetoken") + "/v1/token",
            "apiKey": os.environ.get("FIRETASKS_WEB_API_KEY", "emulator-api-key"),
            "adminClaim": queue.admin_claim,
            "collections": list(queue.collections),
            "parentAlias": queue.parent_alias,
        })

    @app.get("/api/stats")
    def stats() -> flask.Response:
        admin()
        return flask.jsonify(queries.stats(client(), queue, utc_now()))

    @app.get("/api/charts")
    def chart_data() -> flask.Response:
        admin()
        return flask.jsonify(charts.charts(client(), queue, utc_now(),
                                           flask.request.args.get("handler") or None))

    @app.get("/api/tasks")
    def tasks() -> flask.Response:
        admin()
        params = flask.request.args.to_dict()
        limit = _int(params.pop("limit", "25"), "limit")
        cursor = params.pop("cursor", None)
        page, after = queries.list_tasks(client(), queue, TaskFilter.parse(params, queue),
                                         limit=limit, cursor=cursor)
        return flask.jsonify({"tasks": [queries.summary(s, queue.registry) for s in page],
                              "next": after})

    @app.get("/api/task")
    def task() -> flask.Response:
        admin()
        snapshot = task_ref(flask.request.args.get("path")).get()
        if not snapshot.exists:
            return error(404, f"no task at {snapshot.reference.path}")
        return flask.jsonify(queries.detail(snapshot, queue.registry))

    def seen(body: dict[str, Any]) -> dict[str, Any]:
        """The state and version the page showed: the action applies only to that task."""
        state, version = body.get("state"), body.get("version")
        if state is not None and not isinstance(state, str):
            raise BadRequest("state must be the state shown")
        return {"if_state": state,
                "if_version": None if version is None else queries.parse_version(version)}

    @app.post("/api/retry")
    def retry() -> flask.Response:
        actor = admin()
        body = json_body()
        max_attempts = body.get("maxAttempts")
        if max_attempts is not None and not isinstance(max_attempts, int):
            raise BadRequest("maxAttempts must be a whole number")
        ref = task_ref(body.get("path"))
        return flask.jsonify(operations.retry(ref, max_attempts=max_attempts, actor=actor,
                                              **seen(body)))

    @app.post("/api/cancel")
    def cancel() -> flask.Response:
        actor = admin()
        body = json_body()
        ref = task_ref(body.get("path"))
        return flask.jsonify(operations.cancel(ref, actor=actor, **seen(body)))

    @app.post("/api/bulk-retry")
    def bulk_retry() -> flask.Response:
        """`{filters, dryRun: true}` counts the failed tasks that match; `{filters, confirm: n}`
        retries them if there are still exactly n (operations.BULK_LIMIT at most)."""
        actor = admin()
        body = json_body()
        where = TaskFilter.parse(dict(body.get("filters") or {}), queue)
        confirm = None if body.get("dryRun") else body.get("confirm")
        if not (confirm is None or isinstance(confirm, int)) or confirm is True:
            raise BadRequest("confirm must be the count a dry run returned")
        if confirm is None and not body.get("dryRun"):
            raise BadRequest("send {filters, dryRun: true} first, then {filters, confirm: n}")
        return flask.jsonify(operations.bulk_retry(client(), queue, where, confirm=confirm,
                                                   actor=actor))

    @app.get("/api/audit")
    def audit_log() -> flask.Response:
        admin()
        limit = _int(flask.request.args.get("limit", "50"), "limit")
        if not 1 <= limit <= queries.MAX_PAGE:
            raise BadRequest(f"limit must be from 1 to {queries.MAX_PAGE}")
        return flask.jsonify({"entries": queries.jsonable(recent(client(), limit))})

    @app.errorhandler(Denied)
    def denied(exc: Denied) -> flask.Response:
        return error(exc.status, exc.message, reason=exc.reason)

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> flask.Response:
        return error(400, str(exc))

    @app.errorhandler(TaskNotFound)
    def not_found(exc: TaskNotFound) -> flask.Response:
        return error(404, str(exc))

    @app.errorhandler(IllegalTransition)
    def conflict(exc: IllegalTransition) -> flask.Response:
        return error(409, str(exc))

    @app.errorhandler(exceptions.GoogleAPICallError)
    def unavailable(exc: exceptions.GoogleAPICallError) -> flask.Response:
        return error(503, f"Firestore did not answer in time, try again ({type(exc).__name__})")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> flask.Response:
        return error(exc.code or 500, exc.description or exc.name)

    if customer_view:
        add_customer_view(app, queue)
    app.after_request(secured)  # a customer page keeps the policy it set
    return app


def error(status: int, message: str, **extra: str) -> flask.Response:
    response = flask.jsonify({"error": message, **extra})
    response.status_code = status
    return response


def dashboard_trigger(
    queue: TaskQueue,
    *,
    name: str = "dashboard",
    customer_view: bool = False,
    **options: Unpack[DashboardTriggerOptions],
) -> Callable[[flask.Request], flask.Response]:
    """The HTTPS function serving the dashboard; assign it to `name` in main.py. `customer_view`
    also serves each customer the live view of their parent's tasks at `/<parent_alias>/<id>`
    (the queue needs a parent_alias, and rules that let the parent's owner read its tasks)."""
    app = create_app(queue, customer_view=customer_view)

    def serve(request: flask.Request) -> flask.Response:
        with app.request_context(request.environ):
            return app.full_dispatch_request()

    serve.__name__ = serve.__qualname__ = name
    return https_fn.on_request(**options)(serve)


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise BadRequest(f"{name} must be a whole number") from exc
