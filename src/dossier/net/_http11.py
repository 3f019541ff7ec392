"""The HTTP/1.1 wire under ``OutboundClient``: keep-alive connections per origin, responses parsed by llhttp.

Why not aiohttp's client: a keep-alive POST to a known endpoint costs about 75 µs of CPU through
``ClientSession`` and 23 µs here (bench/outbound.py), and the webhook engine makes one per delivery. What
this module does is small on purpose: one request at a time per connection, no proxies, no cookies, no
redirects (``OutboundClient`` follows them, checking each hop), gzip and deflate decoded.

The policy is enforced on the addresses connected to: a host name is resolved by the ``GuardedResolver``
(which keeps only allowed addresses) and every address is checked again right before ``connect()``, like
aiohttp's socket factory did. Errors are raised as the ``dossier.net`` exception tree.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Literal, cast

import httptools
from multidict import CIMultiDict
from yarl import URL

from dossier.net._errors import (
    BlockedURL,
    ConnectError,
    DNSError,
    ProtocolError,
    RequestError,
    RequestTimeout,
    ResponseTooLarge,
    TLSError,
)
from dossier.net._policy import OutboundPolicy, parse_ip
from dossier.net._resolver import GuardedResolver, check_connect_address

# Idle keep-alive connections are closed after this long (aiohttp's default too): servers close theirs
# after 5-75 s, and a connection the server already closed costs a failed write.
KEEPALIVE_SECONDS = 15.0
# How long a name's allowed addresses are reused for new connections (aiohttp's ttl_dns_cache was 10 s).
DNS_CACHE_SECONDS = 10.0
# Hosts and addresses remembered per pool; past this the memory starts again (the website tool meets many).
REMEMBERED = 4096
_DEFAULT_PORTS = {"http": 80, "https": 443}
_INFORMATIONAL = range(100, 200)


@dataclass(frozen=True)
class WireResponse:
    """A whole response as read off the wire (the body decoded and bounded)."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    truncated: bool


