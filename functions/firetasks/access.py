"""Who may operate the queue: Firebase Auth users whose ID token carries the admin claim; and the
security headers of everything the dashboard function serves (the dashboard's and the customer
view's pages, files and answers alike)."""

from __future__ import annotations

import os
import urllib.parse

import flask
from firebase_admin import auth

from firetasks import db
from firetasks.audit import Actor
from firetasks.errors import Denied

REFUSED = {  # why a token is refused, and what the page should do
    auth.ExpiredIdTokenError: ("expired", "your session expired: sign in again"),
    auth.RevokedIdTokenError: ("revoked", "your session was ended (signed out everywhere or "
                                          "the password changed): sign in again"),
    auth.UserDisabledError: ("disabled", "this account is disabled"),
}


def admin_from_header(authorization: str | None, claim: str) -> Actor:
    """The admin (a user whose custom `claim` is true) behind an `Authorization: Bearer <ID
    token>` header, or Denied.

    `check_revoked`: a removed operator, or a stolen token whose sessions were revoked, is refused
    at once rather than for up to an hour; so is a disabled account. It costs one Auth lookup.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Denied(401, "sign in: send 'Authorization: Bearer <Firebase ID token>'", "missing")
    try:
        claims = auth.verify_id_token(token, app=db.app(), check_revoked=True)
    except tuple(REFUSED) as exc:
        reason, message = REFUSED[type(exc)]
        raise Denied(401, message, reason) from exc
    except (ValueError, auth.InvalidIdTokenError, auth.CertificateFetchError,
            auth.UserNotFoundError) as exc:
        raise Denied(401, f"sign in again: the token was refused ({type(exc).__name__})",
                     "invalid") from exc
    if claims.get(claim) is not True:
        raise Denied(403, f"this account lacks the '{claim}' claim that operators need")
    return Actor(uid=claims.get("uid"), email=claims.get("email"), via="dashboard")


def auth_origin(service: str) -> str:
    """Where a page signs in (`identitytoolkit`) and refreshes its token (`securetoken`): the
    Auth emulator when it runs, else Firebase Auth."""
    emulator = os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
    if emulator:
        return f"http://{emulator}/{service}.googleapis.com"
    return f"https://{service}.googleapis.com"


def content_security_policy(*connect: str) -> str:
    """No inline script, nothing from elsewhere, no framing; connections only to the function
    itself, Firebase Auth (or its emulator) and the `connect` URLs' origins."""
    origins = {_origin(auth_origin(service)) for service in ("identitytoolkit", "securetoken")}
    origins |= {_origin(url) for url in connect}
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' {' '.join(sorted(origins))}; form-action 'none'; "
            "base-uri 'none'; frame-ancestors 'none'")


def secured(response: flask.Response, *connect: str) -> flask.Response:
    """`response` with the security headers: content_security_policy(*connect) unless it has a
    policy already (a page that connects further sets its own first), no MIME sniffing, no
    referrer, no caching."""
    response.headers.setdefault("Content-Security-Policy", content_security_policy(*connect))
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
