"""OutboundClient: the one HTTP client for user-chosen URLs, a small API over ``_http11``'s pool."""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from dossier.net._errors import (
    BlockedURL,
    DNSError,
    InvalidURL,
    OutboundError,
    RequestTimeout,
    TooManyRedirects,
)
from dossier.net._http11 import ConnectionPool
from dossier.net._policy import OutboundPolicy, parse_ip
from dossier.net._resolver import GuardedResolver, ResolveHook

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers a redirect to another origin must not carry along (what browsers and requests/httpx drop).
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie")
if TYPE_CHECKING:
    from dossier.settings import Settings

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# What a header value may not hold: it would end the header (request smuggling) or the request.
_BAD_VALUE = re.compile(r"[\r\n\x00]")
# Sent unless the caller sets them (what aiohttp sent); Host, Content-Length and Transfer-Encoding are the
# client's own.
_DEFAULT_HEADERS = (("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate"))
_FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class OutboundResponse:
    """A complete HTTP response, whatever its status code.

    ``headers`` is case-insensitive. ``body`` holds at most the ``max_bytes`` asked for; ``truncated`` says
    whether more was sent. ``url`` is the final URL (after redirects, when they were followed), ``elapsed``
    the seconds from the start of the request to the end of the body, ``redirects`` the URLs redirected from.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    elapsed: float
    truncated: bool = False
    redirects: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def is_redirect(self) -> bool:
        """True for a redirect status with a Location header (returned when redirects are not followed)."""
        return self.status in REDIRECT_STATUSES and "Location" in self.headers

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ("" when absent)."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        """The charset parameter of Content-Type, if any."""
        match = re.search(r"charset=[\"']?([\w.:-]+)", self.headers.get("Content-Type", ""), re.IGNORECASE)
        return match.group(1) if match else None

    def text(self, default_encoding: str = "utf-8") -> str:
        """The body decoded with its declared charset (else ``default_encoding``); bad bytes are replaced."""
        encoding = self.charset or default_encoding
        try:
            return self.body.decode(encoding, errors="replace")
        except LookupError:
            return self.body.decode(default_encoding, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not JSON."""
        return jsonlib.loads(self.body)


