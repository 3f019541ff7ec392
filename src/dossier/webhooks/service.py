"""Webhook endpoints, events and deliveries: the logic behind the API and the dispatcher. No HTTP here.

Transactional outbox: :func:`emit_event` writes the event and its deliveries into the caller's session and
makes sure each destination's sweep task is queued, so they exist exactly when the change they report
commits. Services flush, never commit.

Deliveries are data: a pending delivery is due at its ``next_attempt_at`` (now for a new event, then its
profile's retry schedule, or now again on a manual redelivery). ONE sweep task per destination, in the
whole cluster, makes every attempt to it: it takes the due deliveries a batch at a time, oldest due first,
until none is due, then ends and queues itself again for the earliest one still pending. So a destination
costs one worker slot at most, however many events it is sent, and a dead one costs a task per batch of
due deliveries. Each delivery's attempt count guards the recording: an attempt already recorded by another
run (a sweep whose lease expired) is recognised and left out, which makes at-least-once execution safe.
``round_start`` is the attempt count at the start of the current round (0, or the count at a manual
redelivery), so a redelivered message gets the whole schedule again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, insert, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.accounts.models import Account
from dossier.accounts.service import generate_webhook_secret
from dossier.db.base import as_utc, new_uuid, utcnow
from dossier.errors import Conflict, InvalidInput, NotFound
from dossier.net import DNSError, OutboundClient
from dossier.projects.models import FINAL_STATUSES, Cell, Column, Project, Row
from dossier.queue.service import enqueue, enqueue_or_advance
from dossier.settings import Settings
from dossier.webhooks.models import (
    ERROR_REQUEST,
    ERROR_RESPONSE,
    FAILED,
    MANUAL,
    PENDING,
    SCHEDULED,
    SUCCEEDED,
    SUCCESS,
    SlackConnection,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSecret,
    new_message_id,
)
from dossier.webhooks.profiles import PROFILES, SecretVersion, UnknownProfile, WebhookProfile, get_profile
from dossier.webhooks.profiles.kernel import KERNEL_EVENTS, kernel_job_data
from dossier.webhooks.profiles.kruncher import ANALYSIS_COMPLETED, API_KEY_OPTION, analysis_completed_data
from dossier.webhooks.profiles.kuration import TOOL_OUTPUT_READY, value_string
from dossier.webhooks.retry import RetrySchedule

log = logging.getLogger("dossier.webhooks")

# Queued by versions before sweeps made first attempts; such a task now only queues its sweep.
DELIVER_TASK = "webhooks.deliver"
# The one task per destination that makes every attempt (see schedule_sweep). The name predates first
# attempts going through it, and stays: queued tasks carry it.
SWEEP_TASK = "webhooks.retry"
SLACK_TASK = "webhooks.slack"

ALL_EVENTS = "*"
ENDPOINT_DISABLED_EVENT = "webhook_endpoint.disabled"
TEST_EVENT = "webhook.test"
# Slack notices an account can pick.
NOTICE_ENRICHMENT_FINISHED = "enrichment_finished"
NOTICE_ENDPOINT_FAILING = "endpoint_failing"
NOTICE_ENDPOINT_DISABLED = "endpoint_disabled"
NOTICES = (NOTICE_ENRICHMENT_FINISHED, NOTICE_ENDPOINT_FAILING, NOTICE_ENDPOINT_DISABLED)
MAX_EVENTS_PER_ENDPOINT = 100
MAX_LIST_LIMIT = 100
# Due deliveries of one destination a sweep takes at a time (read in one transaction, recorded in one).
DELIVERY_BATCH = 100


# --- profiles and URLs ----------------------------------------------------------------------------------


def profile_for(name: str, settings: Settings) -> WebhookProfile:
    """The profile ``name`` with the schedule the settings ask for (kernel keeps its documented one)."""
    if settings.webhook_retry_schedule is not None and name != "kernel":
        return get_profile(name, schedule=RetrySchedule.parse(settings.webhook_retry_schedule))
    return get_profile(name)


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
    kruncher_api_key: str | None = None,
) -> NewSecret:
    """Create an endpoint after validating its URL through the outbound policy; returns it with its secret."""
    chosen = _check_profile(profile)
    checked_events = _check_events(chosen, events)
    options = _options(chosen, kruncher_api_key)
    url = await validate_url(http, url)
    now = utcnow()
    endpoint = WebhookEndpoint(
        account_id=account_id,
        url=url,
        profile=chosen.name,
        events=checked_events,
        description=description,
        active=True,
        options=options,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    secret = generate_webhook_secret()
    session.add(WebhookSecret(endpoint_id=endpoint.id, version=1, value=secret, created_at=now))
    await session.flush()
    return NewSecret(endpoint=endpoint, secret=secret)


def _options(profile: WebhookProfile, kruncher_api_key: str | None) -> dict[str, Any]:
    if kruncher_api_key is None:
        return {}
    if API_KEY_OPTION not in profile.option_names:
        raise InvalidInput("kruncher_api_key is only for endpoints of the kruncher profile")
    key = kruncher_api_key.strip()
    if not key or any(ch in key for ch in "\r\n\0"):
        raise InvalidInput("kruncher_api_key must be a non-empty single-line value")
    return {API_KEY_OPTION: key}


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
    kruncher_api_key: str | None = _UNSET,
) -> WebhookEndpoint:
    """Change an endpoint's URL (validated again), events, description, options or active flag."""
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    profile = _check_profile(endpoint.profile)
    if url is not None:
        endpoint.url = await validate_url(http, url)
    if events is not None:
        endpoint.events = _check_events(profile, events)
    if description is not _UNSET:
        endpoint.description = description
    if kruncher_api_key is not _UNSET:
        endpoint.options = _options(profile, kruncher_api_key)
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
    return _signing(list(rows), now or utcnow())


