"""What the library app's tests share: the emulators' clients, polling with a deadline, and the
REST calls a client SDK makes (so that the security rules apply to them)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

APP = Path(__file__).resolve().parent.parent  # the library app's Firebase project folder
PROJECT = json.loads((APP / ".firebaserc").read_text())["projects"]["default"]
DOCUMENTS = f"projects/{PROJECT}/databases/(default)/documents"
FINAL_STATES = {"completed", "failed", "cancelled"}
T = TypeVar("T")


def wait_until(probe: Callable[[], T], *, timeout: float = 60.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds. The first
    invocation of each function starts its worker, which takes seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def wait_for_end(job: Any) -> dict[str, Any]:
    """A job's fields once it is completed, failed or cancelled."""

    def ended() -> dict[str, Any] | None:
        fields = job.get().to_dict() or {}
        return fields if fields.get("state") in FINAL_STATES else None

    return wait_until(ended, what=f"{job.path} to end")


def call(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """An HTTP call with a JSON body: the status and the JSON answer (None if it has none)."""
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, None


def function_url(name: str) -> str:
    config = json.loads((APP / "firebase.json").read_text())
    port = config["emulators"]["functions"]["port"]
    return f"http://127.0.0.1:{port}/{PROJECT}/us-central1/{name}"


def _auth(path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    host = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    status, answer = call("POST", f"http://{host}/identitytoolkit.googleapis.com/v1/{path}",
                          body, token)
    assert status == 200, answer
    return answer


def sign_up(email: str, password: str, claims: dict[str, Any] | None = None) -> tuple[str, str]:
    """A new user of the Auth emulator with custom `claims`: their uid and a real
    (emulator-signed) ID token that carries the claims."""
    account = {"email": email, "password": password, "returnSecureToken": True}
    answer = _auth("accounts:signUp?key=demo", account)
    if claims:  # as the Admin SDK's set_custom_user_claims does; `owner` is the emulator's admin
        _auth(f"projects/{PROJECT}/accounts:update",
              {"localId": answer["localId"], "customAttributes": json.dumps(claims)}, "owner")
        answer = _auth("accounts:signInWithPassword?key=demo", account)
    return answer["localId"], answer["idToken"]


def call_function(name: str, data: Any, token: str | None) -> tuple[int, Any]:
    """Call a callable function as the client SDKs do: the status and the answer's JSON."""
    return call("POST", function_url(name), {"data": data}, token)


def _value(python: Any) -> dict[str, Any]:
    if isinstance(python, str):
        return {"stringValue": python}
    if isinstance(python, dict):
        return {"mapValue": {"fields": {k: _value(v) for k, v in python.items()}}}
    raise TypeError(python)


def client_create(path: str, fields: dict[str, Any], token: str) -> int:
    """Create a document as the web SDK does, `createdAt` set to serverTimestamp(): the status."""
    host = os.environ["FIRESTORE_EMULATOR_HOST"]
    write = {
        "update": {"name": f"{DOCUMENTS}/{path}",
                   "fields": {k: _value(v) for k, v in fields.items()}},
        "updateTransforms": [{"fieldPath": "createdAt", "setToServerValue": "REQUEST_TIME"}],
        "currentDocument": {"exists": False},
    }
    status, _ = call("POST", f"http://{host}/v1/{DOCUMENTS}:commit", {"writes": [write]}, token)
    return status


def client_read(path: str, token: str) -> int:
    host = os.environ["FIRESTORE_EMULATOR_HOST"]
    status, _ = call("GET", f"http://{host}/v1/{DOCUMENTS}/{path}", token=token)
    return status
