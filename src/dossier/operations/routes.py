"""`GET /metrics`, `/healthz`, `/readyz` of the API process (docs/operations.md)."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from dossier import metrics
from dossier.api.surfaces import OPERATIONS
from dossier.operations.collect import scrape
from dossier.operations.health import readiness

router = OPERATIONS.router(tags=["operations"], prefix="")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (no dependency is checked, so a database outage does not restart it)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "Not ready: the failing checks say why."}},
)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers, its schema is at the newest migration, and a worker's heartbeat
    was seen within DOSSIER_READYZ_WORKER_MAX_AGE seconds. 200 when ready, else 503; the checks either way."""
    state = request.app.state
    result = await readiness(state.sessionmaker, state.settings)
    return JSONResponse(result.body(), status_code=200 if result.ready else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {metrics.CONTENT_TYPE: {}}}})
async def metrics_endpoint(request: Request) -> Response:
    """This process's metrics in the Prometheus text format (names and labels: docs/operations.md)."""
    state = request.app.state
    return Response(await scrape(state.sessionmaker, state.settings), media_type=metrics.CONTENT_TYPE)
