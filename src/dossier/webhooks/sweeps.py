"""Sweep scheduling: ONE sweep task per destination, in the whole cluster, makes every attempt to it.

Deliveries are data: a pending delivery is due at its ``next_attempt_at`` (now for a new event, then its
profile's retry schedule, or now again on a manual redelivery). A destination's sweep takes the due
deliveries a batch at a time, oldest due first, until none is due, then ends and queues itself again for the
earliest one still pending. So a destination costs one worker slot at most, however many events it is sent,
and a dead one costs a task per batch of due deliveries. ``round_start`` is the attempt count at the start
of the current round (0, or the count at a manual redelivery), so a redelivered message gets the whole
schedule again.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.db.base import as_utc
from dossier.queue.service import enqueue_or_advance
from dossier.webhooks.models import MANUAL, PENDING, SCHEDULED, WebhookDelivery

# The one task per destination that makes every attempt (see schedule_sweep).
SWEEP_TASK = "webhooks.sweep"
# A due sweep is claimed before due work of priority 0 (tool cells, backfills): a large import's queue of
# cell chunks would otherwise hold every destination's deliveries back until the last chunk was computed.
SWEEP_PRIORITY = 10
# Due deliveries of one destination a sweep takes at a time (read in one transaction, recorded in one).
DELIVERY_BATCH = 100
# The batch of a destination that answers fast and accepts what it is sent (see webhooks.tasks._Limits): each
# batch costs two transactions and a handful of statements, spread over more attempts (bench/webhooks.py:
# 250 instead of 100, 10% more deliveries per CPU second; 500 instead of 250, 12% less CPU per delivery).
# Kept for those only, as a batch is recorded when its last attempt ends, and is what a crash may send
# twice.
FAST_DELIVERY_BATCH = 500


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


def _sweep_dedupe_key(key: str) -> str:
    # The queue's dedupe keys are short; a one-off URL may not be.
    if len(key) > 150:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return f"{SWEEP_TASK}:{key}"


async def schedule_sweep(
    session: AsyncSession, key: str, at: datetime, *, hold_until: datetime | None = None
) -> None:
    """Make sure the sweep of destination ``key`` runs at ``at`` or sooner (one sweep per destination).
    ``hold_until``: a new sweep is not moved before then by later calls (a destination that just failed a
    whole batch: its new events wait and go together).

    The queue row is locked until the caller commits (an upsert). A sweep that is running ends by locking
    its own row and then reading what is still pending, so a delivery committed under that lock is seen
    by the ending sweep, and one committed after it finds no unfinished sweep and queues a new one:
    whichever way they interleave, no pending delivery is left without a sweep.
    """
    await enqueue_or_advance(
        session,
        SWEEP_TASK,
        {"key": key},
        dedupe_key=_sweep_dedupe_key(key),
        run_at=at,
        not_before=hold_until,
        priority=SWEEP_PRIORITY,
    )


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


async def reschedule_sweep(
    session: AsyncSession, key: str, *, not_before: datetime, hold: bool = False
) -> datetime | None:
    """At the end of a sweep of ``key`` (its own task already ended in this transaction): queue the next
    one at the earliest delivery still pending, but not before ``not_before``; with ``hold``, new events
    do not move it before ``not_before`` either. Returns when, or None when nothing is pending."""
    params = _destination_params(key)
    earliest = await session.scalar(_earliest_statement(by_url="url" in params), params)
    if earliest is None:
        return None
    at = max(as_utc(earliest), not_before)
    await schedule_sweep(session, key, at, hold_until=not_before if hold else None)
    return at
