"""``dossier webhooks ...``: maintenance of the delivery history."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn

from dossier.db.base import utcnow
from dossier.db.lifecycle import open_database
from dossier.settings import get_settings
from dossier.webhooks import history

webhooks_app = typer.Typer(help="Webhook deliveries: history maintenance.", no_args_is_help=True)
err_console = Console(stderr=True)


@webhooks_app.command("prune")
def prune_cmd(
    older_than_days: Annotated[
        float,
        typer.Option(
            "--older-than-days",
            min=0.0,
            help="Delete finished deliveries (and their attempts) older than this.",
        ),
    ] = 30.0,
) -> None:
    """Delete the history of finished deliveries older than N days, and events left without deliveries.

    Pending deliveries are kept whatever their age. Runs in short batches, so it can run (from cron) while
    Dossier serves; safe to interrupt and run again.
    """
    settings = get_settings()
    before = utcnow() - timedelta(days=older_than_days)

    async def run() -> history.Pruned:
        deliveries = events = 0
        async with open_database(settings) as maker:
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), console=err_console, transient=False
            ) as progress:
                task = progress.add_task("pruning")
                while True:
                    async with maker() as session, session.begin():
                        pruned = await history.prune_history(session, before=before)
                    deliveries += pruned.deliveries
                    events += pruned.events
                    progress.update(task, description=f"pruned {deliveries:,} deliveries, {events:,} events")
                    if not pruned.deliveries and not pruned.events:
                        break
        return history.Pruned(deliveries=deliveries, events=events)

    pruned = asyncio.run(run())
    typer.echo(
        f"deleted {pruned.deliveries} deliveries (with their attempts) and {pruned.events} events "
        f"older than {before.isoformat()}"
    )
