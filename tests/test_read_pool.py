"""A request that changes nothing has connections of its own: it answers while the in-process worker (or
anything else in the process) holds every writing connection."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from dossier.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A small pool, and a short wait for it: a GET queueing for a writing connection would time out.
    return settings.model_copy(update={"db_pool_size": 2})


async def test_a_get_answers_while_every_writing_connection_is_held(
    client: httpx.AsyncClient, headers: dict[str, str], settings: Settings, app: Any
) -> None:
    created = await client.post("/api/enterprise/projects", json={"name": "p"}, headers=headers)
    assert created.status_code == 201
    engine = app.state.sessionmaker.kw["bind"]
    held = 1 if settings.is_sqlite else 2 * settings.db_pool_size  # the pool and its overflow
    async with AsyncExitStack() as stack:
        for _ in range(held):
            session = await stack.enter_async_context(app.state.sessionmaker())
            await stack.enter_async_context(session.begin())
            await session.execute(text("SELECT 1"))
        assert engine.pool.checkedout() == held
        listed = await asyncio.wait_for(client.get("/api/enterprise/projects", headers=headers), timeout=10)
        assert listed.status_code == 200 and [p["name"] for p in listed.json()] == ["p"]
        one = await asyncio.wait_for(
            client.get(f"/api/enterprise/projects/{created.json()['id']}/rows", headers=headers), timeout=10
        )
        assert one.status_code == 200 and one.json()["total"] == 0
