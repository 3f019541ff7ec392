"""Each process's cached index of the registry, rebuilt when the registry changes."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.registry.matcher import EntityIndex, EntityRow
from dossier.enrichment.registry.models import RegistryEntity

_RECHECK_SECONDS = 2.0


@dataclass
class _Cached:
    index: EntityIndex
    fingerprint: tuple[Any, ...]
    checked_at: float = field(default_factory=time.monotonic)


_CACHE: dict[str, _Cached] = {}
_LOCKS: dict[tuple[int, str], asyncio.Lock] = {}


def invalidate_index() -> None:
    """Make the next ``current_index`` re-check the registry now (called after this process changes it)."""
    for cached in _CACHE.values():
        cached.checked_at = -math.inf


def index_cache_key(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    bind = sessionmaker.kw.get("bind")
    url = getattr(bind, "url", None)
    return url.render_as_string(hide_password=True) if url is not None else f"maker-{id(sessionmaker)}"


async def _fingerprint(session: AsyncSession) -> tuple[Any, ...]:
    # Every insert or update sets updated_at and every delete lowers the count, so the count and the newest
    # update time change whenever the registry does.
    row = (
        await session.execute(
            select(func.count(), func.max(RegistryEntity.updated_at)).select_from(RegistryEntity)
        )
    ).one()
    return (row[0], row[1])


async def load_rows(session: AsyncSession) -> list[EntityRow]:
    """The index's view of every registry entity (only the columns matching needs)."""
    result = await session.execute(
        select(
            RegistryEntity.kernel_id,
            RegistryEntity.name,
            RegistryEntity.aliases,
            RegistryEntity.domain,
            RegistryEntity.country,
            RegistryEntity.country_code,
            RegistryEntity.isins,
            RegistryEntity.hq_city,
            RegistryEntity.postal_code,
            RegistryEntity.address,
        ).order_by(RegistryEntity.kernel_id)
    )
    return [
        EntityRow(kid, name, tuple(aliases or ()), domain, country, code, tuple(isins or ()), *place)
        for kid, name, aliases, domain, country, code, isins, *place in result
    ]


async def current_index(sessionmaker: async_sessionmaker[AsyncSession]) -> EntityIndex:
    """This process's index of the registry, rebuilt when the registry changed (checked at most every 2 s)."""
    key = index_cache_key(sessionmaker)
    cached = _CACHE.get(key)
    if cached is not None and time.monotonic() - cached.checked_at < _RECHECK_SECONDS:
        return cached.index
    lock = _LOCKS.setdefault((id(asyncio.get_running_loop()), key), asyncio.Lock())
    async with lock:
        cached = _CACHE.get(key)
        if cached is not None and time.monotonic() - cached.checked_at < _RECHECK_SECONDS:
            return cached.index
        async with sessionmaker() as session:
            fingerprint = await _fingerprint(session)
            if cached is not None and cached.fingerprint == fingerprint:
                cached.checked_at = time.monotonic()
                return cached.index
            rows = await load_rows(session)
        # Building takes about a second for 40k entities: off the event loop, so the server keeps answering.
        index = await asyncio.to_thread(EntityIndex, rows)
        _CACHE[key] = _Cached(index, fingerprint)
        return index
