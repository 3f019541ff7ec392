"""The dashboard's "Build a list" screen: registry search with the filters, facets and paging of
``dossier.lists`` (GET /api/enterprise/registry/companies on the API), and adding the matches (or the ticked
ones) to a project. HTTP and HTML only: filters are read, checked and run by ``lists.service``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from dossier.api.deps import SettingsDep
from dossier.db.session import SessionDep
from dossier.enrichment.dependencies import DefaultRegistry
from dossier.enrichment.registry.countries import country_name
from dossier.errors import InvalidInput
from dossier.lists import service as lists
from dossier.lists import tasks as list_tasks
from dossier.lists.models import ListBuild
from dossier.projects import service as projects
from dossier.web.render import User, WebRoute, render

router = APIRouter(include_in_schema=False, route_class=WebRoute)

# Parameters of the screen that are not filters.
SCREEN_PARAMS = {"sort", "cursor", "start", "project"}
FORM_PARAMS = {"csrf_token", "project_id", "scope", "kernel_id"}
PICKERS = ("industry", "sector", "company_type", "country")
SORTS = [
    ("-employees", "Most employees"),
    ("employees", "Fewest employees"),
    ("name", "Name, A to Z"),
    ("-name", "Name, Z to A"),
    ("-revenue", "Highest revenue"),
    ("revenue", "Lowest revenue"),
    ("-founded", "Most recently founded"),
    ("founded", "Oldest"),
]


def _pairs(items: Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Text pairs of a query or form; a city field may hold several cities separated by commas."""
    out: list[tuple[str, str]] = []
    for key, value in items:
        if not isinstance(value, str):
            continue
        if key == "city":
            out += [(key, city.strip()) for city in value.split(",") if city.strip()]
        else:
            out.append((key, value.strip()))
    return out


@dataclass
class Search:
    """What the screen shows for a query: the chosen values, and the page or the error of the filters."""

    chosen: dict[str, list[str]]
    query: str  # the filters and sort as a query string (the screen's address, and the pager's)
    sort: str
    start: int
    error: str | None = None
    error_filter: str | None = None
    page: lists.SearchPage | None = None
    filter_pairs: list[tuple[str, str]] = field(default_factory=list)


async def _search(session: SessionDep, pairs: list[tuple[str, str]], page_size: int) -> Search:
    chosen: dict[str, list[str]] = {}
    for key, value in pairs:
        if value:
            chosen.setdefault(key, []).append(value)
    sort = (chosen.get("sort") or [lists.DEFAULT_SORT])[0]
    kept = [(k, v) for k, v in pairs if v and k not in SCREEN_PARAMS]
    search = Search(
        chosen=chosen,
        query=urlencode([*kept, *([("sort", sort)] if sort != lists.DEFAULT_SORT else [])]),
        sort=sort,
        start=_start(chosen),
        filter_pairs=kept,
    )
    try:
        filters = lists.filters_from_pairs(pairs, ignore=SCREEN_PARAMS, skip_empty=True)
        filters = await lists.check_filters(session, filters)
        search.page = await lists.search(
            session,
            filters,
            sort=lists.parse_sort(sort),
            cursor=next(iter(chosen.get("cursor", [])), None),
            page_size=page_size,
        )
    except InvalidInput as exc:
        search.error = exc.message
        detail = exc.detail if isinstance(exc.detail, dict) else {}
        search.error_filter = str(detail.get("filter") or "") or None
    return search


def _start(chosen: dict[str, list[str]]) -> int:
    try:
        return max(0, int((chosen.get("start") or ["0"])[0]))
    except ValueError:
        return 0


async def _pickers(session: SessionDep) -> dict[str, list[tuple[str, str, int]]]:
    """The registry's values of each picker with their counts: (value, label, count), most frequent first.
    Counted over the whole registry, once per registry generation (``lists.facets`` caches them)."""
    _, values = await lists.facets(session, lists.Filters(), PICKERS, limit=lists.MAX_FACET_LIMIT)
    out: dict[str, list[tuple[str, str, int]]] = {}
    for name, items in values.items():
        out[name] = [
            (item.value, (country_name(item.value) if name == "country" else None) or item.value, item.count)
            for item in items
        ]
    return out


