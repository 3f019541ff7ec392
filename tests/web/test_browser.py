"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright) against a real
`dossier serve` with its worker, on each store.

`make test` installs Chromium when it is missing; these tests skip, saying why, only when it could not be.
With DOSSIER_SCREENSHOTS=DIR (e.g. docs/images), the SQLite run saves a screenshot of every screen there:
they are the pictures of docs/dashboard.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Receiver, ServerProcess, dossier_env, run_cli, start_server, stop_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_PRESENT = os.path.exists(CHROMIUM)
KEY = re.compile(r"dsk_[A-Za-z0-9_-]{40,}")
SHOTS = os.environ.get("DOSSIER_SCREENSHOTS")
WAIT_MS = 20_000

playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
expect = playwright_api.expect


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM_PRESENT:
        pytest.skip(
            f"{CHROMIUM} is absent: `make test` installs Debian's chromium package, and that failed here "
            "(no apt-get, no root, or no package mirror)"
        )
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """`dossier serve` with its worker; webhook retry delays compressed."""
    process = start_server(
        database_url,
        tmp_path,
        env_extra={
            "DOSSIER_WEBHOOK_TIME_SCALE": "0.001",
            "DOSSIER_SESSION_SECRET": "s" * 40,
            # Lists of more than 10 companies are added in the background (the screen shows their progress).
            "DOSSIER_LIST_FOREGROUND_MAX": "10",
        },
    )
    try:
        match = KEY.search(process.output())
        assert match, process.output()
        yield process, match.group(0)
    finally:
        stop_server(process)


class Shots:
    """Saves screenshots when DOSSIER_SCREENSHOTS names a folder (once: on the SQLite run)."""

    def __init__(self, database_url: str) -> None:
        self.folder = Path(SHOTS) if SHOTS and database_url.startswith("sqlite") else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    async def __call__(self, page: Any, name: str, *, full_page: bool = True) -> None:
        if self.folder is not None:
            await page.screenshot(path=str(self.folder / f"{name}.png"), full_page=full_page)


async def _new_page(browser: Any) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    return page


