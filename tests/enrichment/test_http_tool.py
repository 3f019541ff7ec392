"""The ``http`` tool against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from dossier.enrichment.protocol import ToolContext, ToolOutcome
from dossier.enrichment.tools import all_tools, get_tool
from dossier.errors import InvalidInput
from dossier.net import OutboundClient, OutboundPolicy
from dossier.settings import Settings
from tests.conftest import TEST_OUTBOUND_ALLOW, Receiver, free_port

JSON = {"Content-Type": "application/json"}
ANSWER = json.dumps({"data": {"items": [{"name": "Acme Corp", "employees": 120}], "total": 1}}).encode()


def context(policy: OutboundPolicy) -> ToolContext:
    return ToolContext(settings=Settings(), sessionmaker=async_sessionmaker(), http=OutboundClient(policy))


@pytest.fixture
async def ctx() -> AsyncIterator[ToolContext]:
    tool_ctx = context(OutboundPolicy(allow=tuple(TEST_OUTBOUND_ALLOW)))
    yield tool_ctx
    await tool_ctx.http.aclose()


async def run(ctx: ToolContext, config: dict[str, Any], **values: Any) -> ToolOutcome:
    tool = get_tool("http")
    # Stored as plain JSON by the engine and parsed again for the run, so round-trip it here as well.
    stored = tool.parse_config(config).model_dump(mode="json")
    return await tool.run(values, tool.parse_config(stored), ctx)


async def test_get_with_url_template_and_path(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [(200, JSON, ANSWER)]
    config = {
        "url": receiver.url + "/companies/{{ domain }}?q={{name}}&fixed=1",
        "path": "data.items.0.name",
        "headers": {"Authorization": "Bearer s3cret", "X-Company": "{{ name }}"},
    }
    outcome = await run(ctx, config, domain="acme.com/../admin", name="A&B Co/x?y=1#z")
    assert outcome == ToolOutcome.success("Acme Corp")
    request = receiver.requests[0]
    # Values are percent-encoded: row data cannot add parameters or change the path.
    assert request.method == "GET"
    path, query = request.path.split("?", 1)
    assert path == "/companies/acme.com%2F..%2Fadmin"
    assert parse_qs(query) == {"q": ["A&B Co/x?y=1#z"], "fixed": ["1"]}
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["x-company"] == "A&B Co/x?y=1#z"


async def test_post_json_body_template_keeps_types(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [(201, JSON, b'{"ok": true, "score": 0.93}')]
    config = {
        "method": "post",
        "url": receiver.url + "/score",
        "body": {
            "name": "{{ name }}",
            "size": "{{size}}",
            "text": "Hi {{ name }} ({{ size }})",
            "static": [1, True],
        },
        "path": "score",
    }
    outcome = await run(ctx, config, name="Acme", size=120)
    assert outcome == ToolOutcome.success(0.93)
    request = receiver.requests[0]
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "name": "Acme",
        "size": 120,
        "text": "Hi Acme (120)",
        "static": [1, True],
    }


async def test_without_path_the_whole_answer_is_the_value(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [(200, JSON, ANSWER), (200, {"Content-Type": "text/plain"}, b"plain words")]
    config = {"url": receiver.url + "/x?d={{ d }}"}
    assert (await run(ctx, config, d="a")).value == json.loads(ANSWER)
    assert (await run(ctx, config, d="a")).value == "plain words"


async def test_nothing_at_path_is_skipped(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [
        (200, JSON, b'{"data": {"items": []}}'),
        (200, JSON, b'{"data": null}'),
        (204, {}, b""),
    ]
    config = {"url": receiver.url + "/x/{{ d }}", "path": "data.items.0.name"}
    for _ in range(3):
        outcome = await run(ctx, config, d="a")
        assert outcome.status == "skipped" and outcome.error


async def test_error_status_is_an_error_with_the_reason(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [(500, JSON, b'{"error": "database   unavailable"}')]
    outcome = await run(ctx, {"url": receiver.url + "/x/{{ d }}"}, d="a")
    assert outcome.status == "error"
    assert outcome.error == 'the service answered HTTP 500: {"error": "database unavailable"}'


async def test_not_json_with_a_path_is_an_error(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [(200, {"Content-Type": "text/html"}, b"<html>login</html>")]
    outcome = await run(ctx, {"url": receiver.url + "/x/{{ d }}", "path": "a"}, d="a")
    assert outcome.status == "error" and "not JSON (text/html)" in (outcome.error or "")


async def test_too_large_answer_is_an_error(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.answers = [(200, JSON, b"[" + b"1," * 5000 + b"1]")]
    outcome = await run(ctx, {"url": receiver.url + "/x/{{ d }}", "max_bytes": 1000}, d="a")
    assert outcome.status == "error" and "larger than 1000 bytes" in (outcome.error or "")


async def test_timeout_is_an_error_never_a_hang(ctx: ToolContext, receiver: Receiver) -> None:
    receiver.delay = 3
    started = time.monotonic()
    outcome = await run(ctx, {"url": receiver.url + "/slow/{{ d }}", "timeout": 0.3}, d="a")
    assert outcome.status == "error" and "within 0.3 s" in (outcome.error or "")
    assert time.monotonic() - started < 2


async def test_unreachable_service_is_an_error(ctx: ToolContext) -> None:
    outcome = await run(ctx, {"url": f"http://127.0.0.1:{free_port()}/x/{{{{ d }}}}"}, d="a")
    assert outcome.status == "error" and "could not connect" in (outcome.error or "")


async def test_policy_refusal_is_an_error(receiver: Receiver) -> None:
    strict = context(OutboundPolicy())
    try:
        plain = await run(strict, {"url": receiver.url + "/x/{{ d }}"}, d="a")
        loopback = await run(strict, {"url": f"https://127.0.0.1:{free_port()}/x/{{{{ d }}}}"}, d="a")
    finally:
        await strict.http.aclose()
    assert plain.status == "error" and "plain http is refused" in (plain.error or "")
    assert loopback.status == "error" and "loopback" in (loopback.error or "")
    assert receiver.requests == []


async def test_template_inputs(ctx: ToolContext, receiver: Receiver) -> None:
    config = {"url": receiver.url + "/x/{{ domain }}/{{ name }}"}
    unknown = await run(ctx, config, domain="acme.com")
    assert unknown.status == "error" and "name" in (unknown.error or "")
    empty = await run(ctx, config, domain="", name=None)
    assert empty.status == "skipped"
    partly = await run(ctx, config, domain="acme.com", name=None)
    assert partly.status == "success" and receiver.requests[-1].path == "/x/acme.com/"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "url"),
        ({"url": "ftp://example.com/{{ x }}"}, "must start with https://"),
        ({"url": "https://{{ host }}/x"}, "placeholders are not allowed in the scheme or host"),
        ({"url": "https://api.{{ x }}.com/"}, "placeholders are not allowed"),
        ({"url": "https://user:pw@example.com/"}, "credentials"),
        ({"url": "https://example.com/", "method": "TRACE"}, "method"),
        ({"url": "https://example.com/", "body": {"a": 1}}, "GET request has no body"),
        ({"url": "https://example.com/", "headers": {"Host": "evil"}}, "set by Dossier"),
        ({"url": "https://example.com/", "headers": {"X-A": "a\r\nX-B: b"}}, "line break"),
        ({"url": "https://example.com/", "headers": {"Bad Name": "a"}}, "header name"),
        ({"url": "https://example.com/", "path": "a..b"}, "dot-separated"),
        ({"url": "https://example.com/", "timeout": 61}, "timeout"),
        ({"url": "https://example.com/", "retries": 3}, "retries"),
    ],
)
def test_bad_config_is_refused(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidInput, match="invalid config for tool 'http'") as caught:
        get_tool("http").parse_config(config)
    assert expected in caught.value.message


def test_registered_and_accepts_any_inputs() -> None:
    assert {"domain", "website", "http"} <= set(all_tools())
    tool = get_tool("http")
    assert tool.accepts_any_inputs and tool.inputs == ()
