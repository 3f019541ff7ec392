"""The ``website`` tool against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from dossier.enrichment.protocol import ToolContext, ToolOutcome
from dossier.enrichment.tools import get_tool
from dossier.errors import InvalidInput
from dossier.net import OutboundClient, OutboundPolicy
from dossier.settings import Settings
from tests.conftest import TEST_OUTBOUND_ALLOW, Receiver

HTML = {"Content-Type": "text/html; charset=utf-8"}
PAGE = b"""<!DOCTYPE html>
<html lang="en-GB"><head>
  <meta charset="utf-8"><title>
    Acme Anvils &amp; Co | Home</title>
  <meta name="description" content="  We make   anvils since 1902. ">
  <meta property="og:description" content="Anvils (OG)">
</head><body>
  <a href="/about">About</a>
  <a href="https://twitter.com/intent/tweet?text=hi">share</a>
  <a href="https://www.facebook.com/sharer/sharer.php?u=x">share</a>
  <a href="https://www.linkedin.com/company/acme-anvils/">LinkedIn</a>
  <a href="https://x.com/acmeanvils">X</a>
  <a href="https://de-de.facebook.com/AcmeAnvils">Facebook</a>
  <a href="https://www.instagram.com/acme.anvils/">Instagram</a>
  <a href="https://www.youtube.com/@acmeanvils">YouTube</a>
  <a href="https://github.com/acme-anvils">GitHub</a>
</body></html>"""


def context(policy: OutboundPolicy) -> ToolContext:
    return ToolContext(
        settings=Settings(outbound_allow=list(policy.allow)),
        sessionmaker=async_sessionmaker(),
        http=OutboundClient(policy),
    )


@pytest.fixture
async def ctx() -> AsyncIterator[ToolContext]:
    tool_ctx = context(OutboundPolicy(allow=tuple(TEST_OUTBOUND_ALLOW)))
    yield tool_ctx
    await tool_ctx.http.aclose()


async def run(ctx: ToolContext, website: Any, **config: Any) -> ToolOutcome:
    tool = get_tool("website")
    return await tool.run({"website": website}, tool.parse_config(config), ctx)


async def test_home_page_is_read(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [(200, HTML, PAGE)]
    outcome = await run(ctx, f"{receiver.url}/")
    assert outcome.status == "success", outcome.error
    assert outcome.value == {
        "url": f"{receiver.url}/",
        "status": 200,
        "title": "Acme Anvils & Co | Home",
        "description": "We make anvils since 1902.",
        "language": "en-GB",
        "social": {
            "linkedin": "https://www.linkedin.com/company/acme-anvils/",
            "x": "https://x.com/acmeanvils",
            "facebook": "https://de-de.facebook.com/AcmeAnvils",
            "instagram": "https://www.instagram.com/acme.anvils/",
            "youtube": "https://www.youtube.com/@acmeanvils",
            "github": "https://github.com/acme-anvils",
            "tiktok": None,
            "xing": None,
            "pinterest": None,
        },
    }
    request = receiver.requests[0]
    assert request.method == "GET" and "text/html" in request.headers["accept"]


async def test_redirects_are_followed(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [
        (301, {"Location": "/en/"}, b""),
        (302, {"Location": "/en/home"}, b""),
        (200, HTML, PAGE),
    ]
    outcome = await run(ctx, receiver.url)
    assert outcome.status == "success", outcome.error
    assert outcome.value["url"] == f"{receiver.url}/en/home"
    assert [r.path for r in receiver.requests] == ["/", "/en/", "/en/home"]


async def test_fallbacks_and_charset(ctx: ToolContext, receiver: Receiver) -> None:
    page = (
        '<html><head><meta http-equiv="Content-Language" content="de, en">'
        '<meta charset="iso-8859-1"><meta property="og:title" content="Müller GmbH">'
        '<meta property="og:description" content="Präzision"></head><body></body></html>'
    ).encode("latin-1")
    receiver.answers = [(200, {"Content-Type": "text/html"}, page)]
    outcome = await run(ctx, receiver.url)
    assert outcome.value["title"] == "Müller GmbH"
    assert outcome.value["description"] == "Präzision"
    assert outcome.value["language"] == "de"
    assert set(outcome.value["social"].values()) == {None}


async def test_only_the_start_of_a_huge_page_is_read(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [(200, HTML, b"<html><head><title>Big</title></head><body>" + b"x" * 3_000_000)]
    outcome = await run(ctx, receiver.url, max_bytes=4096)
    assert outcome.status == "success" and outcome.value["title"] == "Big"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((404, HTML, b"<title>Not found</title>"), "answered HTTP 404"),
        ((503, {}, b""), "answered HTTP 503"),
        ((200, {"Content-Type": "application/pdf"}, b"%PDF"), "not an HTML page (application/pdf)"),
    ],
)
async def test_unusable_answers_are_errors(
    ctx: ToolContext, receiver: Receiver, answer: tuple[int, dict[str, str], bytes], expected: str
) -> None:
    receiver.answers = [answer]
    outcome = await run(ctx, receiver.url)
    assert outcome.status == "error" and expected in (outcome.error or "")


async def test_timeout_is_an_error_quickly(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.delay = 3
    started = time.monotonic()
    outcome = await run(ctx, receiver.url, timeout=0.3)
    assert outcome.status == "error" and "within 0.3 s" in (outcome.error or "")
    assert time.monotonic() - started < 2


async def test_bare_domain_is_fetched_over_https(ctx: ToolContext, receiver: Receiver) -> None:
    # The receiver speaks plain http, so https to it fails in the TLS handshake: proof of the scheme used.
    host_port = receiver.url.removeprefix("http://")
    outcome = await run(ctx, host_port)
    assert outcome.status == "error" and "TLS" in (outcome.error or "")


async def test_private_address_refused_by_policy(receiver: Receiver) -> None:
    strict = context(OutboundPolicy(allow_http=True))
    try:
        outcome = await run(strict, receiver.url)
        redirect = await run(strict, "http://localhost:1/")
    finally:
        await strict.http.aclose()
    assert outcome.status == "error" and "loopback" in (outcome.error or "")
    assert redirect.status == "error" and "localhost resolves to" in (redirect.error or "")
    assert receiver.requests == []


async def test_redirect_to_a_private_address_is_refused(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [(302, {"Location": "https://169.254.169.254/latest/meta-data/"}, b"")]
    outcome = await run(ctx, receiver.url)
    assert outcome.status == "error" and "metadata" in (outcome.error or "")


@pytest.mark.parametrize("website", [None, "", "   "])
async def test_skipped_without_a_website(ctx: ToolContext, website: Any) -> None:
    assert (await run(ctx, website)).status == "skipped"


@pytest.mark.parametrize("config", [{"bogus": 1}, {"timeout": 0}, {"timeout": 500}, {"max_bytes": 10}])
def test_bad_config_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="invalid config for tool 'website'"):
        get_tool("website").parse_config(config)
