"""Webhook deliveries per second and latency from commit to receipt, per store.

The receivers run in their own process (as a customer's server would), on 127.0.0.1: healthy endpoints
answer 200 at once; optional slow ones answer after --slow-seconds, and optional dead ones refuse the
connection. This process commits events in batches, at a steady rate or all at once, the way the API or the
enrichment engine does. The deliveries are made by the real queue worker and dispatcher: in this process
(like `dossier serve`), or with --worker-processes N by N `dossier worker` processes.

Prints deliveries/s and p50/p95/p99 latency from each commit to the receipt of its delivery, for the
healthy endpoints only, and the CPU seconds the worker side used. Not a test: nothing here asserts a timing.

    .venv/bin/python bench/webhooks.py --events 3000 --backend sqlite
    .venv/bin/python bench/webhooks.py --backend postgresql --pg postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/webhooks.py --rate 300 --events 3000 --slow-endpoints 2 --dead-endpoints 2
    .venv/bin/python bench/webhooks.py --backend postgresql --worker-processes 2 --events 6000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dossier.webhooks.tasks  # noqa: F401  (registers the dispatcher)
from bench.pgdb import throwaway_database
from dossier.accounts import service as accounts
from dossier.db.engine import create_engine, create_sessionmaker
from dossier.db.migrate import upgrade_to_head
from dossier.net import OutboundClient
from dossier.queue.handlers import WorkerResources
from dossier.queue.worker import Worker
from dossier.settings import Settings
from dossier.webhooks import service
from dossier.webhooks.models import PENDING, WebhookAttempt, WebhookDelivery

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- the receivers' process ------------------------------------------------------------------------------


async def serve_receivers(slow_seconds: float) -> None:
    """Healthy and slow receivers; prints their ports as one JSON line, runs until stdin closes."""
    receipts: dict[str, float] = {}

    async def healthy(request: web.Request) -> web.Response:
        await request.read()
        receipts.setdefault(request.headers["webhook-id"], time.time())
        return web.Response(text="ok")

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(slow_seconds)
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"count": len(receipts)} if request.query.get("count") else receipts)

    # Healthy and slow endpoints are separate servers, as different receivers are: connection pools are
    # per host and port.
    ports = {}
    runners = []
    for name, routes in (
        ("ok", [web.post("/ok", healthy), web.get("/stats", stats)]),
        ("slow", [web.post("/slow", slow)]),
    ):
        app = web.Application()
        app.add_routes(routes)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
        runners.append(runner)
        ports[name] = runner.addresses[0][1]
    # A port nobody listens on: connections are refused at once (a dead endpoint).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        ports["dead"] = probe.getsockname()[1]
    print(json.dumps(ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for runner in runners:
        await runner.cleanup()


# --- the bench ------------------------------------------------------------------------------------------


def bench_settings(args: argparse.Namespace, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        outbound_allow=["127.0.0.1"],
        webhook_endpoint_concurrency=args.endpoint_concurrency,
        worker_concurrency=args.concurrency,
        worker_batch_size=args.batch,
        worker_poll_interval=0.5,
        log_json=False,
        log_level="WARNING",
    )


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "DOSSIER_DATABASE_URL": settings.database_url,
        "DOSSIER_OUTBOUND_ALLOW": "127.0.0.1",
        "DOSSIER_WEBHOOK_ENDPOINT_CONCURRENCY": str(settings.webhook_endpoint_concurrency),
        "DOSSIER_WORKER_CONCURRENCY": str(settings.worker_concurrency),
        "DOSSIER_WORKER_BATCH_SIZE": str(settings.worker_batch_size),
        "DOSSIER_LOG_LEVEL": "WARNING",
    }


async def run(args: argparse.Namespace, database_url: str) -> None:
    settings = bench_settings(args, database_url)
    engine = create_engine(settings)
    await upgrade_to_head(engine)
    maker = create_sessionmaker(engine)

    receivers = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--receivers",
        "--slow-seconds",
        str(args.slow_seconds),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert receivers.stdout is not None and receivers.stdin is not None
    ports = json.loads(await receivers.stdout.readline())
    http = OutboundClient.from_settings(settings)

    async with maker() as session, session.begin():
        account = (await accounts.create_account(session, f"bench-{uuid.uuid4().hex[:6]}")).account
        kinds = ["ok"] * args.endpoints + ["slow"] * args.slow_endpoints + ["dead"] * args.dead_endpoints
        for kind in kinds:
            await service.create_endpoint(
                session,
                account.id,
                url=f"http://127.0.0.1:{ports[kind]}/{kind}",
                profile="standard",
                events=["*"],  # the bench emits its own event type
                http=http,
            )

    stop = asyncio.Event()
    worker_task = None
    processes: list[asyncio.subprocess.Process] = []
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if args.worker_processes:
        for _ in range(args.worker_processes):
            processes.append(
                await asyncio.create_subprocess_exec(
                    str(ROOT / ".venv" / "bin" / "dossier"),
                    "worker",
                    "--no-migrate",
                    env=worker_env(settings),
                )
            )
        await asyncio.sleep(3)  # let them start and make their first claim
    else:
        worker = Worker(
            WorkerResources(settings=settings, sessionmaker=maker, http=http),
            concurrency=args.concurrency,
            poll_interval=0.5,
            lease_seconds=60,
            heartbeat_interval=10,
            batch_size=args.batch,
        )
        worker_task = asyncio.create_task(worker.run(stop))
        await asyncio.wait_for(worker.ready.wait(), 30)

    healthy_total = args.events * args.endpoints
    committed_at: dict[str, float] = {}
    started = time.monotonic()
    cpu_started = time.process_time()
    per_commit = max(1, args.rate // 20) if args.rate else min(args.events, 1000)
    emitted = 0
    emit_cpu = 0.0
    while emitted < args.events:
        count = min(per_commit, args.events - emitted)
        emit_started = time.process_time()
        async with maker() as session, session.begin():
            deliveries = await service.emit_events(
                session, account.id, "bench", [{"n": i} for i in range(count)]
            )
        now = time.time()  # committed: the clock of "commit to receipt" starts here
        emit_cpu += time.process_time() - emit_started
        for delivery_id in deliveries:
            committed_at[delivery_id] = now
        emitted += count
        if args.rate:
            await asyncio.sleep(max(0.0, started + emitted / args.rate - time.monotonic()))
    async with aiohttp.ClientSession() as client:
        stats_url = f"http://127.0.0.1:{ports['ok']}/stats"
        received = 0
        while time.monotonic() - started < args.timeout:
            async with client.get(stats_url, params={"count": "1"}) as response:
                received = (await response.json())["count"]
            if received >= healthy_total:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        async with client.get(stats_url) as response:
            receipts: dict[str, float] = await response.json()
    in_process_cpu = time.process_time() - cpu_started
    stop.set()
    if worker_task is not None:
        await asyncio.wait_for(worker_task, 60)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        await asyncio.wait_for(process.wait(), 60)
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    receivers.stdin.close()
    await asyncio.wait_for(receivers.wait(), 10)
    async with maker() as session:
        pending = await session.scalar(
            select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == PENDING)
        )
        by_outcome = select(WebhookAttempt.outcome, func.count()).group_by(WebhookAttempt.outcome)
        attempts = dict((await session.execute(by_outcome)).all())
    await http.aclose()
    await engine.dispose()

    latencies = [receipts[d] - t for d, t in committed_at.items() if d in receipts]
    if args.worker_processes:
        worker_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        worker_side = f"{args.worker_processes} worker process(es) used {worker_cpu:.2f} CPU s"
    else:
        worker_side = f"in-process worker used {in_process_cpu - emit_cpu:.2f} CPU s"
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    print(
        f"{backend}: {received}/{healthy_total} healthy deliveries in {elapsed:.2f} s "
        f"= {received / elapsed:.0f}/s; "
        f"latency commit->receipt p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms; "
        f"rate {'as fast as possible' if not args.rate else f'{args.rate} events/s'}, "
        f"{args.slow_endpoints} slow and {args.dead_endpoints} dead endpoint(s), "
        f"still pending at the end: {pending}"
    )
    mean = f"{statistics.mean(latencies) * 1000:.0f} ms" if latencies else "-"
    print(f"   mean latency {mean}; {worker_side}; committing the events used {emit_cpu:.2f} CPU s")
    print(f"   attempts recorded: {attempts}")


async def with_pg(args: argparse.Namespace) -> None:
    async with throwaway_database(args.pg) as target:
        await run(args, target)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--pg",
        default=os.environ.get("DOSSIER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=1, help="healthy endpoints (each gets every event)")
    parser.add_argument("--slow-endpoints", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--dead-endpoints", type=int, default=0, help="endpoints refusing connections")
    parser.add_argument("--rate", type=int, default=0, help="events/s to commit (0: all at once)")
    parser.add_argument("--concurrency", type=int, default=32, help="worker concurrency")
    parser.add_argument("--endpoint-concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=50, help="worker claim batch")
    parser.add_argument("--worker-processes", type=int, default=0, help="0: a worker in this process")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--receivers", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receivers:
        asyncio.run(serve_receivers(args.slow_seconds))
        return
    print(f"{platform.node()} {platform.processor() or platform.machine()} cpus={os.cpu_count()}")
    # The event loop `dossier serve` and `dossier worker` run on (uvloop, where installed).
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        if args.backend == "postgresql":
            runner.run(with_pg(args))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                runner.run(run(args, f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"))


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
