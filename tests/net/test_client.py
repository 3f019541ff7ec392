"""OutboundClient against real servers on 127.0.0.1: what it sends, what it refuses, how it fails."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
import uvloop

from dossier.net import (
    BlockedURL,
    ConnectError,
    DNSError,
    OutboundClient,
    OutboundPolicy,
    ProtocolError,
    RequestError,
    RequestTimeout,
    ResolveHook,
    ResponseTooLarge,
    TLSError,
    TooManyRedirects,
    _http11,
)
from tests.conftest import free_port
from tests.net.conftest import Site

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def names(mapping: dict[str, list[str]]) -> ResolveHook:
    """A DNS replacement: each name resolves to the addresses given; others do not exist."""

    async def resolve(host: str) -> Sequence[str]:
        if host not in mapping:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return mapping[host]

    return resolve


@pytest.fixture
async def allowed() -> AsyncIterator[OutboundClient]:
    """A client whose allow-list holds loopback, like the test settings."""
    async with OutboundClient(OutboundPolicy(allow=LOOPBACK)) as client:
        yield client


@pytest.fixture
async def strict() -> AsyncIterator[OutboundClient]:
    """Production policy (empty allow-list) but plain http permitted, so the address checks are reached."""
    async with OutboundClient(OutboundPolicy(allow_http=True)) as client:
        yield client


async def test_sends_exact_bytes_and_returns_the_response(allowed: OutboundClient, site: Site) -> None:
    body = b'{"b":1,"a":"\\u00e9"}'
    response = await allowed.request(
        "post", f"{site.url}/echo", content=body, headers={"Content-Type": "application/json", "X-A": "1"}
    )
    assert response.ok and response.status == 200
    assert response.headers["content-type"].startswith("application/json")  # case-insensitive
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["body"].encode("latin-1") == body
    assert echoed["headers"]["X-A"] == "1"
    assert echoed["headers"]["User-Agent"] == "Dossier/0.1"
    assert response.url == f"{site.url}/echo"
    assert 0 < response.elapsed < 5 and not response.truncated


async def test_json_argument_and_user_agent_override(allowed: OutboundClient, site: Site) -> None:
    response = await allowed.request(
        "PUT", f"{site.url}/echo", json={"x": [1, "é"]}, headers={"User-Agent": "Kuration-Webhook/1.0"}
    )
    echoed = response.json()
    assert json.loads(echoed["body"].encode("latin-1")) == {"x": [1, "é"]}
    assert echoed["headers"]["Content-Type"] == "application/json"
    assert echoed["headers"]["User-Agent"] == "Kuration-Webhook/1.0"


async def test_error_statuses_are_responses_not_exceptions(allowed: OutboundClient, site: Site) -> None:
    for code in (404, 500, 503):
        response = await allowed.request("POST", f"{site.url}/status/{code}", content=b"x")
        assert response.status == code and not response.ok
        assert response.text() == "status page"


async def test_loopback_refused_when_not_allow_listed(strict: OutboundClient, site: Site) -> None:
    with pytest.raises(BlockedURL, match="loopback"):
        await strict.request("GET", f"{site.url}/echo")
    with pytest.raises(BlockedURL, match="loopback"):
        await strict.request("GET", f"http://[::1]:{site.port}/echo")
    assert site.seen == []


async def test_plain_http_refused_unless_allow_listed(site: Site) -> None:
    async with OutboundClient(OutboundPolicy()) as client:
        with pytest.raises(BlockedURL, match="plain http"):
            await client.request("GET", f"{site.url}/echo")
    assert site.seen == []


async def test_hostname_resolving_to_loopback_is_refused(strict: OutboundClient, site: Site) -> None:
    # `localhost` goes through the system resolver; the check is on the addresses it returns.
    with pytest.raises(BlockedURL, match=r"localhost resolves to .*loopback"):
        await strict.request("GET", f"http://localhost:{site.port}/echo")
    with pytest.raises(BlockedURL, match="localhost resolves to"):
        await strict.validate_url(f"https://localhost:{site.port}/hook")
    assert site.seen == []


async def test_public_looking_name_pointing_at_loopback(site: Site) -> None:
    # What DNS rebinding or a hostile DNS record does: a harmless name answering with 127.0.0.1.
    hook = names({"hooks.example.com": ["127.0.0.1"]})
    async with OutboundClient(OutboundPolicy(allow_http=True), resolve=hook) as client:
        with pytest.raises(
            BlockedURL, match=r"hooks.example.com resolves to 127.0.0.1 \(a loopback address\)"
        ):
            await client.request("GET", f"http://hooks.example.com:{site.port}/echo")
        with pytest.raises(BlockedURL):
            await client.validate_url(f"https://hooks.example.com:{site.port}/")
    assert site.seen == []
    # Allowed once the address is allow-listed...
    async with OutboundClient(OutboundPolicy(allow=("127.0.0.1",), allow_http=True), resolve=hook) as client:
        await client.validate_url(f"http://hooks.example.com:{site.port}/")
        assert (await client.request("GET", f"http://hooks.example.com:{site.port}/echo")).ok
    # ... or the name is.
    async with OutboundClient(OutboundPolicy(allow=("hooks.example.com",)), resolve=hook) as client:
        assert (await client.request("GET", f"http://hooks.example.com:{site.port}/echo")).ok
    assert len(site.seen) == 2


async def test_only_allowed_addresses_of_a_mixed_answer_are_used(site: Site) -> None:
    hook = names({"mixed.example": ["10.0.0.1", "127.0.0.1", "169.254.169.254"]})
    policy = OutboundPolicy(allow=("127.0.0.1",), allow_http=True, connect_timeout=1)
    async with OutboundClient(policy, resolve=hook) as client:
        response = await client.request("GET", f"http://mixed.example:{site.port}/echo")
    assert response.ok and len(site.seen) == 1


async def test_unknown_name_is_a_dns_error() -> None:
    async with OutboundClient(OutboundPolicy(), resolve=names({})) as client:
        with pytest.raises(DNSError, match="does not resolve") as caught:
            await client.request("GET", "https://nowhere.example/")
        assert isinstance(caught.value, RequestError)
        with pytest.raises(DNSError):
            await client.validate_url("https://nowhere.example/")


async def test_validate_url_accepts_allowed_urls(allowed: OutboundClient, site: Site) -> None:
    await allowed.validate_url(f"{site.url}/hook")
    await allowed.validate_url(f"http://localhost:{site.port}/hook")
    allowed.check_url_syntax("https://example.com/hook")
    assert site.seen == []  # validation never sends a request


async def test_redirects_are_returned_unless_followed(allowed: OutboundClient, site: Site) -> None:
    url = f"{site.url}/redirect?to=/echo"
    response = await allowed.request("POST", url, content=b"payload")
    assert response.status == 302 and response.is_redirect and response.headers["Location"] == "/echo"
    assert len(site.seen) == 1

    followed = await allowed.request("GET", url, follow_redirects=True)
    assert followed.status == 200 and followed.url == f"{site.url}/echo"
    assert followed.redirects == (url,)


async def test_redirect_to_a_blocked_address_is_refused(site: Site) -> None:
    hook = names({"internal.example": ["10.0.0.7"]})
    async with OutboundClient(OutboundPolicy(allow=("127.0.0.1",)), resolve=hook) as client:
        for target in (
            "http://169.254.169.254/latest/meta-data/",
            "https://10.0.0.7/",
            "https://internal.example/",
        ):
            with pytest.raises(BlockedURL, match=r"redirect from .* refused"):
                await client.request("GET", f"{site.url}/redirect?to={target}", follow_redirects=True)
        # Plain http is checked on every hop as well.
        with pytest.raises(BlockedURL, match="plain http"):
            await client.request("GET", f"{site.url}/redirect?to=http://example.com/", follow_redirects=True)
    assert len(site.seen) == 4  # only the first hops reached a server


async def test_redirect_limits_and_method_rewrites(
    allowed: OutboundClient, site: Site, other_site: Site
) -> None:
    with pytest.raises(TooManyRedirects):
        await allowed.request("GET", f"{site.url}/loop", follow_redirects=True, max_redirects=3)
    assert len(site.seen) == 4

    response = await allowed.request(
        "POST", f"{site.url}/redirect?status=303&to=/echo", content=b"x", follow_redirects=True
    )
    assert response.json()["method"] == "GET" and response.json()["body"] == ""
    response = await allowed.request(
        "POST", f"{site.url}/redirect?status=307&to=/echo", content=b"keep", follow_redirects=True
    )
    assert response.json()["method"] == "POST" and response.json()["body"] == "keep"

    # Credentials do not follow a redirect to another origin.
    target = f"{other_site.url}/echo"
    response = await allowed.request(
        "GET",
        f"{site.url}/redirect?to={target}",
        headers={"Authorization": "Bearer secret", "X-Other": "kept"},
        follow_redirects=True,
    )
    echoed = response.json()["headers"]
    assert "Authorization" not in echoed and echoed["X-Other"] == "kept"


@pytest.mark.parametrize("chunked", [False, True])
async def test_response_size_is_bounded(allowed: OutboundClient, site: Site, chunked: bool) -> None:
    flag = "&chunked=1" if chunked else ""
    response = await allowed.request("GET", f"{site.url}/big?n=200000{flag}", max_bytes=1000)
    assert response.truncated and response.body == b"x" * 1000
    exact = await allowed.request("GET", f"{site.url}/big?n=1000{flag}", max_bytes=1000)
    assert not exact.truncated and len(exact.body) == 1000
    with pytest.raises(ResponseTooLarge, match="1000 bytes"):
        await allowed.request("GET", f"{site.url}/big?n=200000{flag}", max_bytes=1000, on_too_large="raise")
    # The pool stays usable after a cut-off body.
    assert (await allowed.request("GET", f"{site.url}/big?n=10{flag}")).body == b"x" * 10


async def test_the_bound_applies_to_decompressed_bytes(allowed: OutboundClient, site: Site) -> None:
    # 5 MB of zeros gzip to a few KB: Content-Length is small, the body is not.
    response = await allowed.request("GET", f"{site.url}/gzip?n=5000000", max_bytes=1000)
    assert response.truncated and response.body == b"0" * 1000
    with pytest.raises(ResponseTooLarge):
        await allowed.request("GET", f"{site.url}/gzip?n=5000000", max_bytes=1000, on_too_large="raise")
    small = await allowed.request("GET", f"{site.url}/gzip?n=500", max_bytes=1000)
    assert not small.truncated and small.body == b"0" * 500


async def test_policy_default_max_bytes(site: Site) -> None:
    async with OutboundClient(OutboundPolicy(allow=LOOPBACK, max_response_bytes=500)) as client:
        response = await client.request("GET", f"{site.url}/big?n=5000")
    assert response.truncated and len(response.body) == 500


async def test_timeout_waiting_for_the_response(allowed: OutboundClient, site: Site) -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match=r"within 0.3 s") as caught:
        await allowed.request("GET", f"{site.url}/sleep?s=5", timeout=0.3)
    assert time.monotonic() - started < 2
    assert isinstance(caught.value, RequestError)


async def test_timeout_while_reading_the_body(allowed: OutboundClient, site: Site) -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await allowed.request("GET", f"{site.url}/slow-body?s=5", timeout=0.3)
    assert time.monotonic() - started < 2


async def test_policy_default_timeout(site: Site) -> None:
    async with OutboundClient(OutboundPolicy(allow=LOOPBACK, timeout=0.2)) as client:
        with pytest.raises(RequestTimeout):
            await client.request("GET", f"{site.url}/sleep?s=5")


async def test_refused_connection_is_a_connect_error(allowed: OutboundClient) -> None:
    with pytest.raises(ConnectError, match=r"could not connect to 127\.0\.0\.1"):
        await allowed.request("GET", f"http://127.0.0.1:{free_port()}/")


async def test_garbage_answer_is_a_protocol_error(allowed: OutboundClient) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()

    for handler in (garbage, hang_up):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            with pytest.raises(ProtocolError):
                await allowed.request("GET", f"http://127.0.0.1:{port}/")


async def test_untrusted_certificate_is_a_tls_error(
    allowed: OutboundClient, tls_site: Site, self_signed: tuple[Path, Path]
) -> None:
    with pytest.raises(TLSError, match="certificate") as caught:
        await allowed.request("GET", f"{tls_site.url}/echo")
    assert isinstance(caught.value, RequestError)
    # Trusted through DOSSIER_OUTBOUND_CA_FILE, the same server is fine.
    policy = OutboundPolicy(allow=LOOPBACK, ca_file=str(self_signed[0]))
    async with OutboundClient(policy) as client:
        response = await client.request("GET", f"{tls_site.url}/echo")
    assert response.ok and response.url.startswith("https://")


async def test_many_concurrent_requests_share_the_pool(site: Site) -> None:
    policy = OutboundPolicy(allow=LOOPBACK, max_connections=4, max_connections_per_host=2)
    async with OutboundClient(policy) as client:
        responses = await asyncio.gather(*(client.request("GET", f"{site.url}/echo") for _ in range(50)))
    assert all(r.ok for r in responses) and len(site.seen) == 50


async def test_client_can_be_reopened_after_aclose(site: Site) -> None:
    client = OutboundClient(OutboundPolicy(allow=LOOPBACK))
    assert (await client.request("GET", f"{site.url}/echo")).ok
    await client.aclose()
    assert (await client.request("GET", f"{site.url}/echo")).ok
    await client.aclose()


async def _raw_server(answer: Callable[[int, int], bytes | None]) -> tuple[asyncio.Server, list[int]]:
    """A server that reads one request head at a time and writes ``answer(connection, request)``;
    None closes the connection without an answer. Returns the server and the connection of each request."""
    seen: list[int] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        connection, count = connections, 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                if length:
                    await reader.readexactly(int(length[0].split(b":")[1]))
                count += 1
                seen.append(connection)
                reply = answer(connection, count)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), seen


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_requests_to_one_origin_reuse_a_connection(allowed: OutboundClient) -> None:
    server, seen = await _raw_server(lambda connection, count: OK)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    async with server:
        for _ in range(3):
            assert (await allowed.request("POST", url, content=b"{}")).body == b"ok"
    assert seen == [1, 1, 1]


async def test_a_kept_connection_the_server_dropped_is_replaced(allowed: OutboundClient) -> None:
    # The server answers one request per connection, then closes the next one unanswered (what a server
    # closing an idle connection as a request arrives looks like): the request goes again on a new one.
    server, seen = await _raw_server(lambda connection, count: OK if count == 1 else None)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    async with server:
        first = await allowed.request("POST", url, content=b"1")
        second = await allowed.request("POST", url, content=b"2")
    assert first.body == second.body == b"ok"
    assert seen == [1, 1, 2]


async def test_a_body_ended_by_closing_and_a_head_response(allowed: OutboundClient) -> None:
    def answer(connection: int, count: int) -> bytes:
        if connection == 1:  # no Content-Length, no chunks: the body ends when the connection does
            return b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"  # a HEAD answer: no body follows

    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer(1, 1))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(closing, "127.0.0.1", 0)
    async with server:
        response = await allowed.request("GET", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
    assert response.body == b"until the end" and response.content_type == "text/plain"

    head_server, _ = await _raw_server(lambda connection, count: answer(2, count))
    url = f"http://127.0.0.1:{head_server.sockets[0].getsockname()[1]}/"
    async with head_server:
        head = await asyncio.wait_for(allowed.request("HEAD", url), 2)
    assert head.status == 200 and head.body == b"" and head.headers["Content-Length"] == "1000"


async def test_a_header_that_would_end_the_request_is_refused(allowed: OutboundClient, site: Site) -> None:
    with pytest.raises(ValueError, match="invalid HTTP header"):
        await allowed.request("POST", f"{site.url}/echo", headers={"X-Note": "a\r\nX-Injected: 1"})
    assert site.seen == []


def test_the_client_runs_on_uvloop_as_serve_does() -> None:
    # serve and worker run on uvloop, whose transports are not asyncio's classes.
    async def exchange() -> tuple[list[bytes], list[int]]:
        server, seen = await _raw_server(lambda connection, count: OK)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
        async with server, OutboundClient(OutboundPolicy(allow=LOOPBACK)) as client:
            return [(await client.request("POST", url, content=b"x")).body for _ in range(2)], seen

    bodies, seen = uvloop.run(exchange())
    assert bodies == [b"ok", b"ok"] and seen == [1, 1]


async def test_an_idle_connection_past_keep_alive_is_closed_not_reused(
    allowed: OutboundClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_http11, "KEEPALIVE_SECONDS", 0.05)
    server, seen = await _raw_server(lambda connection, count: OK)
    async with server:
        for port in (server.sockets[0].getsockname()[1],):
            url = f"http://127.0.0.1:{port}/hook"
            assert (await allowed.request("POST", url, content=b"1")).ok
            await asyncio.sleep(0.1)  # past the (shortened) keep-alive
            assert (await allowed.request("POST", url, content=b"2")).ok
            assert (await allowed.request("POST", url, content=b"3")).ok
    assert seen == [1, 2, 2]
