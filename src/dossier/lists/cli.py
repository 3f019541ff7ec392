"""``dossier list build PROJECT ...``: add the registry companies that fit some filters to a project."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dossier.db.lifecycle import open_database
from dossier.errors import DossierError, InvalidInput
from dossier.lists import schemas, service
from dossier.projects import service as projects
from dossier.settings import Settings, get_settings

list_app = typer.Typer(help="Build lists of registry companies into projects.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

Multi = list[str] | None


def _range(name: str, text: str | None, raw: dict[str, Any]) -> None:
    """``500-5000``, ``500-`` or ``-5000`` into NAME_min / NAME_max."""
    if text is None:
        return
    low, sep, high = text.strip().partition("-")
    if not sep:
        raise InvalidInput(
            f"--{name}: give a range such as 500-5000 (or 500- / -5000), not {text!r}",
            detail={"filter": name},
        )
    if low.strip():
        raw[f"{name}_min"] = low.strip()
    if high.strip():
        raw[f"{name}_max"] = high.strip()


def _columns(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    mapping = {}
    for pair in pairs:
        column, sep, registry_field = pair.partition("=")
        if not sep or not column.strip() or not registry_field.strip():
            raise InvalidInput(
                f"--column takes COLUMN=FIELD (e.g. company_name=name), not {pair!r}",
                detail={"filter": "columns"},
            )
        mapping[column.strip()] = registry_field.strip()
    return mapping


async def _build(
    settings: Settings, project_id: str, filters: service.Filters, columns: dict[str, str] | None
) -> Any:
    async with open_database(settings, migrate=settings.auto_migrate) as maker:
        async with maker() as session, session.begin():
            account = await projects.project_owner(session, project_id)
            started = await service.start_build(
                session,
                account,
                project_id,
                filters,
                columns,
                foreground_max=0,
                max_companies=settings.list_max_companies,
                batch_rows=settings.list_batch_rows,
                max_chars=settings.max_value_chars,
                chunk_rows=settings.tool_chunk_rows,
            )
            build_id, matched = started.build.id, started.build.matched
        progress = Progress(
            TextColumn("[bold]adding companies"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeRemainingColumn(),
            console=err,
        )
        with progress:
            task = progress.add_task("list", total=max(matched, 1), note="")
            more = True
            try:
                while more:
                    async with maker() as session, session.begin():
                        more = await service.continue_build(
                            session,
                            build_id,
                            batch_rows=settings.list_batch_rows,
                            max_chars=settings.max_value_chars,
                            chunk_rows=settings.tool_chunk_rows,
                        )
                        build = await service.build_by_id(session, build_id)
                        progress.update(
                            task,
                            completed=build.processed,
                            total=max(build.matched, build.processed, 1),
                            note=f"{build.added:,} added, {build.skipped:,} already in the project",
                        )
            except BaseException:
                async with maker() as session, session.begin():
                    await service.fail_build(session, build_id, "interrupted: the command stopped")
                raise
        async with maker() as session:
            return schemas.list_out(await service.build_by_id(session, build_id))


@list_app.command("build")
def build_cmd(
    project_id: Annotated[str, typer.Argument(help="The project's id.")],
    country: Annotated[Multi, typer.Option(help="ISO 3166 code or name; repeat for several.")] = None,
    industry: Annotated[
        Multi, typer.Option(help="The registry's industry (see the facets); repeatable.")
    ] = None,
    sector: Annotated[Multi, typer.Option(help="The registry's sector; repeatable.")] = None,
    city: Annotated[Multi, typer.Option(help="Headquarters city; repeatable.")] = None,
    company_type: Annotated[Multi, typer.Option(help="The registry's company type; repeatable.")] = None,
    employees: Annotated[str | None, typer.Option(help="Employee range: 500-5000, 500- or -5000.")] = None,
    revenue: Annotated[str | None, typer.Option(help="Revenue range, in --currency.")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 currency of --revenue.")] = None,
    founded: Annotated[str | None, typer.Option(help="Founded-year range: 1990-2010.")] = None,
    website: Annotated[
        bool | None, typer.Option("--website/--no-website", help="Has a website, or not.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name or alias contains this.")] = None,
    parent: Annotated[str | None, typer.Option(help="Subsidiaries of this kernel_id.")] = None,
    subsidiary: Annotated[
        bool | None, typer.Option("--subsidiary/--no-subsidiary", help="Has a parent company, or not.")
    ] = None,
    kernel_id: Annotated[Multi, typer.Option(help="Exactly this registry company; repeatable.")] = None,
    column: Annotated[
        Multi, typer.Option(help="COLUMN=FIELD: which registry field fills which input column.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """Add the registry companies that fit every filter to PROJECT, but those already in it, with a progress
    bar. Tool columns run for the new rows as for posted ones."""
    settings = get_settings()
    try:
        raw: dict[str, Any] = {}
        for key, values in (
            ("country", country),
            ("industry", industry),
            ("sector", sector),
            ("city", city),
            ("company_type", company_type),
        ):
            if values:
                raw[key] = list(values)
        _range("employees", employees, raw)
        _range("revenue", revenue, raw)
        _range("founded", founded, raw)
        for key, value in (
            ("revenue_currency", currency),
            ("has_website", website),
            ("name", name),
            ("parent_kernel_id", parent),
            ("is_subsidiary", subsidiary),
        ):
            if value is not None:
                raw[key] = value
        filters = service.parse_filters(raw)
        if kernel_id:
            filters = service.with_kernel_ids(filters, service.parse_kernel_ids(list(kernel_id)))
        result = asyncio.run(_build(settings, project_id, filters, _columns(column)))
    except DossierError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(code=1) from None
    if as_json:
        console.print_json(json.dumps(result.model_dump(mode="json")))
        return
    console.print(
        f"{result.added:,} companies added to project {project_id} "
        f"({result.skipped:,} already in it, {result.rejected:,} without a required value; "
        f"{result.processed:,} matched)"
    )
