"""Counting HTTP requests by route template (never the raw path: ids would make labels unbounded)."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dossier import metrics, tracing

UNMATCHED = "unmatched"


class RequestMetrics:
    """Pure ASGI middleware: one count and one duration per HTTP request, labelled with the template of the
    route that served it (``/api/enterprise/projects/{project_id}``), ``unmatched`` when none did; and its
    span when tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        method = scope.get("method", "GET")
        with tracing.span(f"{method} request", kind="server", **{"http.request.method": method}) as span:
            try:
                await self.app(scope, receive, sending)
            finally:
                route: Any = scope.get("route")
                template = getattr(route, "path", None) or UNMATCHED
                metrics.http_request(method, template, status, time.perf_counter() - started)
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