def _signing(versions: Sequence[WebhookSecret], now: datetime) -> list[SecretVersion]:
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


async def _active_endpoints(session: AsyncSession, account_id: str, event_type: str) -> list[WebhookEndpoint]:
    result = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.account_id == account_id, WebhookEndpoint.active.is_(True))
        .order_by(WebhookEndpoint.created_at)
    )
    return [e for e in result if _subscribed(e, event_type) and get_profile(e.profile).carries(event_type)]


def destination_key(endpoint_id: str | None, target_url: str | None) -> str:
    """What the per-endpoint limits count: the endpoint, or a job's one-off URL."""
    return f"endpoint:{endpoint_id}" if endpoint_id is not None else f"url:{target_url}"


def parse_destination(key: str) -> tuple[str | None, str | None]:
    """(endpoint id, one-off URL) of a destination key; exactly one is set."""
    kind, _, value = key.partition(":")
    if kind == "endpoint":
        return value, None
    if kind == "url":
        return None, value
    raise ValueError(f"not a destination key: {key!r}")


async def destinations_of(session: AsyncSession, delivery_ids: Sequence[str]) -> set[str]:
    """The destination keys of these deliveries (those that still exist)."""
    d = WebhookDelivery
    rows = await session.execute(select(d.endpoint_id, d.target_url).where(d.id.in_(list(delivery_ids))))
    return {destination_key(row.endpoint_id, row.target_url) for row in rows}


def _sweep_dedupe_key(key: str) -> str:
    # The queue's dedupe keys are short; a one-off URL may not be.
    if len(key) > 150:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return f"{SWEEP_TASK}:{key}"


async def schedule_sweep(session: AsyncSession, key: str, at: datetime) -> None:
    """Make sure the sweep of destination ``key`` runs at ``at`` or sooner (one sweep per destination).

    The queue row is locked until the caller commits (an upsert). A sweep that is running ends by locking
    its own row and then reading what is still pending, so a delivery committed under that lock is seen
    by the ending sweep, and one committed after it finds no unfinished sweep and queues a new one:
    whichever way they interleave, no pending delivery is left without a sweep.
    """
    await enqueue_or_advance(session, SWEEP_TASK, {"key": key}, dedupe_key=_sweep_dedupe_key(key), run_at=at)


def _pending_where(*, by_url: bool) -> list[Any]:
    # The pending deliveries of one destination, bound as :endpoint_id or :url. A literal status, so
    # PostgreSQL can use the partial index of pending deliveries with any plan.
    d = WebhookDelivery
    where = [d.status == literal_column(f"'{PENDING}'")]
    if by_url:
        return [*where, d.endpoint_id.is_(None), d.target_url == bindparam("url")]
    return [*where, d.endpoint_id == bindparam("endpoint_id")]


