"""Webhook endpoints, delivery history and the Slack connection, under ``/api/enterprise``. HTTP only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
from fastapi import Query, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts.auth import CurrentAccount
from dossier.api.deps import Outbound, SettingsDep
from dossier.api.surfaces import ENTERPRISE
from dossier.db.session import SessionDep, WritingSessionDep, writing_sessionmaker
from dossier.webhooks import catalogue, history, listen, schemas, service, slack

router = ENTERPRISE.router(tags=["Webhooks"])
ERRORS = ENTERPRISE.responses(
    {
        404: "Unknown endpoint or delivery (or another account's).",
        422: "Invalid input, or a URL the outbound policy refuses; `message` says why.",
    }
)
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The endpoint is disabled; enable it first."}
}


@router.get("/webhooks/event-types", response_model=list[schemas.EventTypeOut], responses=ERRORS)
async def event_types(account: CurrentAccount) -> list[schemas.EventTypeOut]:
    """Every event type: the profiles that carry it, the JSON Schema of its payload as each renders it (made
    from the models that render it) and an example. docs/webhooks.md shows the same catalogue."""
    return [schemas.EventTypeOut.model_validate(entry) for entry in catalogue.catalogue()]


# --- dossier listen (docs/receiving-webhooks.md) ----------------------------------------------------------


@router.post("/webhooks/listen", response_model=schemas.ListenOut, responses=ERRORS)
async def open_listener(
    body: schemas.ListenIn, session: SessionDep, account: CurrentAccount, http: Outbound
) -> schemas.ListenOut:
    """Create (or resume, by name) the temporary endpoint of a `dossier listen` session, with its secret."""
    opened = await listen.open_listener(
        session, account.id, name=body.name, profile=body.profile, events=body.events, http=http
    )
    return schemas.listen_out(opened.endpoint, opened.secret, created=opened.created)


@router.get(
    "/webhooks/listen/{endpoint_id}/stream",
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events."}},
    response_class=StreamingResponse,
)
async def listen_stream(
    endpoint_id: str,
    request: Request,
    session: WritingSessionDep,
    account: CurrentAccount,
    settings: SettingsDep,
) -> StreamingResponse:
    """The deliveries of a listener endpoint as Server-Sent Events (`event: delivery`, data: attempt_id,
    delivery_id, event_type, headers, body). Connecting makes the endpoint's pending deliveries due now;
    one stream per endpoint (a new one replaces the previous)."""
    await listen.listener_endpoint(session, account.id, endpoint_id)
    # Committed with the request's transaction, before the first event is streamed.
    connection_id = await listen.connect(session, endpoint_id)
    # A GET that writes (the connection, what it hands out): the writing sessions, not the read-only ones.
    maker = writing_sessionmaker(request)
    return StreamingResponse(
        _events(request, maker, endpoint_id, connection_id, settings.webhook_listen_poll_interval),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request,
    maker: async_sessionmaker[AsyncSession],
    endpoint_id: str,
    connection_id: str,
    poll: float,
) -> AsyncIterator[str]:
    ready = {"endpoint_id": endpoint_id, "connection_id": connection_id}
    yield f"event: ready\ndata: {json.dumps(ready)}\n\n"
    touched = time.monotonic()
    try:
        while not await request.is_disconnected():
            # Nothing is yielded inside the transaction: a slow client must not hold it open.
            ping = replaced = False
            async with maker() as session, session.begin():
                if time.monotonic() - touched >= listen.TOUCH_INTERVAL:
                    touched = time.monotonic()
                    ping = True
                    replaced = not await listen.touch(session, endpoint_id, connection_id)
                requests = [] if replaced else await listen.take_requests(session, endpoint_id)
            if replaced:
                yield "event: replaced\ndata: {}\n\n"
                return
            if ping:
                yield ": ping\n\n"
            for item in requests:
                yield f"event: delivery\ndata: {json.dumps(item)}\n\n"
            await asyncio.sleep(poll)
    finally:
        # Shielded: the server cancels the stream when the client goes, and the listener must be marked
        # gone (else attempts wait for answers until it goes stale).
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            async with maker() as session, session.begin():
                await listen.disconnect(session, endpoint_id, connection_id)


@router.post("/webhooks/listen/{endpoint_id}/answers", response_model=schemas.Recorded, responses=ERRORS)
async def listen_answer(
    endpoint_id: str, body: schemas.ListenAnswer, session: SessionDep, account: CurrentAccount
) -> schemas.Recorded:
    """The local URL's answer to one streamed request; the attempt is recorded from it."""
    await listen.record_answer(
        session,
        account.id,
        endpoint_id,
        attempt_id=body.attempt_id,
        status=body.status,
        headers=body.headers,
        body=body.body,
        duration_ms=body.duration_ms,
        error=body.error,
    )
    return schemas.Recorded()


