"""Registry search on a big registry: a filtered count and the first page, and facets, per store.

Generates N organisations (default 1,000,000) with `bench/registry_data.py`, the registry benches' realistic
generator (deterministic: the same N gives the same registry), bulk-inserts them into a migrated database as
`dossier registry import` would write them and bumps the registry's generation (kept between runs: a second
run with the same N reuses it), then times `lists.service.check_filters` + `search` (the count and the first
page of 50, as GET /api/enterprise/registry/companies runs them) for typical filters, and the facets (the
first call and a repeat: facets are cached per registry generation). Prints the median of several runs and the
machine. Not a test: nothing here asserts a timing. Optionally (--build N)
times building a list of N companies into a project with a firmographics column, batch by batch.

    .venv/bin/python bench/list_building.py --backend sqlite
    .venv/bin/python bench/list_building.py --backend postgresql --pg postgresql://postgres@127.0.0.1:5432/bench_lists2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dossier.enrichment  # noqa: F401  (registers the tool engine that tool columns need)
from bench.registry_data import DEFAULT_SOURCE, SEED, iter_organisations
from dossier.accounts import service as accounts
from dossier.db.engine import create_engine, create_sessionmaker
from dossier.db.migrate import upgrade_to_head
from dossier.enrichment.registry import service as registry
from dossier.enrichment.registry.models import RegistryEntity
from dossier.lists import service
from dossier.projects import service as projects
from dossier.projects.tool_engine import ToolSpec
from dossier.settings import Settings

WORKDIR = Path(os.environ.get("TMPDIR", "/tmp")) / "dossier-bench-lists"

COLUMNS = tuple(column.name for column in RegistryEntity.__table__.columns)
_JSON_COLUMNS = {"aliases", "isins", "extra"}


def organisations(count: int, seed: int = SEED) -> Iterator[tuple[Any, ...]]:
    """``count`` organisations of ``bench/registry_data.py`` (the registry benches' generator), as rows of
    COLUMNS exactly as ``dossier registry import`` would write them (``parse_row``, ``kernel_id_for``)."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    for record in iter_organisations(count, seed=seed, source=DEFAULT_SOURCE):
        values, _ = registry.parse_row(record, DEFAULT_SOURCE)
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row.update(aliases=[], isins=[], extra={})
        row.update(values)
        row["kernel_id"] = registry.kernel_id_for(row["source"], row["source_key"])
        row["updated_at"] = now
        yield tuple(json.dumps(row[c]) if c in _JSON_COLUMNS else row[c] for c in COLUMNS)


def _batches(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _registry_size(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        await upgrade_to_head(engine)
        async with create_sessionmaker(engine)() as session:
            # The organisations of this generator (a registry of another one is made anew).
            stmt = select(func.count()).select_from(RegistryEntity)
            return int(await session.scalar(stmt.where(RegistryEntity.source == DEFAULT_SOURCE)) or 0)
    finally:
        await engine.dispose()


async def prepare(settings: Settings, count: int) -> float:
    """Migrate and fill the registry with ``count`` organisations unless it has them; the seconds taken."""
    if await _registry_size(settings) == count:
        return 0.0
    started = time.perf_counter()
    url = make_url(settings.database_url)
    placeholders = ",".join("?" * len(COLUMNS))
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database))
        conn.execute("DELETE FROM registry_entities")
        for batch in _batches(organisations(count), 20_000):
            conn.executemany(
                f"INSERT INTO registry_entities ({','.join(COLUMNS)}) VALUES ({placeholders})", batch
            )
        conn.commit()
        conn.execute("ANALYZE")
        conn.close()
    else:
        pg = await asyncpg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            database=url.database,
        )
        try:
            await pg.execute("TRUNCATE registry_entities")
            stamp = COLUMNS.index("updated_at")
            for batch in _batches(organisations(count), 50_000):
                records = [
                    (*row[:stamp], datetime.fromisoformat(row[stamp]).replace(tzinfo=UTC), *row[stamp + 1 :])
                    for row in batch
                ]
                await pg.copy_records_to_table("registry_entities", records=records, columns=list(COLUMNS))
            await pg.execute("VACUUM ANALYZE registry_entities")
        finally:
            await pg.close()
    # Every writer of registry_entities bumps the registry's generation (index snapshots, cached facets).
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await registry.bump_generation(session)
    finally:
        await engine.dispose()
    return time.perf_counter() - started


CASES: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "DE software, 500-5,000 employees",
        {"country": ["DE"], "industry": ["Software"], "employees_min": 500, "employees_max": 5000},
        None,
    ),
    ("country US (a fifth of the registry)", {"country": ["US"]}, None),
    ("industry Banking, by name", {"industry": ["Banking"]}, "name"),
    (
        "employees 1,000-10,000, founded 1990-2010",
        {"employees_min": 1000, "employees_max": 10000, "founded_min": 1990, "founded_max": 2010},
        None,
    ),
    ("city Berlin", {"city": ["berlin"]}, None),
    (
        "revenue 1-10 bn EUR, by revenue",
        {"revenue_min": 1e9, "revenue_max": 1e10, "revenue_currency": "EUR"},
        "-revenue",
    ),
    (
        "FR private without website",
        {"country": ["FR"], "company_type": ["private"], "has_website": False},
        None,
    ),
    ("sector Health Care, 3 countries", {"sector": ["Health Care"], "country": ["DE", "FR", "GB"]}, None),
    ("subsidiaries (has a parent)", {"is_subsidiary": True}, None),
    ("no filter (whole registry)", {}, None),
    ("name contains 'gmbh' (in 8% of names)", {"name": "gmbh"}, None),
    ("name contains 'software' (in 0.7% of names)", {"name": "software"}, None),
    ("name contains 'wyhirseanant cloud' (a name)", {"name": "wyhirseanant cloud"}, None),
]
FACET_CASES = [
    ("facets: whole registry", {}),
    ("facets: country DE", {"country": ["DE"]}),
    ("facets: DE software, 500-5,000 employees", CASES[0][1]),
]


