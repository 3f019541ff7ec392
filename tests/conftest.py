"""Shared fixtures: every database test runs on SQLite and, when DOSSIER_TEST_DATABASE_URL is set, PostgreSQL.

Each backend is migrated once per session into a template; every test gets a fresh copy of it (a file copy
on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL), so tests are isolated and fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts import service as accounts
from dossier.app import create_app
from dossier.db.engine import create_engine
from dossier.db.migrate import upgrade_to_head
from dossier.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
DOSSIER_BIN = str(Path(sys.executable).with_name("dossier"))
# Loopback only: tests never send traffic anywhere else.
TEST_OUTBOUND_ALLOW = ["127.0.0.1", "::1", "localhost"]
# Registry index snapshots of the test databases: one directory per test session, never ~/.cache.
REGISTRY_INDEX_DIR = Path(
    os.environ.setdefault("DOSSIER_REGISTRY_INDEX_DIR", f"/tmp/dossier-test-index-{os.getpid()}")
)
# The key that encrypts secrets at rest in every test database (PostgreSQL requires one); tests of the
# key file and of rotation run the CLI with their own.
TEST_SECRET_KEY = "x6Lx7b0pN1uWm0Hk2nJ9c0m1gQvYyq1vRr6n8m5V0aE="
os.environ["DOSSIER_SECRET_KEY"] = TEST_SECRET_KEY


def _pg_url() -> URL | None:
    raw = os.environ.get("DOSSIER_TEST_DATABASE_URL")
    if not raw:
        return None
    url = make_url(raw)
    return url.set(drivername="postgresql+asyncpg")


PG_URL = _pg_url()
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL is not None else [])


async def _pg_admin(url: URL) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "postgres",
    )


async def _migrate(database_url: str) -> None:
    engine = create_engine(Settings(database_url=database_url))
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    if PG_URL is None:
        yield None
        return
    name = f"dossier_tmpl_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await _pg_admin(PG_URL)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        await _migrate(PG_URL.set(database=name).render_as_string(hide_password=False))

    async def drop() -> None:
        conn = await _pg_admin(PG_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop())


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_template: str | None
) -> Iterator[str]:
    """A freshly migrated, empty database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "dossier.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    assert PG_URL is not None and pg_template is not None
    name = f"dossier_t_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await _pg_admin(PG_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield PG_URL.set(database=name).render_as_string(hide_password=False)
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        auto_migrate=False,
        outbound_allow=TEST_OUTBOUND_ALLOW,
        log_json=False,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def sessionmaker(app: Any) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    return maker


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier.test") as http:
        yield http


@pytest.fixture
async def account(sessionmaker: async_sessionmaker[AsyncSession]) -> accounts.NewAccount:
    async with sessionmaker() as session, session.begin():
        return await accounts.create_account(session, f"acct-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def headers(account: accounts.NewAccount) -> dict[str, str]:
    return {"kur-api-key": account.api_key}


# --- real processes and real HTTP peers ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dossier_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    env.update(
        DOSSIER_DATABASE_URL=database_url,
        DOSSIER_OUTBOUND_ALLOW=",".join(TEST_OUTBOUND_ALLOW),
        DOSSIER_LOG_JSON="true",
        DOSSIER_REGISTRY_INDEX_DIR=str(REGISTRY_INDEX_DIR),
        DOSSIER_SECRET_KEY=TEST_SECRET_KEY,
    )
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `dossier` command."""
    return subprocess.run(
        [DOSSIER_BIN, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    base_url: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text()


def start_server(
    database_url: str, tmp_path: Path, *args: str, env_extra: dict[str, str] | None = None
) -> ServerProcess:
    """`dossier serve` on a free port; returns once /healthz answers."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [DOSSIER_BIN, "serve", "--port", str(port), *args],
        env=dossier_env(database_url, **(env_extra or {})),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    # Generous: on a loaded machine importing, migrating and building the default registry takes a while.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return ServerProcess(process, base_url, log_path)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")


def stop_server(server: ServerProcess) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers as told."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    # (status, headers, body) answers used in order; the last one repeats.
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=lambda: [(200, {}, b"ok")])
    delay: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    # Requests being answered now, and the most there ever were at once.
    in_flight: int = 0
    max_in_flight: int = 0

    async def wait_for(self, count: int, timeout: float = 10) -> list[Received]:  # noqa: ASYNC109
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.requests) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)
        return self.requests


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        state.requests.append(Received(request.method, request.path_qs, headers, body))
        state.arrived.set()
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.delay:
                await asyncio.sleep(state.delay)
        finally:
            state.in_flight -= 1
        index = min(len(state.requests) - 1, len(state.answers) - 1)
        status, answer_headers, answer_body = state.answers[index]
        return web.Response(status=status, headers=answer_headers, body=answer_body)

    application = web.Application(client_max_size=64 * 1024 * 1024)
    application.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def shared_data(name: str) -> Path:
    """A file of ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data directory is not beside this checkout")
    return path


# --- every payload delivered in the suite matches the event catalogue ------------------------------------

# The packages whose tests make deliveries (their tests are checked; the others would only cost time).
_DELIVERING = ("tests/webhooks/", "tests/pipeline/", "tests/jobs/", "tests/projects/", "tests/enrichment/")


async def _catalogue_mismatches(database_url: str) -> list[str]:
    import jsonschema
    from sqlalchemy import select

    from dossier.webhooks.catalogue import schema_for
    from dossier.webhooks.models import WebhookDelivery

    engine = create_engine(Settings(database_url=database_url))
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(WebhookDelivery.profile, WebhookDelivery.event_type, WebhookDelivery.payload)
                )
            ).all()
    finally:
        await engine.dispose()
    problems = []
    for profile, event_type, payload in rows:
        schema = schema_for(profile, event_type)
        if schema is None:
            continue
        try:
            jsonschema.validate(payload, schema)
        except jsonschema.ValidationError as exc:
            problems.append(f"{profile} {event_type}: {exc.message} in {payload}")
    return problems


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After each test that delivered webhooks, every stored payload of a catalogued event validates against
    the JSON Schema the catalogue publishes for its profile (docs/webhooks.md, "Event catalogue")."""
    outcome = yield
    funcargs = getattr(item, "funcargs", {})
    database_url = funcargs.get("database_url")
    if outcome.excinfo is not None or database_url is None or not item.nodeid.startswith(_DELIVERING):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        problems = asyncio.run(_catalogue_mismatches(database_url))
    else:  # pragma: no cover - never inside a running loop
        return
    if problems:
        raise AssertionError("payloads that do not match the event catalogue:\n" + "\n".join(problems[:5]))
