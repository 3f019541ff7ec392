"""The engine of one command: opened, migrated when asked, disposed however the command ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.db.engine import create_engine, create_sessionmaker
from dossier.db.migrate import upgrade_to_head
from dossier.settings import Settings


@asynccontextmanager
async def open_database(
    settings: Settings, *, migrate: bool = False
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on a fresh engine; with ``migrate``, pending migrations are applied first."""
    engine = create_engine(settings)
    try:
        if migrate:
            await upgrade_to_head(engine)
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()
