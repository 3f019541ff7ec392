"""The dashboard's "Build a list" screen over HTTP, on each store: the pickers with the registry's counts, the
filters, the live count and the pages, bad filters, and adding the matches (or the ticked ones) to a project
at once or in the background (the browser test walks it in Chromium)."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts import service as accounts
from dossier.net import OutboundClient
from dossier.settings import Settings
from tests.helpers import eventually, running_worker
from tests.lists.helpers import row_count, seed_registry
from tests.projects.helpers import create_project
from tests.web.helpers import sign_in

HTMX = {"hx-request": "true"}
COLUMNS = [{"name": "company_name", "required": True}, {"name": "website"}, {"name": "country"}]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Exactly the seeded registry; 3 companies a page; lists of more than 5 go to the background."""
    return settings.model_copy(
        update={
            "registry_builtin": False,
            "dashboard_page_size": 3,
            "list_foreground_max": 5,
            "list_batch_rows": 4,
        }
    )


@pytest.fixture
async def registry(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await seed_registry(sessionmaker)


@pytest.fixture
async def prospects(
    client: httpx.AsyncClient, account: accounts.NewAccount, headers: dict[str, str], registry: None
) -> tuple[str, dict[str, Any]]:
    """Signed in, with a project "Prospects" (company_name, website, country): (CSRF token, project)."""
    token = await sign_in(client, account.api_key)
    return token, await create_project(client, headers, "Prospects", columns=COLUMNS)


def _names(page: str) -> list[str]:
    return [
        html.unescape(n) for n in re.findall(r'<label for="tick-\d+" class="val cname" title="([^"]+)"', page)
    ]


def _text(page: str) -> str:
    """The page's text, tags removed and white space folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def test_the_screen_lists_the_registry_values_with_counts_and_searches_with_the_filters(
    client: httpx.AsyncClient, account: accounts.NewAccount, registry: None
) -> None:
    await sign_in(client, account.api_key)
    page = await client.get("/companies")
    assert page.status_code == 200
    assert '<a href="/companies" aria-current="page">Companies</a>' in page.text
    text = _text(page.text)
    assert "Build a list" in text and "12 companies match" in text
    # The pickers: the registry's own values, most frequent first, with their counts.
    assert "Software 6 Machinery 3 Banks 2" in text
    assert "Germany 6 France 2" in text
    assert re.search(r'name="company_type" value="Private"', page.text)
    # The example: German software companies with 500 to 5,000 employees, most employees first.
    found = await client.get(
        "/companies",
        params={
            "country": "DE",
            "industry": "software",  # the registry's spelling is found in any case
            "employees_min": "500",
            "employees_max": "5000",
        },
    )
    assert found.status_code == 200
    assert "2 companies match" in _text(found.text)
    assert _names(found.text) == ["Beta Systems GmbH", "Alpha Software AG"]
    assert "4,500" in found.text and "900M" in found.text  # firmographics: employees, revenue
    # The other filters, as the form sends them (empty inputs are no filter; cities separated by commas).
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"city": "berlin, Leeds", "sort": "name", "name": ""}, ["Alpha Software AG", "Epsilon Data GmbH"]),
        ({"revenue_min": "1e9", "revenue_currency": "eur", "sort": "-revenue"}, ["Gamma Cloud SE"]),
        ({"founded_min": "1990", "founded_max": "2005", "has_website": "false"}, ["Zeta Machines"]),
        ({"name": "SOFT", "is_subsidiary": "true"}, ["Alpha Software Austria GmbH"]),
        ({"parent_kernel_id": "1001"}, ["Alpha Software Austria GmbH"]),
        ({"sector": "Financials", "company_type": "Public", "sort": "-employees"}, ["First Bank of Testing"]),
    ]
    for params, names in cases:
        answer = await client.get("/companies", params=params)
        assert answer.status_code == 200, (params, _text(answer.text)[:300])
        shown = _names(answer.text)
        assert shown[: len(names)] == names, (params, shown)
    city = await client.get("/companies", params={"city": "berlin, Leeds", "sort": "name"})
    assert _names(city.text) == ["Alpha Software AG", "Epsilon Data GmbH", "Gamma Cloud SE"]


async def test_the_results_page_through_the_matches_and_keep_the_address(
    client: httpx.AsyncClient, account: accounts.NewAccount, registry: None
) -> None:
    await sign_in(client, account.api_key)
    seen: list[str] = []
    answer = await client.get(
        "/companies/results", params={"industry": "Software", "sort": "name"}, headers=HTMX
    )
    assert answer.status_code == 200
    # The fragment alone, and the address the browser shows for it.
    assert "<html" not in answer.text and "6 companies match" in _text(answer.text)
    assert answer.headers["hx-push-url"] == "/companies?industry=Software&sort=name"
    while True:
        seen += _names(answer.text)
        assert len(_names(answer.text)) <= 3
        link = re.search(r'hx-get="(/companies/results\?[^"]+)"[^>]*rel="next"', answer.text)
        if link is None:
            break
        answer = await client.get(html.unescape(link.group(1)), headers=HTMX)
        assert answer.status_code == 200
    assert seen == [
        "Alpha Software AG",
        "Alpha Software Austria GmbH",
        "Beta Systems GmbH",
        "Delta Apps GmbH",
        "Epsilon Data GmbH",
        "Gamma Cloud SE",
    ]
    assert "showing 4\N{EN DASH}6" in _text(answer.text) and "First page" in answer.text


async def test_bad_filters_show_the_reason_beside_the_form_and_search_nothing(
    client: httpx.AsyncClient, account: accounts.NewAccount, registry: None
) -> None:
    await sign_in(client, account.api_key)
    cases = [
        ({"employees_min": "5000", "employees_max": "10"}, "filter 'employees_min': is above employees_max"),
        ({"industry": "Basket weaving"}, "unknown industry 'Basket weaving'"),
        ({"country": "Atlantis"}, "unknown country 'Atlantis'"),
        ({"revenue_min": "10"}, "filter 'revenue_currency': is required"),
        ({"founded_min": "soon"}, "must be a whole number"),
    ]
    for params, message in cases:
        page = await client.get("/companies", params=params)
        assert page.status_code == 422, params
        text = _text(page.text)
        assert "Check the filters:" in text and message in text, text[:400]
        assert "companies match" not in text and not _names(page.text)
        # The form keeps what was typed, so it can be corrected.
        assert "Build a list" in text
        fragment = await client.get("/companies/results", params=params, headers=HTMX)
        assert fragment.status_code == 200 and message in _text(fragment.text)


async def test_adding_the_matches_to_a_project_at_once_then_again_and_the_ticked_ones(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    prospects: tuple[str, dict[str, Any]],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    token, project = prospects
    # The project's page links to the screen with the project chosen.
    own = await client.get(f"/projects/{project['id']}")
    assert f'href="/companies?project={project["id"]}"' in own.text
    page = await client.get(
        "/companies", params={"country": "DE", "industry": "Software", "project": project["id"]}
    )
    assert f'<option value="{project["id"]}" selected>Prospects</option>' in page.text
    # The add form carries the search's filters.
    assert '<input type="hidden" name="country" value="DE">' in page.text
    form = {"csrf_token": token, "project_id": project["id"], "country": "DE", "industry": "Software"}
    added = await client.post("/companies/lists", data={**form, "scope": "all"}, headers=HTMX)
    assert added.status_code == 200
    assert "5 companies added to Prospects" in _text(added.text)
    assert await row_count(sessionmaker) == 5
    again = await client.post("/companies/lists", data={**form, "scope": "all"}, headers=HTMX)
    assert "0 companies added to Prospects (5 already in it)" in _text(again.text)
    # The ticked ones only (and still within the filters of the search).
    ticked = await client.post(
        "/companies/lists",
        data={
            "csrf_token": token,
            "project_id": project["id"],
            "scope": "selected",
            "kernel_id": ["1007", "1009"],
        },
        headers=HTMX,
    )
    assert "2 companies added to Prospects" in _text(ticked.text)
    none_ticked = await client.post("/companies/lists", data={**form, "scope": "selected"}, headers=HTMX)
    assert "Nothing was added: tick the companies to add" in _text(none_ticked.text)
    rows = await client.get(f"/api/enterprise/projects/{project['id']}/rows", headers=headers)
    names = {row["company"]["company_name"]["value"] for row in rows.json()["rows"]}
    assert {"First Bank of Testing", "Omega 100% Tools Ltd", "Alpha Software AG"} <= names
    assert len(names) == 7
    # The project's table shows them (its last page: the last one added).
    last = await client.get(f"/projects/{project['id']}", params={"page": 3})
    assert "Omega 100% Tools Ltd" in html.unescape(last.text)


async def test_bad_filters_or_another_accounts_project_add_nothing(
    client: httpx.AsyncClient,
    prospects: tuple[str, dict[str, Any]],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    token, project = prospects
    base = {"csrf_token": token, "project_id": project["id"], "scope": "all"}
    inverted = await client.post(
        "/companies/lists", data={**base, "founded_min": "2000", "founded_max": "1900"}, headers=HTMX
    )
    assert "Nothing was added: filter 'founded_min': is above founded_max" in _text(inverted.text)
    everything = await client.post("/companies/lists", data=base, headers=HTMX)
    assert "a list of the whole registry is not built" in _text(everything.text)
    no_project = await client.post(
        "/companies/lists", data={**base, "project_id": "", "country": "DE"}, headers=HTMX
    )
    assert "choose the project" in _text(no_project.text)
    # Without htmx the form goes back to the screen, with the reason.
    plain = await client.post(
        "/companies/lists",
        data={**base, "industry": "Basket weaving"},
        headers={"referer": "http://dossier.test/companies?industry=Basket+weaving"},
    )
    assert plain.status_code == 303
    assert "unknown industry" in _text((await client.get(plain.headers["location"])).text)
    # Another account's project is not found, as everywhere.
    async with sessionmaker() as session, session.begin():
        rival = await accounts.create_account(session, "rival")
    rival_project = await create_project(client, {"x-api-key": rival.api_key}, "Theirs", columns=COLUMNS)
    foreign = await client.post(
        "/companies/lists", data={**base, "project_id": rival_project["id"], "country": "DE"}, headers=HTMX
    )
    assert foreign.status_code == 404
    assert await row_count(sessionmaker) == 0


async def test_a_large_list_is_added_in_the_background_with_its_progress(
    client: httpx.AsyncClient,
    account: accounts.NewAccount,
    headers: dict[str, str],
    registry: None,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    token = await sign_in(client, account.api_key)
    project = await create_project(client, headers, "Software in DE and AT", columns=COLUMNS)
    form = {"csrf_token": token, "project_id": project["id"], "scope": "all", "industry": "Software"}
    started = await client.post("/companies/lists", data=form, headers=HTMX)
    text = _text(started.text)
    assert "Adding 6 companies to Software in DE and AT in the background: 0 done" in text
    poll = re.search(r'hx-get="(/projects/[^"]+/progress)" hx-trigger="every 1s"', started.text)
    assert poll, started.text
    async with (
        OutboundClient.from_settings(settings) as http,
        running_worker(settings, sessionmaker, http, concurrency=2),
    ):

        async def finished() -> str | None:
            answer = await client.get(poll.group(1), headers=HTMX)
            assert answer.status_code == 200
            return answer.text if "every 1s" not in answer.text else None

        done = await eventually(finished, what="the background list")
    assert "6 companies added to Software in DE and AT" in _text(done)
    assert await row_count(sessionmaker) == 6
