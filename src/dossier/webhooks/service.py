"""Webhook endpoints, their signing secrets, and emitting events: the logic behind the API. No HTTP here.

Transactional outbox: :func:`emit_events` writes the events and their deliveries into the caller's session
and makes sure each destination's sweep task is queued (``sweeps``), so they exist exactly when the change
they report commits. Services flush, never commit. The engine knows no domain: a domain decides its own
events and hands them to :func:`emit_events`. What happens next lives beside this module: ``sweeps``
(when), ``dispatch`` (plan, record, endpoint health), ``history`` (deliveries, attempts, pruning) and
``slack``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.accounts.service import generate_webhook_secret
from dossier.db.base import new_uuid, utcnow
from dossier.errors import Conflict, InvalidInput, NotFound
from dossier.net import DNSError, OutboundClient
from dossier.webhooks.models import (
    PENDING,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSecret,
    new_message_id,
)
from dossier.webhooks.profiles import (
    PROFILES,
    RESERVED_HEADERS,
    SecretVersion,
    UnknownProfile,
    WebhookProfile,
    endpoint_option,
    get_profile,
    known_events,
    profile_for_url,
)
from dossier.webhooks.sweeps import destination_key, schedule_sweep

log = logging.getLogger("dossier.webhooks")

ALL_EVENTS = "*"
_EVENTS, _DELIVERIES = WebhookEvent.__table__, WebhookDelivery.__table__
assert isinstance(_EVENTS, Table) and isinstance(_DELIVERIES, Table)
# Core INSERTs built once, executed for a whole list of events or deliveries.
_EVENT_INSERT = insert(_EVENTS)
_DELIVERY_INSERT = insert(_DELIVERIES)
MAX_EVENTS_PER_ENDPOINT = 100


# --- profiles and URLs ----------------------------------------------------------------------------------


def _check_profile(name: str) -> WebhookProfile:
    try:
        return get_profile(name)
    except UnknownProfile:
        raise InvalidInput(
            f"unknown webhook profile {name!r}; choose one of: {', '.join(PROFILES)}",
            detail={"profiles": list(PROFILES)},
        ) from None


def _check_events(profile: WebhookProfile, events: Sequence[str] | None) -> list[str]:
    if not events:
        # No list given: everything the profile carries.
        return sorted(profile.events) if profile.events is not None else [ALL_EVENTS]
    cleaned: list[str] = []
    for raw in events:
        name = str(raw).strip()
        if not name or len(name) > 100:
            raise InvalidInput("event types must be 1 to 100 characters")
        if name == ALL_EVENTS:
            if profile.events is not None:
                raise InvalidInput(
                    f"profile {profile.name!r} carries only: {', '.join(sorted(profile.events))}"
                )
        elif profile.events is None and name not in (known := known_events()):
            raise InvalidInput(
                f"unknown event type {name!r}; Dossier sends: {', '.join(sorted(known))} ('*' for all)",
                detail={"events": sorted(known)},
            )
        elif not profile.carries(name):
            assert profile.events is not None
            raise InvalidInput(
                f"profile {profile.name!r} does not carry {name!r}; it carries: "
                f"{', '.join(sorted(profile.events))}"
            )
        if name not in cleaned:
            cleaned.append(name)
    if len(cleaned) > MAX_EVENTS_PER_ENDPOINT:
        raise InvalidInput(f"at most {MAX_EVENTS_PER_ENDPOINT} event types per endpoint")
    return cleaned


async def validate_url(http: OutboundClient, url: str) -> str:
    """Check ``url`` against the outbound policy now (DNS included); 422 with the policy's reason if refused.

    The same policy applies again to every delivery: a name may resolve elsewhere later.
    """
    url = url.strip()
    try:
        await http.validate_url(url)
    except DNSError as exc:
        # A name that does not resolve is refused at creation: the user most likely mistyped it.
        raise InvalidInput(f"webhook URL refused: {exc.message}") from None
    return url


MAX_CUSTOM_HEADERS = 20
MAX_RATE_LIMIT = 10_000.0
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")


def _check_headers(profile: WebhookProfile, headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """Static headers for every delivery; refused when they would set a signature, a Standard Webhooks or
    an HTTP header, or the profile's secret ones."""
    if not headers:
        return None
    if len(headers) > MAX_CUSTOM_HEADERS:
        raise InvalidInput(f"at most {MAX_CUSTOM_HEADERS} custom headers")
    reserved = RESERVED_HEADERS | profile.secret_headers
    checked: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise InvalidInput(f"header name {name!r} is not a valid HTTP header name")
        lower = name.lower()
        if lower in reserved or lower.startswith("webhook-") or lower in seen:
            raise InvalidInput(f"header {name!r} cannot be set: the delivery sets it (or it is repeated)")
        if not isinstance(value, str) or len(value) > 1000 or any(ch in value for ch in "\r\n\0"):
            raise InvalidInput(f"header {name!r}: the value must be a single line of at most 1000 characters")
        seen.add(lower)
        checked[name] = value.strip()
    return checked