def _destination_params(key: str) -> dict[str, Any]:
    endpoint_id, url = parse_destination(key)
    return {"url": url} if endpoint_id is None else {"endpoint_id": endpoint_id}


@dataclass(frozen=True)
class DueDelivery:
    """A pending delivery whose next attempt is due: the attempt it is at, and why it is made."""

    delivery_id: str
    attempts: int
    round_start: int
    trigger: str


@functools.cache
def _due_statement(*, by_url: bool) -> Select[str, int, int, bool]:
    # Built once: a sweep reads its due deliveries every batch, and building the statement is most of the
    # CPU that costs.
    d = WebhookDelivery
    return (
        select(d.id, d.attempts, d.round_start, d.redelivered)
        .where(*_pending_where(by_url=by_url), d.next_attempt_at <= bindparam("now"))
        .order_by(d.next_attempt_at)
        .limit(bindparam("limit"))
    )


@functools.cache
def _earliest_statement(*, by_url: bool) -> Select[datetime | None]:
    return select(func.min(WebhookDelivery.next_attempt_at)).where(*_pending_where(by_url=by_url))


async def due_deliveries(
    session: AsyncSession, key: str, *, now: datetime, limit: int = DELIVERY_BATCH
) -> list[DueDelivery]:
    """The destination's deliveries due at ``now``, oldest due first: new events, retries and redeliveries.

    The first attempt of a round started by hand is ``manual``; every other one follows the schedule."""
    params = {**_destination_params(key), "now": now, "limit": limit}
    rows = await session.execute(_due_statement(by_url="url" in params), params)
    return [
        DueDelivery(row.id, row.attempts, row.round_start, MANUAL if row.redelivered else SCHEDULED)
        for row in rows
    ]


async def reschedule_sweep(session: AsyncSession, key: str, *, not_before: datetime) -> datetime | None:
    """At the end of a sweep of ``key`` (its own task already ended in this transaction): queue the next
    one at the earliest delivery still pending, but not before ``not_before``. Returns when, or None when
    nothing is pending."""
    params = _destination_params(key)
    earliest = await session.scalar(_earliest_statement(by_url="url" in params), params)
    if earliest is None:
        return None
    at = max(as_utc(earliest), not_before)
    await schedule_sweep(session, key, at)
    return at


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
    to it, signed with the account's webhook secret, in ``target_profile`` (default: kernel for kernel
    events, else standard). Returns the ids of the deliveries created.
    """
    if not payloads:
        return []
    now = utcnow()
    destinations: list[tuple[str | None, WebhookProfile]]
    if target is not None:
        name = target_profile or ("kernel" if event_type in KERNEL_EVENTS else "standard")
        profile = _check_profile(name)
        if not profile.carries(event_type):
            raise ValueError(f"profile {name!r} does not carry {event_type!r}")
        destinations = [(None, profile)]
    else:
        found = (
            endpoints if endpoints is not None else await _active_endpoints(session, account_id, event_type)
        )
        destinations = [(e.id, get_profile(e.profile)) for e in found]
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
        for endpoint_id, profile in destinations:
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
    # Multi-row INSERTs, events first (deliveries reference them): a burst of events costs a few statements.
    await session.execute(insert(WebhookEvent), events)
    await session.execute(insert(WebhookDelivery), deliveries)
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


def _test_payload(profile: WebhookProfile, now: datetime) -> tuple[str, dict[str, Any]]:
    if profile.name == "kuration":
        return TOOL_OUTPUT_READY, {
            "project_id": "00000000-0000-4000-8000-000000000000",
            "row_id": "TestRow0000000000000",
            "col_id": "00000000-0000-4000-8000-000000000001",
            "value": "test",
            "status": "success",
        }
    if profile.name == "kernel":
        return "entity-resolution.completed", kernel_job_data(
            job_id="00000000-0000-4000-8000-000000000000",
            status="completed",
            created_at=now,
            completed_at=now,
            record={"test": True},
        )
    if profile.name == "kruncher":
        return ANALYSIS_COMPLETED, analysis_completed_data(
            project_id="00000000-0000-4000-8000-000000000000",
            analysis_id="00000000-0000-4000-8000-000000000001",
            project_name="Test project",
            kruncher_entity_company_id=None,
        )
    return TEST_EVENT, {"message": "a test event from Dossier"}


async def send_test_event(session: AsyncSession, account_id: str, endpoint_id: str) -> WebhookDelivery:
    """Queue a test event of the endpoint's profile to this endpoint only (even if it is not subscribed)."""
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    if not endpoint.active:
        raise Conflict("the endpoint is disabled; enable it first")
    profile = get_profile(endpoint.profile)
    event_type, data = _test_payload(profile, utcnow())
    [delivery_id] = await emit_events(session, account_id, event_type, [data], endpoints=[endpoint])
    delivery = await session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    return delivery


