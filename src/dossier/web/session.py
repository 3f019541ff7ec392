"""Dashboard sessions: a signed cookie opened by signing in with an API key, and CSRF tokens.

The cookie holds the id of the API key that opened the session (never the key), a CSRF token, the expiry and
at most one flash message, signed with HMAC-SHA256. Every request checks the key is still live, so revoking
it ends its sessions. Forms carry the CSRF token in a hidden field; htmx requests send it in a header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response

COOKIE = "dossier_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(Exception):
    """No valid session: the dashboard sends the browser to the sign-in page."""


class CsrfRefused(Exception):
    """A form without the session's CSRF token (forged, or from a page of an earlier session)."""


@dataclass
class SessionData:
    """What the cookie carries."""

    key_id: str | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    expires: float = 0.0
    flash: tuple[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"k": self.key_id, "c": self.csrf, "e": self.expires, "f": list(self.flash or []) or None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionData:
        flash = data.get("f")
        return cls(
            key_id=data.get("k"),
            csrf=str(data.get("c") or secrets.token_urlsafe(24)),
            expires=float(data.get("e") or 0),
            flash=(str(flash[0]), str(flash[1])) if isinstance(flash, list) and len(flash) == 2 else None,
        )


class SessionCodec:
    """Signs and verifies session cookies with one key."""

    def __init__(self, secret: str | None) -> None:
        self._key = (secret or secrets.token_urlsafe(48)).encode("utf-8")

    def _mac(self, body: bytes) -> str:
        digest = hmac.new(self._key, body, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def dumps(self, data: SessionData) -> str:
        body = base64.urlsafe_b64encode(
            json.dumps(data.to_json(), separators=(",", ":")).encode("utf-8")
        ).rstrip(b"=")
        return body.decode("ascii") + "." + self._mac(body)

    def loads(self, value: str | None) -> SessionData | None:
        """The session in a cookie; None when absent, tampered with, or expired."""
        if not value or "." not in value or len(value) > 4096:
            return None
        body, _, mac = value.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(body.encode("ascii", "replace"))):
            return None
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            data = SessionData.from_json(json.loads(raw))
        except (ValueError, TypeError):
            return None
        if data.key_id is not None and data.expires < time.time():
            return None
        return data


def load(request: Request) -> SessionData:
    """This request's session (a fresh, signed-out one when the cookie is missing or not valid)."""
    cached = getattr(request.state, "web_session", None)
    if isinstance(cached, SessionData):
        return cached
    codec: SessionCodec = request.app.state.session_codec
    data = codec.loads(request.cookies.get(COOKIE)) or SessionData()
    request.state.web_session = data
    return data


def save(request: Request, response: Response, data: SessionData) -> None:
    """Write ``data`` as the session cookie of ``response``."""
    codec: SessionCodec = request.app.state.session_codec
    request.state.web_session = data
    max_age = max(0, int(data.expires - time.time())) if data.key_id else None
    response.set_cookie(
        COOKIE,
        codec.dumps(data),
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=_served_over_https(request),
        path="/",
    )


def _served_over_https(request: Request) -> bool:
    """The request came over https, or the dashboard's public URL is https (behind a TLS proxy)."""
    public_url = getattr(request.app.state.settings, "public_url", None) or ""
    return request.url.scheme == "https" or public_url.startswith("https://")


def sign_in(request: Request, key_id: str, hours: float) -> SessionData:
    """A new session for the key (a new CSRF token: nothing from before sign-in carries over)."""
    return SessionData(key_id=key_id, expires=time.time() + hours * 3600)


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a state-changing request whose token is not the session's."""
    expected = load(request).csrf
    token = submitted or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")):
        raise CsrfRefused()