async def _sign_in(page: Any, base: str, key: str) -> None:
    await page.goto(base + "/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r".*/projects$"))


async def _create_project(page: Any, name: str, columns: str) -> str:
    """Create a project from the Projects page (signed in, on it); returns the new project's URL."""
    await page.get_by_label("Project name").fill(name)
    await page.get_by_label("Input columns").fill(columns)
    await page.get_by_role("button", name="Create project").click()
    await page.wait_for_url(re.compile(r".*/projects/[0-9a-f-]{36}$"))
    return str(page.url)


async def _reload_until(page: Any, selector: str, count: int = 1) -> None:
    """Reload a page (not a live one) until ``selector`` matches ``count`` elements, for at most WAIT_MS."""
    for _ in range(100):
        if await page.locator(selector).count() >= count:
            return
        await page.wait_for_timeout(200)
        await page.reload()
    raise AssertionError(f"{selector} never appeared {count} time(s) on {page.url}")


CSV = (
    "company_name,website\n"
    "Globex,https://www.globex.com/\n"
    "Initech,http://initech.io/careers\n"
    ",https://nobody.example\n"
    "Umbrella Corporation,https://umbrella.co.uk\n"
)


async def test_the_dashboard_in_a_browser(
    browser: Any, server: tuple[ServerProcess, str], receiver: Receiver, database_url: str
) -> None:
    """One server per store (a start costs seconds): a day's work, then what must be refused."""
    await _a_day_in_the_dashboard(browser, server, receiver, database_url)
    await _build_a_list_from_the_registry(browser, server, database_url)
    await _another_account_and_a_forged_form_are_refused(browser, server, receiver, database_url)


async def _a_day_in_the_dashboard(
    browser: Any, server: tuple[ServerProcess, str], receiver: Receiver, database_url: str
) -> None:
    process, key = server
    base = process.base_url
    shot = Shots(database_url)
    page = await _new_page(browser)

    # --- sign in ---
    await page.goto(base + "/")
    await shot(page, "signin")
    await _sign_in(page, base, key)
    await shot(page, "projects-empty")

    # --- create a project, add a row, upload a CSV ---
    await page.get_by_label("Project name").fill("Acme prospects")
    await page.get_by_label("Input columns").fill("company_name*\nwebsite")
    await page.get_by_role("button", name="Create project").click()
    await page.wait_for_url(re.compile(r".*/projects/[0-9a-f-]{36}$"))
    project_url = page.url
    await expect(page.locator(".flash")).to_contain_text("created")
    await page.get_by_label("company_name").fill("Acme Corporation")
    await page.get_by_label("website").fill("https://www.acme.com/about")
    await page.get_by_role("button", name="Add row").click()
    await expect(page.locator("table.grid tbody tr")).to_have_count(1)
    await page.get_by_label("CSV file").set_input_files(
        files=[{"name": "companies.csv", "mimeType": "text/csv", "buffer": CSV.encode()}]
    )
    await page.get_by_role("button", name="Upload").click()
    result = page.locator("#upload-result")
    await expect(result).to_contain_text("3 rows added, 1 line refused")
    await expect(result.locator("tbody tr")).to_have_text(
        re.compile(r"4\s*missing required column\(s\): company_name")
    )
    await expect(page.locator("table.grid tbody tr")).to_have_count(4)  # the table refreshed itself
    await shot(page, "project-upload")

    # --- add a tool column from the catalogue; watch its cells fill in ---
    await page.get_by_role("link", name="Add tool column").click()
    await page.get_by_role("link", name=re.compile(r"^domain")).click()
    await expect(page.get_by_label("website", exact=False).first).to_have_value(re.compile(".+"))
    await page.get_by_label("Column name").fill("domain")
    await shot(page, "tool-column")
    await page.get_by_role("button", name="Add column and run it").click()
    await page.wait_for_url(project_url)
    await expect(page.locator("td.state-success")).to_have_count(4)
    await expect(page.locator(".live")).to_have_count(0)
    table = page.locator("table.grid")
    for domain in ("acme.com", "globex.com", "initech.io", "umbrella.co.uk"):
        await expect(table).to_contain_text(domain)
    await shot(page, "project")
    await page.set_viewport_size({"width": 390, "height": 844})
    await shot(page, "project-phone")
    await page.set_viewport_size({"width": 1280, "height": 860})

    # Run one cell again: it is computed anew and ends in the same value.
    await page.locator("td.state-success form.rerun button").first.click()
    await expect(page.locator(".flash")).to_contain_text("running again")
    await expect(page.locator("td.state-success")).to_have_count(4)

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download CSV").click()
    download = await download_info.value
    saved = await download.path()
    with open(saved, encoding="utf-8") as file:  # noqa: ASYNC230 - a small local file
        exported = file.read()
    assert exported.splitlines()[0] == "row_id,company_name,website,domain"
    assert "Acme Corporation,https://www.acme.com/about,acme.com" in exported
    assert len(exported.splitlines()) == 5

    # A slow tool column (an HTTP service answering in 1.5 s): the open page shows its cells running, then
    # fills them in by itself (htmx polling), with no reload.
    receiver.answers = [(200, {"content-type": "application/json"}, b'{"data": {"employees": 42}}')]
    receiver.delay = 1.5
    await page.get_by_role("link", name="Add tool column").click()
    await page.get_by_role("link", name=re.compile(r"^http")).click()
    await page.get_by_label("Column name").fill("employees")
    await page.get_by_label("company_name").check()
    await page.get_by_label("Url").fill(receiver.url + "/enrich?q={{ company_name }}")
    await page.get_by_label("Path").fill("data.employees")
    await page.get_by_role("button", name="Add column and run it").click()
    await page.wait_for_url(project_url)
    await expect(page.locator(".live")).to_be_visible()
    await expect(page.locator("td.state-running, td.state-pending").first).to_be_visible()
    await shot(page, "project-running")
    await expect(page.locator("td.state-success")).to_have_count(8)
    await expect(page.locator(".live")).to_have_count(0)
    await expect(page.locator("table.grid tbody tr").first).to_contain_text("42")
    assert {r.path for r in receiver.requests} == {
        "/enrich?q=" + q for q in ("Acme%20Corporation", "Globex", "Initech", "Umbrella%20Corporation")
    }
    receiver.answers = [(200, {}, b"ok")]
    receiver.delay = 0.0
    receiver.requests.clear()

    await page.goto(base + "/projects")
    await expect(page.locator("table.list tbody tr")).to_have_count(1)
    await expect(page.locator("table.list tbody tr")).to_contain_text("Acme prospects")
    await shot(page, "projects")

    # --- webhooks: create an endpoint, its secret shown once ---
    await page.get_by_role("link", name="Integrations").click()
    await page.get_by_label("Endpoint URL").fill(receiver.url + "/hooks")
    await page.get_by_label("Description").fill("CRM sync")
    await page.get_by_role("button", name="Add endpoint").click()
    await expect(page.locator(".secret-box")).to_contain_text("shown only this once")
    secret = (await page.locator("#new-secret").inner_text()).strip()
    assert secret.startswith("whsec_")
    await page.get_by_role("button", name="Copy").click()
    await expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await shot(page, "webhooks")
    await page.get_by_role("link", name="Open the endpoint").click()
    endpoint_url = page.url
    assert secret not in await page.content()

    # --- a test event: its delivery, its attempt, redelivery ---
    await page.get_by_role("button", name="Send test event").click()
    await expect(page.locator(".flash")).to_contain_text("Test event")
    [first] = await receiver.wait_for(1)
    await _reload_until(page, "table.deliveries .chip.ok")
    await expect(page.locator(".chip.ok").first).to_contain_text("Healthy")
    await shot(page, "endpoint")
    await page.locator("table.deliveries a.mono").first.click()
    attempt = page.locator("details.attempt").first
    await expect(attempt).to_contain_text("HTTP 200")
    await expect(attempt).to_contain_text("webhook-id")
    await expect(attempt).to_contain_text(first.headers["webhook-id"])
    await page.get_by_role("button", name="Redeliver").click()
    await expect(page.locator(".flash")).to_contain_text("Redelivery queued")
    requests = await receiver.wait_for(2)
    assert requests[1].headers["webhook-id"] == first.headers["webhook-id"]
    assert requests[1].body == first.body
    await _reload_until(page, "details.attempt", 2)
    await expect(page.locator("details.attempt").first).to_contain_text("manual")
    await shot(page, "delivery")
    await page.set_viewport_size({"width": 390, "height": 844})
    await shot(page, "delivery-phone")
    await page.set_viewport_size({"width": 1280, "height": 860})

    # Filters: no failed deliveries; the test event type is there.
    await page.goto(endpoint_url + "?status=failed")
    await expect(page.locator(".empty")).to_contain_text("match these filters")
    await page.goto(endpoint_url)
    await page.get_by_label("Outcome").select_option("succeeded")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("table.deliveries tbody tr")).to_have_count(1)

    # --- rotate the secret with a grace period: both sign meanwhile ---
    await page.get_by_label("Grace period (hours)").fill("2")
    await page.get_by_role("button", name="Rotate secret").click()
    await expect(page.locator("h1")).to_have_text("New signing secret")
    rotated = (await page.locator("#new-secret").inner_text()).strip()
    assert rotated.startswith("whsec_") and rotated != secret
    await expect(page.locator("main")).to_contain_text("for 2 hours")
    await shot(page, "secret-rotated")
    await page.get_by_role("link", name="Done").click()
    await page.get_by_role("button", name="Send test event").click()
    third = (await receiver.wait_for(3))[2]
    assert len(third.headers["webhook-signature"].split()) == 2  # the new secret's and the old one's

    # --- Slack, with a local receiver standing in for it ---
    await page.goto(base + "/settings/integration?tab=slack")
    await page.get_by_label("Incoming webhook URL").fill(receiver.url + "/slack")
    await page.get_by_role("button", name="Connect Slack").click()
    await expect(page.locator(".flash")).to_contain_text("Slack connected")
    await page.get_by_role("button", name="Send a test message").click()
    await expect(page.locator(".flash")).to_contain_text("Test message queued")
    slack_message = next(r for r in await receiver.wait_for(4) if r.path == "/slack")
    assert "Slack is connected" in json.loads(slack_message.body)["text"]
    await shot(page, "slack")

    # --- jobs (created through the API) and their callbacks ---
    async with httpx.AsyncClient(base_url=base, headers={"x-api-key": key}) as api:
        answer = await api.post(
            "/rest/v1/entity-resolution",
            json={
                "legal_name": "Apple Inc.",
                "website": "https://www.apple.com",
                "country": "US",
                "webhook_url": receiver.url + "/jobs",
            },
        )
        assert answer.status_code in (200, 201, 202), answer.text
    await page.get_by_role("link", name="Jobs").click()
    await expect(page.locator("table.list tbody tr")).to_have_count(1)
    await shot(page, "jobs")
    await page.locator("table.list a.mono").first.click()
    await _reload_until(page, "a[href^='/settings/integration/deliveries/']")
    await expect(page.locator("main")).to_contain_text("entity-resolution.")
    await shot(page, "job")

    # --- pipeline: track a company, move it, run an analysis ---
    await page.get_by_role("link", name="Pipeline").click()
    await page.get_by_label("Name", exact=True).fill("Hooli")
    await page.get_by_role("button", name="Track").click()
    await expect(page.locator(".flash")).to_contain_text("Now tracking")
    await page.get_by_label("Status of Hooli").select_option("screening")
    await page.get_by_role("button", name="Move").first.click()
    await expect(page.locator(".lane", has_text="Screening")).to_contain_text("Hooli")
    await shot(page, "pipeline")
    await page.get_by_role("link", name="Hooli").click()
    await page.get_by_role("button", name="Run an analysis").click()
    await expect(page.locator("details.attempt")).to_have_count(1)
    await _reload_until(page, "details.attempt .chip.ok, details.attempt .chip.error")
    await shot(page, "company")

    # --- account: a new key shown once ---
    await page.get_by_role("link", name="Account").click()
    await page.get_by_role("button", name="Create API key").click()
    new_key = (await page.locator("#shown-1").inner_text()).strip()
    assert KEY.fullmatch(new_key)
    await expect(page.locator("table.list tbody tr")).to_have_count(2)
    await shot(page, "account")

    # --- sign out: the pages ask for a key again ---
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r".*/signin$"))
    await expect(page.locator(".flash")).to_contain_text("signed out")
    await page.goto(base + "/projects")
    await page.wait_for_url(re.compile(r".*/signin\?next=/projects$"))
    await _sign_in(page, base, new_key)


