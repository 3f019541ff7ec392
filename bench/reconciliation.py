"""Time for a real `dossier serve` to answer one reconciliation batch of 100 queries (POST /api/reconcile).

The registry is the default one plus, unless --no-import, the listed companies of
../shared/data/listed-companies.csv.gz (the count is printed). Queries are
companies of that file, a third with their country, a third with country and city, a third with the website,
and 1 in 5 with a typo; the index is warmed by one batch first (its build is a once-per-process cost). Prints
the median and the slowest of several batches, and the machine. Not a test: nothing here asserts a timing.

    .venv/bin/python bench/reconciliation.py --runs 10
    .venv/bin/python bench/reconciliation.py --pg postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from dossier.accounts import service as accounts
from dossier.db.engine import create_engine, create_sessionmaker
from dossier.db.migrate import upgrade_to_head
from dossier.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "listed-companies.csv.gz"
BIN = Path(sys.executable).with_name("dossier")


def queries(count: int, seed: int = 7) -> dict[str, dict[str, Any]]:
    with gzip.open(DATA, "rt", encoding="utf-8") as source:
        rows = [r for r in csv.DictReader(source) if r["name"].strip()]
    rng = random.Random(seed)
    out: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(rng.sample(rows, count)):
        name = row["name"]
        if number % 5 == 4 and len(name) > 6:
            at = rng.randrange(1, len(name) - 1)
            name = name[:at] + name[at + 1 :]
        properties = []
        if row["country"]:
            properties.append({"pid": "country", "v": row["country"]})
        if number % 3 == 1 and row["city"]:
            properties.append({"pid": "city", "v": row["city"]})
        if number % 3 == 2 and row["website"]:
            properties = [{"pid": "website", "v": row["website"]}]
        out[f"q{number}"] = {"query": name, "properties": properties} if properties else {"query": name}
    return out


async def _new_account(database_url: str) -> str:
    engine = create_engine(Settings(database_url=database_url))
    try:
        await upgrade_to_head(engine)
        async with create_sessionmaker(engine)() as session, session.begin():
            return (await accounts.create_account(session, "bench")).api_key
    finally:
        await engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pg", help="PostgreSQL admin URL; a scratch database is created and dropped")
    parser.add_argument("--no-import", action="store_true", help="the default registry only")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is absent: the shared data directory is not beside this checkout")

    scratch = tempfile.TemporaryDirectory()
    pg_name = None
    if args.pg:
        admin = make_url(args.pg)
        pg_name = f"bench_recon_{uuid.uuid4().hex[:8]}"

        async def create() -> None:
            conn = await asyncpg.connect(str(admin.set(drivername="postgresql")))
            await conn.execute(f'CREATE DATABASE "{pg_name}"')
            await conn.close()

        asyncio.run(create())
        database_url = admin.set(drivername="postgresql+asyncpg", database=pg_name).render_as_string(False)
    else:
        database_url = f"sqlite+aiosqlite:///{scratch.name}/bench.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    env.update(DOSSIER_DATABASE_URL=database_url, DOSSIER_LOG_LEVEL="WARNING")
    server = None
    try:
        key = asyncio.run(_new_account(database_url))
        subprocess.run([str(BIN), "registry", "build-default"], env=env, check=True, capture_output=True)
        if not args.no_import:
            subprocess.run(
                [str(BIN), "registry", "import", str(DATA), "--source", "listed"],
                env=env,
                check=True,
                capture_output=True,
            )
        listing = subprocess.run(
            [str(BIN), "registry", "sources", "--json"], env=env, check=True, capture_output=True, text=True
        )
        companies = sum(source["companies"] for source in json.loads(listing.stdout))
        port = _free_port()
        log = open(Path(scratch.name) / "server.log", "w")  # noqa: SIM115
        server = subprocess.Popen(
            [str(BIN), "serve", "--no-worker", "--port", str(port)], env=env, stdout=log, stderr=log
        )
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=120) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            batch = {"queries": json.dumps(queries(args.batch))}
            started = time.perf_counter()
            warm = client.post("/api/reconcile", data=batch)
            warm.raise_for_status()
            first = time.perf_counter() - started
            durations = []
            matched = 0
            for _ in range(args.runs):
                started = time.perf_counter()
                response = client.post("/api/reconcile", data=batch)
                durations.append(time.perf_counter() - started)
                response.raise_for_status()
                answers = response.json()
                matched = sum(any(c["match"] for c in a["result"]) for a in answers.values())
        registry = "default" if args.no_import else "default + listed companies"
        print(
            f"machine: {os.cpu_count()} CPUs, {platform.machine()} {platform.system()}, "
            f"Python {platform.python_version()}; store: {'postgresql' if args.pg else 'sqlite'}; "
            f"registry: {registry} ({companies:,} companies)"
        )
        print(f"first batch (builds the index): {first:.2f} s")
        print(
            f"batch of {args.batch} queries over HTTP: median {statistics.median(durations) * 1000:.0f} ms, "
            f"slowest {max(durations) * 1000:.0f} ms over {args.runs} runs "
            f"({args.batch / statistics.median(durations):.0f} queries/s); {matched} of {args.batch} matched"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if pg_name is not None:

            async def drop() -> None:
                conn = await asyncpg.connect(str(admin.set(drivername="postgresql")))
                await conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
                await conn.close()

            asyncio.run(drop())
        scratch.cleanup()


if __name__ == "__main__":
    main()
