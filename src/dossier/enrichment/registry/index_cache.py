"""The registry's index, shared by every process: a memory-mapped snapshot per registry generation.

Every write to the registry bumps its generation (``registry_state``, a new random token each time). A process
asks for the index with ``current_index``: it reads the generation (at most every 2 s), and opens the snapshot
file named after it in ``DOSSIER_REGISTRY_INDEX_DIR``, building it first if no process has (under a file lock,
so several processes starting at once build it once). ``dossier registry import`` builds it right after the
import commits, so workers and API processes only open it: a start costs a header read, not an index build,
and the pages are shared through the operating system's page cache instead of copied into each process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.registry.matcher import EntityIndex, EntityRow
from dossier.enrichment.registry.models import RegistryEntity, RegistryState
from dossier.enrichment.registry.snapshot import Snapshot, SnapshotBuilder, SnapshotError
from dossier.settings import get_settings

_RECHECK_SECONDS = 2.0
_STREAM_ROWS = 5000
_MAX_DATABASES = 8


@dataclass
class _Cached:
    index: EntityIndex
    token: str
    snapshot: Snapshot
    checked_at: float = field(default_factory=time.monotonic)


_CACHE: dict[str, _Cached] = {}
_LOCKS: dict[tuple[int, str], asyncio.Lock] = {}
# How many snapshots this process built (tests and benches check that a process opened, not built).
BUILDS: dict[str, int] = {}


def invalidate_index() -> None:
    """Make the next ``current_index`` re-check the registry now (called after this process changes it)."""
    for cached in _CACHE.values():
        cached.checked_at = -math.inf


def index_cache_key(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    bind = sessionmaker.kw.get("bind")
    url = getattr(bind, "url", None)
    return url.render_as_string(hide_password=True) if url is not None else f"maker-{id(sessionmaker)}"


def index_dir() -> Path:
    """Where snapshots live: ``DOSSIER_REGISTRY_INDEX_DIR``, else ~/.cache/dossier/registry-index."""
    configured = get_settings().registry_index_dir
    if configured is not None:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dossier" / "registry-index"


def _prefix(key: str) -> str:
    return "registry-" + hashlib.sha256(key.encode()).hexdigest()[:12] + "-"


def snapshot_path(sessionmaker: async_sessionmaker[AsyncSession], token: str) -> Path:
    """The snapshot file of one generation of this database's registry."""
    return index_dir() / f"{_prefix(index_cache_key(sessionmaker))}{token or 'empty'}.idx"


async def registry_token(session: AsyncSession) -> str:
    """The current generation's token ("" for a registry never written to)."""
    token = await session.scalar(select(RegistryState.token).where(RegistryState.id == 1))
    return token or ""


async def load_rows(session: AsyncSession) -> list[EntityRow]:
    """The index's view of every registry entity (only the columns matching needs)."""
    return [row async for row in _stream_rows(session)]


def _row_columns(sqlite: bool) -> tuple[Any, ...]:
    # On SQLite the two JSON lists are read as their text: most are "[]", and decoding a million of them
    # through the JSON type's processor was a seventh of a snapshot build.
    lists = (
        (type_coerce(RegistryEntity.aliases, String), type_coerce(RegistryEntity.isins, String))
        if sqlite
        else (RegistryEntity.aliases, RegistryEntity.isins)
    )
    return (
        RegistryEntity.kernel_id,
        RegistryEntity.name,
        lists[0],
        RegistryEntity.domain,
        RegistryEntity.country,
        RegistryEntity.country_code,
        lists[1],
        RegistryEntity.hq_city,
        RegistryEntity.postal_code,
        RegistryEntity.address,
    )


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return () if value in ("[]", "null") else tuple(json.loads(value))
    return tuple(value or ())


