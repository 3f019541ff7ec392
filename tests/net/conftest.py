"""Local HTTP(S) servers for the outbound-HTTP tests: 127.0.0.1 only, real sockets, no mocks."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import free_port


@dataclass
class Site:
    """A running local server: its base URL and the requests it has seen (method, path, headers, body)."""

    url: str
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def _routes(site: Site) -> web.Application:
    async def record(request: web.Request) -> None:
        body = await request.read()
        site.seen.append((request.method, request.path_qs, dict(request.headers), body))

    async def echo(request: web.Request) -> web.StreamResponse:
        await record(request)
        method, path, headers, body = site.seen[-1]
        return web.json_response(
            {"method": method, "path": path, "headers": headers, "body": body.decode("latin-1")}
        )

    async def redirect(request: web.Request) -> web.StreamResponse:
        await record(request)
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": request.query["to"]})

    async def loop(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(status=302, headers={"Location": "/loop"})

    async def sleep(request: web.Request) -> web.StreamResponse:
        await record(request)
        await asyncio.sleep(float(request.query.get("s", "5")))
        return web.Response(text="late")

    async def slow_body(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first part ")
        await asyncio.sleep(float(request.query.get("s", "5")))
        await response.write(b"too late")
        return response

    async def big(request: web.Request) -> web.StreamResponse:
        await record(request)
        size = int(request.query["n"])
        if request.query.get("chunked"):
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            sent = 0
            while sent < size:
                part = min(10_000, size - sent)
                await response.write(b"x" * part)
                sent += part
            await response.write_eof()
            return response
        return web.Response(body=b"x" * size)

    async def gzipped(request: web.Request) -> web.StreamResponse:
        await record(request)
        body = gzip.compress(b"0" * int(request.query["n"]))
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def status(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(status=int(request.match_info["code"]), text="status page")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/sleep", sleep)
    app.router.add_get("/slow-body", slow_body)
    app.router.add_get("/big", big)
    app.router.add_get("/gzip", gzipped)
    app.router.add_route("*", "/status/{code}", status)
    return app


async def _serve(site: Site, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    runner = web.AppRunner(_routes(site), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", site.port, ssl_context=ssl_context).start()
    return runner


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    """A plain-http server on 127.0.0.1."""
    server = Site(f"http://127.0.0.1:{free_port()}")
    runner = await _serve(server)
    yield server
    await runner.cleanup()


@pytest.fixture
async def other_site() -> AsyncIterator[Site]:
    """A second server, to redirect between origins."""
    server = Site(f"http://127.0.0.1:{free_port()}")
    runner = await _serve(server)
    yield server
    await runner.cleanup()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key), made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_site(self_signed: tuple[Path, Path]) -> AsyncIterator[Site]:
    """An https server on 127.0.0.1 with a self-signed certificate."""
    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Site(f"https://127.0.0.1:{free_port()}")
    runner = await _serve(server, context)
    yield server
    await runner.cleanup()
