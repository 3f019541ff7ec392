"""Entity matching off the event loop: a chunk of queries resolved in a matching process.

Matching is pure CPU (half a millisecond or more a query, tens of milliseconds for a chunk of a tool
column), and in `dossier serve` the event loop that would run it is the one the API's requests and the
webhook deliveries wait on. ``resolve_many`` sends a chunk of queries to a small pool of matching processes
(``DOSSIER_REGISTRY_MATCH_PROCESSES``) and waits for the answers without holding the loop. Each process
opens the same memory-mapped snapshot as its parent (``index_cache``): the pages are shared through the
operating system's page cache, so a matching process costs its interpreter, not a copy of the index.

With 0 processes, or when the pool cannot answer (a process killed, the snapshot replaced under it), the
chunk is resolved in this process: an answer never depends on the pool.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.registry.index_cache import current_snapshot
from dossier.enrichment.registry.matcher import EntityIndex, Resolution
from dossier.enrichment.registry.snapshot import Snapshot, SnapshotError
from dossier.metrics import record_resolution
from dossier.settings import Settings

log = logging.getLogger("dossier.registry")

# Below this many queries a chunk is resolved here: sending it costs about as much as matching it.
_POOL_FROM = 2
# Snapshots a matching process keeps open (the current generation, and the one before while it changes).
_OPEN_SNAPSHOTS = 2
# How often a matching process checks that the process that started it is alive.
_PARENT_CHECK_SECONDS = 1.0


class MatchQuery(NamedTuple):
    """One query: what ``EntityIndex.resolve`` takes besides the threshold and the margin."""

    name: str | None
    website: str | None
    country: str | None
    city: str | None = None
    postal_code: str | None = None
    address: str | None = None


def match_processes(settings: Settings) -> int:
    """Matching processes this process uses: the setting, or by default one less than its CPUs (at most
    4), so that on one CPU matching stays in the process."""
    if settings.registry_match_processes is not None:
        return settings.registry_match_processes
    return max(0, min(4, len(os.sched_getaffinity(0)) - 1))


def _resolve_all(
    index: EntityIndex, queries: Sequence[MatchQuery], threshold: float, margin: float
) -> list[tuple[Resolution, float]]:
    answers: list[tuple[Resolution, float]] = []
    for query in queries:
        started = time.perf_counter()
        resolution = index.resolve(
            query.name,
            query.website,
            query.country,
            city=query.city,
            postal_code=query.postal_code,
            address=query.address,
            threshold=threshold,
            margin=margin,
        )
        answers.append((resolution, time.perf_counter() - started))
    return answers


# In a matching process: the snapshots it opened, by path.
_SNAPSHOTS: dict[str, Snapshot] = {}


def _resolve_in_process(
    path: str, queries: Sequence[MatchQuery], threshold: float, margin: float
) -> list[tuple[Resolution, float]]:
    """What a matching process runs: open the snapshot (once), resolve the chunk."""
    snapshot = _SNAPSHOTS.get(path)
    if snapshot is None:
        snapshot = Snapshot(path)
        while len(_SNAPSHOTS) >= _OPEN_SNAPSHOTS:
            _SNAPSHOTS.pop(next(iter(_SNAPSHOTS)))
        _SNAPSHOTS[path] = snapshot
    return _resolve_all(snapshot.index, queries, threshold, margin)


def _exit_with_parent(parent: int) -> None:
    """A matching process's initializer: end when the process that started it has gone (killed, crashed).
    The pool's queues do not tell it so: a spawned child holds both ends of their pipes."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="dossier-parent-watch", daemon=True).start()


class _Pool:
    """The process's matching pool, started on first use and kept for the process's life."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._size = 0
        # Pools that broke in a row, and when the next may start: a pool that cannot start at all (a
        # main module that starts Dossier again when imported, no memory) must not cost a spawn per chunk.
        self._breaks = 0
        self._resume_at = 0.0

    def get(self, size: int) -> ProcessPoolExecutor | None:
        """The pool of ``size`` processes, or None while it rests after breaking."""
        with self._lock:
            if self._executor is None and time.monotonic() < self._resume_at:
                return None
            if self._executor is None or self._size != size:
                if self._executor is not None:
                    self._executor.shutdown(wait=False, cancel_futures=True)
                # spawn, not fork: this process has threads (the database driver's, the HTTP resolver's)
                # whose locks a forked child would inherit held.
                self._executor = ProcessPoolExecutor(
                    size,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
                self._size = size
            return self._executor

    def answered(self) -> None:
        self._breaks = 0

    def broke(self, executor: ProcessPoolExecutor) -> None:
        """Drop a pool whose process died: the next chunk starts a new one at once, but after two breaks
        in a row the pool rests (5 s, doubling up to a minute) and chunks are resolved in the worker."""
        with self._lock:
            if self._executor is executor:
                self._executor = None
                self._breaks += 1
                if self._breaks > 1:
                    self._resume_at = time.monotonic() + min(60.0, 5.0 * 2 ** (self._breaks - 2))
        executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            self._breaks, self._resume_at = 0, 0.0
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


_POOL = _Pool()


def shutdown_matching() -> None:
    """Stop this process's matching processes (a process that exits without calling it stops them too);
    the next chunk starts them again."""
    _POOL.shutdown()


async def resolve_many(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    queries: Sequence[MatchQuery],
    *,
    threshold: float,
    margin: float,
) -> list[Resolution]:
    """Resolve ``queries`` against the registry's current index, in order: in a matching process when
    there are several and the pool is on, else here. Each lookup is counted and timed in this process's
    metrics either way."""
    snapshot = await current_snapshot(sessionmaker)
    processes = match_processes(settings)
    answers: list[tuple[Resolution, float]] | None = None
    if processes > 0 and len(queries) >= _POOL_FROM:
        answers = await _in_pool(processes, str(snapshot.path), queries, threshold, margin)
    if answers is None:
        # ``resolve`` counts and times its lookups in this process's metrics itself.
        return [resolution for resolution, _ in _resolve_all(snapshot.index, queries, threshold, margin)]
    # A matching process's own metrics are never scraped: its lookups are counted here.
    for resolution, seconds in answers:
        record_resolution(resolution.match is not None, seconds)
    return [resolution for resolution, _ in answers]


async def _in_pool(
    processes: int, path: str, queries: Sequence[MatchQuery], threshold: float, margin: float
) -> list[tuple[Resolution, float]] | None:
    """The chunk's answers from a matching process, or None when the pool cannot give them."""
    executor = _POOL.get(processes)
    if executor is None:
        return None
    try:
        answers = await asyncio.get_running_loop().run_in_executor(
            executor, _resolve_in_process, path, list(queries), threshold, margin
        )
    except BrokenProcessPool:
        # A matching process died (killed, out of memory, or it could not start): answer in the worker.
        log.warning("a matching process stopped; resolving this chunk in the worker")
        _POOL.broke(executor)
        return None
    except (FileNotFoundError, SnapshotError):
        # The generation changed and its file went before the matching process opened it: the worker's
        # mapping still holds the generation it read.
        return None
    _POOL.answered()
    return answers