# Delivery routes come first: "/webhooks/deliveries/..." must not be read as an endpoint id.
@router.get("/webhooks/deliveries/{delivery_id}", response_model=schemas.DeliveryDetail, responses=ERRORS)
async def get_delivery(
    delivery_id: str, session: SessionDep, account: CurrentAccount
) -> schemas.DeliveryDetail:
    """One delivery with every attempt: headers sent (secrets redacted), answer, duration, error."""
    delivery, attempts = await history.get_delivery(session, account.id, delivery_id)
    return schemas.delivery_detail(delivery, attempts)


@router.post(
    "/webhooks/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.DeliveryOut,
    responses={**ERRORS, **CONFLICT},
)
async def redeliver(delivery_id: str, session: SessionDep, account: CurrentAccount) -> schemas.DeliveryOut:
    """Send a delivery again now, same body and same `webhook-id` (trigger `manual`)."""
    return schemas.delivery_out(await history.redeliver(session, account.id, delivery_id))


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.EndpointWithSecret,
    responses=ERRORS,
)
async def create_endpoint(
    body: schemas.EndpointCreate, session: SessionDep, account: CurrentAccount, http: Outbound
) -> schemas.EndpointWithSecret:
    """Register a URL for events. The answer holds the signing `secret`: it is shown in full only here."""
    created = await service.create_endpoint(
        session,
        account.id,
        url=body.url,
        profile=body.profile,
        events=body.events,
        http=http,
        description=body.description,
        options=schemas.options_in(body),
        headers=body.headers,
        rate_limit=body.rate_limit,
    )
    return schemas.endpoint_with_secret(created.endpoint, created.secret)


@router.get("/webhooks", response_model=list[schemas.EndpointOut], responses=ERRORS)
async def list_endpoints(session: SessionDep, account: CurrentAccount) -> list[schemas.EndpointOut]:
    """The account's endpoints, oldest first (secrets are never listed)."""
    return [schemas.endpoint_out(e) for e in await service.list_endpoints(session, account.id)]


@router.get("/webhooks/{endpoint_id}", response_model=schemas.EndpointOut, responses=ERRORS)
async def get_endpoint(endpoint_id: str, session: SessionDep, account: CurrentAccount) -> schemas.EndpointOut:
    """One endpoint: URL, profile, events, whether it is active and why not."""
    return schemas.endpoint_out(await service.get_endpoint(session, account.id, endpoint_id))


@router.patch("/webhooks/{endpoint_id}", response_model=schemas.EndpointOut, responses=ERRORS)
async def update_endpoint(
    endpoint_id: str,
    body: schemas.EndpointUpdate,
    session: SessionDep,
    account: CurrentAccount,
    http: Outbound,
) -> schemas.EndpointOut:
    """Change the URL, events, description, `active` or the kruncher API-key option; omitted fields stay."""
    options = schemas.options_in(body)
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set - set(options)}
    endpoint = await service.update_endpoint(
        session, account.id, endpoint_id, http=http, options=options, **changes
    )
    return schemas.endpoint_out(endpoint)


@router.delete("/webhooks/{endpoint_id}", response_model=schemas.Deleted, responses=ERRORS)
async def delete_endpoint(endpoint_id: str, session: SessionDep, account: CurrentAccount) -> schemas.Deleted:
    """Delete an endpoint with its secrets and delivery history."""
    await service.delete_endpoint(session, account.id, endpoint_id)
    return schemas.Deleted()


@router.post(
    "/webhooks/{endpoint_id}/rotate-secret", response_model=schemas.EndpointWithSecret, responses=ERRORS
)
async def rotate_secret(
    endpoint_id: str,
    session: SessionDep,
    account: CurrentAccount,
    settings: SettingsDep,
    body: schemas.RotateIn | None = None,
) -> schemas.EndpointWithSecret:
    """New signing secret, in effect at once. The old one keeps signing `webhook-signature` for the grace
    period so receivers can switch without losing a delivery; vendor signature headers switch at once."""
    hours = body.grace_hours if body is not None and body.grace_hours is not None else None
    grace = (settings.webhook_secret_grace_hours if hours is None else hours) * 3600
    rotated = await service.rotate_secret(session, account.id, endpoint_id, grace_seconds=grace)
    return schemas.endpoint_with_secret(rotated.endpoint, rotated.secret)


