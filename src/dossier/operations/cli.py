"""``dossier secrets ...``: the key that encrypts secrets at rest (docs/operations.md, "Secrets at rest")."""

from __future__ import annotations

import asyncio

import typer
from cryptography.fernet import Fernet
from rich.console import Console

from dossier.db.engine import create_engine
from dossier.db.secrets import (
    Keyring,
    SecretKeyError,
    generate_key,
    keyring_for,
    reencrypt,
    secret_columns,
    write_key_file,
)
from dossier.settings import get_settings

secrets_app = typer.Typer(help="Secrets at rest: the key that encrypts them.", no_args_is_help=True)
err_console = Console(stderr=True)


@secrets_app.command("generate-key")
def generate_key_cmd() -> None:
    """Print a new random key for DOSSIER_SECRET_KEY."""
    typer.echo(generate_key())


@secrets_app.command("rotate-key")
def rotate_key_cmd() -> None:
    """Re-encrypt every stored secret with the first key of DOSSIER_SECRET_KEY.

    To rotate: give every process DOSSIER_SECRET_KEY=NEW,OLD and restart them, run this, then drop OLD.
    Without DOSSIER_SECRET_KEY (SQLite with its key file), a new key is generated, written first in the key
    file, everything is re-encrypted with it, and the old key is removed from the file.
    """
    from dossier.db.migrations.models import metadata

    settings = get_settings()

    async def run() -> int:
        keyring = keyring_for(settings)
        new: bytes | None = None
        if keyring.path is not None:
            new = Fernet.generate_key()
            # Written with the old key still in it: running processes read the file again when a value
            # they meet does not open, and a crash here leaves a key file that opens everything.
            write_key_file(keyring.path, [new, *keyring.keys])
            keyring = Keyring([new, *keyring.keys], path=keyring.path)
        elif len(keyring.keys) == 1:
            err_console.print(
                "DOSSIER_SECRET_KEY holds one key: every secret is re-encrypted with it. To rotate, give "
                "the new key first (DOSSIER_SECRET_KEY=NEW,OLD) to every process, then run this again."
            )
        engine = create_engine(settings)
        try:
            async with engine.begin() as connection:
                changed = await connection.run_sync(
                    lambda sync: reencrypt(sync, secret_columns(metadata), keyring.rotate)
                )
        finally:
            await engine.dispose()
        if keyring.path is not None and new is not None:
            write_key_file(keyring.path, [new])
        return changed

    try:
        changed = asyncio.run(run())
    except SecretKeyError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    typer.echo(f"re-encrypted {changed} secret value(s) with the first key; the others may now be dropped")
