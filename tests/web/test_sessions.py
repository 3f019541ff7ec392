"""Dashboard sessions over HTTP: the cookie's flags and expiry, CSRF on forms, revoked keys, one account's
data only. (tests/web/test_browser.py drives the same screens through a real Chromium.)"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts import service as accounts
from dossier.settings import Settings
from dossier.web.session import COOKIE, SessionCodec, SessionData
from tests.web.helpers import csrf_of, sign_in


async def test_pages_need_a_session_and_the_api_key_opens_one(
    client: httpx.AsyncClient, account: accounts.NewAccount
) -> None:
    assert (await client.get("/")).headers["location"] == "/signin"
    answer = await client.get("/settings/integration?tab=webhooks")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?next=/settings/integration%3Ftab%3Dwebhooks"
    page = await client.get("/signin")
    assert 'for="api_key">API key</label>' in page.text
    wrong = await client.post("/signin", data={"api_key": "dsk_nope", "csrf_token": csrf_of(page.text)})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    await sign_in(client, account.api_key)
    assert account.account.name in (await client.get("/projects")).text


async def test_the_cookie_is_signed_httponly_lax_and_expires(
    client: httpx.AsyncClient, account: accounts.NewAccount, settings: Settings
) -> None:
    page = await client.get("/signin")
    answer = await client.post("/signin", data={"api_key": account.api_key, "csrf_token": csrf_of(page.text)})
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert abs(max_age - settings.session_hours * 3600) < 60
    # A tampered cookie is no session at all.
    value = client.cookies[COOKIE]
    client.cookies.set(COOKIE, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert (await client.get("/projects")).status_code == 303


async def test_secure_cookie_under_https(app: Any, account: accounts.NewAccount) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://dossier.test") as client:
        page = await client.get("/signin")
        answer = await client.post(
            "/signin", data={"api_key": account.api_key, "csrf_token": csrf_of(page.text)}
        )
        assert "Secure" in answer.headers["set-cookie"]


async def test_secure_cookie_behind_a_tls_proxy(settings: Settings, account: accounts.NewAccount) -> None:
    from dossier.app import create_app

    app = create_app(settings.model_copy(update={"public_url": "https://dossier.example.com"}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dossier.test") as client:
            page = await client.get("/signin")
            assert "Secure" in page.headers["set-cookie"]


async def test_an_expired_session_asks_for_the_key_again(app: Any, client: httpx.AsyncClient) -> None:
    codec: SessionCodec = app.state.session_codec
    expired = SessionData(key_id="anything", expires=time.time() - 1)
    client.cookies.set(COOKIE, codec.dumps(expired))
    assert (await client.get("/projects")).headers["location"] == "/signin?next=/projects"


async def test_a_form_without_the_csrf_token_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, account: accounts.NewAccount
) -> None:
    token = await sign_in(client, account.api_key)
    forged = await client.post("/projects", data={"name": "forged", "columns": "a"})
    assert forged.status_code == 403 and "expired" in forged.text
    wrong = await client.post("/projects", data={"name": "forged", "columns": "a", "csrf_token": "x" + token})
    assert wrong.status_code == 403
    assert "forged" not in (await client.get("/projects")).text
    # Sign-in itself is protected too (login CSRF).
    assert (await client.post("/signin", data={"api_key": account.api_key})).status_code == 403
    ok = await client.post("/projects", data={"name": "real", "columns": "a", "csrf_token": token})
    assert ok.status_code == 303


async def test_another_accounts_things_are_not_found(
    client: httpx.AsyncClient,
    account: accounts.NewAccount,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        other = await accounts.create_account(session, "someone-else")
    token = await sign_in(client, other.api_key)
    created = await client.post(
        "/projects", data={"name": "secret plans", "columns": "name", "csrf_token": token}
    )
    project_url = created.headers["location"]
    await client.post("/signout", data={"csrf_token": token})
    token = await sign_in(client, account.api_key)
    assert "secret plans" not in (await client.get("/projects")).text
    for url in (project_url, project_url + "/table", project_url + "/export.csv"):
        answer = await client.get(url)
        assert answer.status_code == 404, url
        assert "secret plans" not in answer.text
    refused = await client.post(project_url + "/delete", data={"csrf_token": token})
    assert refused.status_code == 404
    async with sessionmaker() as session:
        assert [s.project.name for s in await _projects(session, other)] == ["secret plans"]


async def _projects(session: AsyncSession, new: accounts.NewAccount) -> list[Any]:
    from dossier.projects import service as projects

    return await projects.list_projects(session, new.account)


async def test_revoking_the_key_ends_its_sessions(
    client: httpx.AsyncClient,
    account: accounts.NewAccount,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    token = await sign_in(client, account.api_key)
    created = await client.post("/account/keys", data={"csrf_token": token})
    assert created.status_code == 200 and "shown only this once" in created.text
    new_key = created.text.split('class="secret">')[1].split("<")[0]
    assert new_key.startswith("dsk_") and new_key != account.api_key
    async with sessionmaker() as session:
        keys = await accounts.list_api_keys(session, account.account)
    mine = next(k for k in keys if account.api_key.startswith(k.display_prefix))
    other = next(k for k in keys if k.id != mine.id)
    # Revoking another key leaves this session alone ...
    answer = await client.post(f"/account/keys/{other.id}/revoke", data={"csrf_token": token})
    assert answer.headers["location"] == "/account"
    # ... the last live key cannot be revoked (the account would be locked out) ...
    refused = await client.post(
        f"/account/keys/{mine.id}/revoke", data={"csrf_token": token}, headers={"referer": "/account"}
    )
    assert refused.status_code == 303
    assert "last API key" in (await client.get("/account")).text
    # ... and revoking the session's own key ends it.
    await client.post("/account/keys", data={"csrf_token": token})
    answer = await client.post(f"/account/keys/{mine.id}/revoke", data={"csrf_token": token})
    assert answer.headers["location"] == "/signin"
    assert (await client.get("/projects")).status_code == 303


@pytest.mark.parametrize("path", ["/jobs", "/pipeline", "/account", "/settings/integration?tab=slack"])
async def test_every_screen_renders_an_empty_state(
    client: httpx.AsyncClient, account: accounts.NewAccount, path: str
) -> None:
    await sign_in(client, account.api_key)
    answer = await client.get(path)
    assert answer.status_code == 200
    assert "<main" in answer.text
