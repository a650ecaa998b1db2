"""Who may operate the queue: Firebase Auth users whose ID token carries the admin claim."""

from __future__ import annotations

import os
from dataclasses import dataclass

from firebase_admin import auth

from firetasks import db
from firetasks.audit import Actor

ADMIN_CLAIM = os.environ.get("FIRETASKS_ADMIN_CLAIM", "admin")


@dataclass
class Denied(Exception):
    status: int  # 401: who are you? 403: not allowed
    message: str


def admin_from_header(authorization: str | None) -> Actor:
    """The admin behind an `Authorization: Bearer <ID token>` header, or Denied."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Denied(401, "sign in: send 'Authorization: Bearer <Firebase ID token>'")
    try:
        claims = auth.verify_id_token(token, app=db.app())
    except (ValueError, auth.InvalidIdTokenError, auth.ExpiredIdTokenError,
            auth.RevokedIdTokenError, auth.CertificateFetchError, auth.UserDisabledError) as exc:
        raise Denied(401, f"sign in again: the token was refused ({type(exc).__name__})") from exc
    if claims.get(ADMIN_CLAIM) is not True:
        raise Denied(403, f"this account lacks the '{ADMIN_CLAIM}' claim that operators need")
    return Actor(uid=claims.get("uid"), email=claims.get("email"), via="dashboard")
