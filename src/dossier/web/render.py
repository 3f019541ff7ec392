"""What every dashboard page shares: templates, the signed-in user, the route class that turns domain errors,
missing sessions and forged forms into pages, and redirects that carry a flash message."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from dossier.accounts import service as accounts
from dossier.accounts.models import Account
from dossier.db.session import SessionDep
from dossier.errors import DossierError
from dossier.web import session as web_session
from dossier.web.session import CSRF_FIELD, CsrfRefused, SignInRequired

log = logging.getLogger("dossier.web")


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - value).total_seconds()
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        text: str = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    return str(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _money(value: float | int | None) -> str:
    """An amount in a few characters: 950, 12.5K, 120M, 3.2B."""
    if value is None:
        return ""
    amount = float(value)
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(amount) >= size:
            return f"{amount / size:.3g}{unit}"
    return f"{amount:.0f}"


TEMPLATES = Environment(
    loader=PackageLoader("dossier.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(when=_when, ago=_ago, pretty=_pretty, cell=_cell, quote=quote, money=_money)


@dataclass(frozen=True)
class WebUser:
    """The signed-in account of a dashboard request."""

    account: Account
    key_id: str
    csrf: str


async def current_user(request: Request, session: SessionDep) -> WebUser:
    """The account whose live API key opened this session; SignInRequired otherwise."""
    data = web_session.load(request)
    if data.key_id is None:
        raise SignInRequired()
    account = await accounts.account_for_key_id(session, data.key_id)
    if account is None:
        raise SignInRequired()
    return WebUser(account=account, key_id=data.key_id, csrf=data.csrf)


User = Annotated[WebUser, Depends(current_user)]


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    user: WebUser | None = None,
    status: int = 200,
) -> HTMLResponse:
    """Render a page (or a fragment); shows, then clears, the session's flash message."""
    data = web_session.load(request)
    flash = data.flash
    page = TEMPLATES.get_template(template).render(
        request=request,
        user=user,
        csrf=data.csrf,
        csrf_field=CSRF_FIELD,
        flash=flash,
        path=request.url.path,
        **(context or {}),
    )
    response = HTMLResponse(page, status_code=status)
    if flash is not None or request.cookies.get(web_session.COOKIE) is None:
        data.flash = None
        web_session.save(request, response, data)
    return response


def safe_path(target: str | None, default: str) -> str:
    """A same-site path to go back to (never another origin)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return default
    return parts.path + (f"?{parts.query}" if parts.query else "")


def back_path(request: Request, default: str) -> str:
    """The page a form was sent from (its Referer, when it is this site), else ``default``."""
    referer = request.headers.get("referer")
    if not referer:
        return default
    parts = urlsplit(referer)
    if parts.netloc and parts.netloc != request.headers.get("host"):
        return default
    return safe_path(parts.path + (f"?{parts.query}" if parts.query else ""), default)


def redirect(request: Request, url: str, flash: str | None = None, kind: str = "ok") -> Response:
    """303 to ``url``, with a flash message shown by the next page."""
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        data = web_session.load(request)
        data.flash = (kind, flash)
        web_session.save(request, response, data)
    return response


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


class WebRoute(APIRoute):
    """A dashboard route: checks the CSRF token of every POST, and answers with pages instead of JSON
    envelopes (sign-in redirect, 403 for a forged form, the domain error's message and status)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                if request.method not in ("GET", "HEAD", "OPTIONS"):
                    form = await request.form()
                    token = form.get(CSRF_FIELD)
                    web_session.check_csrf(request, token if isinstance(token, str) else None)
                return await original(request)
            except SignInRequired:
                target = "/signin"
                if request.method == "GET" and request.url.path not in ("/", "/signin"):
                    target += "?next=" + quote(
                        request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    )
                if _is_htmx(request):
                    return Response(status_code=204, headers={"HX-Redirect": target})
                return RedirectResponse(target, status_code=303)
            except CsrfRefused:
                log.warning(
                    "dashboard form refused: missing or wrong CSRF token", extra={"path": request.url.path}
                )
                return render(
                    request,
                    "error.html",
                    {
                        "status": 403,
                        "title": "This form has expired",
                        "message": "The form was not sent from this session (its security token is "
                        "missing or stale). Reload the page and try again.",
                    },
                    status=403,
                )
            except DossierError as exc:
                if request.method == "POST" and exc.status_code in (409, 422, 400) and not _is_htmx(request):
                    back = back_path(request, "/")
                    return redirect(request, back, exc.message, "error")
                return render(
                    request,
                    "error.html",
                    {
                        "status": exc.status_code,
                        "title": _titles.get(exc.status_code, "Error"),
                        "message": exc.message,
                    },
                    status=exc.status_code,
                )

        return handler


_titles = {404: "Not found", 409: "Not possible right now", 422: "Check what you entered", 400: "Bad request"}
