"""A throwaway PostgreSQL database for one bench run: created, handed over, dropped."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url


@asynccontextmanager
async def throwaway_database(server_url: str) -> AsyncIterator[str]:
    """Create a new database on ``server_url``'s server, yield its SQLAlchemy (asyncpg) URL, drop it after.

    PostgreSQL needs a key for secrets at rest: without ``DOSSIER_SECRET_KEY`` a throwaway one is set (the
    database goes with it)."""
    os.environ.setdefault("DOSSIER_SECRET_KEY", Fernet.generate_key().decode())
    url = make_url(server_url)
    name = f"dossier_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
