"""The ASGI application: routers, middleware, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncSession

from dossier import __version__
from dossier.accounts import service as accounts_service
from dossier.accounts.auth import api_key_from_request
from dossier.api.errors import install_error_handlers
from dossier.api.idempotency import IdempotencyKeys
from dossier.api.limits import BodySizeLimit
from dossier.api.methods import MethodsMiddleware
from dossier.api.text import RequestText
from dossier.db.engine import create_engine, create_read_engine, create_sessionmaker
from dossier.db.migrate import upgrade_to_head
from dossier.enrichment.routes import router as tools_router
from dossier.jobs.routes import router as jobs_router
from dossier.lists.routes import router as lists_router
from dossier.net import OutboundClient
from dossier.operations.http import RequestMetrics
from dossier.operations.routes import router as operations_router
from dossier.pipeline.routes import router as pipeline_router
from dossier.projects.routes import router as projects_router
from dossier.queue.runner import worker_in_background
from dossier.reconciliation.routes import router as reconciliation_router
from dossier.settings import Settings, get_settings
from dossier.web.companies import router as companies_router
from dossier.web.routes import router as web_router
from dossier.web.session import SessionCodec
from dossier.webhooks.routes import router as webhooks_router

DESCRIPTION = """
Dossier: self-hosted company data enrichment.

Authenticate with your API key in `kur-api-key`, `x-api-key`, or `Authorization` (bare or `Bearer`).
"""


async def _idempotency_account(session: AsyncSession, request: Request) -> str | None:
    """The account of the request's API key, for ``Idempotency-Key`` (None: the route will answer 401)."""
    key = api_key_from_request(request)
    if key is None:
        return None
    account = await accounts_service.authenticate(session, key)
    return account.id if account is not None else None


def create_app(settings: Settings | None = None, *, worker: bool = False) -> FastAPI:
    """Build the application for ``settings`` (the environment's when omitted).

    ``worker=True`` (what `dossier serve` does unless --no-worker) also runs a queue worker in this process,
    started and stopped by the lifespan; tests leave it off and drive workers themselves.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        if settings.auto_migrate:
            await upgrade_to_head(engine)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        read_engine = create_read_engine(settings, engine)
        app.state.read_sessionmaker = create_sessionmaker(read_engine, read_only=True)
        # One outbound client per process: URL checks in requests and the in-process worker share its pool.
        http = OutboundClient.from_settings(settings)
        app.state.http = http
        try:
            async with worker_in_background(settings, engine=engine, http=http, enabled=app.state.run_worker):
                yield
        finally:
            await http.aclose()
            if read_engine is not engine:
                await read_engine.dispose()
            await engine.dispose()

    # strict_content_type=False: a JSON body sent without a Content-Type is still read as JSON (and malformed
    # JSON is a 400); a body declared as something else is refused with 415 (see api.errors).
    app = FastAPI(
        title="Dossier",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        strict_content_type=False,
        # A path with an empty id (".../columns/" when $COL_ID was never set) is a 404 that says so, not a
        # silent 307 to another route.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.run_worker = worker
    # Idempotency-Key inside the body-size limit (add_middleware wraps: the last added is the outermost).
    app.state.idempotency_account = _idempotency_account
    app.add_middleware(IdempotencyKeys)
    # The last added runs first: the size limit counts the bytes before RequestText buffers and checks them.
    app.add_middleware(RequestText)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MethodsMiddleware)
    app.add_middleware(RequestMetrics)
    install_error_handlers(app)
    app.include_router(projects_router)
    app.include_router(tools_router)
    app.include_router(webhooks_router)
    app.include_router(jobs_router)
    app.include_router(pipeline_router)
    app.include_router(reconciliation_router)
    app.include_router(lists_router)
    app.include_router(operations_router)
    # The dashboard (dossier.web): pages at /, its assets shipped in the package.
    app.state.session_codec = SessionCodec(settings.session_secret)
    app.include_router(web_router)
    app.include_router(companies_router)
    app.mount("/static", StaticFiles(packages=[("dossier.web", "static")]), name="static")
    return app