class _Exchange:
    """The state of one response being read."""

    __slots__ = (
        "body",
        "decoder",
        "done",
        "framed",
        "head_only",
        "headers",
        "informational",
        "limit",
        "on_too_large",
        "received",
        "size",
        "status",
        "truncated",
    )

    def __init__(self, limit: int, on_too_large: Literal["truncate", "raise"], *, head_only: bool) -> None:
        self.limit = limit
        self.on_too_large = on_too_large
        self.head_only = head_only
        self.done: asyncio.Future[WireResponse] = asyncio.get_running_loop().create_future()
        self.received = False
        self.informational = False
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.truncated = False
        # True when the body's end is known from the message (Content-Length or chunked), False when the
        # server ends it by closing the connection.
        self.framed = True
        self.decoder: zlib._Decompress | None = None


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; the parser's callbacks fill the current ``_Exchange``."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: _Exchange | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self._writable: asyncio.Future[None] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            # Bytes nobody asked for: the connection is out of step, never reuse it.
            self.close()
            return
        exchange.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError(f"{self.where} switched protocols, which is not supported"))
        except httptools.HttpParserError as exc:
            if not exchange.done.done():
                self._fail(ProtocolError(f"{self.where} sent an invalid HTTP response: {exc}"))
        if exchange.done.done():
            self.exchange = None
            if not self.reusable:
                self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        exchange, self.exchange = self.exchange, None
        if exchange is None or exchange.done.done():
            return
        if exchange.status and not exchange.framed and not exchange.informational:
            # A body without Content-Length or chunking ends when the server closes: that is its end.
            self._finish(exchange)
            return
        reason = f": {exc}" if exc is not None else ""
        if exchange.status:
            error = ProtocolError(f"the response body from {self.where} was incomplete{reason}")
        else:
            error = ProtocolError(f"{self.where} closed the connection without a complete response{reason}")
        exchange.done.set_exception(error)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # httptools callbacks (they must not raise: an error is recorded and parsing continues to no effect)

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        if exchange is None or exchange.done.done():
            return
        status = self.parser.get_status_code()
        if status in _INFORMATIONAL:
            # 100 Continue, 103 Early Hints: the real response follows.
            exchange.informational = True
            return
        exchange.status = status
        headers = exchange.headers
        lower = {name.lower(): value for name, value in headers}
        declared = lower.get("content-length")
        exchange.framed = declared is not None or "transfer-encoding" in lower or status in (204, 304)
        too_large = declared is not None and declared.isdigit() and int(declared) > exchange.limit
        if exchange.on_too_large == "raise" and too_large:
            # Compressed or not, more than the limit is coming: no need to read it.
            self._fail(
                ResponseTooLarge(
                    f"the response body ({declared} bytes) is larger than the {exchange.limit} bytes allowed",
                    status=status,
                )
            )
            return
        encoding = lower.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            exchange.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            exchange.decoder = zlib.decompressobj()
        if exchange.head_only:
            # A HEAD response announces a body it does not send; llhttp cannot be told, so the connection
            # is not reused.
            self.reusable = False
            self._finish(exchange)

    def on_body(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None or exchange.done.done() or exchange.informational:
            return
        room = exchange.limit - exchange.size
        if exchange.decoder is not None:
            try:
                data = exchange.decoder.decompress(data, room + 1)
            except zlib.error as exc:
                self._fail(
                    ProtocolError(f"the response body from {self.where} is not valid compressed data: {exc}")
                )
                return
        if len(data) > room:
            if exchange.on_too_large == "raise":
                self._fail_too_large(exchange)
                return
            exchange.body.append(data[:room])
            exchange.size = exchange.limit
            exchange.truncated = True
            # The rest of the body is unread: the connection cannot carry another request.
            self.reusable = False
            self._finish(exchange)
            return
        exchange.body.append(data)
        exchange.size += len(data)

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is None or exchange.done.done():
            return
        if exchange.informational:
            exchange.informational = False
            exchange.headers = []
            return
        if not self.parser.should_keep_alive():
            self.reusable = False
        self._finish(exchange)

    # helpers

    def _finish(self, exchange: _Exchange) -> None:
        if exchange.decoder is not None and not exchange.truncated:
            tail = exchange.decoder.flush()
            if exchange.size + len(tail) > exchange.limit:
                if exchange.on_too_large == "raise":
                    self._fail_too_large(exchange)
                    return
                tail = tail[: exchange.limit - exchange.size]
                exchange.truncated = True
            exchange.body.append(tail)
        body = exchange.body[0] if len(exchange.body) == 1 else b"".join(exchange.body)
        exchange.done.set_result(
            WireResponse(exchange.status, CIMultiDict(exchange.headers), body, exchange.truncated)
        )

    def _fail_too_large(self, exchange: _Exchange) -> None:
        self._fail(
            ResponseTooLarge(
                f"the response body is larger than the {exchange.limit} bytes allowed", status=exchange.status
            )
        )

    def _fail(self, error: Exception) -> None:
        self.reusable = False
        exchange = self.exchange
        if exchange is not None and not exchange.done.done():
            exchange.done.set_exception(error)

    async def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        if self._writable is not None:
            await self._writable

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


class ConnectionPool:
    """Keep-alive connections per origin, at most ``max_connections`` in use (``max_connections_per_host`` per
    origin). Bound to the event loop it was created on."""

    def __init__(self, policy: OutboundPolicy, resolver: GuardedResolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self.loop = asyncio.get_running_loop()
        context = ssl.create_default_context()
        if policy.ca_file:
            context.load_verify_locations(cafile=policy.ca_file)
        self._tls = context
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._in_use: set[_Connection] = set()
        self._all = asyncio.Semaphore(policy.max_connections) if policy.max_connections > 0 else None
        self._per_origin: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._users: dict[tuple[str, str, int], int] = {}
        self._next_prune = time.monotonic() + KEEPALIVE_SECONDS / 3
        self._addresses: dict[tuple[str, int], tuple[float, list[tuple[int, str]]]] = {}
        # Addresses that passed check_connect_address: the policy is fixed and what the resolver approved
        # stays approved, so a pass holds (parsing an address costs more than the rest of a refused connect).
        self._passed: set[str] = set()

    async def exchange(
        self,
        method: str,
        url: URL,
        head: bytes,
        body: bytes | None,
        limit: int,
        on_too_large: Literal["truncate", "raise"],
    ) -> WireResponse:
        """Send ``head`` (the request line and headers, Host included) and ``body`` to ``url``'s origin and
        read the response. Raises the ``dossier.net`` errors (without ``url``; the caller adds it)."""
        scheme = url.scheme
        host = url.raw_host or ""
        port = url.port or _DEFAULT_PORTS[scheme]
        origin = (scheme, host, port)
        where = f"{url.host}:{port}"
        request = head + body if body else head
        held = self._per_origin.get(origin)
        if held is None and self._policy.max_connections_per_host > 0:
            held = self._per_origin[origin] = asyncio.Semaphore(self._policy.max_connections_per_host)
        # Requests for the origin under way (waiting included): its semaphore is dropped when none is, so
        # an origin met once (the website tool meets thousands) leaves nothing behind.
        self._users[origin] = self._users.get(origin, 0) + 1
        try:
            if self._all is not None:
                await self._all.acquire()
            try:
                if held is not None:
                    await held.acquire()
                try:
                    return await self._exchange_on_origin(origin, where, method, request, limit, on_too_large)
                finally:
                    if held is not None:
                        held.release()
            finally:
                if self._all is not None:
                    self._all.release()
        finally:
            users = self._users[origin] - 1
            if users:
                self._users[origin] = users
            else:
                del self._users[origin]
                self._per_origin.pop(origin, None)

    async def _exchange_on_origin(
        self,
        origin: tuple[str, str, int],
        where: str,
        method: str,
        request: bytes,
        limit: int,
        on_too_large: Literal["truncate", "raise"],
    ) -> WireResponse:
        for _ in range(2):
            connection = self._take_idle(origin)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(origin, where)
            exchange = _Exchange(limit, on_too_large, head_only=method == "HEAD")
            # llhttp starts on the next message by itself after a complete one: one parser per connection.
            connection.exchange = exchange
            self._in_use.add(connection)
            try:
                await connection.send(request)
                response = await exchange.done
            except ProtocolError:
                if reused and not exchange.received and connection.closed:
                    # The server closed the idle connection as we wrote to it: nothing was read, so the
                    # request is sent again on a new connection (what receivers dedupe on covers it).
                    continue
                raise
            except BaseException:
                # Cancelled (a timeout) or failed mid-response: the connection is out of step.
                connection.close()
                raise
            finally:
                self._in_use.discard(connection)
                connection.exchange = None
            if connection.reusable and not connection.closed:
                connection.idle_since = now = time.monotonic()
                self._idle.setdefault(origin, deque()).append(connection)
                if now >= self._next_prune:
                    self._prune(now)
            else:
                connection.close()
            return response
        raise ProtocolError(f"{where} closed the connection without a complete response")

    def _prune(self, now: float) -> None:
        # Origins not asked again keep their idle connections until here: close the stale ones, forget
        # the closed ones, drop empty origins.
        self._next_prune = now + KEEPALIVE_SECONDS / 3
        oldest_kept = now - KEEPALIVE_SECONDS
        for origin, idle in list(self._idle.items()):
            kept = deque(c for c in idle if not c.closed and c.idle_since >= oldest_kept)
            for connection in idle:
                if connection not in kept:
                    connection.close()
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]

    def _take_idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        if idle is None:
            return None
        oldest_kept = time.monotonic() - KEEPALIVE_SECONDS
        while idle:
            connection = idle.pop()
            if connection.closed or connection.idle_since < oldest_kept:
                connection.close()
                continue
            # The most recently used first; drop the stale ones from the other end.
            while idle and idle[0].idle_since < oldest_kept:
                idle.popleft().close()
            return connection
        del self._idle[origin]
        return None

    async def _connect(self, origin: tuple[str, str, int], where: str) -> _Connection:
        scheme, host, port = origin
        timeout = self._policy.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._addresses_of(host, port)
                last_error: OSError | None = None
                for family, address in addresses:
                    if address not in self._passed:
                        check_connect_address(self._policy, self._resolver, address)
                        if len(self._passed) >= REMEMBERED:
                            self._passed.clear()
                        self._passed.add(address)
                    tls = scheme == "https"
                    try:
                        # The checked address itself, numeric: the loop connects without a lookup (and
                        # uvloop without a Python socket object, a third of a refused attempt's cost).
                        _, connection = await self.loop.create_connection(
                            lambda: _Connection(where),
                            host=address,
                            port=port,
                            family=family,
                            ssl=self._tls if tls else None,
                            server_hostname=host if tls else None,
                        )
                    except ssl.SSLError:
                        raise
                    except OSError as exc:
                        last_error = exc
                        continue
                    return connection
                assert last_error is not None
                raise last_error
        except TimeoutError:
            raise RequestTimeout(f"could not connect to {where} within {timeout:g} s") from None
        except (BlockedURL, RequestError):
            raise
        except ssl.SSLCertVerificationError as exc:
            raise TLSError(f"the TLS certificate of {where} is not valid: {exc.verify_message}") from None
        except ssl.SSLError as exc:
            raise TLSError(f"TLS with {where} failed: {exc}") from None
        except OSError as exc:
            raise ConnectError(f"could not connect to {where}: {_os_reason(exc)}") from None

    async def _addresses_of(self, host: str, port: int) -> list[tuple[int, str]]:
        cached = self._addresses.get((host, port))
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        if len(self._addresses) >= REMEMBERED:
            self._addresses.clear()
        literal = parse_ip(host)
        if literal is not None:
            addresses: list[tuple[int, str]] = [
                (int(socket.AF_INET if literal.version == 4 else socket.AF_INET6), str(literal))
            ]
            self._addresses[(host, port)] = (float("inf"), addresses)
            return addresses
        try:
            results = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        except BlockedURL:
            raise
        except OSError as exc:
            raise DNSError(f"{host} does not resolve: {_os_reason(exc)}") from None
        addresses = [(int(result["family"]), str(result["host"])) for result in results]
        self._addresses[(host, port)] = (now + DNS_CACHE_SECONDS, addresses)
        return addresses

    def close(self) -> None:
        """Close every connection, idle or in use."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        for connection in list(self._in_use):
            connection.close()
        self._in_use.clear()


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
