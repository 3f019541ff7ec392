"""The one place where errors become HTTP answers, in each surface's documented error envelope.

The surfaces are declared in ``api.surfaces``: an error anywhere under a surface's prefixes is rendered
with its envelope. Unknown paths get the generic envelope.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dossier.api.surfaces import Envelope, generic_envelope, surface_for
from dossier.errors import DossierError

log = logging.getLogger("dossier.api")


def _envelope_for(request: Request) -> Envelope:
    surface = surface_for(request.url.path)
    return surface.envelope if surface is not None else generic_envelope


def error_response(request: Request, status: int, message: str, detail: Any = None) -> JSONResponse:
    return JSONResponse(_envelope_for(request)(request, status, message, detail), status_code=status)


def _describe_validation(exc: RequestValidationError) -> tuple[int, str, list[dict[str, Any]]]:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return 400, "request body is not valid JSON", []
    if any(tuple(e.get("loc", ())) == ("body",) and isinstance(e.get("input"), bytes) for e in errors):
        # FastAPI leaves a body whose Content-Type is not JSON unparsed (e.g. curl -d's form encoding).
        return 415, "request body must be JSON, sent with Content-Type: application/json", []
    details = []
    messages = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        text = str(error.get("msg", "invalid"))
        messages.append(f"{location}: {text}")
        details.append({"loc": location, "msg": text, "type": error.get("type")})
    return 422, "; ".join(messages) or "invalid request", details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DossierError)
    async def _domain(request: Request, exc: DossierError) -> JSONResponse:
        return error_response(request, exc.status_code, exc.message, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message, details = _describe_validation(exc)
        return error_response(request, status, message, details or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            path = request.url.path
            message = f"no such path: {path[:200]}"
            if path.endswith("/") or "//" in path:
                message += " (an id in it is empty: is a variable such as $COL_ID unset?)"
        response = error_response(request, exc.status_code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path, "method": request.method})
        return error_response(request, 500, "internal error; it has been logged")
