"""Webhook endpoints, delivery history and the Slack connection, under ``/api/enterprise``. HTTP only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, status

from dossier.accounts.auth import CurrentAccount
from dossier.api.deps import Outbound, SettingsDep
from dossier.api.surfaces import ENTERPRISE
from dossier.db.session import SessionDep
from dossier.webhooks import history, schemas, service, slack

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
        str | None, Query(alias="status", description="pending, succeeded, failed")
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
