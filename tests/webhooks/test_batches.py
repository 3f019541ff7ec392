"""How many due deliveries a destination's sweep takes at a time, and when it is claimed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.db.base import utcnow
from dossier.enrichment.service import RUN_CELLS
from dossier.queue import store
from dossier.queue.service import enqueue
from dossier.settings import Settings
from dossier.webhooks import sweeps, tasks


def test_only_a_fast_destination_that_accepts_gets_the_large_batch() -> None:
    limits = tasks._Limits(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    # Unknown: the default batch, until its attempts show what it is.
    assert limits.batch_size("e1") == sweeps.DELIVERY_BATCH
    limits.observe("e1", 0.002)
    assert limits.batch_size("e1") == sweeps.DELIVERY_BATCH  # fast, but nothing got through yet
    limits.batch_ended("e1", any_succeeded=True)
    assert limits.batch_size("e1") == sweeps.FAST_DELIVERY_BATCH
    # A batch of which nothing got through (a dead endpoint answers fast too): back to the default.
    limits.batch_ended("e1", any_succeeded=False)
    assert limits.batch_size("e1") == sweeps.DELIVERY_BATCH
    limits.batch_ended("e1", any_succeeded=True)
    # Slower answers: the default again (a batch is recorded when its last attempt ends).
    for _ in range(20):
        limits.observe("e1", 0.2)
    assert limits.batch_size("e1") == sweeps.DELIVERY_BATCH
    assert limits.batch_size("e2") == sweeps.DELIVERY_BATCH  # one destination's state is its own
    assert sweeps.FAST_DELIVERY_BATCH > sweeps.DELIVERY_BATCH


async def test_a_due_sweep_is_claimed_before_a_backlog_of_tool_cells(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # A large import queues hundreds of cell chunks; the deliveries of the cells already computed must not
    # wait for the last of them.
    now = utcnow()
    async with sessionmaker() as session, session.begin():
        for pk in range(50):
            enqueue(
                session,
                RUN_CELLS,
                {"column_id": "c", "token": "t", "row_pks": [pk]},
                run_at=now - timedelta(seconds=60),
            )
        await sweeps.schedule_sweep(session, "e1", now)
    later = now + timedelta(seconds=1)
    claimed = await store.claim_batch(sessionmaker, worker_id="w1", limit=3, lease_seconds=30, now=later)
    assert [task.kind for task in claimed] == [sweeps.SWEEP_TASK, RUN_CELLS, RUN_CELLS]
    # A sweep moved earlier by a new event keeps its place ahead of them.
    async with sessionmaker() as session, session.begin():
        await sweeps.schedule_sweep(session, "e2", later + timedelta(seconds=30))
        await sweeps.schedule_sweep(session, "e2", later)
    claimed = await store.claim_batch(sessionmaker, worker_id="w1", limit=1, lease_seconds=30, now=later)
    assert [(task.kind, task.payload) for task in claimed] == [(sweeps.SWEEP_TASK, {"key": "e2"})]