# --- the tool-cell hook ---------------------------------------------------------------------------------


async def emit_tool_outputs(session: AsyncSession, column: Column, row_pks: Sequence[int]) -> int:
    """``tool_output_ready`` for each written cell of ``column`` (``002``), in the caller's transaction.

    Called by the enrichment engine right after it writes outcomes. Nothing is written when no endpoint of
    the account subscribes. Also tells Slack when the project has no cell left to compute. Returns the number
    of events written.
    """
    if not row_pks:
        return 0
    account_id = await session.scalar(select(Project.account_id).where(Project.id == column.project_id))
    if account_id is None:
        return 0
    endpoints = await _active_endpoints(session, account_id, TOOL_OUTPUT_READY)
    count = 0
    if endpoints:
        rows = await session.execute(
            select(Row.id, Cell.value, Cell.status)
            .join(Row, Row.pk == Cell.row_pk)
            .where(Cell.column_id == column.id, Cell.row_pk.in_(list(row_pks)))
            .order_by(Cell.row_pk)
        )
        payloads = [
            {
                "project_id": column.project_id,
                "row_id": row_id,
                "col_id": column.id,
                "value": value_string(value),
                "status": status,
            }
            for row_id, value, status in rows
        ]
        await emit_events(session, account_id, TOOL_OUTPUT_READY, payloads, endpoints=endpoints)
        count = len(payloads)
    await _maybe_enrichment_finished(session, account_id, column.project_id)
    return count


async def _maybe_enrichment_finished(session: AsyncSession, account_id: str, project_id: str) -> None:
    connection = await session.get(SlackConnection, account_id)
    if connection is None or NOTICE_ENRICHMENT_FINISHED not in connection.notices:
        return
    # Two chunks finishing at once would each see the other's cells still running and both stay silent.
    # Locking the project row serialises the checks: the second waits for the first to commit, and under READ
    # COMMITTED its next statement sees those cells final (SQLite serialises writers anyway).
    await session.execute(select(Project.id).where(Project.id == project_id).with_for_update())
    unfinished = await session.scalar(
        select(Cell.row_pk)
        .join(Row, Row.pk == Cell.row_pk)
        .where(Row.project_id == project_id, Cell.status.not_in(list(FINAL_STATUSES)))
        .limit(1)
    )
    if unfinished is not None:
        return
    name = await session.scalar(select(Project.name).where(Project.id == project_id))
    text = f"Enrichment of project {name!r} finished: every tool cell has a result."
    queue_slack(session, account_id, text, _blocks(":white_check_mark: *Enrichment finished*", text))


# --- history --------------------------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    account_id: str,
    endpoint_id: str,
    *,
    status: str | None = None,
    event_type: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[WebhookDelivery], int]:
    """One page of an endpoint's deliveries, newest first, and the total matching."""
    await get_endpoint(session, account_id, endpoint_id)
    limit = max(1, min(limit, MAX_LIST_LIMIT))
    where = [WebhookDelivery.endpoint_id == endpoint_id]
    if status is not None:
        where.append(WebhookDelivery.status == status)
    if event_type is not None:
        where.append(WebhookDelivery.event_type == event_type)
    total = await session.scalar(select(func.count()).select_from(WebhookDelivery).where(*where))
    page = await session.scalars(
        select(WebhookDelivery)
        .where(*where)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
        .offset(max(0, offset))
    )
    return list(page), int(total or 0)


async def get_delivery(
    session: AsyncSession, account_id: str, delivery_id: str
) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    """A delivery of the account with all its attempts, oldest first."""
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.account_id != account_id:
        raise NotFound(f"no webhook delivery {delivery_id!r}")
    attempts = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.number, WebhookAttempt.id)
    )
    return delivery, list(attempts)


