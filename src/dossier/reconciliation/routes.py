"""The Reconciliation Service API 0.2 under ``/api/reconcile`` (docs/reconciliation.md). HTTP only: parse,
call the service, shape the answer."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from dossier.accounts import service as accounts
from dossier.accounts.auth import QUERY_KEY_PARAMETER, CurrentAccountOrQueryKey, authenticate_request
from dossier.api.deps import SettingsDep
from dossier.api.surfaces import RECONCILIATION
from dossier.db.session import SessionDep, sessionmaker_from
from dossier.enrichment.dependencies import DefaultRegistry, default_registry
from dossier.errors import DossierError, InvalidInput, MalformedRequest
from dossier.reconciliation import schemas, service
from dossier.settings import Settings

PREFIX = RECONCILIATION.prefixes[0]


class _CrossOriginRoute(APIRoute):
    """The spec asks every endpoint to allow cross-origin reads: answers (errors too) carry
    ``Access-Control-Allow-Origin: *``. Nothing here relies on cookies, so no credentials are allowed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except (DossierError, RequestValidationError, StarletteHTTPException) as exc:
                response = await _render_error(request, exc)
            response.headers["Access-Control-Allow-Origin"] = "*"
            return response

        return route


async def _render_error(request: Request, exc: Exception) -> Response:
    """The app's own handler for ``exc`` (api.errors), so the envelope stays the one place it is made."""
    for cls in type(exc).__mro__:
        render = request.app.exception_handlers.get(cls)
        if render is not None:
            response: Response = await render(request, exc)
            return response
    raise exc


router = RECONCILIATION.router(tags=["Reconciliation API"])
router.route_class = _CrossOriginRoute

ERRORS = RECONCILIATION.responses()

FORM = "application/x-www-form-urlencoded"


class UnsupportedMediaType(DossierError):
    status_code = 415
    code = "unsupported_media_type"


def _service_url(request: Request, settings: Settings) -> str:
    base = settings.public_url.rstrip("/") if settings.public_url else str(request.base_url).rstrip("/")
    return base + PREFIX


async def _parameters(request: Request) -> dict[str, Any]:
    """`queries` / `extend` from the query string, a form-encoded body, or a JSON body (the batch itself, or
    a data extension query)."""
    params: dict[str, Any] = {k: v for k, v in request.query_params.items() if k in ("queries", "extend")}
    if request.method != "POST":
        return params
    body = await request.body()
    if not body.strip():
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == FORM:
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise MalformedRequest("the form body is not UTF-8") from None
        params.update({k: v[0] for k, v in form.items() if k in ("queries", "extend") and v})
    elif content_type in ("application/json", ""):
        data = schemas.load_json(body, "the request body")
        is_extend = isinstance(data, dict) and isinstance(data.get("ids"), list)
        params["extend" if is_extend else "queries"] = data
    else:
        raise UnsupportedMediaType(
            f"send a form-encoded body ({FORM}) with `queries` or `extend`, or a JSON body"
        )
    return params


async def _endpoint(request: Request, settings: SettingsDep) -> Response:
    # Short transactions of its own, not the request's: reconciling reads the registry index, which takes a
    # connection of its own (SQLite has one).
    maker = sessionmaker_from(request)
    params = await _parameters(request)
    if "queries" in params or "extend" in params:
        async with maker() as session, session.begin():
            await authenticate_request(request, session, query_parameter=QUERY_KEY_PARAMETER)
    if "queries" in params:
        batch = schemas.parse_query_batch(params["queries"])
        await default_registry(request, settings)
        return JSONResponse(await service.reconcile(maker, settings, batch))
    if "extend" in params:
        query = schemas.parse_extend_query(params["extend"])
        async with maker() as session:
            return JSONResponse(await service.extend(session, query))
    if request.method == "POST":
        raise InvalidInput("a POST carries `queries` (a reconciliation query batch) or `extend`")
    # The manifest needs no key (clients read it to learn how to authenticate). A valid key it was asked with
    # goes into the preview URL, which a browser frame loads without headers.
    key = request.query_params.get(QUERY_KEY_PARAMETER, "").strip()
    valid = False
    if key:
        async with maker() as session, session.begin():
            valid = await accounts.authenticate(session, key) is not None
    return JSONResponse(service.manifest(_service_url(request, settings), preview_key=key if valid else None))


@router.get("", responses=ERRORS, summary="Service manifest, or reconcile `queries` / extend `extend`")
async def manifest_or_queries(request: Request, settings: SettingsDep) -> Response:
    """Without parameters (or with only `api_key`): the service manifest, no key needed. With `queries` (a
    JSON query batch): the result batch. With `extend` (a JSON data extension query): the values."""
    return await _endpoint(request, settings)


@router.post("", responses=ERRORS, summary="Reconcile `queries` or extend `extend` (form-encoded or JSON)")
async def post_queries(request: Request, settings: SettingsDep) -> Response:
    """Form-encoded `queries=<JSON batch>` or `extend=<JSON query>`, or the batch / query as a JSON body."""
    return await _endpoint(request, settings)


Cursor = Annotated[int, Query(ge=0, le=100_000, description="Suggestions to skip (paging).")]
Limit = Annotated[int, Query(ge=1, le=service.SUGGEST_MAX_LIMIT, description="Suggestions per page.")]


@router.get("/suggest/entity", responses=ERRORS)
async def suggest_entity(
    request: Request,
    settings: SettingsDep,
    _account: CurrentAccountOrQueryKey,
    _registry: DefaultRegistry,
    prefix: str = "",
    cursor: Cursor = 0,
    limit: Limit = service.SUGGEST_PAGE,
) -> dict[str, Any]:
    """Registry companies whose name, an alias or the id starts with `prefix` (case and accents aside)."""
    return await service.suggest_entities(sessionmaker_from(request), settings, prefix, cursor, limit)


@router.get("/suggest/property", responses=ERRORS)
async def suggest_property(
    _account: CurrentAccountOrQueryKey,
    prefix: str = "",
    cursor: Cursor = 0,
    limit: Limit = service.SUGGEST_PAGE,
) -> dict[str, Any]:
    """The properties a query can carry: country, city, website, postal_code, address."""
    return service.suggest_properties(prefix, cursor, limit)


@router.get("/suggest/type", responses=ERRORS)
async def suggest_type(
    _account: CurrentAccountOrQueryKey,
    prefix: str = "",
    cursor: Cursor = 0,
    limit: Limit = service.SUGGEST_PAGE,
) -> dict[str, Any]:
    """The one type, `organization`."""
    return service.suggest_types(prefix, cursor, limit)


@router.get("/properties", responses=ERRORS)
async def propose_properties(
    _account: CurrentAccountOrQueryKey,
    type: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
) -> dict[str, Any]:
    """Data extension property proposals: the firmographics fields, flattened."""
    return service.propose_properties(type, limit)


@router.get("/preview", response_class=HTMLResponse, responses=ERRORS)
async def preview(session: SessionDep, _account: CurrentAccountOrQueryKey, id: str) -> HTMLResponse:
    """An HTML card of the company's firmographics (the manifest declares its frame's size)."""
    return HTMLResponse(await service.preview(session, id))


PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "x-api-key, kur-api-key, authorization, content-type",
    "Access-Control-Max-Age": "600",
}


@router.options("", include_in_schema=False)
@router.options("/{path:path}", include_in_schema=False)
async def preflight() -> Response:
    """CORS preflight (a browser POSTing JSON, or sending a key header, asks first): no key needed."""
    return Response(status_code=204, headers=PREFLIGHT_HEADERS)
