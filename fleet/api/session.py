"""The dashboard's sign-in session: a signed cookie, never the API token itself, and a CSRF token per session.

The cookie holds `<issued-at>.<nonce>.<signature>`, signed with a key derived from FLEET_API_TOKEN: every server
process of a fleet verifies it without shared state, and changing the API token signs every session out. It is
HttpOnly and SameSite=Strict and expires after SESSION_SECONDS. Form posts carry a CSRF token derived from the
session's nonce; a post without the right one is refused and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "fleet_session"
SESSION_SECONDS = 12 * 3600


def _key(api_token: str) -> bytes:
    return hmac.new(api_token.encode(), b"fleet dashboard session v1", hashlib.sha256).digest()


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Session:
    nonce: str
    csrf_token: str


def issue(api_token: str, now: float | None = None) -> str:
    payload = f"{int(now if now is not None else time.time())}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_sign(_key(api_token), payload)}"


def verify(api_token: str, cookie: str | None, now: float | None = None) -> Session | None:
    """The session a cookie proves, or None when it is missing, forged, or expired."""
    if not cookie or not api_token:
        return None
    payload, _, signature = cookie.rpartition(".")
    issued, _, nonce = payload.partition(".")
    key = _key(api_token)
    if not nonce or not hmac.compare_digest(signature, _sign(key, payload)):
        return None
    try:
        age = (now if now is not None else time.time()) - int(issued)
    except ValueError:
        return None
    if not 0 <= age <= SESSION_SECONDS:
        return None
    return Session(nonce, _sign(key, f"csrf.{nonce}"))


def csrf_ok(session: Session | None, submitted: str | None) -> bool:
    return session is not None and bool(submitted) and hmac.compare_digest(session.csrf_token, submitted or "")
