"""Secrets at rest: stored encrypted (read from the raw columns), used in clear, encrypted by the migration
when they were stored before, and re-encrypted by `dossier secrets rotate-key`; a clear start-up error when
PostgreSQL gets no key, and an owner-only key file (announced once) for SQLite without one."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from dossier.accounts.models import Account
from dossier.accounts.service import NewAccount
from dossier.db.engine import create_engine
from dossier.db.migrate import alembic_config, upgrade_to_head
from dossier.db.secrets import PREFIX
from dossier.settings import Settings
from dossier.webhooks.models import SlackConnection, WebhookEndpoint
from tests.conftest import TEST_SECRET_KEY, Receiver, dossier_env, run_cli
from tests.helpers import running_worker

RAW = {
    "accounts": "SELECT webhook_secret FROM accounts",
    "webhook_secrets": "SELECT value FROM webhook_secrets",
    "slack_connections": "SELECT url FROM slack_connections",
    "options": "SELECT options FROM webhook_endpoints",
}


def opens(stored: str, key: str | bytes) -> str:
    """The clear value of a raw stored secret under ``key`` (InvalidToken if it does not open)."""
    assert stored.startswith(PREFIX), stored
    return Fernet(key).decrypt(stored[len(PREFIX) :].encode()).decode()


async def raw(database_url: str, sql: str, key: str = TEST_SECRET_KEY) -> list[Any]:
    engine = create_engine(Settings(database_url=database_url, secret_key=key))
    try:
        async with engine.connect() as connection:
            return [row[0] for row in (await connection.execute(text(sql))).all()]
    finally:
        await engine.dispose()


def options_of(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


async def test_secrets_are_encrypted_at_rest_and_sign_in_clear(
    app: Any,
    settings: Settings,
    database_url: str,
    account: NewAccount,
    headers: dict[str, str],
    receiver: Receiver,
) -> None:
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier.test") as client:
        standard = await client.post(
            "/api/enterprise/webhooks",
            headers=headers,
            json={"url": receiver.url + "/s", "profile": "standard"},
        )
        kruncher = await client.post(
            "/api/enterprise/webhooks",
            headers=headers,
            json={"url": receiver.url + "/k", "profile": "kruncher", "kruncher_api_key": "kr-live-123456789"},
        )
        slack = await client.put(
            "/api/enterprise/integrations/slack",
            headers=headers,
            json={"url": receiver.url + "/services/T/B/X"},
        )
        assert standard.status_code == kruncher.status_code == 201 and slack.status_code == 200
        secret = standard.json()["secret"]
        sent = await client.post(f"/api/enterprise/webhooks/{standard.json()['id']}/test", headers=headers)
        assert sent.status_code == 202
    async with running_worker(settings, maker, http=app.state.http):
        [request] = await receiver.wait_for(1)
    # The receiver verifies the delivery with the secret it was shown: we signed with the clear value.
    Webhook(secret).verify(request.body, request.headers)

    stored_account = await raw(database_url, RAW["accounts"])
    stored_secrets = await raw(database_url, RAW["webhook_secrets"])
    stored_slack = await raw(database_url, RAW["slack_connections"])
    stored_options = [options_of(value) for value in await raw(database_url, RAW["options"])]
    assert [opens(value, TEST_SECRET_KEY) for value in stored_account] == [account.webhook_secret]
    assert secret in [opens(value, TEST_SECRET_KEY) for value in stored_secrets]
    assert opens(stored_slack[0], TEST_SECRET_KEY) == receiver.url + "/services/T/B/X"
    assert [opens(options["api_key"], TEST_SECRET_KEY) for options in stored_options if options] == [
        "kr-live-123456789"
    ]
    everything = json.dumps([stored_account, stored_secrets, stored_slack, stored_options])
    for clear in (account.webhook_secret, secret, "kr-live-123456789", "/services/T/B/X"):
        assert clear not in everything
    # The application reads them in clear.
    async with maker() as session:
        assert (await session.get(Account, account.account.id)).webhook_secret == account.webhook_secret  # type: ignore[union-attr]
        endpoint = await session.get(WebhookEndpoint, kruncher.json()["id"])
        assert endpoint is not None and endpoint.options == {"api_key": "kr-live-123456789"}
        connection = await session.get(SlackConnection, account.account.id)
        assert connection is not None and connection.url.endswith("/services/T/B/X")


async def test_the_migration_encrypts_secrets_stored_in_clear(database_url: str) -> None:
    before = ScriptDirectory.from_config(alembic_config()).get_revision("0011").down_revision
    engine = create_engine(Settings(database_url=database_url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), str(before)))
        async with engine.begin() as connection:
            json_value = "CAST(:o AS JSONB)" if connection.dialect.name == "postgresql" else ":o"
            await connection.execute(
                text(
                    "INSERT INTO accounts (id, name, webhook_secret, created_at) "
                    "VALUES ('a1', 'old', :s, CURRENT_TIMESTAMP)"
                ),
                {"s": "whsec_clear-account"},
            )
            await connection.execute(
                text(
                    "INSERT INTO webhook_endpoints (id, account_id, url, profile, events, active, options, "
                    "created_at, updated_at) VALUES ('e1', 'a1', 'https://x.example/h', 'kruncher', '[]', "
                    f"true, {json_value}, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"o": json.dumps({"api_key": "kr-clear"})},
            )
            await connection.execute(
                text(
                    "INSERT INTO webhook_secrets (endpoint_id, version, value, created_at) "
                    "VALUES ('e1', 1, 'whsec_clear-endpoint', CURRENT_TIMESTAMP)"
                ),
            )
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
    [account_secret] = await raw(database_url, RAW["accounts"])
    [endpoint_secret] = await raw(database_url, RAW["webhook_secrets"])
    [options] = await raw(database_url, RAW["options"])
    assert opens(account_secret, TEST_SECRET_KEY) == "whsec_clear-account"
    assert opens(endpoint_secret, TEST_SECRET_KEY) == "whsec_clear-endpoint"
    assert opens(options_of(options)["api_key"], TEST_SECRET_KEY) == "kr-clear"


def test_postgresql_without_a_key_stops_at_start_with_one_clear_line(tmp_path: Path) -> None:
    env = dossier_env("postgresql://postgres@127.0.0.1:1/nowhere")
    del env["DOSSIER_SECRET_KEY"]
    for args in (["migrate"], ["serve", "--port", "1"], ["worker"]):
        result = run_cli(*args, env=env)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "DOSSIER_SECRET_KEY is required with PostgreSQL" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    bad = run_cli("migrate", env={**env, "DOSSIER_SECRET_KEY": "not-a-key"})
    assert bad.returncode == 1 and "dossier secrets generate-key" in bad.stderr


def test_sqlite_without_a_key_gets_an_owner_only_key_file_said_once_and_rotated(tmp_path: Path) -> None:
    database = tmp_path / "dossier.db"
    env = dossier_env(f"sqlite:///{database}")
    del env["DOSSIER_SECRET_KEY"]
    first = run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "dossier.db.key"
    assert f"created the secret key file {key_file}" in first.stderr
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    again = run_cli("migrate", env=env)
    assert again.returncode == 0 and "key file" not in again.stderr
    created = run_cli("accounts", "create", "team", "--json", env=env)
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["webhook_secret"]
    old_key = key_file.read_text().strip()

    def stored() -> str:
        with sqlite3.connect(database) as connection:
            value: str = connection.execute("SELECT webhook_secret FROM accounts").fetchone()[0]
            return value

    assert opens(stored(), old_key) == secret

    rotated = run_cli("secrets", "rotate-key", env=env)
    assert rotated.returncode == 0, rotated.stderr
    new_key = key_file.read_text().strip()
    assert new_key != old_key and "\n" not in new_key
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert opens(stored(), new_key) == secret
    with pytest.raises(InvalidToken):
        opens(stored(), old_key)
    # The rotated database is still served: the signing secret opens for the command that reads it.
    assert run_cli("accounts", "rotate-secret", "team", env=env).returncode == 0


async def test_rotating_the_key_given_in_the_setting(database_url: str) -> None:
    env = dossier_env(database_url)
    created = run_cli("accounts", "create", "rotating", "--json", env=env)
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["webhook_secret"]
    new_key = Fernet.generate_key().decode()
    alone = run_cli("secrets", "rotate-key", env={**env, "DOSSIER_SECRET_KEY": new_key})
    assert alone.returncode == 1 and "does not open" in alone.stderr
    rotated = run_cli(
        "secrets", "rotate-key", env={**env, "DOSSIER_SECRET_KEY": f"{new_key},{TEST_SECRET_KEY}"}
    )
    assert rotated.returncode == 0, rotated.stderr
    values = await raw(
        database_url, "SELECT webhook_secret FROM accounts WHERE name = 'rotating'", key=new_key
    )
    assert opens(values[0], new_key) == secret
    with pytest.raises(InvalidToken):
        opens(values[0], TEST_SECRET_KEY)


def test_a_process_picks_up_a_key_file_rotated_by_another(tmp_path: Path) -> None:
    from dossier.db.secrets import Keyring, SecretKeyError, write_key_file

    old, new = Fernet.generate_key(), Fernet.generate_key()
    path = tmp_path / "x.db.key"
    write_key_file(path, [old])
    running = Keyring([old], path=path)  # what a running `dossier serve` holds
    # `dossier secrets rotate-key` in another process: new key first, values re-encrypted with it.
    write_key_file(path, [new])
    rotated = Keyring([new]).encrypt("whsec_x")
    assert running.decrypt(rotated) == "whsec_x"
    assert running.keys == [new]
    # A value written before encryption existed reads as it is; a value no key opens is a clear error.
    assert running.decrypt("whsec_clear") == "whsec_clear"
    with pytest.raises(SecretKeyError, match="does not open"):
        Keyring([old]).decrypt(rotated)