async def _time(maker: Any, runs: int, work: Any) -> tuple[float, float, Any]:
    """(median ms of ``runs`` runs after the first, the first run's ms, the result)."""
    times = []
    result = None
    for _ in range(runs + 1):
        async with maker() as session, session.begin():
            started = time.perf_counter()
            result = await work(session)
            times.append(time.perf_counter() - started)
    # The first run warms the caches (and, for facets, counts them: the runs after it are answered from the
    # facets cache of this registry generation).
    return statistics.median(times[1:]) * 1000, times[0] * 1000, result


async def measure(settings: Settings, runs: int) -> list[tuple[str, int, float, float]]:
    engine = create_engine(settings)
    maker = create_sessionmaker(engine)
    out = []
    try:
        for label, raw, sort in CASES:

            async def search(session: Any, raw: dict[str, Any] = raw, sort: str | None = sort) -> int:
                filters = await service.check_filters(session, service.parse_filters(raw))
                page = await service.search(
                    session, filters, sort=service.parse_sort(sort), cursor=None, page_size=50
                )
                return page.total

            ms, first, total = await _time(maker, runs, search)
            out.append((f"search: {label}", total, ms, first))
        for label, raw in FACET_CASES:

            async def facets(session: Any, raw: dict[str, Any] = raw) -> int:
                filters = await service.check_filters(session, service.parse_filters(raw))
                total, _ = await service.facets(session, filters, service.DEFAULT_FACETS, limit=100)
                return total

            ms, first, total = await _time(maker, runs, facets)
            out.append((label, total, ms, first))
    finally:
        await engine.dispose()
    return out


async def build(settings: Settings, companies: int) -> tuple[int, float]:
    """Add ``companies`` to a fresh project (company_name, website, country, entity, firmographics) batch by
    batch, as the background task does; the seconds it took (the tool cells are queued, not run)."""
    engine = create_engine(settings)
    maker = create_sessionmaker(engine)
    try:
        async with maker() as session, session.begin():
            account = (await accounts.create_account(session, f"bench-{time.time_ns()}")).account
            project = await projects.create_project(
                session,
                account,
                "bench list",
                [
                    projects.ColumnSpec("company_name", required=True),
                    projects.ColumnSpec("website"),
                    projects.ColumnSpec("country"),
                    projects.ColumnSpec(
                        "entity", tool=ToolSpec("entity_resolution", {"name": "company_name"}, {})
                    ),
                    projects.ColumnSpec(
                        "firmographics", tool=ToolSpec("firmographics", {"kernel_id": "entity"}, {})
                    ),
                ],
            )
            project_id = project.id
        # The most common employee counts first: a filter that matches about ``companies`` organisations.
        async with maker() as session:
            lows = await session.execute(
                select(RegistryEntity.employee_count, func.count())
                .where(RegistryEntity.employee_count.is_not(None))
                .group_by(RegistryEntity.employee_count)
                .order_by(RegistryEntity.employee_count)
            )
            total, upper = 0, 0
            for value, n in lows.all():
                total += n
                upper = value
                if total >= companies:
                    break
        filters = service.parse_filters({"employees_max": upper})
        started = time.perf_counter()
        async with maker() as session, session.begin():
            begun = await service.start_build(
                session,
                account,
                project_id,
                filters,
                None,
                foreground_max=0,
                max_companies=10**7,
                batch_rows=settings.list_batch_rows,
                max_chars=settings.max_value_chars,
                chunk_rows=settings.tool_chunk_rows,
            )
            build_id = begun.build.id
        more = True
        while more:
            async with maker() as session, session.begin():
                more = await service.continue_build(
                    session,
                    build_id,
                    batch_rows=settings.list_batch_rows,
                    max_chars=settings.max_value_chars,
                    chunk_rows=settings.tool_chunk_rows,
                )
        elapsed = time.perf_counter() - started
        async with maker() as session:
            added = (await service.build_by_id(session, build_id)).added
        return added, elapsed
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/bench_lists2")
    parser.add_argument("--companies", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--build", type=int, default=0, help="Also time building a list of this many companies."
    )
    args = parser.parse_args()
    if args.backend == "sqlite":
        WORKDIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite+aiosqlite:///{WORKDIR / f'registry-data-{args.companies}.db'}"
    else:
        url = args.pg
        # PostgreSQL needs a key for secrets at rest; this bench keeps none worth keeping (as bench/pgdb.py).
        os.environ.setdefault("DOSSIER_SECRET_KEY", Fernet.generate_key().decode())
    settings = Settings(database_url=url, log_json=False, registry_builtin=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average {os.getloadavg()}")
    print(f"store: {args.backend}; registry: {args.companies:,} organisations")
    loaded = asyncio.run(prepare(settings, args.companies))
    if loaded:
        print(f"generated and inserted in {loaded:.1f} s")
    for label, total, ms, first in asyncio.run(measure(settings, args.runs)):
        print(f"{label:<58} {total:>9,} match  {ms:8.1f} ms (median of {args.runs}; first {first:.0f} ms)")
    if args.build:
        added, seconds = asyncio.run(build(settings, args.build))
        print(
            f"list build: {added:,} companies added in {seconds:.1f} s ({added / seconds:,.0f} companies/s)"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
