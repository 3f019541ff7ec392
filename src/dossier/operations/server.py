"""The metrics and probes of a worker that serves no API: `dossier worker --metrics-port P`.

A small aiohttp server in the worker's event loop answers `/metrics`, `/healthz` and `/readyz` exactly as
the API process does (same functions), so every process is one scrape target.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from dossier import metrics
from dossier.db.engine import create_engine, create_sessionmaker
from dossier.operations.collect import scrape
from dossier.operations.health import readiness
from dossier.settings import Settings


@asynccontextmanager
async def metrics_server(settings: Settings, *, host: str, port: int) -> AsyncIterator[None]:
    """Serve `/metrics`, `/healthz`, `/readyz` on ``host:port`` while the block runs."""
    engine = create_engine(settings)
    maker = create_sessionmaker(engine)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        result = await readiness(maker, settings)
        return web.Response(
            text=json.dumps(result.body()),
            status=200 if result.ready else 503,
            content_type="application/json",
        )

    async def metrics_handler(_: web.Request) -> web.Response:
        response = web.Response(body=await scrape(maker, settings))
        response.headers["Content-Type"] = metrics.CONTENT_TYPE
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield
    finally:
        await runner.cleanup()
        await engine.dispose()
