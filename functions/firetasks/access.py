"""Who may operate the queue: Firebase Auth users whose ID token carries the admin claim."""

from __future__ import annotations

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
