"""``dossier registry ...``: import companies, build the default registry, list and delete sources."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.db.lifecycle import open_database
from dossier.enrichment.registry import service
from dossier.enrichment.registry.index_cache import ensure_snapshot
from dossier.enrichment.registry.pytickersymbols_source import SOURCE as DEFAULT_SOURCE
from dossier.settings import get_settings

registry_app = typer.Typer(
    help="The reference registry entity resolution matches against.", no_args_is_help=True
)

console = Console()
err_console = Console(stderr=True)
_SHOWN_REJECTIONS = 20


@registry_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="CSV or JSONL file, optionally .gz (see docs/registry.md).")],
    source: Annotated[
        str | None, typer.Option(help="Source name for rows without a 'source' column (default: import).")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=50_000, help="Rows written per batch.")
    ] = service.BATCH_SIZE,
    remove_missing: Annotated[
        bool,
        typer.Option(
            "--remove-missing",
            help="Delete the companies of the file's sources that the file no longer has "
            "(refused when a row is rejected).",
        ),
    ] = False,
) -> None:
    """Import companies into the registry: insert new ones, update known ones (by kernel_id or source key).

    Then builds the registry's index snapshot, which every worker and API process opens.
    """
    settings = get_settings()
    if not file.is_file():
        err_console.print(f"[red]error:[/red] {file} is not a readable file")
        raise typer.Exit(code=1)

    async def run() -> service.ImportReport:
        async with open_database(settings, migrate=True) as maker:
            with Progress(
                TextColumn("[bold]importing[/bold] {task.fields[rows]:,} rows"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=False,
            ) as progress:
                task = progress.add_task("import", total=max(file.stat().st_size, 1), rows=0)

                def report(state: service.ImportReport) -> None:
                    progress.update(
                        task, completed=state.bytes_read, total=state.bytes_total, rows=state.rows
                    )

                # One transaction: an import that fails part-way leaves the registry as it was.
                async with maker() as session, session.begin():
                    result = await service.import_file(
                        session,
                        file,
                        source=source,
                        batch_size=batch_size,
                        progress=report,
                        remove_missing=remove_missing,
                    )
            if result.inserted or result.updated or result.removed:
                await _build_index(maker)
            return result

    try:
        result = asyncio.run(run())
    except service.RegistryImportError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=1) from None
    removed = f", {result.removed:,} removed" if remove_missing else ""
    console.print(
        f"{result.rows:,} rows: [green]{result.inserted:,} inserted[/green], "
        f"{result.updated:,} updated{removed}, [yellow]{len(result.rejected):,} rejected[/yellow]"
    )
    if result.removal_skipped:
        err_console.print(
            "[yellow]nothing removed:[/yellow] rows were rejected, and a rejected row would have counted as "
            "gone from the source; fix them and import again with --remove-missing"
        )
    for rejected in result.rejected[:_SHOWN_REJECTIONS]:
        err_console.print(f"  line {rejected.line}: {rejected.reason}", soft_wrap=True, markup=False)
    if len(result.rejected) > _SHOWN_REJECTIONS:
        err_console.print(f"  ... and {len(result.rejected) - _SHOWN_REJECTIONS:,} more rejected rows")


async def _build_index(maker: async_sessionmaker[AsyncSession]) -> None:
    """Build the index snapshot of the registry's new generation, with a progress line."""
    async with maker() as session:
        total = await service.entity_count(session)
    with Progress(
        TextColumn("[bold]indexing[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as progress:
        task = progress.add_task("index", total=max(total, 1))
        path, _ = await ensure_snapshot(maker, lambda done: progress.update(task, completed=done))
    err_console.print(f"index snapshot: {path}", markup=False, highlight=False)


@registry_app.command("build-default")
def build_default_cmd() -> None:
    """Build the default registry from the pytickersymbols package (does nothing if it is already there)."""
    settings = get_settings()

    async def run() -> tuple[int, int]:
        async with open_database(settings, migrate=True) as maker, maker() as session, session.begin():
            inserted = await service.build_default_registry(session)
            return inserted, await service.entity_count(session)

    inserted, total = asyncio.run(run())
    if inserted:
        console.print(f"default registry built: {inserted:,} companies ({total:,} in the registry)")
    else:
        console.print(f"default registry already present ({total:,} companies in the registry)")


@registry_app.command("sources")
def sources_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registry's sources with the number of companies of each."""
    settings = get_settings()

    async def run() -> list[service.SourceCount]:
        async with open_database(settings, migrate=True) as maker, maker() as session:
            return await service.list_sources(session)

    sources = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps([{"source": s.source, "companies": s.companies} for s in sources]))
        return
    if not sources:
        console.print("the registry is empty")
        return
    table = Table("source", "companies")
    table.columns[1].justify = "right"
    for item in sources:
        table.add_row(escape(item.source), f"{item.companies:,}")
    console.print(table)
    plural = "" if len(sources) == 1 else "s"
    console.print(f"{sum(s.companies for s in sources):,} companies in {len(sources):,} source{plural}")


@registry_app.command("delete-source")
def delete_source_cmd(
    source: Annotated[str, typer.Argument(help="The source whose companies are deleted (see `sources`).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every company of one source from the registry."""
    settings = get_settings()

    async def count() -> int:
        async with open_database(settings, migrate=True) as maker, maker() as session:
            return await service.entity_count(session, source)

    async def delete() -> int:
        async with open_database(settings) as maker, maker() as session, session.begin():
            return await service.delete_source(session, source)

    found = asyncio.run(count())
    if found == 0:
        err_console.print(
            f"[red]error:[/red] no registry company has source {escape(repr(source))} "
            "(`dossier registry sources` lists them)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)
    if not yes and not typer.confirm(f"Delete {found:,} companies of source {source!r}?", default=False):
        err_console.print("nothing deleted")
        raise typer.Exit(code=1)
    deleted = asyncio.run(delete())
    console.print(f"deleted {deleted:,} companies of source {source!r}", markup=False, highlight=False)
    if source == DEFAULT_SOURCE and settings.registry_builtin:
        err_console.print(
            "note: the default registry is built again at the next start or first entity resolution; "
            "set DOSSIER_REGISTRY_BUILTIN=false to keep it out",
            markup=False,
        )
