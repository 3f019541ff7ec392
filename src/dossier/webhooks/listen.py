"""`dossier listen`: an endpoint whose transport is a stream to the CLI rather than an HTTP POST.

A listener endpoint is an ordinary endpoint (profile, events, secrets, deliveries, retries, history) with a
``listener`` name and a ``listen://<name>`` URL. The dispatcher makes its attempts exactly like any other
(same plan, same rendering, same retry decision, same recording); only the last step differs: instead of
POSTing, :func:`exchange` writes the rendered request into ``webhook_listen_exchanges`` and waits for the
answer. The stream (``GET .../listen/{id}/stream``, Server-Sent Events) hands those requests to the CLI, which
forwards them byte for byte to the local URL and posts the local answer back (:func:`record_answer`).

The stream and the worker may be different processes: the database is the meeting point. A listener that
is not connected (no stream seen for ``webhook_listen_stale_seconds``) fails the attempt at once as an
``Error Request``; the delivery then waits and retries like any endpoint's, and a reconnecting stream makes
its endpoint's pending deliveries due at once (:func:`connect`), so nothing is lost while the CLI is away.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from multidict import CIMultiDict
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.db.base import new_uuid, utcnow
from dossier.errors import InvalidInput, NotFound
from dossier.net import OutboundClient, OutboundResponse, RequestError, RequestTimeout
from dossier.webhooks import service
from dossier.webhooks.models import (
    PENDING,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookListenerSession,
    WebhookListenExchange,
)
from dossier.webhooks.sweeps import destination_key, schedule_sweep

SCHEME = "listen://"
_NAME = re.compile(r"^[A-Za-z0-9._:@/-]{1,100}$")
# How often a connected stream refreshes its ``seen_at`` (seconds).
TOUCH_INTERVAL = 1.0
# Most characters of a local answer's body kept (like an HTTP attempt's).
BODY_KEPT = 2048


class ListenerNotConnected(RequestError):
    """No `dossier listen` stream is connected to the endpoint: no request could be made."""


@dataclass(frozen=True)
class Listener:
    """A listener endpoint and its current secret (shown to its own CLI on every start)."""

    endpoint: WebhookEndpoint
    secret: str
    created: bool


async def open_listener(
    session: AsyncSession,
    account_id: str,
    *,
    name: str,
    profile: str,
    events: Sequence[str] | None,
    http: OutboundClient,
) -> Listener:
    """The account's listener endpoint called ``name``, created on first use. A CLI restarted under the same
    name resumes it: same endpoint, same secret, its pending deliveries still there."""
    if not _NAME.match(name):
        raise InvalidInput("the listener name must be 1 to 100 characters of letters, digits and . _ : @ / -")
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.account_id == account_id, WebhookEndpoint.listener == name
        )
    )
    if endpoint is None:
        created = await service.create_endpoint(
            session,
            account_id,
            url=SCHEME + name,
            profile=profile,
            events=events,
            http=http,
            description="dossier listen",
            listener=name,
        )
        return Listener(created.endpoint, created.secret, created=True)
    if endpoint.profile != profile:
        raise InvalidInput(
            f"listener {name!r} exists with profile {endpoint.profile!r}; remove it or use another --name"
        )
    if events:
        await service.update_endpoint(session, account_id, endpoint.id, http=http, events=events)
    if not endpoint.active:
        await service.enable_endpoint(session, account_id, endpoint.id)
    secrets = await service.endpoint_secrets(session, endpoint.id)
    if not secrets:
        raise InvalidInput(f"listener {name!r} has no signing secret; rotate it or remove it")
    return Listener(endpoint, secrets[0].value, created=False)


async def listener_endpoint(session: AsyncSession, account_id: str, endpoint_id: str) -> WebhookEndpoint:
    """One of the account's listener endpoints; NotFound for any other id."""
    endpoint = await service.get_endpoint(session, account_id, endpoint_id)
    if endpoint.listener is None:
        raise NotFound(f"webhook endpoint {endpoint_id!r} is not a `dossier listen` endpoint")
    return endpoint


async def connect(session: AsyncSession, endpoint_id: str) -> str:
    """Register a new stream of the endpoint (it replaces any previous one) and make the endpoint's pending
    deliveries due now. Returns the connection id."""
    connection_id = new_uuid()
    now = utcnow()
    await session.execute(
        delete(WebhookListenerSession).where(WebhookListenerSession.endpoint_id == endpoint_id)
    )
    session.add(WebhookListenerSession(endpoint_id=endpoint_id, connection_id=connection_id, seen_at=now))
    # Requests handed to a stream that is gone and not answered yet go to this one (their attempts are still
    # waiting for an answer, within their timeout).
    await session.execute(
        update(WebhookListenExchange)
        .where(WebhookListenExchange.endpoint_id == endpoint_id, WebhookListenExchange.answered_at.is_(None))
        .values(sent_at=None)
    )
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at > now,
        )
        .values(next_attempt_at=now)
    )
    await schedule_sweep(session, destination_key(endpoint_id, None), now)
    await session.flush()
    return connection_id