def _redeliver(delivery: WebhookDelivery, now: datetime) -> str:
    """Start a new round of ``delivery`` now, its first attempt ``manual``. Returns its destination key: the
    caller schedules that sweep once for all."""
    delivery.status = PENDING
    delivery.next_attempt_at = now
    delivery.round_start = delivery.attempts
    delivery.redelivered = True
    return destination_key(delivery.endpoint_id, delivery.target_url)


async def redeliver(session: AsyncSession, account_id: str, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again now (trigger ``manual``) with the same body and ``webhook-id``.

    It gets the profile's retry schedule again if this attempt fails.
    """
    delivery, _ = await get_delivery(session, account_id, delivery_id)
    if delivery.endpoint_id is not None:
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is not None and not endpoint.active:
            raise Conflict("the endpoint is disabled; enable it first")
    now = utcnow()
    key = _redeliver(delivery, now)
    await session.flush()
    await schedule_sweep(session, key, now)
    return delivery


async def recover_failed(session: AsyncSession, account_id: str, endpoint_id: str, since: datetime) -> int:
    """Redeliver every failed delivery of the endpoint created at or after ``since``; returns how many."""
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    if not endpoint.active:
        raise Conflict("the endpoint is disabled; enable it first")
    if since.tzinfo is None:
        raise InvalidInput("since must include a time zone (e.g. 2026-01-01T00:00:00Z)")
    failed = await session.scalars(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status == FAILED,
            WebhookDelivery.created_at >= since,
        )
        .order_by(WebhookDelivery.created_at)
    )
    now = utcnow()
    count = 0
    key = None
    for delivery in failed:
        key = _redeliver(delivery, now)
        count += 1
    await session.flush()
    if key is not None:
        await schedule_sweep(session, key, now)
    return count


# --- the dispatcher's side: plan an attempt, record it --------------------------------------------------


@dataclass(frozen=True)
class AttemptPlan:
    """Everything one HTTP attempt needs, read in a short transaction before the request is sent."""

    delivery_id: str
    account_id: str
    endpoint_id: str | None
    url: str
    profile: str
    event_type: str
    payload: dict[str, Any]
    secrets: list[SecretVersion]
    options: dict[str, str]
    seq: int
    base: int
    trigger: str

    @property
    def destination(self) -> str:
        """The destination key (see :func:`destination_key`)."""
        return destination_key(self.endpoint_id, self.url if self.endpoint_id is None else None)


async def plan_attempts(
    session: AsyncSession, items: Sequence[tuple[str, int, int]], *, trigger: str
) -> list[AttemptPlan]:
    """What to send for a task's deliveries, skipping those with nothing to do (stale task, finished
    delivery, deleted endpoint). Deliveries whose endpoint is disabled are failed here, without an attempt."""
    wanted = {delivery_id: (seq, base) for delivery_id, seq, base in items}
    if not wanted:
        return []
    d, e = WebhookDelivery, WebhookEndpoint
    deliveries = (
        await session.execute(
            select(
                d.id,
                d.account_id,
                d.endpoint_id,
                d.target_url,
                d.profile,
                d.event_type,
                d.payload,
                d.status,
                d.attempts,
                e.id.label("found_endpoint"),
                e.url,
                e.active,
                e.disabled_reason,
                e.options,
            )
            .outerjoin(e, e.id == d.endpoint_id)
            .where(d.id.in_(list(wanted)))
        )
    ).all()
    endpoint_ids = {row.endpoint_id for row in deliveries if row.endpoint_id is not None}
    secrets: dict[str, list[SecretVersion]] = {}
    if endpoint_ids:
        now = utcnow()
        rows = await session.scalars(
            select(WebhookSecret)
            .where(WebhookSecret.endpoint_id.in_(endpoint_ids))
            .order_by(WebhookSecret.endpoint_id, WebhookSecret.version.desc())
        )
        grouped: dict[str, list[WebhookSecret]] = {}
        for secret in rows:
            grouped.setdefault(secret.endpoint_id, []).append(secret)
        secrets = {endpoint_id: _signing(versions, now) for endpoint_id, versions in grouped.items()}
    account_secrets: dict[str, str | None] = {}
    disabled: list[dict[str, Any]] = []
    plans: list[AttemptPlan] = []
    for row in deliveries:
        seq, base = wanted[row.id]
        if row.status != PENDING or row.attempts != seq:
            continue
        options: dict[str, str] = {}
        if row.endpoint_id is not None:
            if row.found_endpoint is None:
                continue
            if not row.active:
                reason = f"endpoint disabled: {row.disabled_reason or 'no reason given'}"
                disabled.append(
                    {"id": row.id, "status": FAILED, "next_attempt_at": None, "last_error": reason}
                )
                continue
            url = row.url
            signing = secrets.get(row.endpoint_id, [])
            options = {k: str(v) for k, v in (row.options or {}).items()}
        else:
            if row.account_id not in account_secrets:
                account = await session.get(Account, row.account_id)
                account_secrets[row.account_id] = account.webhook_secret if account is not None else None
            account_secret = account_secrets[row.account_id]
            if account_secret is None or row.target_url is None:
                continue
            url = row.target_url
            signing = [SecretVersion(account_secret)]
        if not signing:
            continue
        plans.append(
            AttemptPlan(
                delivery_id=row.id,
                account_id=row.account_id,
                endpoint_id=row.endpoint_id,
                url=url,
                profile=row.profile,
                event_type=row.event_type,
                payload=dict(row.payload),
                secrets=signing,
                options=options,
                seq=seq,
                base=base,
                trigger=trigger,
            )
        )
    if disabled:
        await session.execute(update(WebhookDelivery), disabled)
    return plans


@dataclass(frozen=True)
class AttemptResult:
    """What happened on the wire. ``status`` None means no response (``Error Request``)."""

    attempt_id: str
    started_at: datetime
    request_headers: dict[str, str]
    status: int | None
    response_headers: dict[str, str] | None
    response_body: str | None
    duration_ms: int
    error_class: str | None = None
    error_text: str | None = None
    timed_out: bool = False
    retry_after: str | None = None

    @property
    def succeeded(self) -> bool:
        """A 2xx answer; a 3xx is a failure because redirects are not followed."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        """The outcome name of ``001``'s delivery history."""
        if self.succeeded:
            return SUCCESS
        return ERROR_RESPONSE if self.status is not None else ERROR_REQUEST


