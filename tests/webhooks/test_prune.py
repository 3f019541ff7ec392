"""`dossier webhooks prune` through the real command: old finished history goes, pending work stays."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts.service import NewAccount
from dossier.db.base import utcnow
from dossier.net import OutboundClient
from dossier.webhooks import service
from dossier.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent
from tests.conftest import dossier_env, run_cli


async def test_prune_deletes_old_finished_history_and_keeps_pending_deliveries(
    database_url: str,
    account: NewAccount,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    account_id = account.account.id
    async with sessionmaker() as session, session.begin():
        await service.create_endpoint(
            session, account_id, url="http://127.0.0.1:9/hook", profile="standard", events=None, http=http
        )
        old_done, old_failed, old_pending, recent_done = await service.emit_events(
            session, account_id, "order.paid", [{"n": n} for n in range(4)]
        )
        month_ago = utcnow() - timedelta(days=40)
        d = WebhookDelivery
        await session.execute(
            update(d).where(d.id.in_([old_done, old_failed, old_pending])).values(created_at=month_ago)
        )
        await session.execute(update(WebhookEvent).values(created_at=month_ago))
        await session.execute(update(d).where(d.id.in_([old_done, recent_done])).values(status="succeeded"))
        await session.execute(update(d).where(d.id == old_failed).values(status="failed"))
        for delivery_id in (old_done, old_failed, recent_done):
            session.add(
                WebhookAttempt(
                    delivery_id=delivery_id,
                    number=1,
                    attempt_id="att_x",
                    url="http://127.0.0.1:9/hook",
                    outcome="Success",
                    started_at=month_ago,
                )
            )

    result = await asyncio.to_thread(
        run_cli, "webhooks", "prune", "--older-than-days", "30", env=dossier_env(database_url)
    )
    assert result.returncode == 0, result.stderr
    assert "deleted 2 deliveries" in result.stdout and "2 events" in result.stdout

    async with sessionmaker() as session:
        left = set(await session.scalars(select(WebhookDelivery.id)))
        attempts = set(await session.scalars(select(WebhookAttempt.delivery_id)))
        events = await session.scalar(select(func.count()).select_from(WebhookEvent))
    # Old finished deliveries and their attempts are gone; a pending one stays however old it is, with its
    # event; recent history stays.
    assert left == {old_pending, recent_done}
    assert attempts == {recent_done}
    assert events == 2

    again = await asyncio.to_thread(
        run_cli, "webhooks", "prune", "--older-than-days", "30", env=dossier_env(database_url)
    )
    assert again.returncode == 0 and "deleted 0 deliveries" in again.stdout
    bad = await asyncio.to_thread(
        run_cli, "webhooks", "prune", "--older-than-days", "-1", env=dossier_env(database_url)
    )
    assert bad.returncode == 2 and "older-than-days" in bad.stderr