async def _context(
    request: Request, session: SessionDep, user: User, settings: SettingsDep
) -> tuple[dict[str, Any], Search]:
    search = await _search(session, _pairs(request.query_params.multi_items()), settings.dashboard_page_size)
    stats = await projects.list_projects(session, user.account)
    stats.sort(key=lambda s: s.updated_at, reverse=True)
    context: dict[str, Any] = {
        "search": search,
        "projects": [s.project for s in stats],
        "chosen_project": (search.chosen.get("project") or [""])[0],
        "sorts": SORTS,
        "page_size": settings.dashboard_page_size,
    }
    return context, search


@router.get("/companies")
async def companies_page(
    request: Request, _registry: DefaultRegistry, session: SessionDep, settings: SettingsDep, user: User
) -> Response:
    context, search = await _context(request, session, user, settings)
    context["pickers"] = await _pickers(session)
    return render(request, "companies.html", context, user=user, status=422 if search.error else 200)


@router.get("/companies/results")
async def companies_results(
    request: Request, _registry: DefaultRegistry, session: SessionDep, settings: SettingsDep, user: User
) -> Response:
    """The count, the page and the add-to-project form: what the screen's form swaps in as it changes."""
    context, search = await _context(request, session, user, settings)
    response = render(request, "_companies_results.html", context, user=user)
    response.headers["HX-Push-Url"] = "/companies" + (f"?{search.query}" if search.query else "")
    return response


@router.post("/companies/lists")
async def build_list(
    request: Request, _registry: DefaultRegistry, session: SessionDep, settings: SettingsDep, user: User
) -> Response:
    """Add the companies that fit the filters (or the ticked ones) to a project, as the API's
    POST /projects/{id}/lists does: at once up to DOSSIER_LIST_FOREGROUND_MAX, else in the background."""
    form = await request.form()
    pairs = _pairs(form.multi_items())
    project_id = str(form.get("project_id") or "")
    try:
        if not project_id:
            raise InvalidInput("choose the project to add the companies to", detail={"filter": "project_id"})
        filters = lists.filters_from_pairs(pairs, ignore=SCREEN_PARAMS | FORM_PARAMS, skip_empty=True)
        if form.get("scope") == "selected":
            ticked = [value for key, value in pairs if key == "kernel_id"]
            if not ticked:
                raise InvalidInput(
                    "tick the companies to add in the table first (or add every match)",
                    detail={"filter": "kernel_ids"},
                )
            filters = lists.with_kernel_ids(filters, lists.parse_kernel_ids(ticked))
        started = await lists.start_build(
            session,
            user.account,
            project_id,
            filters,
            None,
            foreground_max=settings.list_foreground_max,
            max_companies=settings.list_max_companies,
            batch_rows=settings.list_batch_rows,
            max_chars=settings.max_value_chars,
            chunk_rows=settings.tool_chunk_rows,
        )
    except InvalidInput as exc:
        if request.headers.get("hx-request") != "true":
            raise
        return render(request, "_list_build.html", {"error": exc.message}, user=user)
    if started.build.status != "done" and started.created:
        list_tasks.queue_build(session, started.build.id)
    return await _build_fragment(request, session, user, started.build)


@router.get("/projects/{project_id}/lists/{list_id}/progress")
async def list_progress(
    request: Request, project_id: str, list_id: str, session: SessionDep, user: User
) -> Response:
    """A list's progress, polled by the screen while it is added in the background."""
    build = await lists.get_build(session, user.account, project_id, list_id)
    return await _build_fragment(request, session, user, build)


async def _build_fragment(request: Request, session: SessionDep, user: User, build: ListBuild) -> Response:
    project = await projects.get_project(session, user.account, build.project_id)
    return render(request, "_list_build.html", {"build": build, "project": project}, user=user)