async def touch(session: AsyncSession, endpoint_id: str, connection_id: str) -> bool:
    """Refresh the stream's ``seen_at``; False when another stream of the endpoint has replaced it."""
    result = await session.execute(
        update(WebhookListenerSession)
        .where(
            WebhookListenerSession.endpoint_id == endpoint_id,
            WebhookListenerSession.connection_id == connection_id,
        )
        .values(seen_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


async def disconnect(session: AsyncSession, endpoint_id: str, connection_id: str) -> None:
    """The stream ended: attempts fail at once until a new one connects."""
    await session.execute(
        delete(WebhookListenerSession).where(
            WebhookListenerSession.endpoint_id == endpoint_id,
            WebhookListenerSession.connection_id == connection_id,
        )
    )


async def take_requests(session: AsyncSession, endpoint_id: str) -> list[dict[str, Any]]:
    """The requests waiting for the endpoint's stream, oldest first, marked as handed over."""
    rows = list(
        await session.scalars(
            select(WebhookListenExchange)
            .where(WebhookListenExchange.endpoint_id == endpoint_id, WebhookListenExchange.sent_at.is_(None))
            .order_by(WebhookListenExchange.created_at)
            .limit(100)
        )
    )
    now = utcnow()
    for row in rows:
        row.sent_at = now
    await session.flush()
    return [
        {
            "attempt_id": row.attempt_id,
            "delivery_id": row.delivery_id,
            "event_type": row.event_type,
            "headers": row.request_headers,
            "body": row.body,
        }
        for row in rows
    ]


async def record_answer(
    session: AsyncSession,
    account_id: str,
    endpoint_id: str,
    *,
    attempt_id: str,
    status: int | None,
    headers: dict[str, str] | None,
    body: str | None,
    duration_ms: int | None,
    error: str | None,
) -> None:
    """The local URL's answer to one request, as the CLI got it (``status`` None with ``error``: it could
    not be reached). An answer that comes after the attempt gave up is ignored (NotFound)."""
    await listener_endpoint(session, account_id, endpoint_id)
    if status is None and not error:
        raise InvalidInput("an answer has a status, or an error saying why there is none")
    row = await session.get(WebhookListenExchange, attempt_id)
    if row is None or row.endpoint_id != endpoint_id:
        raise NotFound(f"no request {attempt_id!r} is waiting for an answer (it may have timed out)")
    row.answered_at = utcnow()
    row.response_status = status
    row.response_headers = dict(list((headers or {}).items())[:50])
    row.response_body = (body or "")[:BODY_KEPT]
    row.error_text = error[:1000] if error else None
    row.duration_ms = duration_ms
    await session.flush()


async def exchange(
    maker: async_sessionmaker[AsyncSession],
    *,
    endpoint_id: str,
    delivery_id: str,
    event_type: str,
    attempt_id: str,
    body: bytes,
    headers: dict[str, str],
    answer_within: float,
    poll_interval: float,
    stale_after: float,
) -> OutboundResponse:
    """Hand one rendered request to the endpoint's stream and wait for the local answer: the transport of a
    listener endpoint. Raises like an HTTP request without a response (``RequestError``), so the attempt is
    recorded and retried exactly like one."""
    clock = time.monotonic()
    async with maker() as session, session.begin():
        listener = await session.get(WebhookListenerSession, endpoint_id)
        if listener is None or listener.seen_at < utcnow() - timedelta(seconds=stale_after):
            raise ListenerNotConnected("no `dossier listen` is connected to this endpoint", url=SCHEME)
        session.add(
            WebhookListenExchange(
                attempt_id=attempt_id,
                endpoint_id=endpoint_id,
                delivery_id=delivery_id,
                event_type=event_type,
                request_headers=headers,
                body=body.decode("utf-8"),
            )
        )
    deadline = clock + answer_within
    try:
        while True:
            await asyncio.sleep(poll_interval)
            async with maker() as session:
                row = await session.get(WebhookListenExchange, attempt_id)
            if row is None:
                raise ListenerNotConnected("the listener endpoint was removed", url=SCHEME)
            if row.answered_at is not None:
                break
            if time.monotonic() >= deadline:
                raise RequestTimeout(f"the listener did not answer within {answer_within:g} s", url=SCHEME)
    finally:
        async with maker() as session, session.begin():
            await session.execute(
                delete(WebhookListenExchange).where(WebhookListenExchange.attempt_id == attempt_id)
            )
    if row.response_status is None:
        raise RequestError(f"the local URL could not be reached: {row.error_text}", url=SCHEME)
    return OutboundResponse(
        status=row.response_status,
        headers=CIMultiDict({str(k): str(v) for k, v in (row.response_headers or {}).items()}),
        body=(row.response_body or "").encode("utf-8"),
        url=SCHEME,
        elapsed=(row.duration_ms or 0) / 1000,
    )