@router.post(
    "/webhooks/{endpoint_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.DeliveryOut,
    responses={**ERRORS, **CONFLICT},
)
async def send_test(endpoint_id: str, session: SessionDep, account: CurrentAccount) -> schemas.DeliveryOut:
    """Queue a test event in the endpoint's profile; follow it with GET /webhooks/deliveries/{id}."""
    return schemas.delivery_out(await service.send_test_event(session, account.id, endpoint_id))


# Far beyond any history kept, and well inside a 64-bit OFFSET (a larger one was a database error).
MAX_OFFSET = 1_000_000_000


@router.get("/webhooks/{endpoint_id}/deliveries", response_model=schemas.DeliveryPage, responses=ERRORS)
async def list_deliveries(
    endpoint_id: str,
    session: SessionDep,
    account: CurrentAccount,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Deliveries to skip.")] = 0,
    status_filter: Annotated[
        Literal["pending", "succeeded", "failed"] | None,
        Query(alias="status", description="Only this status."),
    ] = None,
    event: Annotated[str | None, Query(description="Only this event type.")] = None,
) -> schemas.DeliveryPage:
    """The endpoint's deliveries, newest first."""
    page, total = await history.list_deliveries(
        session, account.id, endpoint_id, status=status_filter, event_type=event, limit=limit, offset=offset
    )
    return schemas.DeliveryPage(
        data=[schemas.delivery_out(d) for d in page],
        pagination=schemas.Pagination(total=total, limit=limit, offset=offset),
    )


@router.post(
    "/webhooks/{endpoint_id}/recover",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.RecoverOut,
    responses={**ERRORS, **CONFLICT},
)
async def recover(
    endpoint_id: str, body: schemas.RecoverIn, session: SessionDep, account: CurrentAccount
) -> schemas.RecoverOut:
    """Redeliver every failed delivery created since `since` (after an outage, or after re-enabling)."""
    return schemas.RecoverOut(
        recovered=await history.recover_failed(session, account.id, endpoint_id, body.since)
    )


@router.post("/webhooks/{endpoint_id}/enable", response_model=schemas.EndpointOut, responses=ERRORS)
async def enable(endpoint_id: str, session: SessionDep, account: CurrentAccount) -> schemas.EndpointOut:
    """Re-enable a disabled endpoint (then POST .../recover to deliver what it missed)."""
    return schemas.endpoint_out(await service.enable_endpoint(session, account.id, endpoint_id))


# --- Slack ----------------------------------------------------------------------------------------------


@router.put(
    "/integrations/slack", response_model=schemas.SlackOut, responses=ERRORS, tags=["Slack notifications"]
)
async def connect_slack(
    body: schemas.SlackConnect, session: SessionDep, account: CurrentAccount, http: Outbound
) -> schemas.SlackOut:
    """Connect (or replace) a Slack incoming webhook and pick the notices sent to it."""
    connection = await slack.connect_slack(session, account.id, url=body.url, notices=body.notices, http=http)
    return schemas.slack_out(connection)


@router.get(
    "/integrations/slack", response_model=schemas.SlackOut, responses=ERRORS, tags=["Slack notifications"]
)
async def get_slack(session: SessionDep, account: CurrentAccount) -> schemas.SlackOut:
    """The Slack connection (404 when not connected)."""
    return schemas.slack_out(await slack.get_slack(session, account.id))


@router.patch(
    "/integrations/slack", response_model=schemas.SlackOut, responses=ERRORS, tags=["Slack notifications"]
)
async def update_slack(
    body: schemas.SlackNotices, session: SessionDep, account: CurrentAccount
) -> schemas.SlackOut:
    """Choose the notices: enrichment_finished, endpoint_failing, endpoint_disabled."""
    return schemas.slack_out(await slack.update_slack_notices(session, account.id, body.notices))


@router.delete(
    "/integrations/slack", response_model=schemas.Deleted, responses=ERRORS, tags=["Slack notifications"]
)
async def disconnect_slack(session: SessionDep, account: CurrentAccount) -> schemas.Deleted:
    """Disconnect Slack."""
    await slack.disconnect_slack(session, account.id)
    return schemas.Deleted()