async def _build_a_list_from_the_registry(
    browser: Any, server: tuple[ServerProcess, str], database_url: str
) -> None:
    """Search the default registry on the Companies screen, page through it, see a bad filter refused, then
    add the matches to a project (in the background: more than DOSSIER_LIST_FOREGROUND_MAX) and the ticked
    ones (at once)."""
    process, key = server
    base = process.base_url
    shot = Shots(database_url)
    page = await _new_page(browser)
    await _sign_in(page, base, key)
    project_url = await _create_project(page, "German prospects", "company_name*\nwebsite\ncountry")

    await page.get_by_role("link", name="Companies", exact=True).click()
    await expect(page.locator("h1")).to_have_text("Build a list")
    count = page.locator("#match-count")
    await expect(count).to_have_text(re.compile(r"^[1-9][0-9,]* companies match$"))
    everything = await count.inner_text()
    # A picker: the registry's countries with their counts; ticking one narrows the results at once.
    germany = page.locator("fieldset.picker label", has_text="Germany")
    german = (await germany.locator(".count").inner_text()).replace(",", "")
    await germany.locator("input").check()
    await expect(count).to_have_text(f"{int(german):,} companies match")
    assert int(german) > 50
    assert "country=DE" in page.url  # the address keeps the search
    rows = page.locator("table.companies tbody tr")
    await expect(rows).to_have_count(50)
    await expect(rows.first).to_contain_text("DE")
    first_page = await rows.first.inner_text()
    # The next page (keyset), and back to the first.
    await page.get_by_role("link", name="Next page").click()
    await expect(page.locator(".results-head")).to_contain_text("showing 51")
    assert await rows.first.inner_text() != first_page
    await page.get_by_role("link", name="First page").click()
    await expect(page.locator(".results-head")).to_contain_text("showing 1\N{EN DASH}")
    # Sorting by name.
    await page.get_by_label("Sort by").select_option("name")
    await page.wait_for_url(re.compile(r".*sort=name"))
    names = [n.strip() for n in await page.locator("table.companies .cname").all_inner_texts()]
    assert len(names) == 50 and names[0].lower() <= names[-1].lower(), names

    # A bad filter: the reason beside the form, no results, nothing to add.
    await page.get_by_label("Employees from").fill("5000")
    await page.get_by_label("Employees to").fill("10")
    await page.get_by_label("Employees to").press("Enter")
    await expect(page.locator("#filter-error")).to_contain_text("is above employees_max")
    await expect(rows).to_have_count(0)
    await page.evaluate("window.scrollTo(0, 0)")
    await shot(page, "companies-error", full_page=False)
    await page.get_by_label("Employees from").fill("")
    await page.get_by_label("Employees to").fill("")
    await page.get_by_label("Employees to").press("Enter")
    await expect(count).to_have_text(f"{int(german):,} companies match")

    # Add every match to the project: more than 10, so in the background, with its progress.
    await page.get_by_label("Project", exact=True).select_option(label="German prospects")
    await page.get_by_role("button", name=re.compile(r"^Add all")).click()
    result = page.locator("#list-result")
    await expect(result).to_contain_text(f"{int(german):,} companies added to German prospects")
    await page.evaluate("window.scrollTo(0, 0)")
    await shot(page, "companies")
    # At phone width the filters stack above the results; the picture shows the results' top.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.evaluate(
        "window.scrollTo(0, document.getElementById('results').getBoundingClientRect().top"
        " + window.scrollY - 110)"
    )
    await shot(page, "companies-phone", full_page=False)
    await page.set_viewport_size({"width": 1280, "height": 860})
    # Adding them again adds nothing; ticked ones of another country are added at once.
    await page.get_by_role("button", name=re.compile(r"^Add all")).click()
    await expect(result).to_contain_text(
        f"0 companies added to German prospects ({int(german):,} already in it)"
    )
    await germany.locator("input").uncheck()
    await page.locator("fieldset.picker label", has_text="France").locator("input").check()
    await expect(page.locator(".results-head")).not_to_contain_text(f"{int(german):,} companies")
    await expect(rows.first).to_contain_text("FR")
    await rows.nth(0).locator("input[type=checkbox]").check()
    await rows.nth(1).locator("input[type=checkbox]").check()
    await page.get_by_role("button", name="Add the ticked ones").click()
    await expect(result).to_contain_text("2 companies added to German prospects")
    await result.get_by_role("link", name="German prospects").click()
    await page.wait_for_url(project_url)
    await expect(page.locator(".table-meta")).to_contain_text(f"{int(german) + 2:,} rows")
    assert everything != f"{int(german):,} companies match"


