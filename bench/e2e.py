"""End to end through HTTP only: rows in, tool cells computed, signed `tool_output_ready` deliveries out.

The scenario of issue 13. Every part is a real process: `dossier serve` (API and worker in one process, or
`serve --no-worker` beside N `dossier worker` processes with --workers N), a receiver (aiohttp, its own
process) that verifies every `X-Kuration-Signature` and counts distinct `webhook-id`s, and this process, which
only speaks HTTP to them. The account comes from `dossier accounts create --json`; the project, its columns
and the kuration endpoint from the API; rows are POSTed to `/rows/batch`. The clock runs from the first batch
sent to the last delivery received. Latency is from the answer to a row's batch (its commit) to the receipt of
its delivery (with --tools three, of the last of its three: a row is done when every tool column's arrived).

In the same run, interleaved with Dossier's runs: the Celery baseline of ../shared/bench/baseline_celery.py
(one Celery task per delivery, Redis, `requests`) and a bare aiohttp client (64 in flight, no database), both
posting the same number of signed bodies to the same receiver. Ratios are Dossier's rows/s over theirs.

Scenarios (each one run of this script; --runs 3 gives the median of 3):

    .venv/bin/python bench/e2e.py --backend both --runs 3                      # one tool column, 5,000 rows
    .venv/bin/python bench/e2e.py --backend both --tools three --rows 10000    # domain, entity, firmographics
    .venv/bin/python bench/e2e.py --rate 100 --rows 3000 --no-baselines        # latency at 100 rows/s
    .venv/bin/python bench/e2e.py --rate 100 --rows 3000 --dead-endpoints 2 --no-baselines
    .venv/bin/python bench/e2e.py --tools three --rows 100000 --read-probe --no-baselines --runs 1
    .venv/bin/python bench/e2e.py --backend postgresql --workers 2   # serve --no-worker + 2 workers
    .venv/bin/python bench/e2e.py --profile /tmp/serve.prof --runs 1 --no-baselines  # cProfile of the server
    .venv/bin/python bench/e2e.py --py-spy /tmp/serve.spy --runs 1 --no-baselines    # py-spy sampling profile
    .venv/bin/python bench/e2e.py --setting tool_chunk_rows=250 --no-baselines       # any DOSSIER_ setting

Not a test: nothing here asserts a timing. Needs Redis on 127.0.0.1:6379 and a Python with celery, redis,
requests (--celery-python) for the Celery baseline; without them that column says why it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import hashlib
import hmac
import json
import os
import platform
import re
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).with_name("dossier")
SHARED_BENCH = ROOT.parent / "shared" / "bench"
DATA = ROOT.parent / "shared" / "data" / "listed-companies.csv.gz"
BASELINE_SECRET = b"whsec_baseline"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- the receiver's process -----------------------------------------------------------------------------


def serve_receiver() -> None:
    """POST /dossier: Dossier's deliveries, signature checked with the secret set by POST /secret.
    POST /hook: the baselines' bodies, signed with the baseline secret. Prints its port, runs until stdin
    closes."""
    state: dict[str, Any] = {"secret": b"", "ids": set(), "receipts": {}, "bad": 0, "dups": 0, "hook": 0}

    def signed(secret: bytes, body: bytes, header: str) -> bool:
        return hmac.compare_digest(header, "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest())

    async def dossier(request: web.Request) -> web.Response:
        body = await request.read()
        if not signed(state["secret"], body, request.headers.get("X-Kuration-Signature", "")):
            state["bad"] += 1
            return web.Response(status=400, text="bad signature")
        delivery = request.headers["webhook-id"]
        if delivery in state["ids"]:
            state["dups"] += 1
        else:
            state["ids"].add(delivery)
            state["receipts"].setdefault(json.loads(body)["row_id"], []).append(time.time())
        return web.json_response({"success": True})

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if not signed(BASELINE_SECRET, body, request.headers.get("X-Kuration-Signature", "")):
            state["bad"] += 1
            return web.Response(status=400, text="bad signature")
        state["hook"] += 1
        return web.json_response({"success": True})

    async def set_secret(request: web.Request) -> web.Response:
        state.update(secret=(await request.text()).encode(), ids=set(), receipts={}, bad=0, dups=0)
        return web.Response(text="ok")

    async def count(request: web.Request) -> web.Response:
        return web.json_response(
            {"count": state["hook"], "dossier": len(state["ids"]), "bad": state["bad"], "dups": state["dups"]}
        )

    async def receipts(request: web.Request) -> web.Response:
        return web.json_response(state["receipts"])

    async def main() -> None:
        app = web.Application(client_max_size=2**20)
        app.add_routes(
            [
                web.post("/dossier", dossier),
                web.post("/hook", hook),
                web.post("/secret", set_secret),
                web.get("/count", count),
                web.get("/receipts", receipts),
            ]
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, backlog=2048).start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


# --- processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """The live processes ``pid`` started, and theirs (serve's matching processes)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for child in children:
            found.extend([child, *descendants(child)])
    return found


def _own_usage(pid: int) -> tuple[float, float]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    peak = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return cpu, peak


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of a live process and the processes it started (a matching pool), from
    /proc. The peaks are added up, so pages the processes share (the registry's snapshot) count twice."""
    cpu, peak = _own_usage(pid)
    for child in descendants(pid):
        try:
            child_cpu, child_peak = _own_usage(child)
        except OSError:  # gone meanwhile
            continue
        cpu += child_cpu
        peak += child_peak
    return cpu, peak


# Secrets at rest need a key on PostgreSQL: one throwaway key for every process of this bench run.
_SECRET_KEY = Fernet.generate_key().decode()


def server_env(database_url: str, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    env.update(
        DOSSIER_DATABASE_URL=database_url,
        DOSSIER_SECRET_KEY=_SECRET_KEY,
        DOSSIER_PORT=str(port),
        DOSSIER_HOST="127.0.0.1",
        DOSSIER_OUTBOUND_ALLOW="127.0.0.1",
        DOSSIER_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


@dataclass
class Result:
    store: str
    rows: int
    seconds: float
    delivered: int
    latencies: list[float]
    cpu: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    reads: list[float] = field(default_factory=list)
    # Reads made while rows were still being POSTed (the rest came after the last batch's answer).
    reads_while_sending: int = 0
    bad: int = 0
    dups: int = 0

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds


# --- the rows -------------------------------------------------------------------------------------------


def companies(count: int, three: bool) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    if DATA.exists():
        with gzip.open(DATA, "rt", encoding="utf-8") as source:
            records = [r for r in csv.DictReader(source) if r.get("website")]
        for i in range(count):
            record = records[i % len(records)]
            company = {"website": record["website"]}
            if three:
                company.update(company_name=record["name"], country=record["country"])
            out.append(company)
        return out
    for i in range(count):
        company = {"website": f"https://www.company{i}.example.com/about"}
        if three:
            company.update(company_name=f"Company {i} Ltd", country="GB")
        out.append(company)
    return out


def project_body(three: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not three:
        return {"name": "e2e", "columns": [{"name": "website"}]}, [
            {"name": "domain", "tool": {"type": "domain", "inputs": {"website": "website"}}}
        ]
    inputs = [{"name": "company_name", "required": True}, {"name": "website"}, {"name": "country"}]
    tools = [
        {"name": "domain", "tool": {"type": "domain", "inputs": {"website": "website"}}},
        {
            "name": "entity",
            "tool": {
                "type": "entity_resolution",
                "inputs": {"name": "company_name", "website": "website", "country": "country"},
            },
        },
        {"name": "firmographics", "tool": {"type": "firmographics", "inputs": {"kernel_id": "entity"}}},
    ]
    return {"name": "e2e", "columns": inputs}, tools


# --- one Dossier run ------------------------------------------------------------------------------------


async def wait_http(client: aiohttp.ClientSession, url: str, within: float = 180) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            async with client.get(url) as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {within:.0f} s")


async def dossier_run(args: argparse.Namespace, database_url: str, receiver: int, store: str) -> Result:
    three = args.tools == "three"
    per_row = 3 if three else 1  # tool_output_ready deliveries per row: one per tool column
    extra = {"DOSSIER_REGISTRY_BUILTIN": "true" if three else "false"}
    for setting in args.setting:
        name, _, value = setting.partition("=")
        extra["DOSSIER_" + name.upper().removeprefix("DOSSIER_")] = value
    env = server_env(database_url, free_port(), extra)
    created = await asyncio.create_subprocess_exec(
        str(BIN), "accounts", "create", f"e2e-{uuid.uuid4().hex[:6]}", "--json", env=env, stdout=-1
    )
    out, _ = await created.communicate()
    api_key = json.loads(out)["api_key"]
    serve_cmd = [str(BIN), "serve", "--no-migrate"] + (["--no-worker"] if args.workers else [])
    if args.profile:
        serve_cmd = [sys.executable, "-m", "cProfile", "-o", args.profile, *serve_cmd]
    elif args.py_spy:
        # A sampling profile (collapsed stacks): fair to coroutines and C code, unlike cProfile.
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            raise SystemExit(f"--py-spy needs py-spy beside {sys.executable}: pip install py-spy")
        serve_cmd = [
            str(spy),
            "record",
            "--format",
            "raw",
            "--rate",
            "250",
            "-o",
            args.py_spy,
            "--",
            *serve_cmd,
        ]
    processes = {"serve": await asyncio.create_subprocess_exec(*serve_cmd, env=env, stdout=-3)}
    for n in range(args.workers):
        processes[f"worker{n + 1}"] = await asyncio.create_subprocess_exec(
            str(BIN), "worker", "--no-migrate", env=env, stdout=-3
        )
    base = f"http://127.0.0.1:{env['DOSSIER_PORT']}/api/enterprise"
    headers = {"kur-api-key": api_key}
    rows = companies(args.rows, three)
    sent_at: dict[str, float] = {}
    reads: list[float] = []
    sending = True
    reads_while_sending = 0
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as client:
        try:
            await wait_http(client, f"{base}/projects")
            body, tools = project_body(three)
            async with client.post(f"{base}/projects", json=body) as response:
                project = (await response.json())["id"]
            for tool in tools:
                async with client.post(f"{base}/projects/{project}/columns", json=tool) as response:
                    assert response.status == 201, await response.text()
            async with client.post(
                f"{base}/webhooks",
                json={"url": f"http://127.0.0.1:{receiver}/dossier", "profile": "kuration"},
            ) as response:
                secret = (await response.json())["secret"]
            for _ in range(args.dead_endpoints):
                async with client.post(
                    f"{base}/webhooks",
                    json={"url": f"http://127.0.0.1:{free_port()}/dead", "profile": "kuration"},
                ) as response:
                    assert response.status == 201, await response.text()
            async with client.post(f"http://127.0.0.1:{receiver}/secret", data=secret) as response:
                await response.read()
            await asyncio.sleep(1.0)  # the worker's first claim and wake-up listener

            cpu_start = {name: proc_usage(p.pid)[0] for name, p in processes.items()}
            done = asyncio.Event()

            async def probe() -> None:
                nonlocal reads_while_sending
                while not done.is_set():
                    clock = time.monotonic()
                    async with client.get(
                        f"{base}/projects/{project}/rows", params={"page": "1", "page_size": "50"}
                    ) as response:
                        await response.read()
                    reads.append(time.monotonic() - clock)
                    if sending:
                        reads_while_sending = len(reads)
                    await asyncio.sleep(0.2)

            prober = asyncio.create_task(probe()) if args.read_probe else None
            started = time.monotonic()
            batch = args.batch if not args.rate else max(1, args.rate // 10)

            async def send(chunk: list[dict[str, str]]) -> None:
                async with client.post(
                    f"{base}/projects/{project}/rows/batch", json={"companies": chunk}
                ) as response:
                    answer = await response.json()
                now = time.time()
                if response.status != 200:
                    raise RuntimeError(f"batch refused: {answer}")
                for item in answer["results"]:
                    sent_at[item["row_id"]] = now

            if args.rate:
                for i, start in enumerate(range(0, len(rows), batch)):
                    await asyncio.sleep(max(0.0, started + i * batch / args.rate - time.monotonic()))
                    await send(rows[start : start + batch])
            else:
                for start in range(0, len(rows), batch):
                    await send(rows[start : start + batch])
            sent = time.monotonic() - started
            sending = False
            counts: dict[str, int] = {}
            while time.monotonic() - started < args.timeout:
                async with client.get(f"http://127.0.0.1:{receiver}/count") as response:
                    counts = await response.json()
                if counts["dossier"] >= len(rows) * per_row:
                    break
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            done.set()
            if prober is not None:
                await prober
            usage = {name: proc_usage(p.pid) for name, p in processes.items()}
            async with client.get(f"http://127.0.0.1:{receiver}/receipts") as response:
                receipts: dict[str, list[float]] = await response.json()
        finally:
            for process in processes.values():
                if process.returncode is None:
                    process.send_signal(signal.SIGINT if args.profile or args.py_spy else signal.SIGTERM)
            for process in processes.values():
                await asyncio.wait_for(process.wait(), 60)
    # A row is done when the delivery of its last tool column arrived.
    latencies = [max(receipts[r]) - t for r, t in sent_at.items() if len(receipts.get(r, ())) >= per_row]
    print(f"   ({store}: all rows sent after {sent:.2f} s)", flush=True)
    return Result(
        store=store,
        rows=len(rows),
        seconds=elapsed,
        delivered=counts.get("dossier", 0) // per_row,
        latencies=latencies,
        cpu={name: usage[name][0] - cpu_start[name] for name in processes},
        memory={name: usage[name][1] for name in processes},
        reads=reads,
        reads_while_sending=reads_while_sending,
        bad=counts.get("bad", 0),
        dups=counts.get("dups", 0),
    )


# --- baselines ------------------------------------------------------------------------------------------


def body_for(i: int) -> bytes:
    payload = {
        "event": "tool_output_ready",
        "project_id": "p",
        "row_id": str(i),
        "col_id": "c",
        "value": "Technology",
        "status": "success",
        "timestamp": "2024-01-20T14:45:00",
    }
    return json.dumps(payload, separators=(",", ":")).encode()


async def bare_aiohttp(n: int, receiver: int, in_flight: int = 64) -> float:
    """Signed bodies straight to the receiver, 64 in flight, no database: the physical limit. Returns /s."""
    url = f"http://127.0.0.1:{receiver}/hook"
    queue = list(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as client:

        async def one_worker() -> None:
            while queue:
                body = body_for(queue.pop())
                sig = "sha256=" + hmac.new(BASELINE_SECRET, body, hashlib.sha256).hexdigest()
                headers = {"Content-Type": "application/json", "X-Kuration-Signature": sig}
                async with client.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(in_flight)))
        return n / (time.perf_counter() - started)


async def celery_baseline(args: argparse.Namespace, n: int, receiver: int) -> float | None:
    script = SHARED_BENCH / "baseline_celery.py"
    if args.celery_missing:
        print(f"   celery baseline skipped: need {script} and {args.celery_python}")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        # The script starts its worker with `-A baseline_celery` in its own folder: a copy in a writable one.
        local = Path(tmp) / "baseline_celery.py"
        local.write_bytes(script.read_bytes())
        process = await asyncio.create_subprocess_exec(
            args.celery_python, str(local), str(n), str(receiver), stdout=-1, stderr=-3, cwd=tmp
        )
        out, _ = await process.communicate()
    match = re.search(rb"= (\d+)/s", out)
    if match is None:
        print(f"   celery baseline failed: {out.decode()[-500:]}")
        return None
    return float(match.group(1))


async def engine_alone(args: argparse.Namespace, store: str) -> float | None:
    """bench/webhooks.py (events committed in-process, delivered by the real dispatcher): deliveries/s."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "webhooks.py"),
        "--events",
        str(args.engine_events),
        "--backend",
        store,
        "--pg",
        args.pg,
        stdout=-1,
        stderr=-3,
    )
    out, _ = await process.communicate()
    match = re.search(rb"in [\d.]+ s = (\d+)/s", out)
    if match is None:
        print(f"   bench/webhooks.py failed: {out.decode()[-500:]}")
        return None
    return float(match.group(1))


# --- stores ---------------------------------------------------------------------------------------------


async def with_store(args: argparse.Namespace, store: str, receiver: int) -> Result:
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return await dossier_run(args, f"sqlite+aiosqlite:///{Path(tmp) / 'e2e.db'}", receiver, store)
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(args.pg)
    name = f"dossier_e2e_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        target = url.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
        return await dossier_run(args, target, receiver, store)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def describe(result: Result) -> str:
    ms = [x * 1000 for x in result.latencies]
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in result.cpu.items())
    mem = ", ".join(f"{k} {v:.0f} MB" for k, v in result.memory.items())
    cpu_ms = 1000 * sum(result.cpu.values()) / result.rows
    line = (
        f"{result.store}: {result.delivered}/{result.rows} rows delivered in {result.seconds:.2f} s = "
        f"{result.rate:.0f} rows/s ({cpu_ms:.2f} CPU ms/row); latency p50 {percentile(ms, 0.5):.0f} / "
        f"p95 {percentile(ms, 0.95):.0f} / p99 {percentile(ms, 0.99):.0f} ms; CPU s: {cpu}; peak RSS: {mem}; "
        f"bad signatures {result.bad}, duplicates {result.dups}"
    )
    if result.reads:
        reads = [x * 1000 for x in result.reads]
        p50, p99 = percentile(reads, 0.5), percentile(reads, 0.99)
        line += f"; GET /rows ({len(reads)}) p50 {p50:.0f} / p99 {p99:.0f} ms"
        during, after = reads[: result.reads_while_sending], reads[result.reads_while_sending :]
        if during and after:
            line += (
                f" (while rows were sent: {len(during)}, p99 {percentile(during, 0.99):.0f} ms;"
                f" after: {len(after)}, p99 {percentile(after, 0.99):.0f} ms)"
            )
    return line


async def main_async(args: argparse.Namespace) -> None:
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--receiver", stdin=-1, stdout=-1
    )
    assert receiver.stdout is not None and receiver.stdin is not None
    port = int(await receiver.stdout.readline())
    stores = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: dict[str, list[Result]] = {s: [] for s in stores}
    engine: dict[str, list[float]] = {s: [] for s in stores}
    celery: list[float] = []
    bare: list[float] = []
    try:
        for run in range(args.runs):
            print(f"run {run + 1} of {args.runs}", flush=True)
            for store in stores:
                result = await with_store(args, store, port)
                results[store].append(result)
                print("  " + describe(result), flush=True)
                if args.engine:
                    figure = await engine_alone(args, store)
                    if figure is not None:
                        engine[store].append(figure)
                        print(f"  {store} engine alone (bench/webhooks.py): {figure:.0f}/s", flush=True)
            if args.baselines:
                figure = await celery_baseline(args, args.rows, port)
                if figure is not None:
                    celery.append(figure)
                    print(f"  celery+requests: {figure:.0f}/s", flush=True)
                bare.append(await bare_aiohttp(args.rows, port))
                print(f"  bare aiohttp: {bare[-1]:.0f}/s", flush=True)
    finally:
        receiver.stdin.close()
        await receiver.wait()
    print("\nmedians:")
    c = statistics.median(celery) if celery else None
    b = statistics.median(bare) if bare else None
    for store, runs in results.items():
        rate = statistics.median(r.rate for r in runs)
        p99 = statistics.median(percentile(r.latencies, 0.99) * 1000 for r in runs)
        each = ", ".join(f"{r.rate:.0f}" for r in runs)
        cpu = statistics.median(1000 * sum(r.cpu.values()) / r.rows for r in runs)
        line = f"  {store}: {rate:.0f} rows/s (runs {each}), p99 {p99:.0f} ms, Dossier CPU {cpu:.2f} ms/row"
        if c:
            line += f"; {rate / c:.1f}x Celery ({c:.0f}/s)"
        if b:
            line += f"; {100 * rate / b:.0f}% of bare aiohttp ({b:.0f}/s)"
        print(line)
        if engine[store]:
            alone = statistics.median(engine[store])
            each = ", ".join(f"{x:.0f}" for x in engine[store])
            line = f"  {store} engine alone: {alone:.0f}/s (runs {each})"
            if c:
                line += f"; {alone / c:.1f}x Celery"
            if b:
                line += f"; {100 * alone / b:.0f}% of bare aiohttp"
            print(line)
    print(f"  load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument(
        "--pg",
        default=os.environ.get("DOSSIER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=1000, help="rows per POST /rows/batch")
    parser.add_argument(
        "--tools", choices=["one", "three"], default="one", help="domain; or the three chained"
    )
    parser.add_argument("--rate", type=int, default=0, help="rows/s, in batches of rate/10 (0: all at once)")
    parser.add_argument(
        "--workers", type=int, default=0, help="0: `dossier serve`; N: --no-worker + N workers"
    )
    parser.add_argument(
        "--dead-endpoints", type=int, default=0, help="kuration endpoints refusing connections"
    )
    parser.add_argument("--read-probe", action="store_true", help="GET /rows every 0.2 s meanwhile")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--celery-python", default=os.environ.get("CELERY_PYTHON", "/tmp/perf-celery-venv/bin/python")
    )
    parser.add_argument("--engine", action="store_true", help="also run bench/webhooks.py (engine alone)")
    parser.add_argument("--engine-events", type=int, default=10000)
    parser.add_argument("--profile", help="run the server under cProfile, writing its stats here")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the server and workers (e.g. webhook_endpoint_concurrency=16); repeatable",
    )
    parser.add_argument("--py-spy", help="run the server under py-spy, writing collapsed stacks here")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        serve_receiver()
        return
    load = os.getloadavg()
    print(
        f"{platform.node()} {platform.machine()} nproc={os.cpu_count()} "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    args.celery_missing = (
        not (SHARED_BENCH / "baseline_celery.py").exists() or not Path(args.celery_python).exists()
    )
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