# Successful deliveries refresh their endpoint's last_delivery_at at most this often (seconds): a burst to
# one endpoint would otherwise make every dispatcher task write, and queue on, the same endpoint row.
LAST_DELIVERY_RESOLUTION = 1.0


async def record_attempts(
    session: AsyncSession,
    outcomes: Sequence[tuple[AttemptPlan, AttemptResult, float | None]],
    *,
    settings: Settings,
) -> list[bool]:
    """Record a task's attempts and decide what follows each: (plan, result, next delay if it failed).

    A success ends its delivery; a failure schedules the next try after its delay (the profile schedule's
    answer; None: no attempts left, the delivery fails). A 410 Gone disables the endpoint, and so does an
    endpoint failing continuously for ``webhook_disable_after_days``. Retries are made by the destination's
    sweep, which queues itself again for them when it ends (:func:`reschedule_sweep`).

    The deliveries are locked first (``FOR UPDATE`` on PostgreSQL; SQLite transactions hold the write lock),
    so an attempt that another run of the same task already recorded is recognised and left out (False in
    its place). Statements are shared by the lot: one SELECT, multi-row INSERT and UPDATEs.
    """
    d = WebhookDelivery
    ids = [plan.delivery_id for plan, _, _ in outcomes]
    current = {
        row.id: (row.status, row.attempts)
        for row in await session.execute(
            select(d.id, d.status, d.attempts)
            .where(d.id.in_(ids))
            .order_by(d.id)  # one lock order for every transaction: no deadlock between them
            .with_for_update()
        )
    }
    now = utcnow()
    recorded: list[bool] = []
    attempts: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    # Per endpoint, its outcomes in order: endpoints that only succeeded get one conditional UPDATE.
    by_endpoint: dict[str, list[tuple[AttemptPlan, AttemptResult, dict[str, Any]]]] = {}
    for plan, result, delay in outcomes:
        if current.get(plan.delivery_id) != (PENDING, plan.seq):
            recorded.append(False)
            continue
        recorded.append(True)
        attempt = {
            "delivery_id": plan.delivery_id,
            "number": plan.seq + 1,
            "attempt_id": result.attempt_id,
            "trigger": plan.trigger,
            "started_at": result.started_at,
            "url": plan.url,
            "request_headers": result.request_headers,
            "response_status": result.status,
            "response_headers": result.response_headers,
            "response_body": result.response_body,
            "duration_ms": result.duration_ms,
            "error_class": result.error_class,
            "error_text": result.error_text,
            "outcome": result.outcome,
            "next_attempt_at": None,
        }
        change = {
            "id": plan.delivery_id,
            "attempts": plan.seq + 1,
            "last_attempt_at": result.started_at,
            "last_status_code": result.status,
            "last_error": result.error_text,
            "status": FAILED,
            "next_attempt_at": None,
            "redelivered": False,
        }
        if result.succeeded:
            change.update(status=SUCCEEDED, delivered_at=now)
        elif result.status != 410 and delay is not None:
            # Gone (410): the receiver says it will never take this again; no retry.
            at = now + timedelta(seconds=delay)
            change.update(status=PENDING, next_attempt_at=at)
            attempt["next_attempt_at"] = at
        attempts.append(attempt)
        changes.append(change)
        if plan.endpoint_id is not None:
            by_endpoint.setdefault(plan.endpoint_id, []).append((plan, result, change))
    if attempts:
        await session.execute(insert(WebhookAttempt), attempts)
        await session.execute(update(WebhookDelivery), changes)
    await _record_endpoint_health(session, by_endpoint, now, settings)
    await session.flush()
    return recorded


