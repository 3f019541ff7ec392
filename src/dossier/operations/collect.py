"""What a scrape reads from the database: queue depth by kind, the backlog's age, endpoint states, live
workers. The counters and histograms are kept in memory by ``dossier.metrics``; these gauges are set here,
just before the text is rendered, so every scrape target reports the cluster's current values."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier import metrics
from dossier.db.base import utcnow
from dossier.queue.store import queue_snapshot, workers_seen_since
from dossier.settings import Settings
from dossier.webhooks.models import WebhookEndpoint

log = logging.getLogger("dossier.operations")


async def endpoint_states(session: AsyncSession) -> dict[str, int]:
    """Webhook endpoints by state: healthy, failing (active, attempts failing), disabled."""
    e = WebhookEndpoint
    state = case(
        (e.active.is_(False), "disabled"), (e.failing_since.is_not(None), "failing"), else_="healthy"
    )
    rows = await session.execute(select(state, func.count()).group_by(state))
    found = {str(name): int(count) for name, count in rows}
    return {name: found.get(name, 0) for name in ("healthy", "failing", "disabled")}


async def refresh_gauges(maker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Set the database-read gauges; a database that does not answer leaves them as they were (the scrape
    still answers, and `/readyz` reports the database)."""
    try:
        async with maker() as session, session.begin():
            snapshot = await queue_snapshot(session)
            endpoints = await endpoint_states(session)
            alive = await workers_seen_since(
                session, utcnow() - timedelta(seconds=settings.readyz_worker_max_age)
            )
    except Exception:
        log.warning("reading metrics from the database failed", exc_info=True)
        return
    metrics.QUEUE_TASKS.clear()
    for kind, state, count in snapshot.counts:
        metrics.QUEUE_TASKS.labels(kind, state).set(count)
    metrics.QUEUE_OLDEST_DUE.set(snapshot.oldest_due_age)
    for state, count in endpoints.items():
        metrics.WEBHOOK_ENDPOINTS.labels(state).set(count)
    metrics.WORKERS_ALIVE.set(alive)


async def scrape(maker: async_sessionmaker[AsyncSession], settings: Settings) -> bytes:
    """The body of `GET /metrics`."""
    await refresh_gauges(maker, settings)
    return metrics.render()
