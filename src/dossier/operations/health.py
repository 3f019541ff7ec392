"""The readiness probe: the database answers, its schema is at the newest migration, a worker is alive."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.db.base import utcnow
from dossier.db.migrate import alembic_config
from dossier.queue.store import workers_seen_since
from dossier.settings import Settings

# A probe must answer fast: a database that takes longer is reported as not answering.
PROBE_TIMEOUT = 3.0


@functools.cache
def migration_heads() -> frozenset[str]:
    """The newest revision(s) this code ships."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not ready", "checks": self.checks}


async def _checks(session: AsyncSession, settings: Settings) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    await session.execute(text("SELECT 1"))
    checks["database"] = {"ok": True}
    try:
        current = set((await session.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    except Exception:
        current = set()
        await session.rollback()
    heads = migration_heads()
    checks["migrations"] = {"ok": current == set(heads), "current": sorted(current), "head": sorted(heads)}
    max_age = settings.readyz_worker_max_age
    try:
        alive = await workers_seen_since(session, utcnow() - timedelta(seconds=max_age))
    except Exception:  # no workers table: the schema is behind (reported by the migrations check)
        alive = 0
        await session.rollback()
    checks["worker"] = {
        "ok": alive > 0 or not settings.readyz_require_worker,
        "alive": alive,
        "max_age_seconds": max_age,
        "required": settings.readyz_require_worker,
    }
    return checks


async def readiness(maker: async_sessionmaker[AsyncSession], settings: Settings) -> Readiness:
    """Every check with its result; ready when all pass."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), maker() as session:
            checks = await _checks(session, settings)
    except Exception as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return Readiness(False, {"database": {"ok": False, "error": reason}})
    return Readiness(all(check["ok"] for check in checks.values()), checks)
