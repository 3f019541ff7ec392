"""HTTP methods answered the same way on every path: OPTIONS lists what a path allows, and a 405 names
every method the path takes (routes for one path are separate, so the router alone names only the first).
"""

from __future__ import annotations

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _takes(scope: Scope, method: str) -> bool:
    """Whether a route of the application answers ``method`` on this path."""
    router = getattr(scope.get("app"), "router", None)
    probe = {**scope, "method": method}
    return any(route.matches(probe)[0] == Match.FULL for route in getattr(router, "routes", ()))


def allowed_methods(scope: Scope) -> list[str]:
    """Every method some route takes on this path (HEAD with GET, OPTIONS always), or [] for no route."""
    methods = {method for method in _METHODS if _takes(scope, method)}
    if not methods - {"OPTIONS"}:
        return []
    methods |= {"HEAD", "OPTIONS"} if "GET" in methods else {"OPTIONS"}
    return [method for method in _METHODS if method in methods]


class MethodsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and not _takes(scope, "OPTIONS"):
            methods = allowed_methods(scope)
            if methods:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [(b"allow", ", ".join(methods).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return

        async def complete_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = allowed_methods(scope)
                if methods:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                    headers.append((b"allow", ", ".join(methods).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, complete_allow)
