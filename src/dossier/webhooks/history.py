"""Delivery history: an endpoint's deliveries and their attempts, manual redelivery, and pruning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.db.base import utcnow
from dossier.errors import Conflict, InvalidInput, NotFound
from dossier.webhooks.models import (
    FAILED,
    PENDING,
    SUCCEEDED,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from dossier.webhooks.service import get_endpoint
from dossier.webhooks.sweeps import destination_key, schedule_sweep

MAX_LIST_LIMIT = 100


async def list_deliveries(
    session: AsyncSession,
    account_id: str,
    endpoint_id: str,
    *,
    status: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[WebhookDelivery], int]:
    """One page of an endpoint's deliveries (created at or after ``since`` when given), newest first, and
    the total matching."""
    await get_endpoint(session, account_id, endpoint_id)
    limit = max(1, min(limit, MAX_LIST_LIMIT))
    where = [WebhookDelivery.endpoint_id == endpoint_id]
    if status is not None:
        where.append(WebhookDelivery.status == status)
    if event_type is not None:
        where.append(WebhookDelivery.event_type == event_type)
    if since is not None:
        where.append(WebhookDelivery.created_at >= since)
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


async def deliveries_to_target(
    session: AsyncSession, account_id: str, target_url: str, *, since: datetime, limit: int = 200
) -> list[tuple[WebhookDelivery, WebhookEvent]]:
    """The account's one-off deliveries (a job's ``webhook_url``) to ``target_url`` created since ``since``,
    oldest first, with their events (callers pick theirs by the event's data)."""
    rows = await session.execute(
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(
            WebhookDelivery.account_id == account_id,
            WebhookDelivery.endpoint_id.is_(None),
            WebhookDelivery.target_url == target_url,
            WebhookDelivery.created_at >= since,
        )
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        .limit(limit)
    )
    return [(delivery, event) for delivery, event in rows]


async def event_types(session: AsyncSession, account_id: str, endpoint_id: str) -> list[str]:
    """The event types an endpoint has deliveries of (for filters)."""
    await get_endpoint(session, account_id, endpoint_id)
    found = await session.scalars(
        select(WebhookDelivery.event_type)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .distinct()
        .order_by(WebhookDelivery.event_type)
    )
    return list(found)


# --- retention ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune_history` deleted."""

    deliveries: int
    events: int
    attempts: int = 0


PRUNE_BATCH = 2000


async def prune_deliveries(
    session: AsyncSession, *, statuses: Sequence[str], before: datetime, limit: int
) -> tuple[int, int]:
    """Delete up to ``limit`` deliveries in ``statuses`` (finished ones only) created before ``before``,
    with their attempts; returns (deliveries, attempts) deleted. One short transaction's worth."""
    if before.tzinfo is None:
        raise InvalidInput("before must include a time zone")
    kept = [status for status in statuses if status in (SUCCEEDED, FAILED)]  # pending is never pruned
    d = WebhookDelivery
    ids = list(
        await session.scalars(select(d.id).where(d.status.in_(kept), d.created_at < before).limit(limit))
    )
    if not ids:
        return 0, 0
    # Attempts first: not every store enforces ON DELETE CASCADE the same way.
    attempts = cast(
        CursorResult[Any],
        await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids))),
    )
    await session.execute(delete(d).where(d.id.in_(ids)).execution_options(synchronize_session=False))
    return len(ids), attempts.rowcount


async def prune_orphan_events(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` events created before ``before`` that have no delivery left (never had one, or
    theirs were pruned); returns how many."""
    d, e = WebhookDelivery, WebhookEvent
    orphans = list(
        await session.scalars(
            select(e.id)
            .where(e.created_at < before, ~select(d.id).where(d.event_id == e.id).exists())
            .limit(limit)
        )
    )
    if orphans:
        await session.execute(delete(e).where(e.id.in_(orphans)).execution_options(synchronize_session=False))
    return len(orphans)


async def prune_history(session: AsyncSession, *, before: datetime, limit: int = PRUNE_BATCH) -> Pruned:
    """Delete up to ``limit`` finished deliveries (succeeded or failed) created before ``before``, with their
    attempts, then the events older than that left without deliveries. Pending deliveries are never
    deleted, whatever their age. Call it until it deletes nothing (each call is meant to be one short
    transaction)."""
    deliveries, attempts = await prune_deliveries(
        session, statuses=(SUCCEEDED, FAILED), before=before, limit=limit
    )
    events = await prune_orphan_events(session, before=before, limit=limit)
    return Pruned(deliveries=deliveries, events=events, attempts=attempts)
