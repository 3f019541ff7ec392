"""``Idempotency-Key``: a creating POST repeated with the same key gets the first answer and creates nothing.

One mechanism for every surface: an ASGI middleware over the POSTs under the API surfaces (rows, row
batches, jobs, job batches, test events, redeliveries, endpoints...), with one table (``api.models``).

- Keys are per account (the account of the request's API key). A key is 1 to 255 printable ASCII characters.
- The first request with a key reserves it (a row, committed before the route runs). When it answers 2xx,
  the answer (status, body, content type, location) is stored with the key; any other answer frees the key,
  so a failed request can be retried with it. A reservation left by a process that died is freed after 10
  minutes.
- A repeat with the same method, path, query and body within ``idempotency_key_hours`` gets the stored
  answer (with ``Idempotent-Replayed: true``) and the route does not run. The same key with another request
  is a 422; while the first is still running, a 409.
- Keys older than the retention are forgotten (deleted as new keys are written).

The account is resolved by the entry point's ``app.state.idempotency_account`` (this package imports no
domain): a request without a valid key passes through and the route answers 401 as usual.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dossier.api.models import IdempotencyKey
from dossier.api.surfaces import generic_envelope, surface_for
from dossier.db.base import utcnow

log = logging.getLogger("dossier.api")

HEADER = "idempotency-key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY = 255
# A reservation without an answer after this long belongs to a request that died (no request runs this long).
ABANDONED = timedelta(minutes=10)
# Response headers stored and replayed with the body.
_KEPT_HEADERS = frozenset({b"content-type", b"location"})

#: ``(session, request) -> account id or None``: set on ``app.state.idempotency_account`` by the entry point.
AccountResolver = Callable[[AsyncSession, Request], Awaitable[str | None]]


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1")):
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(body)
    return digest.hexdigest()


class IdempotencyKeys:
    """The middleware (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or surface_for(scope["path"]) is None:
            await self.app(scope, receive, send)
            return
        raw_key = next((v for k, v in scope.get("headers", []) if k == HEADER.encode()), None)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        key = raw_key.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY or not all(" " <= ch <= "~" for ch in key):
            await _answer_error(
                request, send, 422, f"Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters"
            )
            return
        # The whole body, read once and handed to the route again.
        chunks: list[bytes] = []
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except HTTPException as exc:  # the body-size limit: let the route render it
            error = exc

            async def refuse() -> Message:
                raise error

            await self.app(scope, refuse, send)
            return
        body = b"".join(chunks)
        replay_sent = False

        async def replay() -> Message:
            nonlocal replay_sent
            if replay_sent:
                return {"type": "http.disconnect"}
            replay_sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        state = scope["app"].state
        maker: async_sessionmaker[AsyncSession] = state.sessionmaker
        resolver: AccountResolver | None = getattr(state, "idempotency_account", None)
        settings = state.settings
        if resolver is None:
            await self.app(scope, replay, send)
            return
        async with maker() as session, session.begin():
            account_id = await resolver(session, request)
        if account_id is None:
            await self.app(scope, replay, send)
            return
        fingerprint = _fingerprint(scope, body)
        retention = timedelta(hours=settings.idempotency_key_hours)
        stored: tuple[str, int | None, dict[str, Any] | None, str | None] | None = None
        try:
            async with maker() as session, session.begin():
                now = utcnow()
                await session.execute(
                    delete(IdempotencyKey).where(IdempotencyKey.created_at < now - retention)
                )
                found = await session.scalar(
                    select(IdempotencyKey).where(
                        IdempotencyKey.account_id == account_id, IdempotencyKey.key == key
                    )
                )
                if found is not None and found.status is None and found.created_at < now - ABANDONED:
                    # Reserved by a request whose process died before it answered: the key is free again.
                    await session.delete(found)
                    await session.flush()
                    found = None
                if found is None:
                    session.add(
                        IdempotencyKey(
                            account_id=account_id, key=key, fingerprint=fingerprint, created_at=now
                        )
                    )
                else:
                    stored = (found.fingerprint, found.status, found.headers, found.body)
        except IntegrityError:
            await _answer_error(request, send, 409, "a request with this Idempotency-Key is being processed")
            return
        if stored is not None:
            fingerprint_was, status, headers, stored_body = stored
            if fingerprint_was != fingerprint:
                await _answer_error(
                    request,
                    send,
                    422,
                    "this Idempotency-Key was used with another request (method, path or body); "
                    "use a new key for a new request",
                )
            elif status is None:
                await _answer_error(
                    request, send, 409, "a request with this Idempotency-Key is being processed"
                )
            else:
                await _send(send, status, headers or {}, (stored_body or "").encode("utf-8"), replayed=True)
            return
        await self._run_and_store(scope, replay, send, maker, account_id, key)

    async def _run_and_store(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        maker: async_sessionmaker[AsyncSession],
        account_id: str,
        key: str,
    ) -> None:
        status = 0
        headers: dict[str, str] = {}
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() in _KEPT_HEADERS:
                        headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        stored = False
        try:
            await self.app(scope, receive, capture)
            body = b"".join(parts)
            if 200 <= status < 300:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
                if text is not None:
                    async with maker() as session, session.begin():
                        row = await session.get(IdempotencyKey, (account_id, key))
                        if row is not None:
                            row.status, row.headers, row.body = status, headers, text
                            stored = True
        finally:
            if not stored:
                # A failed (or unstorable) request frees its key: a retry with it runs again.
                async with maker() as session, session.begin():
                    await session.execute(
                        delete(IdempotencyKey).where(
                            IdempotencyKey.account_id == account_id,
                            IdempotencyKey.key == key,
                            IdempotencyKey.status.is_(None),
                        )
                    )


async def _send(send: Send, status: int, headers: dict[str, Any], body: bytes, *, replayed: bool) -> None:
    raw = [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    if replayed:
        raw.append((REPLAYED.lower().encode(), b"true"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _answer_error(request: Request, send: Send, status: int, message: str) -> None:
    surface = surface_for(request.url.path)
    envelope = surface.envelope if surface is not None else generic_envelope
    body = json.dumps(envelope(request, status, message, None)).encode("utf-8")
    await _send(send, status, {"content-type": "application/json"}, body, replayed=False)
