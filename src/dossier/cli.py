"""The `dossier` command."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import os
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from typer.core import TyperOption

from dossier.accounts import service as accounts
from dossier.db.lifecycle import open_database
from dossier.enrichment.registry.cli import registry_app
from dossier.lists.cli import list_app
from dossier.logs import configure_logging
from dossier.operations.cli import secrets_app
from dossier.projects.cli import export_rows, import_rows
from dossier.settings import Settings, get_settings
from dossier.webhooks.cli import webhooks_app
from dossier.webhooks.listen_cli import listen_cmd


def _flags_show_no_type() -> None:
    """typer's help shows a type beside every option, `<bool>` beside flags (--json, --worker/--no-worker,
    --help) too, which reads as if they took a value: a flag shows none."""
    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_type()

app = typer.Typer(help="Dossier: self-hosted company data enrichment.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts and API keys.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
queue_app = typer.Typer(help="The work queue: inspect and requeue tasks.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")
app.add_typer(registry_app, name="registry")
app.add_typer(list_app, name="list")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(secrets_app, name="secrets")
app.command("listen")(listen_cmd)
app.command("import")(import_rows)
app.command("export")(export_rows)

console = Console()
err_console = Console(stderr=True)

DEFAULT_ACCOUNT = "default"


def _settings(**overrides: object) -> Settings:
    base = get_settings()
    return base.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _start_tracing(settings: Settings) -> None:
    """Traces when DOSSIER_OTEL_ENABLED (docs/operations.md, "Traces"); one clear line when the extra is
    missing."""
    if not settings.otel_enabled:
        return
    from dossier.tracing import configure_tracing

    try:
        configure_tracing()
    except RuntimeError as exc:
        err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(code=1) from None


def _require_secret_key(settings: Settings) -> None:
    """Stop with one clear line when the key that encrypts secrets at rest is missing or malformed (on
    SQLite without DOSSIER_SECRET_KEY this creates the key file beside the database, and says so)."""
    from dossier.db.secrets import SecretKeyError, keyring_for

    try:
        keyring_for(settings)
    except SecretKeyError as exc:
        err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(code=1) from None


async def _migrate(settings: Settings) -> None:
    async with open_database(settings, migrate=True):
        pass


async def _first_start(settings: Settings, *, default_account: bool) -> accounts.NewAccount | None:
    """Build the default reference registry if it is not there yet (unless DOSSIER_REGISTRY_BUILTIN is false)
    and, with ``default_account``, create the `default` account on an empty database. Returns that account's
    key and signing secret (shown this once), or None."""
    from dossier.enrichment.registry.service import ensure_default_registry
    from dossier.operations.tasks import ensure_retention_task

    async with open_database(settings) as maker, maker() as session, session.begin():
        await ensure_retention_task(session)
        await ensure_default_registry(session, settings)
        if not default_account or await accounts.count_accounts(session) > 0:
            return None
        return await accounts.create_account(session, DEFAULT_ACCOUNT)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (DOSSIER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (DOSSIER_PORT, or PORT).")] = None,
    migrate: Annotated[bool, typer.Option(help="Apply pending migrations first.")] = True,
    with_worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Also run a queue worker in this process.")
    ] = True,
) -> None:
    """Serve the API and, unless --no-worker, a queue worker in the same process."""
    from dossier.app import create_app

    if port is None and "DOSSIER_PORT" not in os.environ and os.environ.get("PORT", "").isdigit():
        port = int(os.environ["PORT"])
    settings = _settings(host=host, port=port, auto_migrate=migrate)
    # Bind first: a port in use is one plain line before anything starts (no migration, no worker).
    listener = _bind(settings.host, settings.port)
    configure_logging(settings.log_level, settings.log_json)
    _require_secret_key(settings)
    _start_tracing(settings)
    if settings.auto_migrate:
        asyncio.run(_migrate(settings))
    created = asyncio.run(_first_start(settings, default_account=True))
    base = settings.base_url()
    if created is not None:
        key = created.api_key
        console.rule("[bold]Dossier is ready")
        console.print("Created account [bold]default[/bold]. Its API key (shown only this once):")
        console.print(f"\n    [bold green]{key}[/bold green]\n", soft_wrap=True)
        console.print(f"API:  {base}/api/enterprise/projects")
        console.print(f"Docs: {base}/docs")
        console.print(f'Try:  curl -H "kur-api-key: {key}" {base}/api/enterprise/projects', soft_wrap=True)
        console.print(
            "Webhook signing secret (verifies job callbacks' X-Kernel-Signature; shown only this once):",
            soft_wrap=True,
        )
        console.print(f"\n    [bold]{created.webhook_secret}[/bold]\n", soft_wrap=True)
        console.print(
            f"Lost it? `dossier accounts rotate-secret {DEFAULT_ACCOUNT}` prints a new one.", soft_wrap=True
        )
        console.print(
            "Webhooks to http://127.0.0.1 or other private addresses: set DOSSIER_OUTBOUND_ALLOW=127.0.0.1",
            soft_wrap=True,
        )
        console.rule()
    else:
        console.print(f"Dossier serving on {base} (docs: {base}/docs)")
    config = uvicorn.Config(
        create_app(settings.model_copy(update={"auto_migrate": False}), worker=with_worker),
        log_config=None,
        proxy_headers=False,
        # Open `dossier listen` streams never end by themselves: a stopping server waits this long for them.
        timeout_graceful_shutdown=5,
    )
    _freeze_startup_objects()
    try:
        _Server(config).run(sockets=[listener])
    finally:
        _stop_matching_processes()


# gc.set_threshold for `serve` and `worker` (see _freeze_startup_objects).
COLLECTOR_THRESHOLDS = (50_000, 50, 100)


def _freeze_startup_objects() -> None:
    """Keep what the process built to start (modules, settings, the app: 100,000+ objects that live as long
    as it does) out of the cyclic collector's full passes, which otherwise walk them all each time: a pause of
    tens of milliseconds in whichever request or lookup was running (docs/performance.md)."""
    gc.collect()
    gc.freeze()
    # The young generation is collected after 50,000 allocations rather than 700: a chunk of cells or a
    # batch of deliveries allocates tens of thousands of short-lived objects (parameters, rows), and the
    # default collected them dozens of times over for nothing (5% of a worker's CPU, docs/performance.md).
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket of `serve`, or exit 1 with one line saying why it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc.strerror}"
        err_console.print(
            f"Error: {host}:{port} {reason} (choose another with --port or DOSSIER_PORT)", soft_wrap=True
        )
        raise typer.Exit(1) from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, except that SIGTERM after a clean shutdown exits 0 (uvicorn raises it again,
    which makes the process look killed to supervisors)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Tasks run at once (DOSSIER_WORKER_CONCURRENCY).")
    ] = None,
    migrate: Annotated[bool, typer.Option(help="Apply pending migrations first.")] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Serve /metrics, /healthz and /readyz on this port."),
    ] = None,
    metrics_host: Annotated[
        str | None, typer.Option(help="Interface of the metrics port (DOSSIER_HOST).")
    ] = None,
) -> None:
    """Run a queue worker (no API) until SIGTERM or Ctrl-C; run as many as needed against one PostgreSQL."""
    from dossier.operations.server import metrics_server
    from dossier.queue.runner import run_worker_until_signalled
    from dossier.tasks_registry import import_task_modules, task_modules

    settings = _settings(auto_migrate=migrate)
    configure_logging(settings.log_level, settings.log_json)
    _require_secret_key(settings)
    _start_tracing(settings)
    if settings.auto_migrate:
        asyncio.run(_migrate(settings))
    asyncio.run(_first_start(settings, default_account=False))
    import_task_modules(task_modules(settings))
    _freeze_startup_objects()

    async def run() -> None:
        if metrics_port is None:
            await run_worker_until_signalled(settings, concurrency=concurrency)
            return
        async with metrics_server(settings, host=metrics_host or settings.host, port=metrics_port):
            await run_worker_until_signalled(settings, concurrency=concurrency)

    try:
        with asyncio.Runner(loop_factory=_fast_event_loop()) as runner:
            runner.run(run())
    finally:
        _stop_matching_processes()


def _stop_matching_processes() -> None:
    """Stop the entity-matching processes a worker started (``registry.matching``), if any."""
    from dossier.enrichment.registry.matching import shutdown_matching

    shutdown_matching()


def _fast_event_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (uvicorn[standard] brings it, and `serve` runs on it): a
    worker's many small callbacks, socket reads and writes run in C. None: asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop
        return None
    return uvloop.new_event_loop


@queue_app.command("stats")
def queue_stats_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """Tasks by kind and status (succeeded tasks are deleted, so they do not appear)."""
    from rich.table import Table

    from dossier.queue.store import queue_stats

    settings = _settings()

    async def run() -> list[tuple[str, str, int, str | None]]:
        async with open_database(settings) as maker, maker() as session, session.begin():
            counts = await queue_stats(session)
        return [
            (c.kind, c.status, c.count, c.oldest_run_at.isoformat() if c.oldest_run_at else None)
            for c in counts
        ]

    rows = asyncio.run(run())
    if as_json:
        for kind, status, count, oldest in rows:
            typer.echo(json.dumps({"kind": kind, "status": status, "count": count, "oldest_run_at": oldest}))
        return
    table = Table("kind", "status", "count", "oldest run_at")
    for kind, status, count, oldest in rows:
        table.add_row(kind, status, str(count), oldest or "")
    console.print(table)


@queue_app.command("retry")
def queue_retry_cmd(
    kind: Annotated[str | None, typer.Option(help="Only failed tasks of this kind.")] = None,
    task_id: Annotated[int | None, typer.Option("--id", help="Only this task.")] = None,
) -> None:
    """Put failed tasks back in the queue with a fresh attempt budget (their errors are kept)."""
    from dossier.queue.store import retry_failed

    settings = _settings()

    async def run() -> int:
        async with open_database(settings) as maker, maker() as session, session.begin():
            return await retry_failed(session, kind=kind, task_id=task_id)

    err_console.print(f"requeued {asyncio.run(run())} failed task(s)")


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply pending database migrations."""
    settings = _settings()
    _require_secret_key(settings)
    asyncio.run(_migrate(settings))
    err_console.print("database is up to date")


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Argument(help="Account name (unique).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")] = False,
) -> None:
    """Create an account and print its API key and webhook signing secret (shown only this once)."""
    from dossier.errors import DossierError

    settings = _settings()

    async def run() -> accounts.NewAccount:
        async with open_database(settings, migrate=True) as maker, maker() as session, session.begin():
            return await accounts.create_account(session, name)

    try:
        created = asyncio.run(run())
    except DossierError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "account_id": created.account.id,
                    "api_key": created.api_key,
                    "webhook_secret": created.webhook_secret,
                }
            )
        )
        return
    console.print(f"Account [bold]{created.account.name}[/bold] ({created.account.id})")
    console.print(f"API key (shown once):        [bold green]{created.api_key}[/bold green]", soft_wrap=True)
    console.print(f"Webhook secret (shown once): [bold]{created.webhook_secret}[/bold]", soft_wrap=True)


