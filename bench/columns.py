"""Time to create a project with N input columns (POST /api/enterprise/projects, in process, SQLite), to show
creation grows linearly with the column count. Prints the median of several runs per N, the time per column,
and the machine. Not a test: nothing here asserts a timing.

    .venv/bin/python bench/columns.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time

import httpx

from dossier.accounts import service as accounts
from dossier.app import create_app
from dossier.db.engine import create_engine
from dossier.db.migrate import upgrade_to_head
from dossier.settings import Settings

SIZES = (125, 250, 500, 1000, 2000)


async def main(runs: int) -> None:
    folder = tempfile.mkdtemp()
    settings = Settings(database_url=f"sqlite+aiosqlite:///{folder}/bench.db", max_columns=max(SIZES))
    engine = create_engine(settings)
    await upgrade_to_head(engine)
    await engine.dispose()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker() as session, session.begin():
            key = (await accounts.create_account(session, "bench")).api_key
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            print(f"machine: {platform.platform()}, nproc {os.cpu_count()}, load {os.getloadavg()}")
            print("columns  median s  ms/column")
            for size in SIZES:
                body = {"name": "wide", "columns": [{"name": f"c{i}"} for i in range(size)]}
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    response = await client.post(
                        "/api/enterprise/projects", json=body, headers={"kur-api-key": key}
                    )
                    times.append(time.perf_counter() - start)
                    assert response.status_code == 201, response.text
                median = statistics.median(times)
                print(f"{size:7d}  {median:8.3f}  {1000 * median / size:9.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