async def _stream_rows(session: AsyncSession) -> AsyncIterator[EntityRow]:
    sqlite = session.get_bind().dialect.name == "sqlite"
    result = await session.stream(
        select(*_row_columns(sqlite))
        .order_by(RegistryEntity.kernel_id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    async for kid, name, aliases, domain, country, code, isins, *place in result:
        yield EntityRow(kid, name, _texts(aliases), domain, country, code, _texts(isins), *place)


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive lock on ``path`` between processes, waited for on the event loop (polling), so a
    cancelled waiter never leaves a lock behind. Closing the file releases it."""
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.05)
        yield


ProgressCallback = Callable[[int], None]
# Below this many organisations a build takes seconds: starting worker processes would cost more.
_PARALLEL_FROM = 20_000


async def _build_workers(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    configured = get_settings().registry_index_workers
    workers = configured or len(os.sched_getaffinity(0))
    if workers <= 1:
        return 1
    async with sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(RegistryEntity))
    return workers if (count or 0) >= _PARALLEL_FROM else 1


async def ensure_snapshot(
    sessionmaker: async_sessionmaker[AsyncSession], progress: ProgressCallback | None = None
) -> tuple[Path, bool]:
    """The path of the current generation's snapshot, built if no process has built it yet; and whether
    this call built it. ``progress`` gets the number of rows indexed so far."""
    key = index_cache_key(sessionmaker)
    directory = index_dir()
    directory.mkdir(parents=True, exist_ok=True)
    async with sessionmaker() as session:
        token = await registry_token(session)
    path = snapshot_path(sessionmaker, token)
    if path.exists():
        return path, False
    lock = directory / (_prefix(key) + "lock")
    async with _file_lock(lock):
        if path.exists():  # another process built it while this one waited
            return path, False
        builder = SnapshotBuilder(path, {"token": token}, workers=await _build_workers(sessionmaker))
        try:
            count = 0
            async with sessionmaker() as session:
                chunk: list[EntityRow] = []
                async for row in _stream_rows(session):
                    chunk.append(row)
                    if len(chunk) >= _STREAM_ROWS:
                        await asyncio.to_thread(builder.add, chunk)
                        count += len(chunk)
                        chunk = []
                        if progress is not None:
                            progress(count)
                await asyncio.to_thread(builder.add, chunk)
                count += len(chunk)
            await asyncio.to_thread(builder.finish)
        except BaseException:
            builder.abort()
            raise
        if progress is not None:
            progress(count)
        BUILDS[key] = BUILDS.get(key, 0) + 1
        # Older generations of this database: processes that mapped them keep their mapping until they
        # switch; new ones never open them.
        for old in directory.glob(_prefix(key) + "*.idx"):
            if old != path:
                old.unlink(missing_ok=True)
    return path, True


async def current_index(sessionmaker: async_sessionmaker[AsyncSession]) -> EntityIndex:
    """The registry's index, following its generation (checked at most every 2 s)."""
    return (await current_snapshot(sessionmaker)).index


async def current_snapshot(sessionmaker: async_sessionmaker[AsyncSession]) -> Snapshot:
    """The registry's open snapshot (its ``index`` and the file's ``path``), following its generation
    (checked at most every 2 s)."""
    key = index_cache_key(sessionmaker)
    cached = _CACHE.get(key)
    if cached is not None and time.monotonic() - cached.checked_at < _RECHECK_SECONDS:
        return cached.snapshot
    lock = _LOCKS.setdefault((id(asyncio.get_running_loop()), key), asyncio.Lock())
    async with lock:
        cached = _CACHE.get(key)
        if cached is not None and time.monotonic() - cached.checked_at < _RECHECK_SECONDS:
            return cached.snapshot
        async with sessionmaker() as session:
            token = await registry_token(session)
        if cached is not None and cached.token == token:
            cached.checked_at = time.monotonic()
            return cached.snapshot
        for attempt in range(3):
            # Shielded: a caller that gives up (a tool's timeout) does not abandon a build half-way; the
            # next caller finds it done, or waits for it on the file lock.
            path, _ = await asyncio.shield(ensure_snapshot(sessionmaker))
            try:
                snapshot = await asyncio.to_thread(Snapshot, path)
            except (FileNotFoundError, SnapshotError):
                # Replaced by a newer generation meanwhile, or written by another version: build again.
                if attempt == 2:
                    raise
                path.unlink(missing_ok=True)
                continue
            break
        _CACHE.pop(key, None)
        while len(_CACHE) >= _MAX_DATABASES:
            # A process that met many databases (a test run) keeps the newest few mapped, not all.
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _Cached(snapshot.index, str(snapshot.meta.get("token", "")), snapshot)
        return snapshot
