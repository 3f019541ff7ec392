"""Entity matching in matching processes: the answers of the worker, without holding its event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.enrichment.protocol import ToolContext
from dossier.enrichment.registry.index_cache import current_index
from dossier.enrichment.registry.matching import MatchQuery, resolve_many, shutdown_matching
from dossier.enrichment.registry.models import RegistryEntity
from dossier.enrichment.registry.service import bump_generation, ensure_default_registry, kernel_id_for
from dossier.enrichment.tools import get_tool
from dossier.metrics import ER_LOOKUPS
from dossier.settings import Settings

QUERIES = [
    MatchQuery("MICRON TECHN. INC. DL-,10", None, "US"),
    MatchQuery("Apple", "apple.com", None),
    MatchQuery("Siemens Aktiengesellschaft", None, "Germany"),
    MatchQuery("Quuxbridge Instruments", None, None),  # in no registry
    MatchQuery(None, "https://www.microsoft.com/en-us", None),
    MatchQuery("Toyota Motor Corp", None, "JP", city="Toyota"),
] * 5


@pytest.fixture
async def registry(sessionmaker: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    async with sessionmaker() as session, session.begin():
        await ensure_default_registry(session)
    return sessionmaker


def _with_processes(settings: Settings, processes: int) -> Settings:
    return settings.model_copy(update={"registry_match_processes": processes})


def _matching_pids(parent: int | None = None) -> list[int]:
    """The live matching processes (children that multiprocessing spawned) of this process or ``parent``."""
    pids: list[int] = []
    root = f"/proc/{parent or 'self'}/task"
    for task in os.listdir(root):
        try:
            with open(f"{root}/{task}/children") as f:
                children = f.read().split()
        except OSError:  # a thread that ended meanwhile
            continue
        for pid in children:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    if b"spawn_main" in cmdline.read():
                        pids.append(int(pid))
            except OSError:  # gone meanwhile
                continue
    return pids


def _lookups() -> float:
    return sum(ER_LOOKUPS.labels(outcome)._value.get() for outcome in ("match", "no_match"))


async def test_a_matching_process_answers_as_the_worker_does(
    registry: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    here = await resolve_many(registry, _with_processes(settings, 0), QUERIES, threshold=0.86, margin=0.05)
    before = _lookups()
    there = await resolve_many(registry, _with_processes(settings, 1), QUERIES, threshold=0.86, margin=0.05)
    assert there == here
    assert _matching_pids(), "the chunk was resolved without a matching process"
    # Lookups made in a matching process are counted in this process's metrics, once each.
    assert _lookups() - before == len(QUERIES)
    micron = kernel_id_for("pytickersymbols", "Micron Technology")
    assert there[0].match is not None and there[0].match.kernel_id == micron
    assert there[3].match is None and there[3].reason


async def test_a_chunk_s_matching_does_not_hold_the_event_loop(
    registry: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    chunk = QUERIES * 10  # 300 lookups: tens of milliseconds of matching at the least
    turns = 0
    resolving = True

    async def ticker() -> None:
        nonlocal turns
        while resolving:
            turns += 1
            await asyncio.sleep(0)

    async def count_turns(processes: int) -> int:
        nonlocal turns, resolving
        await resolve_many(
            registry, _with_processes(settings, processes), chunk[:2], threshold=0.86, margin=0.05
        )
        turns, resolving = 0, True
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        await resolve_many(registry, _with_processes(settings, processes), chunk, threshold=0.86, margin=0.05)
        resolving = False
        await task
        return turns

    in_worker = await count_turns(0)
    in_pool = await count_turns(1)
    # Matching in the worker runs the whole chunk in one turn of the loop; in a matching process the loop
    # goes on turning meanwhile.
    assert in_worker <= 3
    assert in_pool > 50


async def test_a_killed_matching_process_loses_no_answer(
    registry: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    pooled = _with_processes(settings, 1)
    expected = await resolve_many(
        registry, _with_processes(settings, 0), QUERIES, threshold=0.86, margin=0.05
    )
    assert await resolve_many(registry, pooled, QUERIES, threshold=0.86, margin=0.05) == expected
    for pid in _matching_pids():
        os.kill(pid, signal.SIGKILL)
    # The chunk that meets the dead process is answered in the worker; the next one by a new process.
    assert await resolve_many(registry, pooled, QUERIES, threshold=0.86, margin=0.05) == expected
    assert await resolve_many(registry, pooled, QUERIES, threshold=0.86, margin=0.05) == expected
    assert _matching_pids()


async def test_a_pool_that_keeps_breaking_rests_and_matching_goes_on_in_the_worker(
    registry: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    pooled = _with_processes(settings, 1)
    expected = await resolve_many(
        registry, _with_processes(settings, 0), QUERIES, threshold=0.86, margin=0.05
    )
    try:
        assert await resolve_many(registry, pooled, QUERIES, threshold=0.86, margin=0.05) == expected
        for pid in _matching_pids():
            os.kill(pid, signal.SIGKILL)
        assert await resolve_many(registry, pooled, QUERIES, threshold=0.86, margin=0.05) == expected
        # Its replacement dies too, before it answered anything: two breaks in a row.
        chunk = QUERIES * 20
        resolving = asyncio.create_task(resolve_many(registry, pooled, chunk, threshold=0.86, margin=0.05))
        for _ in range(1000):
            if _matching_pids():
                break
            await asyncio.sleep(0.01)
        for pid in _matching_pids():
            os.kill(pid, signal.SIGKILL)
        assert await resolving == expected * 20
        # The pool rests: chunks are answered in the worker, and no process starts.
        assert await resolve_many(registry, pooled, QUERIES, threshold=0.86, margin=0.05) == expected
        assert _matching_pids() == []
    finally:
        shutdown_matching()
    # Stopping the pool ends its rest: the next chunk goes to a new matching process.
    assert await resolve_many(registry, pooled, QUERIES, threshold=0.86, margin=0.05) == expected
    assert _matching_pids()


async def test_matching_processes_follow_the_registry_s_generation(
    registry: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    pooled = _with_processes(settings, 1)
    queries = [MatchQuery("QUUXBRIDGE INSTRUMENTS", None, None), MatchQuery("Apple Inc", None, "US")]
    before = await resolve_many(registry, pooled, queries, threshold=0.86, margin=0.05)
    assert before[0].match is None and before[1].match is not None
    index = await current_index(registry)
    async with registry() as session, session.begin():
        session.add(
            RegistryEntity(kernel_id="77", source="test", source_key="q", name="Quuxbridge Instruments plc")
        )
        await session.flush()
        await bump_generation(session)
    after = await resolve_many(registry, pooled, queries, threshold=0.86, margin=0.05)
    assert await current_index(registry) is not index
    assert after[0].match is not None and after[0].match.kernel_id == "77"
    assert after[1] == before[1]


async def test_the_tool_resolves_a_chunk_in_order_and_skips_rows_without_a_name_or_website(
    registry: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    tool = get_tool("entity_resolution")
    ctx = ToolContext(settings=_with_processes(settings, 1), sessionmaker=registry, http=cast(Any, None))
    chunk: list[dict[str, Any]] = [
        {"name": "Micron Technology", "country": "US"},
        {"country": "US"},
        {"name": "Quuxbridge Instruments"},
        {"website": {"domain": "apple.com"}},
    ]
    outcomes = await tool.run_chunk(chunk, tool.parse_config({}), ctx)
    assert [o.status for o in outcomes] == ["success", "skipped", "skipped", "success"]
    assert outcomes[0].value["kernel_id"] == kernel_id_for("pytickersymbols", "Micron Technology")
    assert outcomes[1].error == "no name or website to resolve"
    assert outcomes[2].value["kernel_id"] is None and "no registry company" in str(outcomes[2].error)
    assert outcomes[3].value["domain"] == "apple.com"
    # One cell at a time gives the same.
    one_by_one = [await tool.run(values, tool.parse_config({}), ctx) for values in chunk]
    assert one_by_one == outcomes


def test_shutdown_stops_the_matching_processes() -> None:
    shutdown_matching()
    assert _matching_pids() == []


_ORPHAN_SCRIPT = """
import asyncio, os, sys, time
from dossier.db.engine import create_engine, create_sessionmaker
from dossier.enrichment.registry.matching import MatchQuery, resolve_many
from dossier.settings import Settings

async def main():
    settings = Settings(database_url=sys.argv[1], registry_match_processes=1)
    engine = create_engine(settings)
    queries = [MatchQuery("Apple Inc", None, "US"), MatchQuery("Micron Technology", None, None)]
    answers = await resolve_many(create_sessionmaker(engine), settings, queries, threshold=0.86, margin=0.05)
    assert answers[0].match is not None
    print("resolved", flush=True)
    time.sleep(600)

asyncio.run(main())
"""


async def test_matching_processes_end_when_their_worker_is_killed(
    registry: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ORPHAN_SCRIPT,
        settings.database_url,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), 60)
        assert line.strip() == b"resolved"
        children = _matching_pids(worker.pid)
        assert children, "the worker resolved its chunk without a matching process"
    finally:
        worker.kill()
        await worker.wait()
    # A killed worker runs no clean-up: its matching processes notice by themselves, within a second or two.
    assert await asyncio.to_thread(_all_ended, children, 15.0)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _all_ended(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
