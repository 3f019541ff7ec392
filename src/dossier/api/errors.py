"""The one place where errors become HTTP answers, in each surface's documented error envelope.

Every surface (a path prefix) has an envelope function; an error anywhere under that prefix is
rendered with it. Unknown paths get the generic envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dossier.errors import DossierError

log = logging.getLogger("dossier.api")

Envelope = Callable[[Request, int, str, Any], dict[str, Any]]


def enterprise_envelope(request: Request, status: int, message: str, detail: Any) -> dict[str, Any]:
    """000: `{row_id, message, error_detail}` on row creation; `{message, error_detail}` elsewhere."""
    body: dict[str, Any] = {"message": message, "error_detail": detail}
    if request.method == "POST" and request.url.path.rstrip("/").endswith("/rows"):
        body = {"row_id": None, **body}
    return body


# Machine-readable codes of the /rest/v1 envelope, by HTTP status.
JOB_ERROR_CODES = {
    400: "malformed_request",
    401: "not_authenticated",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


def jobs_envelope(request: Request, status: int, message: str, detail: Any) -> dict[str, Any]:
    """003 documents no error body: `{error: {code, message, detail}}` (docs/api-jobs.md)."""
    code = JOB_ERROR_CODES.get(status, "internal_error" if status >= 500 else "bad_request")
    return {"error": {"code": code, "message": message, "detail": detail}}


def pipeline_envelope(request: Request, status: int, message: str, detail: Any) -> dict[str, Any]:
    """001: `{success: false, error: "..."}`."""
    return {"success": False, "error": message}


def generic_envelope(request: Request, status: int, message: str, detail: Any) -> dict[str, Any]:
    return {"error": {"status": status, "message": message, "detail": detail}}


# Longest prefix first.
SURFACES: list[tuple[str, Envelope]] = [
    ("/api/enterprise", enterprise_envelope),
    ("/api/integration", pipeline_envelope),
    ("/api/company", pipeline_envelope),
    ("/api/analysis", pipeline_envelope),
    ("/rest/v1", jobs_envelope),
    ("/api/reconcile", generic_envelope),  # the spec defines no error body (docs/reconciliation.md)
]


def _envelope_for(request: Request) -> Envelope:
    path = request.url.path
    for prefix, envelope in SURFACES:
        if path == prefix or path.startswith(prefix + "/"):
            return envelope
    return generic_envelope


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
        response = error_response(request, exc.status_code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path, "method": request.method})
        return error_response(request, 500, "internal error; it has been logged")
