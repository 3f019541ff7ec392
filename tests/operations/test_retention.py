"""Automatic retention: the cluster's one periodic task on the real queue deletes each kind of old finished
data in bounded batches, and keeps everything pending, unfinished or recent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts.service import NewAccount
from dossier.db.base import utcnow
from dossier.jobs.models import Job
from dossier.operations.retention import prune_all
from dossier.operations.tasks import RETENTION_TASK, ensure_retention_task
from dossier.pipeline.models import Analysis, TrackedCompany
from dossier.queue.models import Task
from dossier.settings import Settings
from dossier.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent
from tests.helpers import eventually, running_worker

OLD = timedelta(days=200)
BATCH = 3


async def seed(maker: async_sessionmaker[AsyncSession], account_id: str) -> None:
    """Old and recent history of every kind; ``keep-*`` rows must survive, ``old-*`` rows must go."""
    now = utcnow()
    old = now - OLD
    async with maker() as session, session.begin():
        for name, created in (("old", old), ("new", now)):
            # Ten succeeded and two failed deliveries of one event, each with two attempts.
            session.add(
                WebhookEvent(
                    id=f"{name}-event", account_id=account_id, type="t", payload={}, created_at=created
                )
            )
            # An event whose only delivery is pending: kept with it, however old.
            session.add(
                WebhookEvent(
                    id=f"{name}-busy", account_id=account_id, type="t", payload={}, created_at=created
                )
            )
            # An event nobody was subscribed to.
            session.add(
                WebhookEvent(
                    id=f"{name}-lone", account_id=account_id, type="t", payload={}, created_at=created
                )
            )
        await session.flush()
        for name, created in (("old", old), ("new", now)):
            statuses = ["succeeded"] * 10 + ["failed"] * 2
            for n, status in enumerate(statuses):
                delivery_id = f"{name}-{status}-{n}"
                session.add(
                    WebhookDelivery(
                        id=delivery_id,
                        account_id=account_id,
                        event_id=f"{name}-event",
                        event_type="t",
                        target_url="http://127.0.0.1:9/",
                        profile="standard",
                        payload={},
                        status=status,
                        created_at=created,
                    )
                )
            session.add(
                WebhookDelivery(
                    id=f"{name}-pending",
                    account_id=account_id,
                    event_id=f"{name}-busy",
                    event_type="t",
                    target_url="http://127.0.0.1:9/",
                    profile="standard",
                    payload={},
                    status="pending",
                    created_at=created,
                )
            )
            await session.flush()
            for n, status in enumerate(statuses):
                for number in (1, 2):
                    session.add(
                        WebhookAttempt(
                            delivery_id=f"{name}-{status}-{n}",
                            number=number,
                            attempt_id=f"att-{name}-{n}-{number}",
                            url="http://127.0.0.1:9/",
                            outcome="Success",
                            started_at=created,
                        )
                    )
            for n, status in enumerate(["completed", "failed", "running"]):
                session.add(
                    Job(
                        id=f"{name}-job-{n}",
                        account_id=account_id,
                        kind="entity-resolution",
                        status=status,
                        input={},
                        created_at=created,
                        completed_at=created if status != "running" else None,
                    )
                )
            company = TrackedCompany(account_id=account_id, name="Acme", status="sourcing")
            session.add(company)
            await session.flush()
            for n, status in enumerate(["completed", "failed", "running"]):
                session.add(
                    Analysis(
                        id=f"{name}-analysis-{n}",
                        account_id=account_id,
                        company_id=company.id,
                        status=status,
                        created_at=created,
                        completed_at=created if status != "running" else None,
                    )
                )
            session.add(Task(kind="x", payload={}, status="failed", finished_at=created, errors=[]))
            # Queued work is never pruned (due in the future here, so the test's worker leaves it alone).
            session.add(Task(kind="x", payload={}, status="queued", run_at=now + OLD, errors=[]))


async def ids(maker: async_sessionmaker[AsyncSession], column: Any) -> set[str]:
    async with maker() as session:
        return {str(value) for value in await session.scalars(select(column))}


def retention_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"retention_batch_size": BATCH, "retention_batch_pause": 0.0})


async def test_the_retention_task_deletes_old_finished_history_in_bounded_batches(
    settings: Settings, app: Any, account: NewAccount
) -> None:
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    settings = retention_settings(settings)
    await seed(maker, account.account.id)
    # Every DELETE the task makes is recorded with the rows it removed.
    deletes: list[tuple[str, int]] = []
    engine = app.state.engine.sync_engine

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM"):
            deletes.append((statement.split()[2].strip('"'), cursor.rowcount))

    event.listen(engine, "after_cursor_execute", record)
    try:
        async with maker() as session, session.begin():
            first = await ensure_retention_task(session)
            # Every process queues it at start: the cluster still has one.
            assert await ensure_retention_task(session) is None
        assert first is not None
        async with running_worker(settings, maker):

            async def rescheduled() -> bool:
                async with maker() as session:
                    tasks = list(await session.scalars(select(Task).where(Task.kind == RETENTION_TASK)))
                later = utcnow() + timedelta(seconds=settings.retention_interval - 60)
                return len(tasks) == 1 and tasks[0].status == "queued" and tasks[0].run_at > later

            await eventually(rescheduled, within=30, what="the retention task ran and queued its next run")
    finally:
        event.remove(engine, "after_cursor_execute", record)

    # Old finished history is gone; pending, unfinished and recent work stays.
    deliveries = await ids(maker, WebhookDelivery.id)
    assert not {d for d in deliveries if d.startswith("old-") and d != "old-pending"}
    assert "old-pending" in deliveries and len([d for d in deliveries if d.startswith("new-")]) == 13
    async with maker() as session:
        attempts = set(await session.scalars(select(WebhookAttempt.delivery_id)))
        tasks = list(
            await session.execute(select(Task.kind, Task.status, Task.run_at).where(Task.kind == "x"))
        )
    assert attempts and all(a.startswith("new-") for a in attempts)
    # old-event lost its deliveries, old-lone never had one: both go; old-busy keeps its pending delivery.
    assert await ids(maker, WebhookEvent.id) == {"old-busy", "new-event", "new-busy", "new-lone"}
    assert await ids(maker, Job.id) == {"old-job-2", "new-job-0", "new-job-1", "new-job-2"}
    assert await ids(maker, Analysis.id) == {
        "old-analysis-2",
        "new-analysis-0",
        "new-analysis-1",
        "new-analysis-2",
    }
    assert sorted(status for _, status, _ in tasks) == ["failed", "queued", "queued"]

    # Bounded batches: no DELETE removed more than the batch size of deliveries (or their attempts).
    by_table: dict[str, list[int]] = {}
    for table, count in deletes:
        by_table.setdefault(table, []).append(count)
    assert max(by_table["webhook_deliveries"]) <= BATCH
    assert max(by_table["webhook_attempts"]) <= 2 * BATCH
    assert sum(by_table["webhook_deliveries"]) == 12
    assert len(by_table["webhook_deliveries"]) >= 12 // BATCH


async def test_retention_of_a_kind_set_to_zero_keeps_it_and_a_run_stops_on_its_budget(
    settings: Settings, app: Any, account: NewAccount
) -> None:
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    await seed(maker, account.account.id)
    keep = retention_settings(settings).model_copy(
        update={"retention_delivered_days": 0, "retention_jobs_days": 0}
    )
    out_of_time = await prune_all(maker, keep, budget_seconds=0)
    assert out_of_time.unfinished and out_of_time.batches == 0
    run = await prune_all(maker, keep)
    assert not run.unfinished
    assert run.deleted["deliveries_succeeded"] == 0 and run.deleted["jobs"] == 0
    assert run.deleted["deliveries_failed"] == 2 and run.deleted["analyses"] == 2
    async with maker() as session:
        succeeded = await session.scalar(
            select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "succeeded")
        )
    assert succeeded == 20
