"""DNS resolution and socket creation that enforce the policy on the addresses actually used.

Checking a URL's host name before the request is not enough: the name can resolve to a private address
(or resolve differently a moment later: DNS rebinding). So the connection pool (``_http11``) uses

* a resolver that filters every DNS answer through the policy, keeping only allowed addresses and
  refusing the request when none is left; the pool only ever connects to what it returns, and
* ``check_connect_address`` on the exact address right before ``connect()``, the last line for anything
  that does not come through the resolver (IP literals) or comes from the pool's DNS cache.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from dossier.net._errors import BlockedURL
from dossier.net._policy import ALLOW_SETTING, OutboundPolicy, parse_ip, public_refusal

ResolveHook = Callable[[str], Awaitable[Sequence[str]]]
"""``async (host) -> [address, ...]``: a replacement for DNS (tests, split-horizon setups).

Raise ``OSError`` (e.g. ``socket.gaierror``) for a name that does not exist.
"""


class GuardedResolver(AbstractResolver):
    """Resolves names, then drops the addresses the policy refuses."""

    def __init__(self, policy: OutboundPolicy, hook: ResolveHook | None = None) -> None:
        self._policy = policy
        self._hook = hook
        self._inner: AbstractResolver | None = None
        # Non-public addresses let through because their host *name* is allow-listed; the socket factory,
        # which only sees addresses, must not refuse them.
        self.approved: set[str] = set()

    async def _lookup(self, host: str, port: int, family: socket.AddressFamily) -> list[ResolveResult]:
        if self._hook is None:
            if self._inner is None:
                self._inner = DefaultResolver()
            return await self._inner.resolve(host, port, family)
        results: list[ResolveResult] = []
        for text in await self._hook(host):
            address = parse_ip(text)
            if address is None:
                raise OSError(f"resolver hook returned {text!r}, which is not an IP address")
            found = socket.AF_INET if address.version == 4 else socket.AF_INET6
            if family not in (socket.AF_UNSPEC, found):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=str(address),
                    port=port,
                    family=found,
                    proto=0,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not results:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
        return results

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of ``host``; BlockedURL when DNS returned only refused ones."""
        allowed: list[ResolveResult] = []
        refused: list[str] = []
        for result in await self._lookup(host, port, family):
            address = parse_ip(result["host"])
            reason = "not an IP address" if address is None else self._policy.address_refusal(address, host)
            if reason is None:
                allowed.append(result)
                if address is not None and public_refusal(address) is not None:
                    self.approved.add(str(address))
            else:
                refused.append(f"{result['host']} ({reason})")
        if not allowed:
            raise BlockedURL(
                f"{host} resolves to {', '.join(sorted(set(refused)))}; requests to it are refused unless "
                f"{host} or the address is in {ALLOW_SETTING}"
            )
        return allowed

    async def close(self) -> None:
        """Release the underlying resolver; the next lookup opens a new one (on the loop running then)."""
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.close()


def check_connect_address(policy: OutboundPolicy, resolver: GuardedResolver, text: str) -> None:
    """Right before ``connect()``: refuse (BlockedURL) an address the policy does not allow, unless the
    resolver let it through for an allow-listed host name."""
    address = parse_ip(text)
    if address is None:
        raise BlockedURL(f"refusing to connect to {text!r}: not an IP address")
    reason = policy.address_refusal(address)
    if reason is not None and str(address) not in resolver.approved:
        raise BlockedURL(f"{address} is {reason}; requests to it are refused unless it is in {ALLOW_SETTING}")
