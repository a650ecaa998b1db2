"""The operators' dashboard: a static page and a JSON API, served by one HTTPS function.

Every API call needs an admin's Firebase ID token (firetasks.access). State-changing calls are POSTs
with a JSON body and the `X-Firetasks-CSRF` header, which a cross-site form or a simple request
cannot send, and the token travels in a header, never in a cookie. Task data is shown with
`textContent` only, under a Content-Security-Policy that allows no inline script.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Unpack

import flask
from firebase_functions import https_fn
from google.api_core import exceptions
from google.cloud import firestore
from werkzeug.exceptions import HTTPException

from firetasks import charts, db, operations, pauses, queries
from firetasks.access import admin_from_header, auth_origin, secured
from firetasks.audit import Actor, recent
from firetasks.clock import utc_now
from firetasks.config import TaskQueue
from firetasks.customer import add_customer_view
from firetasks.errors import BadRequest, Denied, IllegalTransition, TaskNotFound
from firetasks.filters import TaskFilter
from firetasks.task import State, is_state
from firetasks.trigger_options import DashboardTriggerOptions
from firetasks.wakeup import CloudTasksWaker

STATIC = Path(__file__).with_name("dashboard_static")
ASSETS = {"": "index.html", "index.html": "index.html", "app.js": "app.js", "app.css": "app.css",
          "charts.js": "charts.js", "graph.js": "graph.js",
          "timeline.js": "timeline.js"}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}
CSRF_HEADER = "X-Firetasks-CSRF"


def create_app(
    queue: TaskQueue, *, customer_view: bool = False, client: firestore.Client | None = None
) -> flask.Flask:
    """The dashboard's page and API; with `customer_view`, also the customers' pages at
    `/<parent_alias>/<id>` (firetasks.customer), which need the queue's parent_alias. `client`:
    the Firestore client to use (the test kit's MemoryClient, say); the queue's database's by
    default."""
    app = flask.Flask(__name__, static_folder=None)
    def firestore_client() -> firestore.Client:
        return client or db.client(queue.database)

    def task_ref(path: object) -> firestore.DocumentReference:
        return queries.task_ref(firestore_client(), queue, _text(path, "path", "a task path"))

    def json_body(*allowed: str) -> dict[str, Any]:
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(map(str, unknown))[:200]}; "
                             f"allowed: {', '.join(allowed)}")
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
            "searchable": list(queue.registry.searchable()),  # data fields: api/tasks?data.f=
        })

    @app.get("/api/stats")
    def stats() -> flask.Response:
        admin()
        return flask.jsonify(queries.stats(firestore_client(), queue, utc_now()))

    @app.get("/api/charts")
    def chart_data() -> flask.Response:
        admin()
        return flask.jsonify(charts.charts(firestore_client(), queue, utc_now(),
                                           flask.request.args.get("handler") or None))

    @app.get("/api/tasks")
    def tasks() -> flask.Response:
        admin()
        params = flask.request.args.to_dict()
        limit = _int(params.pop("limit", "25"), "limit")
        cursor = params.pop("cursor", None)
        page, after = queries.list_tasks(firestore_client(), queue,
                                         TaskFilter.parse(params, queue), limit=limit,
                                         cursor=cursor)
        return flask.jsonify({"tasks": [queries.summary(s, queue.registry) for s in page],
                              "next": after})

    @app.get("/api/task")
    def task() -> flask.Response:
        admin()
        snapshot = task_ref(flask.request.args.get("path")).get()
        if not snapshot.exists:
            return error(404, f"no task at {snapshot.reference.path}")
        return flask.jsonify(queries.detail(snapshot, queue.registry))

    @app.post("/api/retry")
    def retry() -> flask.Response:
        actor = admin()
        body = json_body("path", "state", "version", "maxAttempts")
        max_attempts = operations.check_max_attempts(body.get("maxAttempts"), "maxAttempts")
        ref = task_ref(body.get("path"))
        return flask.jsonify(operations.retry(ref, max_attempts=max_attempts, actor=actor,
                                              **_seen(body)))

    def move(verb: Callable[..., dict[str, Any]]) -> flask.Response:
        """`{path, state?, version?}`: an operator's move of one task (firetasks.operations)."""
        actor = admin()
        body = json_body("path", "state", "version")
        ref = task_ref(body.get("path"))
        return flask.jsonify(verb(ref, actor=actor, **_seen(body)))

    @app.post("/api/cancel")
    def cancel() -> flask.Response:
        return move(operations.cancel)

    @app.post("/api/end-wait")
    def end_wait() -> flask.Response:
        return move(operations.end_wait)

    @app.post("/api/event")
    def send_event() -> flask.Response:
        """`{parent, name, data}` (or `path`, a task's, instead of `parent`: its parent) sends an
        event."""
        actor = admin()
        body = json_body("parent", "path", "name", "data")
        if ("parent" in body) == ("path" in body):
            raise BadRequest("give parent (a document path like orders/o-1) or path (a task's), "
                             "one of them")
        parent = (operations.parent_ref(firestore_client(), body["parent"]) if "parent" in body
                  else operations.parent_of(task_ref(body["path"])))
        return flask.jsonify(operations.send_event(parent, body.get("name"),
                                                   body.get("data", {}), actor=actor))

    @app.post("/api/bulk-retry")
    def bulk_retry() -> flask.Response:
        """`{filters, dryRun: true}` counts the failed tasks that match; `{filters, confirm: n}`
        retries them if there are still exactly n (operations.BULK_LIMIT at most); with
        `maxAttempts`, each with that attempt budget. Everything is checked before counting."""
        actor = admin()
        body = json_body("filters", "dryRun", "confirm", "maxAttempts")
        filters = body.get("filters")
        if filters is None:
            filters = {}
        if not isinstance(filters, dict) or not all(
                isinstance(value, str) for value in filters.values()):
            raise BadRequest("filters must be an object of strings, like api/tasks' parameters")
        where = TaskFilter.parse(filters, queue)
        max_attempts = operations.check_max_attempts(body.get("maxAttempts"), "maxAttempts")
        dry_run, confirm = body.get("dryRun", False), body.get("confirm")
        if not isinstance(dry_run, bool):
            raise BadRequest("dryRun must be true or false")
        if confirm is not None and (not isinstance(confirm, int) or isinstance(confirm, bool)
                                    or confirm < 0):
            raise BadRequest("confirm must be the count a dry run returned")
        if dry_run:
            confirm = None
        elif confirm is None:
            raise BadRequest("send {filters, dryRun: true} first, then {filters, confirm: n}")
        return flask.jsonify(operations.bulk_retry(firestore_client(), queue, where,
                                                   confirm=confirm, actor=actor,
                                                   max_attempts=max_attempts))

    @app.get("/api/pauses")
    def pause_list() -> flask.Response:
        admin()
        return flask.jsonify({"pauses": [pause.as_json()
                                         for pause in pauses.listed(firestore_client())]})

    @app.post("/api/pause")
    def pause() -> flask.Response:
        """`{handler, key?}`: hold the handler's (or key's) tasks until a resume."""
        actor = admin()
        body = json_body("handler", "key")
        return flask.jsonify(operations.pause(firestore_client(), queue, body.get("handler"),
                                              key=body.get("key"), actor=actor))

    @app.post("/api/resume")
    def resume() -> flask.Response:
        """`{handler, key?}`: lift the pause and start the tasks it held, oldest first."""
        actor = admin()
        body = json_body("handler", "key")
        return flask.jsonify(operations.resume(
            firestore_client(), queue, body.get("handler"), key=body.get("key"), actor=actor,
            wake=lambda ref: CloudTasksWaker().wake_at(ref, utc_now())))

    @app.get("/api/audit")
    def audit_log() -> flask.Response:
        admin()
        limit = _int(flask.request.args.get("limit", "50"), "limit")
        if not 1 <= limit <= queries.MAX_PAGE:
            raise BadRequest(f"limit must be from 1 to {queries.MAX_PAGE}")
        return flask.jsonify({"entries": queries.jsonable(recent(firestore_client(), limit))})

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

    @app.errorhandler(exceptions.InvalidArgument)
    def refused(exc: exceptions.InvalidArgument) -> flask.Response:
        return error(400, f"Firestore refused the request: {exc.message}"[:500])

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> flask.Response:
        return error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def failed(exc: Exception) -> flask.Response:  # a bug: JSON still, and logged
        app.logger.exception("dashboard API error")
        return error(500, f"internal error ({type(exc).__name__})")

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
    client: firestore.Client | None = None,
    **options: Unpack[DashboardTriggerOptions],
) -> Callable[[flask.Request], flask.Response]:
    """The HTTPS function serving the dashboard; assign it to `name` in main.py. `customer_view`
    also serves each customer the live view of their parent's tasks at `/<parent_alias>/<id>`
    (the queue needs a parent_alias, and rules that let the parent's owner read its tasks).
    `client`: as create_app's."""
    app = create_app(queue, customer_view=customer_view, client=client)

    def serve(request: flask.Request) -> flask.Response:
        with app.request_context(request.environ):
            return app.full_dispatch_request()

    serve.__name__ = serve.__qualname__ = name
    return https_fn.on_request(**options)(serve)


def _seen(body: dict[str, Any]) -> dict[str, Any]:
    """The state and version the page showed: the action applies only to that task."""
    state, version = body.get("state"), body.get("version")
    if state is not None and not (isinstance(state, str) and is_state(state)):
        raise BadRequest(f"state must be the state shown, one of {', '.join(State)}")
    if version is not None and not isinstance(version, str):
        raise BadRequest("version must be a task version this API returned")
    return {"if_state": state,
            "if_version": None if version is None else queries.parse_version(version)}


def _text(value: object, name: str, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be {what} (a string), not {type(value).__name__}")
    return value


def _int(text: str, name: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", text.strip()):
        raise BadRequest(f"{name} must be a whole number")
    return int(text)
