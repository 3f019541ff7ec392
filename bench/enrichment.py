"""Time to import and fully enrich a CSV (domain + entity_resolution + firmographics), per store.

Runs the real processes: `dossier worker` in the background, `dossier import` for the file, and waits until
every tool cell is final. Rows come from ../shared/data/listed-companies.csv.gz (name, website, country).
Prints the median of several runs and the machine. Not a test: nothing here asserts a timing.

    .venv/bin/python bench/enrichment.py --rows 10000 --runs 3 --backend sqlite
    .venv/bin/python bench/enrichment.py --backend postgresql --pg postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

import dossier.enrichment  # noqa: F401  (registers the tool engine that create_project's tool columns need)
from dossier.accounts.models import Account
from dossier.db.engine import create_engine, create_sessionmaker
from dossier.projects import service as projects
from dossier.projects.tool_engine import ToolSpec
from dossier.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "listed-companies.csv.gz"
BIN = Path(sys.executable).with_name("dossier")

COLUMNS = [
    projects.ColumnSpec("company_name", required=True),
    projects.ColumnSpec("website"),
    projects.ColumnSpec("country"),
    projects.ColumnSpec("domain", tool=ToolSpec("domain", {"website": "website"}, {})),
    projects.ColumnSpec(
        "entity",
        tool=ToolSpec(
            "entity_resolution", {"name": "company_name", "website": "website", "country": "country"}, {}
        ),
    ),
    projects.ColumnSpec("firmographics", tool=ToolSpec("firmographics", {"kernel_id": "entity"}, {})),
]


def write_input(rows: int, path: Path) -> None:
    with gzip.open(DATA, "rt", encoding="utf-8") as source, path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["company_name", "website", "country"])
        for count, record in enumerate(csv.DictReader(source)):
            if count >= rows:
                break
            writer.writerow([record["name"], record["website"], record["country"]])


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    env.update(DOSSIER_DATABASE_URL=url, DOSSIER_LOG_LEVEL="WARNING")
    return env


async def create_project(url: str, account_id: str) -> str:
    engine = create_engine(Settings(database_url=url))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            account = await session.get(Account, account_id)
            assert account is not None
            project = await projects.create_project(session, account, "bench", COLUMNS)
            return project.id
    finally:
        await engine.dispose()


async def progress(url: str, project_id: str) -> projects.EnrichmentProgress:
    engine = create_engine(Settings(database_url=url))
    try:
        async with create_sessionmaker(engine)() as session:
            owner = await projects.project_owner(session, project_id)
            project = await projects.get_project(session, owner, project_id)
            return await projects.enrichment_progress(session, project)
    finally:
        await engine.dispose()


async def pg_database(admin: str, name: str, create: bool) -> None:
    url = make_url(admin)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await conn.execute(
            f'CREATE DATABASE "{name}"' if create else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )
    finally:
        await conn.close()


def one_run(url: str, csv_path: Path, rows: int, concurrency: int) -> tuple[float, float]:
    env = env_for(url)
    created = subprocess.run(
        [BIN, "accounts", "create", "bench", "--json"], env=env, capture_output=True, text=True, check=True
    )
    account_id = json.loads(created.stdout)["account_id"]
    subprocess.run([BIN, "registry", "build-default"], env=env, capture_output=True, check=True)
    project_id = asyncio.run(create_project(url, account_id))
    worker = subprocess.Popen(
        [BIN, "worker", "--concurrency", str(concurrency), "--no-migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)  # the worker's start-up (imports, index build) is not part of the figure
        start = time.perf_counter()
        subprocess.run([BIN, "import", project_id, str(csv_path)], env=env, capture_output=True, check=True)
        imported = time.perf_counter() - start
        while True:
            state = asyncio.run(progress(url, project_id))
            if state.total == rows * 3 and state.finished:
                break
            time.sleep(0.25)
        return imported, time.perf_counter() - start
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--pg",
        default=os.environ.get("DOSSIER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is absent: the shared data directory is not beside this checkout")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "input.csv"
        write_input(args.rows, csv_path)
        backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
        for backend in backends:
            imports, totals = [], []
            for run in range(args.runs):
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{tmp}/bench-{run}.db"
                    imported, total = one_run(url, csv_path, args.rows, args.concurrency)
                else:
                    name = f"dossier_bench_{uuid.uuid4().hex[:10]}"
                    asyncio.run(pg_database(args.pg, name, create=True))
                    try:
                        url = make_url(args.pg).set(drivername="postgresql+asyncpg", database=name)
                        imported, total = one_run(
                            url.render_as_string(hide_password=False), csv_path, args.rows, args.concurrency
                        )
                    finally:
                        asyncio.run(pg_database(args.pg, name, create=False))
                imports.append(imported)
                totals.append(total)
                print(f"  {backend} run {run + 1}: import {imported:.1f} s, fully enriched {total:.1f} s")
            median = statistics.median(totals)
            rate = args.rows * 3 / median
            print(
                f"{backend}: {args.rows} rows x 3 tool columns: import {statistics.median(imports):.1f} s, "
                f"fully enriched in {median:.1f} s (median of {args.runs}), {rate:.0f} cells/s"
            )


if __name__ == "__main__":
    main()