async def _record_endpoint_health(
    session: AsyncSession,
    by_endpoint: Mapping[str, Sequence[tuple[AttemptPlan, AttemptResult, Mapping[str, Any]]]],
    now: datetime,
    settings: Settings,
) -> None:
    healthy = [eid for eid, results in by_endpoint.items() if all(r.succeeded for _, r, _ in results)]
    if healthy:
        e = WebhookEndpoint
        await session.execute(
            update(e)
            .where(
                e.id.in_(healthy),
                or_(
                    e.failing_since.is_not(None),
                    e.failure_notified_at.is_not(None),
                    e.last_delivery_at.is_(None),
                    e.last_delivery_at < now - timedelta(seconds=LAST_DELIVERY_RESOLUTION),
                ),
            )
            .values(failing_since=None, failure_notified_at=None, last_delivery_at=now)
            .execution_options(synchronize_session=False)
        )
    failing = [eid for eid in by_endpoint if eid not in healthy]
    if not failing:
        return
    found = await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(failing)))
    limit = timedelta(days=settings.webhook_disable_after_days)
    for endpoint in found:
        for plan, result, change in by_endpoint[endpoint.id]:
            if result.succeeded:
                endpoint.failing_since = None
                endpoint.failure_notified_at = None
                endpoint.last_delivery_at = now
                continue
            if result.status == 410:
                await disable_endpoint(session, endpoint, "the endpoint answered 410 Gone")
            if not endpoint.active:
                continue
            if endpoint.failing_since is None:
                endpoint.failing_since = result.started_at
            if now - endpoint.failing_since >= limit:
                await disable_endpoint(
                    session,
                    endpoint,
                    f"every attempt failed for {settings.webhook_disable_after_days:g} days "
                    f"(since {endpoint.failing_since.isoformat()})",
                )
            elif change["status"] == FAILED and endpoint.failure_notified_at is None:
                endpoint.failure_notified_at = now
                text = (
                    f"Webhook endpoint {endpoint.url} is failing: delivery {plan.delivery_id} "
                    f"({plan.event_type}) failed permanently after {change['attempts']} attempts "
                    f"(last: {result.status or result.error_class}: {result.error_text or ''})."
                )
                await notify_slack(
                    session,
                    endpoint.account_id,
                    NOTICE_ENDPOINT_FAILING,
                    text,
                    ":warning: *Webhook endpoint failing*",
                )