def _check_rate_limit(rate: float | None) -> float | None:
    if rate is None:
        return None
    if not math.isfinite(rate) or rate <= 0 or rate > MAX_RATE_LIMIT:
        raise InvalidInput(f"rate_limit must be more than 0 and at most {MAX_RATE_LIMIT:g} per second")
    return float(rate)


def _subscribed(endpoint: WebhookEndpoint, event_type: str) -> bool:
    events = endpoint.events or []
    return event_type in events or ALL_EVENTS in events


# --- endpoints ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSecret:
    """An endpoint with its current signing secret in full (shown at creation and rotation only)."""

    endpoint: WebhookEndpoint
    secret: str


async def create_endpoint(
    session: AsyncSession,
    account_id: str,
    *,
    url: str,
    profile: str,
    events: Sequence[str] | None,
    http: OutboundClient,
    description: str | None = None,
    options: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    rate_limit: float | None = None,
    listener: str | None = None,
) -> NewSecret:
    """Create an endpoint after validating its URL through the outbound policy; returns it with its secret.

    ``options`` are the profile's endpoint options by their API names (None: not set). ``listener`` makes
    it the endpoint of a `dossier listen` session of that name: its URL is not an HTTP one (see ``listen``).
    """
    chosen = _check_profile(profile)
    checked_events = _check_events(chosen, events)
    stored = _options(chosen, {}, options or {})
    custom = _check_headers(chosen, headers)
    rate = _check_rate_limit(rate_limit)
    if listener is None:
        url = await validate_url(http, url)
    now = utcnow()
    endpoint = WebhookEndpoint(
        account_id=account_id,
        url=url,
        profile=chosen.name,
        events=checked_events,
        description=description,
        active=True,
        options=stored,
        headers=custom,
        rate_limit=rate,
        listener=listener,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    secret = generate_webhook_secret()
    session.add(WebhookSecret(endpoint_id=endpoint.id, version=1, value=secret, created_at=now))
    await session.flush()
    return NewSecret(endpoint=endpoint, secret=secret)


def _options(profile: WebhookProfile, current: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` options with ``given`` applied (by API name; None removes one), validated by the
    profiles that declare them."""
    options = dict(current)
    for field, value in given.items():
        declared = endpoint_option(field)
        if declared is None:
            raise InvalidInput(f"unknown endpoint option {field!r}")
        owner, option = declared
        if value is None:
            options.pop(option.key, None)
            continue
        if owner.name != profile.name:
            raise InvalidInput(f"{field} is only for endpoints of the {owner.name} profile")
        try:
            options[option.key] = option.check(value)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    return options


async def list_endpoints(session: AsyncSession, account_id: str) -> list[WebhookEndpoint]:
    """The account's endpoints, oldest first."""
    result = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.account_id == account_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return list(result)


async def get_endpoint(session: AsyncSession, account_id: str, endpoint_id: str) -> WebhookEndpoint:
    """One endpoint of the account; NotFound for an unknown id or another account's."""
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.account_id != account_id:
        raise NotFound(f"no webhook endpoint {endpoint_id!r}")
    return endpoint


_UNSET: Any = object()


async def update_endpoint(
    session: AsyncSession,
    account_id: str,
    endpoint_id: str,
    *,
    http: OutboundClient,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = _UNSET,
    active: bool | None = None,
    options: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = _UNSET,
    rate_limit: float | None = _UNSET,
) -> WebhookEndpoint:
    """Change an endpoint's URL (validated again), events, description, options (by API name; None
    removes one), static headers, rate limit (None removes it) or active flag."""
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    profile = _check_profile(endpoint.profile)
    if url is not None:
        if endpoint.listener is not None:
            raise InvalidInput("the URL of a `dossier listen` endpoint cannot be changed")
        endpoint.url = await validate_url(http, url)
    if headers is not _UNSET:
        endpoint.headers = _check_headers(profile, headers)
    if rate_limit is not _UNSET:
        endpoint.rate_limit = _check_rate_limit(rate_limit)
    if events is not None:
        endpoint.events = _check_events(profile, events)
    if description is not _UNSET:
        endpoint.description = description
    if options:
        endpoint.options = _options(profile, endpoint.options or {}, options)
    if active is True and not endpoint.active:
        _enable(endpoint)
    elif active is False and endpoint.active:
        endpoint.active = False
        endpoint.disabled_reason = "disabled by the account"
        endpoint.disabled_at = utcnow()
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, account_id: str, endpoint_id: str) -> None:
    """Delete an endpoint with its secrets and delivery history (their queued tasks then find nothing)."""
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    await session.delete(endpoint)
    await session.flush()


def _enable(endpoint: WebhookEndpoint) -> None:
    endpoint.active = True
    endpoint.disabled_reason = None
    endpoint.disabled_at = None
    # A fresh start: the failing run that disabled it must not disable it again on the next failure.
    endpoint.failing_since = None
    endpoint.failure_notified_at = None


async def enable_endpoint(session: AsyncSession, account_id: str, endpoint_id: str) -> WebhookEndpoint:
    """Re-enable a disabled endpoint. What failed meanwhile is delivered with :func:`recover_failed`."""
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    _enable(endpoint)
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


# --- secrets --------------------------------------------------------------------------------------------


async def endpoint_secrets(
    session: AsyncSession, endpoint_id: str, *, now: datetime | None = None
) -> list[SecretVersion]:
    """The secrets that sign now: the current one first, then rotated-out ones still in their grace."""
    rows = await session.scalars(
        select(WebhookSecret)
        .where(WebhookSecret.endpoint_id == endpoint_id)
        .order_by(WebhookSecret.version.desc())
    )
    return signing_secrets(list(rows), now or utcnow())


def signing_secrets(versions: Sequence[WebhookSecret], now: datetime) -> list[SecretVersion]:
    """Newest first in, current secret first out, then rotated-out ones still in their grace."""
    current: list[SecretVersion] = []
    previous: list[SecretVersion] = []
    for row in versions:
        if row.expires_at is None:
            current.append(SecretVersion(row.value))
        elif row.expires_at > now:
            previous.append(SecretVersion(row.value, row.expires_at))
    return current[:1] + previous


async def rotate_secret(
    session: AsyncSession, account_id: str, endpoint_id: str, *, grace_seconds: float
) -> NewSecret:
    """Issue a new secret that signs at once; the old one keeps signing the Standard Webhooks header for
    ``grace_seconds`` (0 revokes it now). Vendor headers hold one signature, so they switch immediately."""
    if grace_seconds < 0:
        raise InvalidInput("grace must be zero or positive")
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    now = utcnow()
    # Secrets whose grace is over are useless; so are older previous ones: keep only the newest as "previous".
    await session.execute(
        delete(WebhookSecret).where(
            WebhookSecret.endpoint_id == endpoint.id,
            WebhookSecret.expires_at.is_not(None),
        )
    )
    latest = await session.scalar(
        select(func.max(WebhookSecret.version)).where(WebhookSecret.endpoint_id == endpoint.id)
    )
    if grace_seconds > 0:
        await session.execute(
            update(WebhookSecret)
            .where(WebhookSecret.endpoint_id == endpoint.id, WebhookSecret.expires_at.is_(None))
            .values(expires_at=now + timedelta(seconds=grace_seconds))
        )
    else:
        await session.execute(delete(WebhookSecret).where(WebhookSecret.endpoint_id == endpoint.id))
    secret = generate_webhook_secret()
    session.add(
        WebhookSecret(endpoint_id=endpoint.id, version=(latest or 0) + 1, value=secret, created_at=now)
    )
    endpoint.updated_at = now
    await session.flush()
    return NewSecret(endpoint=endpoint, secret=secret)


# --- events and deliveries ------------------------------------------------------------------------------


async def subscribed_endpoints(
    session: AsyncSession, account_id: str, event_type: str
) -> list[WebhookEndpoint]:
    """The account's active endpoints subscribed to ``event_type``, oldest first."""
    result = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.account_id == account_id, WebhookEndpoint.active.is_(True))
        .order_by(WebhookEndpoint.created_at)
    )
    return [e for e in result if _subscribed(e, event_type) and get_profile(e.profile).carries(event_type)]


async def emit_events(
    session: AsyncSession,
    account_id: str,
    event_type: str,
    payloads: Sequence[Mapping[str, Any]],
    *,
    target: str | None = None,
    target_profile: str | None = None,
    endpoints: Sequence[WebhookEndpoint] | None = None,
) -> list[str]:
    """Write one event per payload and its deliveries, and queue them, all in the caller's transaction.

    Without ``target``, one delivery per active endpoint of the account subscribed to ``event_type`` (none:
    nothing is written, not even the event). With ``target`` (a job's one-off ``webhook_url``), one delivery
    to it, signed with the account's webhook secret, in ``target_profile`` (default: ``profile_for_url``:
    kernel for kernel events, else standard). Returns the ids of the deliveries created.
    """
    if not payloads:
        return []
    now = utcnow()
    destinations: list[tuple[str | None, WebhookProfile, Mapping[str, Any]]]
    if target is not None:
        name = target_profile or profile_for_url(event_type)
        profile = _check_profile(name)
        if not profile.carries(event_type):
            raise ValueError(f"profile {name!r} does not carry {event_type!r}")
        destinations = [(None, profile, {})]
    else:
        found = (
            endpoints
            if endpoints is not None
            else await subscribed_endpoints(session, account_id, event_type)
        )
        destinations = [(e.id, get_profile(e.profile), e.options or {}) for e in found]
        if not destinations:
            return []
    events: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    keys: set[str] = set()
    for payload in payloads:
        event_id = new_uuid()
        events.append(
            {
                "id": event_id,
                "account_id": account_id,
                "type": event_type,
                "payload": dict(payload),
                "created_at": now,
            }
        )
        for endpoint_id, profile, options in destinations:
            if options and not profile.accepts(event_type, payload, options):
                continue
            delivery_id = new_message_id()
            deliveries.append(
                {
                    "id": delivery_id,
                    "account_id": account_id,
                    "event_id": event_id,
                    "event_type": event_type,
                    "endpoint_id": endpoint_id,
                    "target_url": target,
                    "profile": profile.name,
                    "payload": profile.envelope(event_type, payload, occurred_at=now),
                    "status": PENDING,
                    "attempts": 0,
                    "round_start": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
            keys.add(destination_key(endpoint_id, target))
    # Set-based INSERTs, events first (deliveries reference them): Core statements built once (no ORM
    # bookkeeping per row), so a chunk of events costs two statements whatever its size. An endpoint's options
    # may filter every delivery out (a project filter): then no event is written either.
    if not deliveries and target is None:
        return []
    await session.execute(_EVENT_INSERT, events)
    if deliveries:
        await session.execute(_DELIVERY_INSERT, deliveries)
    # Last, and in a fixed order: each upsert locks its sweep's queue row until the commit.
    for key in sorted(keys):
        await schedule_sweep(session, key, now)
    await session.flush()
    return [delivery["id"] for delivery in deliveries]


async def emit_event(
    session: AsyncSession,
    account_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    *,
    target: str | None = None,
    target_profile: str | None = None,
) -> list[str]:
    """Write one event and its deliveries in the caller's transaction (see :func:`emit_events`); returns the
    ids of the deliveries."""
    return await emit_events(
        session, account_id, event_type, [payload], target=target, target_profile=target_profile
    )


async def send_test_event(session: AsyncSession, account_id: str, endpoint_id: str) -> WebhookDelivery:
    """Queue a test event of the endpoint's profile to this endpoint only (even if it is not subscribed)."""
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    if not endpoint.active:
        raise Conflict("the endpoint is disabled; enable it first")
    profile = get_profile(endpoint.profile)
    event_type, data = profile.test_event(utcnow())
    [delivery_id] = await emit_events(session, account_id, event_type, [data], endpoints=[endpoint])
    delivery = await session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    return delivery
