"""Server-side render time of a project's page in the dashboard, for a project of 100,000 rows.

Builds a project of ROWS rows (three input columns and one finished tool column: four cells a row), signs in
to the dashboard, and times GET /projects/{id}?page=N in process (the ASGI app called directly, so the figure
is the server's: routing, session check, the queries and the template; no network, no browser) for the first,
a middle and the last page. Prints the median and the slowest of several requests each, and the machine. Not
a test: nothing here asserts a timing.

    .venv/bin/python bench/dashboard.py --runs 20
    .venv/bin/python bench/dashboard.py --pg postgresql://postgres@127.0.0.1:5432/test_dash
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from dossier.accounts import service as accounts
from dossier.app import create_app
from dossier.db.base import new_uuid
from dossier.projects import service as projects
from dossier.projects.models import Cell, Column, Row
from dossier.settings import Settings

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BATCH = 5000


async def _fill(app: Any, rows: int) -> tuple[str, str]:
    """A new account with a project of ``rows`` rows; returns (api key, project id)."""
    maker = app.state.sessionmaker
    async with maker() as session, session.begin():
        new = await accounts.create_account(session, f"bench-{uuid.uuid4().hex[:6]}")
        project = await projects.create_project(
            session,
            new.account,
            "Bench: 100,000 companies",
            [
                projects.ColumnSpec("company_name", required=True),
                projects.ColumnSpec("website"),
                projects.ColumnSpec("country"),
            ],
        )
        columns = await projects.list_columns(session, project)
        # A finished tool column, written directly (no worker runs here).
        tool = Column(
            id=new_uuid(),
            project_id=project.id,
            name="domain",
            position=3,
            tool_type="domain",
            tool_inputs={"website": columns[1].id},
            tool_config={},
        )
        session.add(tool)
        await session.flush()
        project_id, input_ids, tool_id = project.id, [c.id for c in columns], tool.id
    done = 0
    while done < rows:
        count = min(BATCH, rows - done)
        async with maker() as session, session.begin():
            made = [{"id": projects.new_row_id(), "project_id": project_id} for _ in range(count)]
            result = await session.execute(insert(Row).returning(Row.pk), made)
            pks = list(result.scalars())
            cells: list[dict[str, Any]] = []
            for offset, pk in enumerate(pks):
                n = done + offset
                values = [f"Company {n:06d} Holdings", f"https://company{n}.example.com/", "GB"]
                cells += [
                    {"row_pk": pk, "column_id": cid, "value": v, "status": "default"}
                    for cid, v in zip(input_ids, values, strict=True)
                ]
                cells.append(
                    {
                        "row_pk": pk,
                        "column_id": tool_id,
                        "value": f"company{n}.example.com",
                        "status": "success",
                    }
                )
            await session.execute(insert(Cell), cells)
        done += count
        print(f"\r  {done:,} rows", end="", flush=True)
    print()
    return new.api_key, project_id


async def _bench(database_url: str, rows: int, runs: int) -> None:
    settings = Settings(database_url=database_url, auto_migrate=True, log_json=False, log_level="WARNING")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        key, project_id = await _fill(app, rows)
        print(f"  filled in {time.perf_counter() - started:.1f} s")
        # What PostgreSQL's autovacuum does shortly after a bulk load like this one (and SQLite's ANALYZE):
        # without statistics the planner reads every cell to find a page's.
        engine = app.state.engine
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql":
                await conn.exec_driver_sql("VACUUM ANALYZE rows, cells")
            else:
                await conn.exec_driver_sql("ANALYZE")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.local") as client:
            page = await client.get("/signin")
            token = CSRF.search(page.text)
            assert token is not None
            signed = await client.post("/signin", data={"api_key": key, "csrf_token": token.group(1)})
            assert signed.status_code == 303, signed.text
            size = settings.dashboard_page_size
            last = (rows + size - 1) // size
            for label, number in (("first page", 1), ("middle page", last // 2), ("last page", last)):
                times = []
                for _ in range(runs + 1):
                    t0 = time.perf_counter()
                    answer = await client.get(f"/projects/{project_id}?page={number}")
                    times.append((time.perf_counter() - t0) * 1000)
                    assert answer.status_code == 200 and "company" in answer.text
                times = times[1:]  # the first request warms caches
                print(
                    f"  {label:12} (page {number:,}): median {statistics.median(times):6.1f} ms, "
                    f"slowest {max(times):6.1f} ms, {len(answer.content) // 1024} KiB"
                )


async def _pg_database(url: str) -> tuple[str, str]:
    base = make_url(url).set(drivername="postgresql+asyncpg")
    name = f"bench_dash_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(
        host=base.host,
        port=base.port or 5432,
        user=base.username,
        password=base.password,
        database=base.database or "postgres",
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.set(database=name).render_as_string(hide_password=False), name


async def _drop(url: str, name: str) -> None:
    base = make_url(url)
    conn = await asyncpg.connect(
        host=base.host,
        port=base.port or 5432,
        user=base.username,
        password=base.password,
        database=base.database or "postgres",
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--pg", help="PostgreSQL URL whose server gets a scratch database")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if args.pg:
        url, name = asyncio.run(_pg_database(args.pg))
        print(f"PostgreSQL, {args.rows:,} rows")
        try:
            asyncio.run(_bench(url, args.rows, args.runs))
        finally:
            if args.keep:
                print(f"kept database {name}")
            else:
                asyncio.run(_drop(args.pg, name))
    elif args.keep:
        path = Path(tempfile.mkdtemp()) / "bench.db"
        print(f"SQLite, {args.rows:,} rows (kept: {path})")
        asyncio.run(_bench(f"sqlite+aiosqlite:///{path}", args.rows, args.runs))
    else:
        with tempfile.TemporaryDirectory() as folder:
            print(f"SQLite, {args.rows:,} rows")
            asyncio.run(_bench(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}", args.rows, args.runs))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
