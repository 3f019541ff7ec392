"""CPU per request of the outbound HTTP client, beside aiohttp's ClientSession, on keep-alive POSTs.

A receiver (../shared/bench/count_receiver.py, or a built-in aiohttp one when ../shared is absent) runs in
its own process on 127.0.0.1; this process posts N signed-looking 300-byte JSON bodies with C in flight,
through ``dossier.net.OutboundClient`` (what the webhook engine uses) and through a bare aiohttp
``ClientSession``, alternating, and prints requests/s and CPU microseconds per request (median of --runs).
Not a test: nothing asserts a timing.

    .venv/bin/python bench/outbound.py --requests 20000 --concurrency 8 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

if __package__ in (None, ""):  # run as a script: make ``dossier`` importable from src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dossier.net import OutboundClient, OutboundPolicy

RECEIVER = Path(__file__).resolve().parents[2] / "shared" / "bench" / "count_receiver.py"
BODY = (
    b'{"event":"tool_output_ready","project_id":"p","row_id":"r1","col_id":"c","value":"Technology",'
    b'"status":"success","timestamp":"2024-01-20T14:45:00","payload":"' + b"x" * 130 + b'"}'
)
HEADERS = {
    "Content-Type": "application/json",
    "webhook-id": "msg_2b1c9f0e6d4a4c2f",
    "webhook-timestamp": "1705761900",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
}

_BUILTIN_RECEIVER = """
import sys
from aiohttp import web
async def hook(request):
    await request.read()
    return web.Response(text="ok")
app = web.Application()
app.router.add_post("/hook", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _measure(
    send: Callable[[], Awaitable[None]], requests: int, concurrency: int
) -> tuple[float, float]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await send()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    return requests / (time.perf_counter() - wall), (time.process_time() - cpu) / requests * 1e6


async def _dossier(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    async with OutboundClient(OutboundPolicy(allow=("127.0.0.1",))) as client:

        async def send() -> None:
            response = await client.request("POST", url, content=BODY, headers=HEADERS, timeout=5.0)
            assert response.ok

        await send()  # connect outside the clock
        return await _measure(send, requests, concurrency)


async def _aiohttp(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    async with aiohttp.ClientSession() as session:

        async def send() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()
                assert response.status == 200

        await send()
        return await _measure(send, requests, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    port = _free_port()
    command = (
        [sys.executable, str(RECEIVER), str(port)]
        if RECEIVER.exists()
        else [sys.executable, "-c", _BUILTIN_RECEIVER, str(port)]
    )
    receiver = subprocess.Popen(command)
    try:
        time.sleep(1.5)
        url = f"http://127.0.0.1:{port}/hook"
        figures: dict[str, list[tuple[float, float]]] = {"OutboundClient": [], "aiohttp ClientSession": []}
        for _ in range(args.runs):
            figures["OutboundClient"].append(uvloop.run(_dossier(url, args.requests, args.concurrency)))
            figures["aiohttp ClientSession"].append(
                uvloop.run(_aiohttp(url, args.requests, args.concurrency))
            )
    finally:
        receiver.terminate()
        receiver.wait(10)
    print(
        f"{platform.node()} {platform.machine()}, Python {platform.python_version()}, uvloop; "
        f"{args.requests} POSTs, {args.concurrency} in flight, median of {args.runs}"
    )
    for name, runs in figures.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"  {name:22s} {rate:8,.0f} requests/s  {cpu:6.1f} CPU µs/request")


if __name__ == "__main__":
    main()
