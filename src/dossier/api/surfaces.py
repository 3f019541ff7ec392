"""The HTTP surfaces, declared once: the paths each one owns, its error envelope and the error responses
its operations document in OpenAPI.

Routers are made by their surface (:meth:`Surface.router`) and document its errors
(:meth:`Surface.responses`); the error handler renders an error in the envelope of the surface that owns
the path (:func:`surface_for`). A route outside every surface fails a test (``tests/api``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request

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


@dataclass(frozen=True)
class Surface:
    """One HTTP surface: the path prefixes it owns, its error envelope, its documented error responses
    (status -> description, in the order OpenAPI lists them)."""

    name: str
    prefixes: tuple[str, ...]
    envelope: Envelope
    errors: Mapping[int, str] = field(default_factory=dict)

    def owns(self, path: str) -> bool:
        """Whether ``path`` is under one of this surface's prefixes."""
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.prefixes)

    def router(self, *, tags: Sequence[str], prefix: str | None = None) -> APIRouter:
        """A router of this surface, under ``prefix`` (default: its first prefix)."""
        return APIRouter(prefix=self.prefixes[0] if prefix is None else prefix, tags=list(tags))

    def responses(self, described: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
        """The surface's error responses for OpenAPI, with the router's own wording where ``described``
        gives one."""
        wording = {**self.errors, **(described or {})}
        return {status: {"description": text} for status, text in wording.items()}


ENTERPRISE = Surface(
    "Project Workflow API (000), with the tools, webhook and Slack management around it",
    ("/api/enterprise",),
    enterprise_envelope,
    {
        400: "The body is not valid JSON (or not in its declared charset).",
        401: "Missing or invalid API key.",
        404: "Unknown resource (or another account's).",
        422: "Invalid input; `message` says what, `error_detail` lists it.",
    },
)
JOBS = Surface(
    "Jobs API (003)",
    ("/rest/v1",),
    jobs_envelope,
    {
        400: "The body is not valid JSON (or not in its declared charset); `code` is `malformed_request`.",
        401: "Missing or invalid API key. Body: `{error: {code, message, detail}}`.",
        404: "Unknown job (or another account's).",
        422: "Invalid input, or a `webhook_url` the outbound policy refuses; nothing is created.",
    },
)
PIPELINE = Surface(
    "Pipeline and integration API (001)",
    ("/api/integration", "/api/company", "/api/analysis"),
    pipeline_envelope,
    {
        400: "The body is not valid JSON (or not in its declared charset).",
        401: "Missing or invalid API key. Body: `{success: false, error}`.",
        404: "Unknown project, analysis or webhook (or another account's).",
        422: "Invalid input (unknown status, refused URL, limit over 100); `error` says why.",
    },
)
RECONCILIATION = Surface(
    # The spec defines no error body: Dossier's own `{error: {status, message, detail}}`
    # (docs/reconciliation.md).
    "Reconciliation Service API 0.2",
    ("/api/reconcile",),
    generic_envelope,
    {
        400: "`queries`, `extend` or the JSON body is not JSON. Body: `{error: {status, message, detail}}`.",
        401: "Missing or invalid API key (a header, or the `api_key` query parameter).",
        413: "More than 1,000 queries in a batch (or ids in a data extension query).",
        415: "A POST body that is neither form-encoded nor JSON.",
        422: "JSON that is not a query batch or data extension query; unknown ids, properties or type.",
    },
)
OPERATIONS = Surface(
    "operations: probes and metrics (docs/operations.md)",
    ("/healthz", "/readyz", "/metrics"),
    generic_envelope,
)

# The dashboard's pages (dossier.web) answer errors with pages of their own; this declares the paths it owns.
DASHBOARD = Surface(
    "dashboard: server-rendered pages",
    ("/", "/signin", "/signout", "/projects", "/settings", "/jobs", "/pipeline", "/account", "/static"),
    generic_envelope,
)

SURFACES: tuple[Surface, ...] = (ENTERPRISE, JOBS, PIPELINE, RECONCILIATION, OPERATIONS, DASHBOARD)


def surface_for(path: str) -> Surface | None:
    """The surface that owns ``path`` (the longest matching prefix wins), or None."""
    owners = [(len(p), s) for s in SURFACES for p in s.prefixes if path == p or path.startswith(p + "/")]
    return max(owners, key=lambda owner: owner[0])[1] if owners else None
