"""The ``domain`` tool: website or e-mail -> registrable domain, offline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from dossier.enrichment.protocol import ToolContext
from dossier.enrichment.tools import get_tool
from dossier.net import OutboundClient, OutboundPolicy
from dossier.settings import Settings


@pytest.fixture
async def ctx() -> AsyncIterator[ToolContext]:
    # The strictest policy: the tool must not need the network at all.
    async with OutboundClient(OutboundPolicy()) as http:
        yield ToolContext(settings=Settings(), sessionmaker=async_sessionmaker(), http=http)


async def run(ctx: ToolContext, **values: Any) -> tuple[str, Any, str | None]:
    tool = get_tool("domain")
    outcome = await tool.run(values, tool.parse_config({}), ctx)
    return outcome.status, outcome.value, outcome.error


@pytest.mark.parametrize(
    ("website", "expected"),
    [
        ("https://www.bbc.co.uk/news?x=1", "bbc.co.uk"),
        ("bbc.co.uk", "bbc.co.uk"),
        ("WWW.Example.COM.", "example.com"),
        ("http://shop.acme.com.au:8080/path", "acme.com.au"),
        ("//cdn.acme.io/x", "acme.io"),
        ("acme.github.io", "acme.github.io"),  # a private suffix: the site is Acme's, not GitHub's
        ("https://user@acme.de/", "acme.de"),
        ("www.bücher.de", "bücher.de"),
    ],
)
async def test_website_to_registrable_domain(ctx: ToolContext, website: str, expected: str) -> None:
    assert await run(ctx, website=website) == ("success", expected, None)


async def test_email_is_used_when_there_is_no_usable_website(ctx: ToolContext) -> None:
    assert await run(ctx, email="Jane Doe <jane@mail.acme.co.jp>") == ("success", "acme.co.jp", None)
    assert await run(ctx, website="", email="jane@acme.fr") == ("success", "acme.fr", None)
    assert await run(ctx, website="localhost", email="jane@acme.fr") == ("success", "acme.fr", None)
    assert (await run(ctx, website="acme.com", email="jane@other.org"))[1] == "acme.com"


@pytest.mark.parametrize(
    "values",
    [{}, {"website": None, "email": "  "}, {"website": "http://10.0.0.1/"}, {"website": "localhost"}],
)
async def test_skipped_without_a_usable_value(ctx: ToolContext, values: dict[str, Any]) -> None:
    status, value, reason = await run(ctx, **values)
    assert status == "skipped" and value is None and reason


def test_declares_its_inputs() -> None:
    tool = get_tool("domain")
    assert [i.name for i in tool.inputs] == ["website", "email"]
    assert not tool.accepts_any_inputs
