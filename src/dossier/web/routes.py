"""The dashboard's pages. HTTP and HTML only: every change goes through a domain service, in the request's
one transaction (SessionDep), exactly as the API routes do; errors become pages in ``render.WebRoute``."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from starlette.datastructures import FormData, UploadFile

from dossier.accounts import service as accounts
from dossier.api.deps import Outbound, SettingsDep
from dossier.db.session import SessionDep
from dossier.enrichment.tools import all_tools
from dossier.errors import InvalidInput, NotFound
from dossier.jobs import service as jobs
from dossier.jobs.models import KINDS
from dossier.pipeline import service as pipeline
from dossier.projects import service as projects
from dossier.projects.service import ColumnSpec
from dossier.projects.tool_engine import ToolSpec
from dossier.web import forms
from dossier.web import session as web_session
from dossier.web.render import User, WebRoute, back_path, redirect, render, safe_path
from dossier.webhooks import history, slack
from dossier.webhooks import service as webhooks
from dossier.webhooks.models import DELIVERY_STATUSES
from dossier.webhooks.profiles import PROFILES, get_profile

router = APIRouter(include_in_schema=False, route_class=WebRoute)


def _fields(form: FormData) -> dict[str, str]:
    """The text fields of a submitted form (files left out)."""
    return {key: value for key, value in form.multi_items() if isinstance(value, str)}


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- sign-in ----------------------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request) -> Response:
    """Projects for a signed-in user, the sign-in page otherwise."""
    if web_session.load(request).key_id is None:
        return redirect(request, "/signin")
    return redirect(request, "/projects")


@router.get("/signin")
async def signin_page(request: Request, next: str = "") -> Response:
    return render(request, "signin.html", {"next": safe_path(next, "")})


@router.post("/signin")
async def signin(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = await request.form()
    key = await accounts.authenticate_key(session, _text(form, "api_key"))
    target = safe_path(_text(form, "next"), "/projects")
    if key is None:
        return render(
            request,
            "signin.html",
            {"error": "That API key is not valid (or it was revoked).", "next": target},
            status=401,
        )
    response = redirect(request, target)
    web_session.save(request, response, web_session.sign_in(request, key.id, settings.session_hours))
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    response = redirect(request, "/signin")
    web_session.save(request, response, web_session.SessionData(flash=("ok", "You are signed out.")))
    return response


# --- projects ---------------------------------------------------------------------------------------------


@router.get("/projects")
async def projects_page(request: Request, session: SessionDep, user: User) -> Response:
    stats = await projects.list_projects(session, user.account)
    stats.sort(key=lambda s: s.updated_at, reverse=True)
    counts = {s.project.id: len(await projects.list_columns(session, s.project)) for s in stats}
    return render(request, "projects.html", {"projects": stats, "column_counts": counts}, user=user)


def _column_specs(raw: str) -> list[ColumnSpec]:
    specs = []
    for line in raw.replace(",", "\n").splitlines():
        name = line.strip()
        if not name:
            continue
        required = name.endswith("*")
        specs.append(ColumnSpec(name=name.rstrip("*").strip(), required=required))
    return specs


@router.post("/projects")
async def create_project(request: Request, session: SessionDep, user: User) -> Response:
    form = await request.form()
    specs = _column_specs(_text(form, "columns"))
    if not specs:
        raise InvalidInput("give the project at least one input column (for example: company_name, website)")
    project = await projects.create_project(session, user.account, _text(form, "name"), specs)
    return redirect(request, f"/projects/{project.id}", f"Project “{project.name}” created.")


async def _table_context(
    session: SessionDep, user: User, project_id: str, page: int, page_size: int
) -> dict[str, Any]:
    project = await projects.get_project(session, user.account, project_id)
    view = await projects.list_rows(session, user.account, project_id, max(1, page), page_size)
    pages = max(1, math.ceil(view.total / page_size))
    if view.total and page > pages:
        view = await projects.list_rows(session, user.account, project_id, pages, page_size)
    columns = await projects.list_columns(session, project)
    # A tool cell not written yet is one its column's backfill has still to reach: it is coming, like a
    # pending one.
    loading = any(
        column.is_tool and (cell is None or cell.status in projects.LOADING_STATUSES)
        for row in view.rows
        for column, cell in row.cells
    )
    return {
        "project": project,
        "columns": columns,
        "rows": view.rows,
        "page": view.page,
        "pages": pages,
        "total": view.total,
        "page_size": page_size,
        "loading": loading,
    }


@router.get("/projects/{project_id}")
async def project_page(
    request: Request, project_id: str, session: SessionDep, settings: SettingsDep, user: User, page: int = 1
) -> Response:
    context = await _table_context(session, user, project_id, page, settings.dashboard_page_size)
    tools = sorted(all_tools())
    return render(request, "project.html", {**context, "tools": tools}, user=user)


@router.get("/projects/{project_id}/table")
async def project_table(
    request: Request, project_id: str, session: SessionDep, settings: SettingsDep, user: User, page: int = 1
) -> Response:
    """The table alone: what the page polls while cells run."""
    context = await _table_context(session, user, project_id, page, settings.dashboard_page_size)
    return render(request, "_table.html", context, user=user)


@router.post("/projects/{project_id}/rows")
async def add_row(
    request: Request, project_id: str, session: SessionDep, settings: SettingsDep, user: User
) -> Response:
    form = await request.form()
    project = await projects.get_project(session, user.account, project_id)
    company: dict[str, Any] = {}
    for column in await projects.list_columns(session, project):
        if column.is_tool:
            continue
        value = _text(form, f"col.{column.id}")
        company[column.name] = value or None
    await projects.add_row(
        session,
        user.account,
        project_id,
        company,
        max_chars=settings.max_value_chars,
        chunk_rows=settings.tool_chunk_rows,
    )
    stats = await projects.project_stats(session, project)
    last = max(1, math.ceil(stats.company_count / settings.dashboard_page_size))
    return redirect(request, f"/projects/{project_id}?page={last}", "Row added.")


@router.post("/projects/{project_id}/upload")
async def upload_csv(
    request: Request, project_id: str, session: SessionDep, settings: SettingsDep, user: User
) -> Response:
    """Every valid line of a CSV becomes a row; each refused line is listed with its reason."""
    form = await request.form()
    upload = form.get("file")
    await projects.get_project(session, user.account, project_id)
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidInput("choose a CSV file to upload")
    raw = await upload.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the file is not UTF-8 text (byte {exc.start})") from None
    rejected: list[tuple[int, str]] = []
    written = 0
    batch: list[tuple[int, dict[str, Any]]] = []

    async def flush() -> None:
        nonlocal written
        if not batch:
            return
        outcomes = await projects.add_rows(
            session,
            user.account,
            project_id,
            [company for _, company in batch],
            max_rows=len(batch),
            max_chars=settings.max_value_chars,
            chunk_rows=settings.tool_chunk_rows,
        )
        for (line, _), outcome in zip(batch, outcomes, strict=True):
            if outcome.error is not None:
                rejected.append((line, outcome.error.message))
        written += sum(1 for outcome in outcomes if outcome.row_id is not None)
        batch.clear()

    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise InvalidInput("the file is empty: its first line must name the columns")
        for record in reader:
            if None in record:
                rejected.append((reader.line_num, "more fields than the header has"))
                continue
            batch.append((reader.line_num, {k: (v if v != "" else None) for k, v in record.items()}))
            if len(batch) >= settings.max_batch_rows:
                await flush()
        await flush()
    except csv.Error as exc:
        raise InvalidInput(f"the file is not valid CSV: {exc}") from None
    context = {"written": written, "rejected": rejected[:200], "more": max(0, len(rejected) - 200)}
    context["rejected_count"] = len(rejected)
    context["project_id"] = project_id
    response = render(request, "_upload_result.html", context, user=user)
    if written:
        # The table on the page refreshes itself (and follows the new rows' tool cells).
        response.headers["HX-Trigger"] = "rows-added"
    return response


@router.get("/projects/{project_id}/export.csv")
async def export_csv(request: Request, project_id: str, session: SessionDep, user: User) -> Response:
    project = await projects.get_project(session, user.account, project_id)
    columns = await projects.list_columns(session, project)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row_id", *(column.name for column in columns)])
    after = 0
    while True:
        views = await projects.rows_after(session, project, columns, after, 1000)
        if not views:
            break
        for view in views:
            writer.writerow(
                [view.row.id, *(_csv_text(cell.value if cell else None) for _, cell in view.cells)]
            )
        after = views[-1].row.pk
    filename = "".join(c if c.isalnum() or c in "-_" else "_" for c in project.name)[:80] or "project"
    return Response(
        out.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


@router.get("/projects/{project_id}/columns/new")
async def new_tool_column(
    request: Request, project_id: str, session: SessionDep, user: User, tool: str = ""
) -> Response:
    project = await projects.get_project(session, user.account, project_id)
    columns = await projects.list_columns(session, project)
    catalogue = all_tools()
    chosen = catalogue.get(tool) if tool else None
    if tool and chosen is None:
        raise NotFound(f"no tool {tool!r}")
    fields = forms.fields_from_schema(chosen.config_model.model_json_schema()) if chosen else []
    return render(
        request,
        "column_new.html",
        {
            "project": project,
            "columns": columns,
            "tools": [catalogue[name] for name in sorted(catalogue)],
            "tool": chosen,
            "fields": fields,
        },
        user=user,
    )


@router.post("/projects/{project_id}/columns")
async def add_tool_column(request: Request, project_id: str, session: SessionDep, user: User) -> Response:
    form = await request.form()
    values = _fields(form)
    tool = all_tools().get(values.get("tool", ""))
    if tool is None:
        raise InvalidInput("choose a tool from the catalogue")
    project = await projects.get_project(session, user.account, project_id)
    names = {column.id: column.name for column in await projects.list_columns(session, project)}
    inputs: dict[str, str] = {}
    if tool.accepts_any_inputs:
        for column_id in form.getlist("reads"):
            if isinstance(column_id, str) and column_id in names:
                inputs[names[column_id]] = names[column_id]
    else:
        for tool_input in tool.inputs:
            column_id = values.get(f"input.{tool_input.name}", "")
            if column_id:
                if column_id not in names:
                    raise InvalidInput(f"input {tool_input.name}: no such column")
                inputs[tool_input.name] = names[column_id]
    fields = forms.fields_from_schema(tool.config_model.model_json_schema())
    config = forms.config_from_form(fields, values)
    spec = ColumnSpec(
        name=values.get("name", ""), tool=ToolSpec(type=tool.name, inputs=inputs, config=config)
    )
    column = await projects.add_column(session, user.account, project_id, spec)
    return redirect(
        request, f"/projects/{project_id}", f"Tool column “{column.name}” added; its cells are running."
    )


@router.post("/projects/{project_id}/columns/{column_id}/run")
async def rerun_column(
    request: Request, project_id: str, column_id: str, session: SessionDep, user: User
) -> Response:
    column = await projects.rerun_column(session, user.account, project_id, column_id)
    back = back_path(request, f"/projects/{project_id}")
    return redirect(request, back, f"“{column.name}” is running again for every row.")


@router.post("/projects/{project_id}/rows/{row_id}/cells/{column_id}/run")
async def rerun_cell(
    request: Request,
    project_id: str,
    row_id: str,
    column_id: str,
    session: SessionDep,
    settings: SettingsDep,
    user: User,
) -> Response:
    await projects.rerun_cell(
        session, user.account, project_id, row_id, column_id, chunk_rows=settings.tool_chunk_rows
    )
    back = back_path(request, f"/projects/{project_id}")
    return redirect(request, back, "The cell is running again.")


@router.post("/projects/{project_id}/delete")
async def delete_project(request: Request, project_id: str, session: SessionDep, user: User) -> Response:
    project = await projects.get_project(session, user.account, project_id)
    name = project.name
    await projects.delete_project(session, user.account, project_id)
    return redirect(request, "/projects", f"Project “{name}” deleted.")


# --- settings -> integrations: webhooks and Slack ----------------------------------------------------------


def _profiles() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "events": sorted(profile.events) if profile.events is not None else [],
            "options": [option.field for option in profile.endpoint_options],
        }
        for name, profile in PROFILES.items()
    ]


def _events(raw: list[str], text: str) -> list[str] | None:
    chosen = [event for event in raw if event]
    chosen += [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    return chosen or None


async def _integration_page(
    request: Request,
    session: SessionDep,
    user: User,
    tab: str,
    *,
    created: webhooks.NewSecret | None = None,
    status: int = 200,
) -> Response:
    endpoints = await webhooks.list_endpoints(session, user.account.id)
    try:
        connection = await slack.get_slack(session, user.account.id)
    except NotFound:
        connection = None
    return render(
        request,
        "integrations.html",
        {
            "tab": tab if tab in ("webhooks", "slack") else "webhooks",
            "endpoints": endpoints,
            "profiles": _profiles(),
            "created": created,
            "slack": connection,
            "notices": slack.NOTICES,
        },
        user=user,
        status=status,
    )


@router.get("/settings/integration")
async def integrations(request: Request, session: SessionDep, user: User, tab: str = "webhooks") -> Response:
    return await _integration_page(request, session, user, tab)


@router.get("/settings")
async def settings_home(request: Request) -> Response:
    return redirect(request, "/settings/integration?tab=webhooks")


@router.post("/settings/integration/webhooks")
async def create_endpoint(request: Request, session: SessionDep, http: Outbound, user: User) -> Response:
    form = await request.form()
    created = await webhooks.create_endpoint(
        session,
        user.account.id,
        url=_text(form, "url"),
        profile=_text(form, "profile") or "standard",
        events=_events([e for e in form.getlist("events") if isinstance(e, str)], _text(form, "events_text")),
        http=http,
        description=_text(form, "description") or None,
    )
    return await _integration_page(request, session, user, "webhooks", created=created, status=201)


def _delivery_filters(status: str, event: str, since: str) -> tuple[str | None, str | None, datetime | None]:
    if status and status not in DELIVERY_STATUSES:
        raise InvalidInput(f"unknown outcome {status!r}; choose one of: {', '.join(DELIVERY_STATUSES)}")
    windows = {
        "1h": timedelta(hours=1),
        "24h": timedelta(days=1),
        "7d": timedelta(days=7),
        "30d": timedelta(days=30),
    }
    if since and since not in windows:
        raise InvalidInput(f"unknown time window {since!r}; choose one of: {', '.join(windows)}")
    start = datetime.now(UTC) - windows[since] if since else None
    return status or None, event or None, start


@router.get("/settings/integration/webhooks/{endpoint_id}")
async def endpoint_page(
    request: Request,
    endpoint_id: str,
    session: SessionDep,
    user: User,
    status: str = "",
    event: str = "",
    since: str = "",
    page: int = 1,
) -> Response:
    endpoint = await webhooks.get_endpoint(session, user.account.id, endpoint_id)
    outcome, event_type, start = _delivery_filters(status, event, since)
    page = max(1, min(page, 100_000))
    size = 25
    deliveries, total = await history.list_deliveries(
        session,
        user.account.id,
        endpoint_id,
        status=outcome,
        event_type=event_type,
        since=start,
        limit=size,
        offset=(page - 1) * size,
    )
    profile = get_profile(endpoint.profile)
    filters = {"status": status, "event": event, "since": since}
    return render(
        request,
        "endpoint.html",
        {
            "endpoint": endpoint,
            "deliveries": deliveries,
            "total": total,
            "page": page,
            "pages": max(1, math.ceil(total / size)),
            "filters": filters,
            "query": urlencode({k: v for k, v in filters.items() if v}),
            "event_types": sorted(
                set(await history.event_types(session, user.account.id, endpoint_id))
                | set(profile.events or ())
            ),
            "profile_events": sorted(profile.events) if profile.events is not None else [],
            "options": [option.field for option in profile.endpoint_options],
            "statuses": DELIVERY_STATUSES,
            "secrets": await webhooks.endpoint_secrets(session, endpoint.id),
        },
        user=user,
    )


@router.post("/settings/integration/webhooks/{endpoint_id}/edit")
async def edit_endpoint(
    request: Request, endpoint_id: str, session: SessionDep, http: Outbound, user: User
) -> Response:
    form = await request.form()
    endpoint = await webhooks.get_endpoint(session, user.account.id, endpoint_id)
    profile = get_profile(endpoint.profile)
    options: dict[str, str | None] = {}
    for option in profile.endpoint_options:
        if form.get(f"clear.{option.field}"):
            options[option.field] = None
        elif value := _text(form, f"option.{option.field}"):
            options[option.field] = value
    events = _events([e for e in form.getlist("events") if isinstance(e, str)], _text(form, "events_text"))
    await webhooks.update_endpoint(
        session,
        user.account.id,
        endpoint_id,
        http=http,
        url=_text(form, "url") or None,
        events=events,
        description=_text(form, "description") or None,
        options=options,
    )
    return redirect(request, f"/settings/integration/webhooks/{endpoint_id}", "Endpoint saved.")


@router.post("/settings/integration/webhooks/{endpoint_id}/rotate")
async def rotate_secret(
    request: Request, endpoint_id: str, session: SessionDep, settings: SettingsDep, user: User
) -> Response:
    form = await request.form()
    raw = _text(form, "grace_hours")
    try:
        hours = float(raw) if raw else settings.webhook_secret_grace_hours
    except ValueError:
        raise InvalidInput("the grace period must be a number of hours") from None
    if not 0 <= hours <= 24 * 365:
        raise InvalidInput("the grace period must be between 0 and 8760 hours")
    rotated = await webhooks.rotate_secret(session, user.account.id, endpoint_id, grace_seconds=hours * 3600)
    return render(
        request,
        "secret.html",
        {
            "title": "New signing secret",
            "secret": rotated.secret,
            "note": (
                f"The previous secret keeps signing the webhook-signature header for {hours:g} hours."
                if hours
                else "The previous secret no longer signs anything."
            ),
            "back": f"/settings/integration/webhooks/{endpoint_id}",
        },
        user=user,
    )


@router.post("/settings/integration/webhooks/{endpoint_id}/test")
async def send_test(request: Request, endpoint_id: str, session: SessionDep, user: User) -> Response:
    delivery = await webhooks.send_test_event(session, user.account.id, endpoint_id)
    return redirect(
        request,
        f"/settings/integration/webhooks/{endpoint_id}",
        f"Test event {delivery.event_type} queued.",
    )


@router.post("/settings/integration/webhooks/{endpoint_id}/enable")
async def enable_endpoint(request: Request, endpoint_id: str, session: SessionDep, user: User) -> Response:
    await webhooks.enable_endpoint(session, user.account.id, endpoint_id)
    return redirect(request, f"/settings/integration/webhooks/{endpoint_id}", "Endpoint enabled.")


@router.post("/settings/integration/webhooks/{endpoint_id}/disable")
async def disable_endpoint(
    request: Request, endpoint_id: str, session: SessionDep, http: Outbound, user: User
) -> Response:
    await webhooks.update_endpoint(session, user.account.id, endpoint_id, http=http, active=False)
    return redirect(request, f"/settings/integration/webhooks/{endpoint_id}", "Endpoint disabled.")


@router.post("/settings/integration/webhooks/{endpoint_id}/delete")
async def delete_endpoint(request: Request, endpoint_id: str, session: SessionDep, user: User) -> Response:
    await webhooks.delete_endpoint(session, user.account.id, endpoint_id)
    return redirect(request, "/settings/integration?tab=webhooks", "Endpoint deleted.")


@router.post("/settings/integration/webhooks/{endpoint_id}/recover")
async def recover(request: Request, endpoint_id: str, session: SessionDep, user: User) -> Response:
    form = await request.form()
    raw = _text(form, "since")
    try:
        since = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("give the time to recover from, e.g. 2026-01-31T09:00") from None
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    count = await history.recover_failed(session, user.account.id, endpoint_id, since)
    return redirect(
        request,
        f"/settings/integration/webhooks/{endpoint_id}",
        f"{count} failed deliver{'y' if count == 1 else 'ies'} queued again.",
    )


@router.get("/settings/integration/deliveries/{delivery_id}")
async def delivery_page(request: Request, delivery_id: str, session: SessionDep, user: User) -> Response:
    delivery, attempts = await history.get_delivery(session, user.account.id, delivery_id)
    endpoint = (
        await webhooks.get_endpoint(session, user.account.id, delivery.endpoint_id)
        if delivery.endpoint_id
        else None
    )
    return render(
        request,
        "delivery.html",
        {"delivery": delivery, "attempts": list(reversed(attempts)), "endpoint": endpoint},
        user=user,
    )


@router.post("/settings/integration/deliveries/{delivery_id}/redeliver")
async def redeliver(request: Request, delivery_id: str, session: SessionDep, user: User) -> Response:
    await history.redeliver(session, user.account.id, delivery_id)
    return redirect(
        request,
        f"/settings/integration/deliveries/{delivery_id}",
        "Redelivery queued: same body, same webhook-id.",
    )


@router.post("/settings/integration/slack")
async def connect_slack(request: Request, session: SessionDep, http: Outbound, user: User) -> Response:
    form = await request.form()
    notices = [n for n in form.getlist("notices") if isinstance(n, str)]
    await slack.connect_slack(session, user.account.id, url=_text(form, "url"), notices=notices, http=http)
    return redirect(request, "/settings/integration?tab=slack", "Slack connected.")


@router.post("/settings/integration/slack/notices")
async def slack_notices(request: Request, session: SessionDep, user: User) -> Response:
    form = await request.form()
    notices = [n for n in form.getlist("notices") if isinstance(n, str)]
    await slack.update_slack_notices(session, user.account.id, notices)
    return redirect(request, "/settings/integration?tab=slack", "Slack notices saved.")


@router.post("/settings/integration/slack/test")
async def slack_test(request: Request, session: SessionDep, user: User) -> Response:
    await slack.send_test_message(session, user.account.id)
    return redirect(request, "/settings/integration?tab=slack", "Test message queued for Slack.")


@router.post("/settings/integration/slack/disconnect")
async def slack_disconnect(request: Request, session: SessionDep, user: User) -> Response:
    await slack.disconnect_slack(session, user.account.id)
    return redirect(request, "/settings/integration?tab=slack", "Slack disconnected.")


# --- jobs and pipeline -------------------------------------------------------------------------------------


@router.get("/jobs")
async def jobs_page(
    request: Request, session: SessionDep, user: User, kind: str = "", status: str = "", page: int = 1
) -> Response:
    page = max(1, min(page, 100_000))
    size = 50
    found, total = await jobs.list_jobs(
        session,
        user.account.id,
        kind=kind or None,
        status=status or None,
        limit=size,
        offset=(page - 1) * size,
    )
    filters = {"kind": kind, "status": status}
    return render(
        request,
        "jobs.html",
        {
            "jobs": found,
            "total": total,
            "page": page,
            "pages": max(1, math.ceil(total / size)),
            "filters": filters,
            "query": urlencode({k: v for k, v in filters.items() if v}),
            "kinds": KINDS,
            "statuses": jobs.STATUSES,
        },
        user=user,
    )


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str, session: SessionDep, user: User) -> Response:
    job = await jobs.find_job(session, user.account.id, job_id)
    callbacks = await jobs.job_callbacks(session, job)
    return render(request, "job.html", {"job": job, "callbacks": callbacks}, user=user)


@router.get("/pipeline")
async def pipeline_page(request: Request, session: SessionDep, settings: SettingsDep, user: User) -> Response:
    companies = await pipeline.list_companies(session, user.account.id)
    statuses = list(settings.pipeline_statuses)
    extra = sorted({c.status for c in companies} - set(statuses))
    columns: dict[str, list[Any]] = {status: [] for status in [*statuses, *extra]}
    for company in companies:
        columns[company.status].append(company)
    return render(
        request,
        "pipeline.html",
        {"columns": columns, "statuses": statuses, "count": len(companies)},
        user=user,
    )


@router.post("/pipeline/companies")
async def track_company(request: Request, session: SessionDep, settings: SettingsDep, user: User) -> Response:
    form = await request.form()
    company = await pipeline.create_company(
        session,
        user.account.id,
        name=_text(form, "name"),
        website=_text(form, "website") or None,
        status=_text(form, "status") or None,
        stage=_text(form, "stage") or None,
        statuses=settings.pipeline_statuses,
    )
    return redirect(request, "/pipeline", f"Now tracking “{company.name}”.")


@router.post("/pipeline/companies/{company_id}/status")
async def change_status(
    request: Request, company_id: str, session: SessionDep, settings: SettingsDep, user: User
) -> Response:
    form = await request.form()
    company = await pipeline.change_status(
        session,
        user.account.id,
        company_id,
        status=_text(form, "status"),
        stage=None,
        statuses=settings.pipeline_statuses,
    )
    back = back_path(request, "/pipeline")
    return redirect(request, back, f"“{company.name}” moved to {company.status}.")


@router.get("/pipeline/companies/{company_id}")
async def company_page(
    request: Request, company_id: str, session: SessionDep, settings: SettingsDep, user: User
) -> Response:
    company = await pipeline.get_company(session, user.account.id, company_id)
    analyses = await pipeline.list_analyses(session, user.account.id, company_id)
    return render(
        request,
        "company.html",
        {"company": company, "analyses": analyses, "statuses": settings.pipeline_statuses},
        user=user,
    )


@router.post("/pipeline/companies/{company_id}/analyses")
async def start_analysis(request: Request, company_id: str, session: SessionDep, user: User) -> Response:
    await pipeline.start_analysis(session, user.account.id, company_id)
    return redirect(request, f"/pipeline/companies/{company_id}", "Analysis started.")


# --- account -----------------------------------------------------------------------------------------------


async def _account_page(
    request: Request, session: SessionDep, user: User, *, shown: Mapping[str, str] | None = None
) -> Response:
    keys = await accounts.list_api_keys(session, user.account)
    return render(request, "account.html", {"keys": keys, "shown": shown or {}}, user=user)


@router.get("/account")
async def account_page(request: Request, session: SessionDep, user: User) -> Response:
    return await _account_page(request, session, user)


@router.post("/account/keys")
async def create_key(request: Request, session: SessionDep, user: User) -> Response:
    key = await accounts.issue_api_key(session, user.account)
    return await _account_page(request, session, user, shown={"API key": key})


@router.post("/account/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str, session: SessionDep, user: User) -> Response:
    key = await accounts.revoke_api_key(session, user.account, key_id)
    if key.id == user.key_id:
        return redirect(request, "/signin", "That key was revoked: sign in with another one.")
    return redirect(request, "/account", f"Key {key.display_prefix}… revoked.")


@router.post("/account/secret/rotate")
async def rotate_account_secret(request: Request, session: SessionDep, user: User) -> Response:
    secret = await accounts.rotate_webhook_secret(session, user.account)
    return await _account_page(request, session, user, shown={"Signing secret": secret})
