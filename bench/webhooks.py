"""Webhook deliveries per second and latency from commit to receipt, per store, in one process.

An aiohttp receiver on 127.0.0.1 answers 200; events are committed in batches at a steady rate (or all at
once) by this process while an in-process Worker (the real queue worker and dispatcher) delivers them.
Optionally a share of the endpoints is slow (answers after --slow-seconds) to show that healthy endpoints
are not held up. Prints deliveries/s and p50/p95/p99 commit-to-receipt latency of the healthy endpoints.
Not a test: nothing here asserts a timing.

    .venv/bin/python bench/webhooks.py --events 3000 --backend sqlite
    .venv/bin/python bench/webhooks.py --backend postgresql --pg postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/webhooks.py --rate 300 --events 3000 --slow-endpoints 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

import dossier.webhooks.tasks  # noqa: F401  (registers the dispatcher)
from dossier.accounts import service as accounts
from dossier.db.engine import create_engine, create_sessionmaker
from dossier.db.migrate import upgrade_to_head
from dossier.net import OutboundClient
from dossier.queue.service import WorkerResources
from dossier.queue.worker import Worker
from dossier.settings import Settings
from dossier.webhooks import service
from dossier.webhooks.models import PENDING, WebhookDelivery


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(args: argparse.Namespace, database_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        outbound_allow=["127.0.0.1"],
        webhook_endpoint_concurrency=args.endpoint_concurrency,
        worker_poll_interval=0.5,
        log_json=False,
        log_level="WARNING",
    )
    engine = create_engine(settings)
    await upgrade_to_head(engine)
    maker = create_sessionmaker(engine)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    received = 0

    async def healthy(request: web.Request) -> web.Response:
        nonlocal received
        await request.read()
        received += 1
        started = sent_at.get(request.headers["webhook-id"])
        if started is not None:
            latencies.append(time.monotonic() - started)
        return web.Response(text="ok")

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(args.slow_seconds)
        return web.Response(text="ok")

    # Healthy and slow endpoints are separate servers, as different receivers are: the client's connection
    # pool is per host and port.
    runners = []
    ports = {}
    for path, handler in (("ok", healthy), ("slow", slow)):
        app = web.Application()
        app.router.add_post(f"/{path}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        ports[path] = runner.addresses[0][1]
    http = OutboundClient.from_settings(settings)

    async with maker() as session, session.begin():
        account = (await accounts.create_account(session, f"bench-{uuid.uuid4().hex[:6]}")).account
        for n in range(args.endpoints + args.slow_endpoints):
            path = "ok" if n < args.endpoints else "slow"
            await service.create_endpoint(
                session,
                account.id,
                url=f"http://127.0.0.1:{ports[path]}/{path}",
                profile="standard",
                events=["bench"],
                http=http,
            )

    worker = Worker(
        WorkerResources(settings=settings, sessionmaker=maker, http=http),
        concurrency=args.concurrency,
        poll_interval=0.5,
        lease_seconds=60,
        heartbeat_interval=10,
        batch_size=args.batch,
    )
    stop = asyncio.Event()
    worker_task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(worker.ready.wait(), 30)

    healthy_total = args.events * args.endpoints
    started = time.monotonic()
    per_commit = max(1, args.rate // 20) if args.rate else args.events
    emitted = 0
    while emitted < args.events:
        count = min(per_commit, args.events - emitted)
        async with maker() as session, session.begin():
            deliveries = await service.emit_events(
                session, account.id, "bench", [{"n": i} for i in range(count)]
            )
        now = time.monotonic()  # committed: the clock of "commit to receipt" starts here
        for delivery in deliveries:
            sent_at[delivery.id] = now
        emitted += count
        if args.rate:
            await asyncio.sleep(max(0.0, started + emitted / args.rate - time.monotonic()))
    while received < healthy_total and time.monotonic() - started < args.timeout:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    stop.set()
    await asyncio.wait_for(worker_task, 60)
    async with maker() as session:
        pending = await session.scalar(
            select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == PENDING)
        )
    await http.aclose()
    for runner in runners:
        await runner.cleanup()
    await engine.dispose()
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    print(
        f"{backend}: {received}/{healthy_total} healthy deliveries in {elapsed:.2f} s "
        f"= {received / elapsed:.0f}/s; "
        f"latency commit->receipt p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms; "
        f"rate {'as fast as possible' if not args.rate else f'{args.rate} events/s'}, "
        f"{args.slow_endpoints} slow endpoint(s), still pending at the end: {pending}"
    )
    if latencies:
        print(f"   mean latency {statistics.mean(latencies) * 1000:.0f} ms")


async def with_pg(args: argparse.Namespace) -> None:
    url = make_url(args.pg)
    name = f"dossier_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        target = url.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
        await run(args, target)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg", default=os.environ.get("DOSSIER_TEST_DATABASE_URL", ""))
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=1, help="healthy endpoints (each gets every event)")
    parser.add_argument("--slow-endpoints", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--rate", type=int, default=0, help="events/s to commit (0: all at once)")
    parser.add_argument("--concurrency", type=int, default=32, help="worker concurrency")
    parser.add_argument("--endpoint-concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=50, help="worker claim batch")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    print(f"{platform.node()} {platform.processor() or platform.machine()} cpus={os.cpu_count()}")
    if args.backend == "postgresql":
        asyncio.run(with_pg(args))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(args, f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"))


if __name__ == "__main__":
    main()