async def disable_endpoint(session: AsyncSession, endpoint: WebhookEndpoint, reason: str) -> None:
    """Disable an endpoint, tell the account (an event to its other endpoints, and Slack if connected)."""
    if not endpoint.active:
        return
    now = utcnow()
    endpoint.active = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.updated_at = now
    await session.flush()
    log.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint.id, "reason": reason})
    await emit_event(
        session,
        endpoint.account_id,
        ENDPOINT_DISABLED_EVENT,
        {"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason, "disabled_at": now.isoformat()},
    )
    text = f"Webhook endpoint {endpoint.url} was disabled: {reason}. Re-enable it and recover what it missed."
    await notify_slack(
        session, endpoint.account_id, NOTICE_ENDPOINT_DISABLED, text, ":no_entry: *Webhook endpoint disabled*"
    )


# --- retention ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune_history` deleted."""

    deliveries: int
    events: int


PRUNE_BATCH = 2000


async def prune_history(session: AsyncSession, *, before: datetime, limit: int = PRUNE_BATCH) -> Pruned:
    """Delete up to ``limit`` finished deliveries (succeeded or failed) created before ``before``, with their
    attempts, then the events older than that left without deliveries. Pending deliveries are never
    deleted, whatever their age. Call it until it deletes nothing (each call is meant to be one short
    transaction)."""
    if before.tzinfo is None:
        raise InvalidInput("before must include a time zone")
    d = WebhookDelivery
    ids = list(
        await session.scalars(
            select(d.id).where(d.status.in_([SUCCEEDED, FAILED]), d.created_at < before).limit(limit)
        )
    )
    if ids:
        # Attempts first: not every store enforces ON DELETE CASCADE the same way.
        await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
        await session.execute(delete(d).where(d.id.in_(ids)).execution_options(synchronize_session=False))
    e = WebhookEvent
    orphans = list(
        await session.scalars(
            select(e.id)
            .where(e.created_at < before, ~select(d.id).where(d.event_id == e.id).exists())
            .limit(limit)
        )
    )
    if orphans:
        await session.execute(delete(e).where(e.id.in_(orphans)).execution_options(synchronize_session=False))
    return Pruned(deliveries=len(ids), events=len(orphans))


# --- Slack ----------------------------------------------------------------------------------------------


def _blocks(title: str, text: str) -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
        {"type": "section", "text": {"type": "plain_text", "text": text}},
    ]


def queue_slack(session: AsyncSession, account_id: str, text: str, blocks: list[dict[str, Any]]) -> None:
    """Queue a Slack message (``text`` is the fallback shown in notifications, ``blocks`` the layout)."""
    enqueue(session, SLACK_TASK, {"account_id": account_id, "text": text, "blocks": blocks})


async def notify_slack(session: AsyncSession, account_id: str, notice: str, text: str, title: str) -> bool:
    """Queue a Slack message if the account connected Slack and picked ``notice``; returns whether it did."""
    connection = await session.get(SlackConnection, account_id)
    if connection is None or notice not in connection.notices:
        return False
    queue_slack(session, account_id, text, _blocks(title, text))
    return True


def _check_notices(notices: Sequence[str] | None) -> list[str]:
    if notices is None:
        return list(NOTICES)
    unknown = [n for n in notices if n not in NOTICES]
    if unknown:
        raise InvalidInput(f"unknown Slack notice(s) {unknown}; choose from: {', '.join(NOTICES)}")
    return list(dict.fromkeys(notices))


async def connect_slack(
    session: AsyncSession,
    account_id: str,
    *,
    url: str,
    notices: Sequence[str] | None,
    http: OutboundClient,
) -> SlackConnection:
    """Connect (or replace) the account's Slack incoming webhook, validated by the outbound policy."""
    checked = _check_notices(notices)
    url = await validate_url(http, url)
    now = utcnow()
    connection = await session.get(SlackConnection, account_id)
    if connection is None:
        connection = SlackConnection(account_id=account_id, url=url, notices=checked, created_at=now)
        session.add(connection)
    else:
        connection.url = url
        connection.notices = checked
    connection.updated_at = now
    await session.flush()
    return connection


async def get_slack(session: AsyncSession, account_id: str) -> SlackConnection:
    """The account's Slack connection; NotFound when Slack is not connected."""
    connection = await session.get(SlackConnection, account_id)
    if connection is None:
        raise NotFound("Slack is not connected")
    return connection


async def update_slack_notices(
    session: AsyncSession, account_id: str, notices: Sequence[str]
) -> SlackConnection:
    """Choose which notices go to Slack."""
    connection = await get_slack(session, account_id)
    connection.notices = _check_notices(notices)
    connection.updated_at = utcnow()
    await session.flush()
    return connection


async def disconnect_slack(session: AsyncSession, account_id: str) -> None:
    """Forget the account's Slack connection."""
    connection = await get_slack(session, account_id)
    await session.delete(connection)
    await session.flush()
