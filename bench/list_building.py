"""Registry search on a big registry: a filtered count and the first page, and facets, per store.

Generates N organisations (default 1,000,000) with a small self-contained generator (deterministic: the same
N gives the same registry), bulk-inserts them into a migrated database (kept between runs: a second run with
the same N reuses it), then times `lists.service.check_filters` + `search` (the count and the first page of
50, as GET /api/enterprise/registry/companies runs them) for typical filters, and the facets. Prints the
median of several runs and the machine. Not a test: nothing here asserts a timing. Optionally (--build N)
times building a list of N companies into a project with a firmographics column, batch by batch.

    .venv/bin/python bench/list_building.py --backend sqlite
    .venv/bin/python bench/list_building.py --backend postgresql --pg postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import sqlite3
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

import dossier.enrichment  # noqa: F401  (registers the tool engine that tool columns need)
from dossier.accounts import service as accounts
from dossier.db.engine import create_engine, create_sessionmaker
from dossier.db.migrate import upgrade_to_head
from dossier.enrichment.registry.models import RegistryEntity
from dossier.lists import service
from dossier.projects import service as projects
from dossier.projects.tool_engine import ToolSpec
from dossier.settings import Settings

WORKDIR = Path(os.environ.get("TMPDIR", "/tmp")) / "dossier-bench-lists"

# (code, name, weight, currency, cities)
COUNTRIES = [
    (
        "US",
        "United States",
        25,
        "USD",
        ["New York", "San Francisco", "Chicago", "Austin", "Boston", "Seattle"],
    ),
    ("DE", "Germany", 8, "EUR", ["Berlin", "Munich", "Hamburg", "Frankfurt", "Cologne", "Stuttgart"]),
    ("GB", "United Kingdom", 8, "GBP", ["London", "Manchester", "Leeds", "Edinburgh", "Bristol"]),
    ("FR", "France", 6, "EUR", ["Paris", "Lyon", "Marseille", "Toulouse", "Lille"]),
    ("JP", "Japan", 6, "JPY", ["Tokyo", "Osaka", "Nagoya", "Yokohama"]),
    ("CN", "China", 6, "CNY", ["Shanghai", "Beijing", "Shenzhen", "Hangzhou"]),
    ("IN", "India", 5, "INR", ["Mumbai", "Bangalore", "Delhi", "Chennai"]),
    ("CA", "Canada", 4, "CAD", ["Toronto", "Vancouver", "Montreal"]),
    ("NL", "Netherlands", 3, "EUR", ["Amsterdam", "Rotterdam", "Utrecht"]),
    ("ES", "Spain", 3, "EUR", ["Madrid", "Barcelona", "Valencia"]),
    ("IT", "Italy", 3, "EUR", ["Milan", "Rome", "Turin"]),
    ("SE", "Sweden", 2, "SEK", ["Stockholm", "Gothenburg"]),
    ("CH", "Switzerland", 2, "CHF", ["Zurich", "Geneva", "Basel"]),
    ("BR", "Brazil", 3, "BRL", ["Sao Paulo", "Rio de Janeiro"]),
    ("AU", "Australia", 3, "AUD", ["Sydney", "Melbourne", "Brisbane"]),
    ("KR", "South Korea", 2, "KRW", ["Seoul", "Busan"]),
    ("PL", "Poland", 2, "PLN", ["Warsaw", "Krakow"]),
    ("AT", "Austria", 1, "EUR", ["Vienna", "Graz"]),
    ("BE", "Belgium", 1, "EUR", ["Brussels", "Antwerp"]),
    ("DK", "Denmark", 1, "DKK", ["Copenhagen", "Aarhus"]),
    ("NO", "Norway", 1, "NOK", ["Oslo", "Bergen"]),
    ("FI", "Finland", 1, "EUR", ["Helsinki", "Espoo"]),
    ("IE", "Ireland", 1, "EUR", ["Dublin", "Cork"]),
    ("SG", "Singapore", 1, "SGD", ["Singapore"]),
]
SECTORS = {
    "Technology": [
        "Software",
        "IT Services",
        "Semiconductors",
        "Hardware",
        "Internet",
        "Electronic Equipment",
    ],
    "Financials": ["Banks", "Insurance", "Asset Management", "Consumer Finance", "Capital Markets"],
    "Health Care": ["Pharmaceuticals", "Biotechnology", "Medical Devices", "Health Care Providers"],
    "Industrials": [
        "Machinery",
        "Aerospace & Defense",
        "Construction & Engineering",
        "Logistics",
        "Airlines",
    ],
    "Consumer Discretionary": ["Retail", "Automobiles", "Hotels, Restaurants & Leisure", "Apparel", "Media"],
    "Consumer Staples": ["Food Products", "Beverages", "Household Products", "Tobacco"],
    "Energy": ["Oil, Gas & Consumable Fuels", "Energy Equipment & Services"],
    "Materials": ["Chemicals", "Metals & Mining", "Construction Materials", "Paper & Forest Products"],
    "Utilities": ["Electric Utilities", "Gas Utilities", "Water Utilities"],
    "Real Estate": ["Real Estate Management", "REITs"],
    "Communication Services": ["Telecommunication Services", "Entertainment", "Publishing"],
}
INDUSTRIES = [(industry, sector) for sector, items in SECTORS.items() for industry in items]
COMPANY_TYPES = ["Private", "Public", "Subsidiary", "Partnership", "Nonprofit", "Government"]
COMPANY_TYPE_WEIGHTS = [60, 12, 15, 6, 5, 2]
WORDS = [
    "Acme",
    "Nova",
    "Apex",
    "Blue",
    "River",
    "Summit",
    "Global",
    "Tech",
    "Data",
    "North",
    "Bright",
    "Core",
    "Prime",
    "Vertex",
    "Silver",
    "Green",
    "Pioneer",
    "Quantum",
    "Atlas",
    "Orion",
    "Delta",
    "Sigma",
    "Crest",
    "Harbor",
    "Falcon",
    "Maple",
    "Cedar",
    "Stone",
    "Iron",
    "Solar",
    "Metro",
    "Urban",
    "Alpine",
    "Coastal",
    "Union",
    "Royal",
]
SUFFIXES = ["Inc", "GmbH", "Ltd", "SA", "AG", "BV", "Corp", "LLC", "SE", "Group", "Holdings", "KK"]

COLUMNS = (
    "kernel_id",
    "source",
    "source_key",
    "name",
    "aliases",
    "domain",
    "country",
    "country_code",
    "industry",
    "sector",
    "employee_count",
    "revenue_amount",
    "revenue_currency",
    "revenue_year",
    "hq_city",
    "hq_country",
    "address",
    "postal_code",
    "parent_kernel_id",
    "founded_year",
    "company_type",
    "isins",
    "description",
    "extra",
    "updated_at",
)


def organisations(count: int, seed: int = 17) -> Iterator[tuple[Any, ...]]:
    """``count`` organisations as rows of COLUMNS; the same count and seed give the same ones."""
    rng = random.Random(seed)
    country_weights = [c[2] for c in COUNTRIES]
    industry_weights = [1.0 / math.sqrt(i + 1) for i in range(len(INDUSTRIES))]
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    for index in range(count):
        code, country, _, currency, cities = rng.choices(COUNTRIES, country_weights)[0]
        industry, sector = rng.choices(INDUSTRIES, industry_weights)[0]
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {index} {rng.choice(SUFFIXES)}"
        kernel_id = f"{(index * 7919 + 104729) % 10**18:018d}"
        employees = int(math.exp(rng.gauss(3.5, 1.8))) + 1 if rng.random() < 0.85 else None
        revenue = (
            round(employees * rng.uniform(50_000, 400_000), 0) if employees and rng.random() < 0.6 else None
        )
        parent = (
            f"{(rng.randrange(index) * 7919 + 104729) % 10**18:018d}"
            if index and rng.random() < 0.05
            else None
        )
        aliases = json.dumps([name.rsplit(" ", 1)[0]]) if rng.random() < 0.1 else "[]"
        yield (
            kernel_id,
            "bench",
            kernel_id,
            name,
            aliases,
            f"{name.split(' ')[0].lower()}{index}.example" if rng.random() < 0.7 else None,
            country,
            code,
            industry,
            sector,
            employees,
            revenue,
            currency if revenue else None,
            2024 if revenue else None,
            rng.choice(cities),
            country,
            None,
            None,
            parent,
            rng.randint(1850, 2024) if rng.random() < 0.7 else None,
            rng.choices(COMPANY_TYPES, COMPANY_TYPE_WEIGHTS)[0],
            "[]",
            None,
            "{}",
            now,
        )


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
            return int(await session.scalar(select(func.count()).select_from(RegistryEntity)) or 0)
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
            for batch in _batches(organisations(count), 50_000):
                records = [
                    (
                        *row[:4],
                        row[4],
                        *row[5:21],
                        row[21],
                        row[22],
                        row[23],
                        datetime.fromisoformat(row[24]).replace(tzinfo=UTC),
                    )
                    for row in batch
                ]
                await pg.copy_records_to_table("registry_entities", records=records, columns=list(COLUMNS))
            await pg.execute("VACUUM ANALYZE registry_entities")
        finally:
            await pg.close()
    return time.perf_counter() - started


CASES: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "DE software, 500-5,000 employees",
        {"country": ["DE"], "industry": ["Software"], "employees_min": 500, "employees_max": 5000},
        None,
    ),
    ("country US (a quarter of the registry)", {"country": ["US"]}, None),
    ("industry Banks, by name", {"industry": ["Banks"]}, "name"),
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
        {"country": ["FR"], "company_type": ["Private"], "has_website": False},
        None,
    ),
    ("sector Health Care, 3 countries", {"sector": ["Health Care"], "country": ["DE", "FR", "GB"]}, None),
    ("subsidiaries (has a parent)", {"is_subsidiary": True}, None),
    ("no filter (whole registry)", {}, None),
    ("name contains 'summit' (a common word)", {"name": "summit"}, None),
    ("name contains 'apex 4242' (a name)", {"name": "apex 4242"}, None),
]


async def _time(maker: Any, runs: int, work: Any) -> tuple[float, Any]:
    times = []
    result = None
    for attempt in range(runs + 1):
        async with maker() as session, session.begin():
            started = time.perf_counter()
            result = await work(session)
            elapsed = time.perf_counter() - started
        if attempt:  # the first run warms the caches
            times.append(elapsed)
    return statistics.median(times) * 1000, result


async def measure(settings: Settings, runs: int) -> list[tuple[str, int, float]]:
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

            ms, total = await _time(maker, runs, search)
            out.append((f"search: {label}", total, ms))
        for label, raw in (("facets: whole registry", {}), ("facets: country DE", {"country": ["DE"]})):

            async def facets(session: Any, raw: dict[str, Any] = raw) -> int:
                filters = await service.check_filters(session, service.parse_filters(raw))
                total, _ = await service.facets(session, filters, service.DEFAULT_FACETS, limit=100)
                return total

            ms, total = await _time(maker, runs, facets)
            out.append((label, total, ms))
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
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test_lists")
    parser.add_argument("--companies", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--build", type=int, default=0, help="Also time building a list of this many companies."
    )
    args = parser.parse_args()
    if args.backend == "sqlite":
        WORKDIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite+aiosqlite:///{WORKDIR / f'registry-{args.companies}.db'}"
    else:
        url = args.pg
    settings = Settings(database_url=url, log_json=False, registry_builtin=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average {os.getloadavg()}")
    print(f"store: {args.backend}; registry: {args.companies:,} organisations")
    loaded = asyncio.run(prepare(settings, args.companies))
    if loaded:
        print(f"generated and inserted in {loaded:.1f} s")
    for label, total, ms in asyncio.run(measure(settings, args.runs)):
        print(f"{label:<58} {total:>9,} match  {ms:8.1f} ms (median of {args.runs})")
    if args.build:
        added, seconds = asyncio.run(build(settings, args.build))
        print(
            f"list build: {added:,} companies added in {seconds:.1f} s ({added / seconds:,.0f} companies/s)"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