@accounts_app.command("add-key")
def accounts_add_key(name: Annotated[str, typer.Argument(help="Account name.")]) -> None:
    """Issue another API key for an account (the old ones keep working)."""
    settings = _settings()

    async def run() -> str | None:
        async with open_database(settings, migrate=True) as maker, maker() as session, session.begin():
            account = await accounts.get_account_by_name(session, name)
            return None if account is None else await accounts.issue_api_key(session, account)

    key = asyncio.run(run())
    if key is None:
        err_console.print(f"[red]error:[/red] no account named {name!r}")
        raise typer.Exit(code=1)
    typer.echo(key)


@accounts_app.command("rotate-secret")
def accounts_rotate_secret(
    name: Annotated[str, typer.Argument(help="Account name.")],
    grace_hours: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=24 * 365,
            help="Hours the old secret keeps signing webhook-signature (DOSSIER_WEBHOOK_SECRET_GRACE_HOURS; "
            "0 revokes it now).",
        ),
    ] = None,
) -> None:
    """Replace the account's webhook signing secret and print the new one (shown only this once).

    Job callbacks (X-Kernel-Signature) are signed with the new secret from the next attempt on; the old one
    keeps signing the Standard Webhooks header for the grace period.
    """
    settings = _settings()
    hours = settings.webhook_secret_grace_hours if grace_hours is None else grace_hours

    async def run() -> str | None:
        async with open_database(settings, migrate=True) as maker, maker() as session, session.begin():
            account = await accounts.get_account_by_name(session, name)
            if account is None:
                return None
            return await accounts.rotate_webhook_secret(session, account, grace_seconds=hours * 3600)

    secret = asyncio.run(run())
    if secret is None:
        err_console.print(f"[red]error:[/red] no account named {name!r}")
        raise typer.Exit(code=1)
    typer.echo(secret)