class OutboundClient:
    """Sends HTTP requests to user-chosen URLs under an ``OutboundPolicy``.

    Create ONE per process (it owns the connection pool) and ``aclose()`` it at shutdown; it is safe to
    share between tasks. Every request is checked before it is sent (URL syntax, scheme, IP literals),
    every DNS answer and every socket address is checked before connecting, and every redirect hop is
    checked again. Cookies are never kept and proxy settings from the environment are ignored (a proxy
    would connect on our behalf to addresses we never see).

    ``resolve`` replaces DNS: ``async (host) -> [address, ...]`` (tests use it to make a name point at
    127.0.0.1); its answers go through the same policy checks.
    """

    def __init__(self, policy: OutboundPolicy, *, resolve: ResolveHook | None = None) -> None:
        self._policy = policy
        self._resolver = GuardedResolver(policy, resolve)
        self._pool: ConnectionPool | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, resolve: ResolveHook | None = None) -> OutboundClient:
        """A client with the policy the ``DOSSIER_OUTBOUND_*`` settings describe."""
        return cls(OutboundPolicy.from_settings(settings), resolve=resolve)

    @property
    def policy(self) -> OutboundPolicy:
        """The policy this client enforces."""
        return self._policy

    def _get_pool(self) -> ConnectionPool:
        # Created lazily, and again on another event loop: connections belong to the loop that opened them.
        pool = self._pool
        if pool is None or pool.loop is not asyncio.get_running_loop():
            pool = self._pool = ConnectionPool(self._policy, self._resolver)
        return pool

    def check_url_syntax(self, url: str) -> None:
        """Check a URL without DNS: absolute http(s), valid host and port, no credentials, https unless the
        host is allow-listed, and no refused IP literal. Raises InvalidURL or BlockedURL."""
        self._policy.check_url(url)

    async def validate_url(self, url: str) -> None:
        """Everything ``check_url_syntax`` checks, plus resolve the host and refuse it when it has no allowed
        address. For validating a URL when it is saved (e.g. a webhook endpoint); every request checks again.

        Raises InvalidURL / BlockedURL (refused), DNSError (the name does not resolve).
        """
        checked = self._policy.check_url(url)
        host = checked.raw_host or ""
        if parse_ip(host) is not None:
            return
        try:
            async with asyncio.timeout(self._policy.connect_timeout):
                await self._resolver.resolve(host, checked.port or 0, socket.AF_UNSPEC)
        except BlockedURL as exc:
            raise BlockedURL(exc.message, url=url) from None
        except TimeoutError:
            raise DNSError(f"looking up {host} timed out", url=url) from None
        except OSError as exc:
            raise DNSError(f"{host} does not resolve: {_os_reason(exc)}", url=url) from None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        json: Any = None,
        # A per-request bound is the point of this API (each webhook profile has its own), hence the noqa.
        timeout: float | None = None,  # noqa: ASYNC109
        max_bytes: int | None = None,
        follow_redirects: bool = False,
        max_redirects: int | None = None,
        on_too_large: Literal["truncate", "raise"] = "truncate",
    ) -> OutboundResponse:
        """Send one request and read the whole (bounded) response; any status code is returned, not raised.

        ``content`` is sent as is (exact bytes, e.g. a signed body); ``json`` is serialised compactly with
        ``Content-Type: application/json`` unless a Content-Type header is given. ``timeout`` (seconds,
        default the policy's) bounds everything: DNS, connect, every redirect hop and the body. At most
        ``max_bytes`` (default the policy's) of body are kept: beyond that the body is cut and
        ``truncated`` set, or ResponseTooLarge raised when ``on_too_large="raise"``. Redirects are returned
        as responses unless ``follow_redirects`` (then at most ``max_redirects`` hops, each checked).

        Raises BlockedURL/InvalidURL (nothing sent), RequestError subclasses (no response), ResponseTooLarge,
        TooManyRedirects.
        """
        if content is not None and json is not None:
            raise ValueError("pass content or json, not both")
        if not _TOKEN.match(method):
            raise ValueError(f"invalid HTTP method {method!r}")
        method = method.upper()
        total = self._policy.timeout if timeout is None else timeout
        limit = self._policy.max_response_bytes if max_bytes is None else max_bytes
        hops = self._policy.max_redirects if max_redirects is None else max_redirects
        if total <= 0 or limit < 0 or hops < 0:
            raise ValueError("timeout must be positive, max_bytes and max_redirects not negative")

        send_headers: CIMultiDict[str] = CIMultiDict({"User-Agent": self._policy.user_agent})
        for name, value in (headers or {}).items():
            if not _TOKEN.match(name) or _BAD_VALUE.search(value):
                raise ValueError(f"invalid HTTP header {name!r}")
            if name.lower() not in _FRAMING_HEADERS:
                send_headers[name] = value
        for name, value in _DEFAULT_HEADERS:
            send_headers.setdefault(name, value)
        body = content
        if json is not None:
            body = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
            send_headers.setdefault("Content-Type", "application/json")

        target = self._policy.check_url(url)
        started = time.monotonic()
        try:
            async with asyncio.timeout(total):
                return await self._exchange(
                    method, target, send_headers, body, limit, follow_redirects, hops, on_too_large, started
                )
        except TimeoutError:
            raise RequestTimeout(
                f"no complete response from {target.host} within {total:g} s", url=str(target)
            ) from None

    async def _exchange(
        self,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        body: bytes | None,
        limit: int,
        follow_redirects: bool,
        max_redirects: int,
        on_too_large: Literal["truncate", "raise"],
        started: float,
    ) -> OutboundResponse:
        pool = self._get_pool()
        history: list[str] = []
        while True:
            try:
                response = await pool.exchange(
                    method, url, _request_head(method, url, headers, body), body, limit, on_too_large
                )
            except BlockedURL as exc:  # the name resolves to refused addresses only, or a refused address
                raise _blocked(exc.message, url, history) from None
            except OutboundError as exc:
                exc.url = str(url)
                raise
            location = response.headers.get("Location")
            if follow_redirects and response.status in REDIRECT_STATUSES and location:
                if len(history) >= max_redirects:
                    raise TooManyRedirects(
                        f"more than {max_redirects} redirects (last to {location})",
                        url=str(url),
                        status=response.status,
                    )
                next_url = _redirect_target(url, location)
                try:
                    next_url = self._policy.check_url(next_url)
                except BlockedURL as exc:
                    raise _blocked(exc.message, next_url, [*history, str(url)]) from None
                if (response.status == 303 and method != "HEAD") or (
                    response.status in (301, 302) and method == "POST"
                ):
                    # What every browser and client does: the follow-up is a GET without the body.
                    method, body = "GET", None
                    headers = headers.copy()
                    for name in ("Content-Type", "Content-Encoding"):
                        headers.popall(name, None)
                if next_url.origin() != url.origin():
                    headers = headers.copy()
                    for name in _CREDENTIAL_HEADERS:
                        headers.popall(name, None)
                history.append(str(url))
                url = next_url
                continue
            return OutboundResponse(
                status=response.status,
                headers=CIMultiDictProxy(response.headers),
                body=response.body,
                url=str(url),
                elapsed=time.monotonic() - started,
                truncated=response.truncated,
                redirects=tuple(history),
            )

    async def aclose(self) -> None:
        """Close the pooled connections. The client may be used again afterwards (a new pool is opened)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        await self._resolver.close()

    async def __aenter__(self) -> OutboundClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _request_head(method: str, url: URL, headers: CIMultiDict[str], body: bytes | None) -> bytes:
    """The request line and headers of one HTTP/1.1 request (the headers were checked by ``request``)."""
    lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1\r\nHost: {_host_header(url)}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    if body is not None or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(body or b'')}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode()


def _host_header(url: URL) -> str:
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    return (
        host if url.explicit_port in (None, _DEFAULT_PORTS.get(url.scheme)) else f"{host}:{url.explicit_port}"
    )


def _redirect_target(current: URL, location: str) -> URL:
    try:
        target = URL(location)
        return current.join(target) if not target.absolute else target
    except (ValueError, TypeError):
        raise InvalidURL(f"the server redirected to an invalid URL: {location!r}", url=str(current)) from None


def _blocked(message: str, url: URL, history: list[str]) -> BlockedURL:
    if history:
        return BlockedURL(f"redirect from {history[-1]} to {url} refused: {message}", url=str(url))
    return BlockedURL(message, url=str(url))


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