async def _another_account_and_a_forged_form_are_refused(
    browser: Any, server: tuple[ServerProcess, str], receiver: Receiver, database_url: str
) -> None:
    process, key = server
    base = process.base_url
    created = run_cli("accounts", "create", "rival", "--json", env=dossier_env(database_url))
    assert created.returncode == 0, created.stderr
    rival_key = json.loads(created.stdout)["api_key"]

    page = await _new_page(browser)
    await _sign_in(page, base, key)
    project_url = await _create_project(page, "Board pack", "company_name")

    # A page of another origin (the receiver's port) posts a form to the dashboard with the session's cookie
    # but without its CSRF token: refused, nothing created.
    receiver.answers = [
        (
            200,
            {"content-type": "text/html"},
            (
                f'<form id="f" method="post" action="{base}/projects">'
                '<input name="name" value="forged"><input name="columns" value="x"></form>'
                "<script>document.getElementById('f').submit()</script>"
            ).encode(),
        )
    ]
    await page.goto(receiver.url + "/attack")
    await page.wait_for_url(base + "/projects")
    await expect(page.locator("h1")).to_have_text("This form has expired")
    await shot_if(page, database_url, "forged-form")
    # The same with the token removed from the dashboard's own form.
    await page.goto(base + "/projects")
    await page.evaluate("document.querySelector('#new-project input[name=csrf_token]').remove()")
    await page.get_by_label("Project name").fill("forged too")
    await page.get_by_label("Input columns").fill("x")
    await page.get_by_role("button", name="Create project").click()
    await expect(page.locator("h1")).to_have_text("This form has expired")
    await page.goto(base + "/projects")
    await expect(page.locator("table.list tbody")).to_contain_text("Board pack")
    await expect(page.locator("table.list tbody")).not_to_contain_text("forged")

    # Another account signs in in its own browser and tries the first one's project: not found.
    rival = await _new_page(browser)
    await _sign_in(rival, base, rival_key)
    await expect(rival.locator(".empty")).to_contain_text("No projects yet")
    answer = await rival.goto(project_url)
    assert answer is not None and answer.status == 404
    await expect(rival.locator("h1")).to_have_text("Not found")
    await expect(rival.locator("main")).not_to_contain_text("Board pack")
    cookies = await rival.context.cookies()
    [session] = [c for c in cookies if c["name"] == "dossier_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Lax" and session["expires"] > 0


async def shot_if(page: Any, database_url: str, name: str) -> None:
    await Shots(database_url)(page, name)
