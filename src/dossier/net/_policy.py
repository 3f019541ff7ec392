"""The outbound policy: which URLs and which addresses Dossier may send requests to.

Pure logic, no I/O: the client applies ``check_url`` before anything is sent and ``address_refusal`` to every
address DNS returns and to the socket address it finally connects to.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from yarl import URL

from dossier.net._errors import BlockedURL, InvalidURL

if TYPE_CHECKING:
    from dossier.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING = "DOSSIER_OUTBOUND_ALLOW"

# IANA special-purpose ranges, with the words a user sees when one is refused. Python's own
# ``is_global`` differs between patch releases, so the ranges that matter are spelled out here and
# ``is_global`` only catches whatever is left.
_SPECIAL_V4: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "an unspecified address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a reserved address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)
_SPECIAL_V6: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), reason)
    for net, reason in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/96", "a reserved address"),  # deprecated IPv4-compatible addresses
        ("64:ff9b:1::/48", "a private address"),
        ("100::/64", "a reserved address"),
        ("2001::/23", "a reserved address"),  # Teredo and other protocol assignments
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "a reserved address"),
        ("fc00::/7", "a private address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a link-local address"),
        ("ff00::/8", "a multicast address"),
    )
)
# Cloud instance-metadata endpoints. Most are link-local or private anyway; Azure's and Alibaba's are
# not, and all of them hand out credentials, so a CIDR in the allow-list never unlocks them: only the
# exact address does.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
        "169.254.169.253",  # AWS DNS
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::254",  # AWS IPv6
        "fd00:ec2::253",
        "fd00:ec2::23",
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# WHATWG URL parsing treats a host whose last label is a number as an IPv4 address ("127.1", "0x7f.1",
# "2130706433"); resolvers differ on these, so anything numeric must be the canonical dotted quad.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


_IPV4_CHARS = "0123456789."
# Accepted URLs an OutboundPolicy remembers (see OutboundPolicy.check_url).
ACCEPTED_URLS_KEPT = 4096


def parse_ip(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal (brackets and an IPv6 zone are tolerated), else None."""
    candidate = host.strip("[]").split("%", 1)[0]
    if ":" not in candidate and candidate.strip(_IPV4_CHARS):
        # Neither IPv6 (it has a colon) nor IPv4 (digits and dots only): a name. Decided without the
        # ValueError that ip_address raises for it, which costs more than the rest of a domain lookup.
        return None
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through mapping, NAT64 or 6to4, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def public_refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (e.g. "a loopback address"), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = public_refusal(inner)
            return f"{reason} (as IPv4 {inner} inside IPv6)" if reason else None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for network, reason in _SPECIAL_V4 if address.version == 4 else _SPECIAL_V6:
        if address in network:
            return reason
    if not address.is_global:
        return "not a public address"
    return None


def normalize_host(host: str) -> str:
    """Lower-case ASCII (IDNA) form of a host name without its trailing dot."""
    host = host.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _valid_hostname(host: str) -> bool:
    return 0 < len(host) <= 253 and all(_LABEL.match(label) for label in host.split("."))


@dataclass(frozen=True)
class OutboundPolicy:
    """What outbound requests may reach, and the default limits they run with.

    ``allow`` entries (``DOSSIER_OUTBOUND_ALLOW``): a host name (``hooks.internal``), a wildcard for its
    subdomains (``*.corp.example``), an address (``10.0.0.5``, ``::1``) or a CIDR (``10.0.0.0/8``). An entry
    lets requests reach non-public addresses and use plain http; everything else must be https to a
    public address. Invalid entries raise ValueError at construction, so a typo fails at start-up.
    """

    allow: tuple[str, ...] = ()
    allow_http: bool = False
    timeout: float = 10.0
    connect_timeout: float = 5.0
    max_response_bytes: int = 2 * 1024 * 1024
    max_redirects: int = 5
    max_connections: int = 200
    max_connections_per_host: int = 50
    user_agent: str = "Dossier/0.1"
    ca_file: str | None = None

    _names: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())
    _suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False, default=())
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False, default=())
    _addresses: frozenset[IPAddress] = field(init=False, repr=False, compare=False, default=frozenset())
    # URLs (as written) this policy accepted, and what check_url made of them: the verdict depends on the
    # policy and the text only, and a webhook sweep checks the same endpoint URL for every attempt.
    _accepted: dict[str, URL] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("outbound timeouts must be positive")
        if self.max_response_bytes < 1 or self.max_redirects < 0:
            raise ValueError("max_response_bytes must be >= 1 and max_redirects >= 0")
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        addresses: set[IPAddress] = set()
        for raw in self.allow:
            entry = raw.strip()
            if not entry:
                continue
            bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
            try:
                network = ipaddress.ip_network(bare, strict=False)
            except ValueError:
                network = None
            if network is not None:
                networks.append(network)
                if "/" not in bare:
                    addresses.add(network.network_address)
                continue
            wildcard = entry.startswith("*.")
            name = normalize_host(entry[2:] if wildcard else entry)
            if not _valid_hostname(name) or parse_ip(name) is not None:
                raise ValueError(
                    f"{ALLOW_SETTING} entry {raw!r} is not a host name, *.wildcard, IP address or CIDR "
                    "(ports and schemes are not part of an entry)"
                )
            if wildcard:
                suffixes.append("." + name)
            else:
                names.add(name)
        object.__setattr__(self, "allow", tuple(entry.strip() for entry in self.allow if entry.strip()))
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_suffixes", tuple(suffixes))
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "_addresses", frozenset(addresses))

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        """The policy the ``DOSSIER_OUTBOUND_*`` settings describe."""
        return cls(
            allow=tuple(settings.outbound_allow),
            allow_http=settings.outbound_allow_http,
            timeout=settings.outbound_timeout,
            connect_timeout=settings.outbound_connect_timeout,
            max_response_bytes=settings.outbound_max_response_bytes,
            max_redirects=settings.outbound_max_redirects,
            max_connections=settings.outbound_max_connections,
            max_connections_per_host=settings.outbound_max_connections_per_host,
            user_agent=settings.outbound_user_agent,
            ca_file=settings.outbound_ca_file,
        )

    def name_allowed(self, host: str) -> bool:
        """True when the host name is allow-listed (exactly, or under a ``*.`` wildcard)."""
        name = normalize_host(host)
        return name in self._names or any(name.endswith(suffix) for suffix in self._suffixes)

    def host_allowed(self, host: str) -> bool:
        """True when the URL host, a name or an IP literal, is allow-listed as written."""
        address = parse_ip(host)
        if address is None:
            return self.name_allowed(host)
        return self._address_listed(address)

    def _address_listed(self, address: IPAddress) -> bool:
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            candidate in network
            for candidate in candidates
            for network in self._networks
            if candidate.version == network.version
        )

    def address_refusal(self, address: IPAddress, host: str | None = None) -> str | None:
        """None when a request may connect to ``address`` (reached through ``host``); else why not.

        Public addresses are always allowed. A non-public one is allowed when the host name or the address
        is allow-listed, except a cloud metadata address, which needs its exact address listed.
        """
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        reason = public_refusal(address)
        if reason is None:
            return None
        inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        if address in METADATA_ADDRESSES or inner in METADATA_ADDRESSES:
            if address in self._addresses or inner in self._addresses:
                return None
            return reason
        if (host is not None and self.name_allowed(host)) or self._address_listed(address):
            return None
        return reason

    def check_url(self, url: str | URL) -> URL:
        """Parse and check a URL without DNS; returns it normalised (no fragment).

        Raises InvalidURL when it is not an absolute http(s) URL with a valid host and port or carries
        credentials, and BlockedURL when it uses plain http or an IP literal the policy refuses.
        """
        text = str(url)
        accepted = self._accepted.get(text)
        if accepted is not None:
            return accepted
        checked = self._check_url(url, text)
        if len(self._accepted) >= ACCEPTED_URLS_KEPT:
            self._accepted.clear()  # cheap bound: the next checks fill it again
        self._accepted[text] = checked
        return checked

    def _check_url(self, url: str | URL, text: str) -> URL:
        if isinstance(url, str):
            if len(url) > 8192:
                raise InvalidURL("the URL is longer than 8192 characters", url=url[:200])
            if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
                raise InvalidURL("the URL contains spaces or control characters", url=url)
            try:
                url = URL(url)
            except (ValueError, TypeError) as exc:
                raise InvalidURL(f"not a valid URL: {exc}", url=text) from None
        scheme = url.scheme.lower()
        if scheme not in ("http", "https"):
            raise InvalidURL(f"only http and https URLs are accepted, not {text!r}", url=text)
        host = url.raw_host
        if not url.absolute or not host:
            raise InvalidURL(f"the URL {text!r} has no host", url=text)
        if url.raw_user is not None or url.raw_password is not None:
            # Credentials in URLs end up in logs and delivery records; headers are the place for them.
            raise InvalidURL(
                "credentials in the URL are not accepted; send them in a header (e.g. Authorization)",
                url=_redact(url),
            )
        try:
            port = url.port
        except ValueError:
            port = None
        if port is None or not 0 < port < 65536:
            raise InvalidURL(f"the URL {text!r} has an invalid port", url=text)
        if "%" in host:
            raise InvalidURL("IPv6 zone identifiers are not accepted in URLs", url=text)
        address = parse_ip(host)
        if address is None:
            name = host.rstrip(".").lower()
            if _NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]):
                raise InvalidURL(
                    f"{host!r} is not a canonical IPv4 address; write it as four decimal numbers",
                    url=text,
                )
            if not _valid_hostname(name):
                raise InvalidURL(f"{host!r} is not a valid host name", url=text)
        if scheme == "http" and not (self.allow_http or self.host_allowed(host)):
            raise BlockedURL(
                f"plain http is refused for {host}: use https, or add {host} to {ALLOW_SETTING}",
                url=text,
            )
        if address is not None:
            reason = self.address_refusal(address)
            if reason is not None:
                raise BlockedURL(
                    f"{address} is {reason}; requests to it are refused unless it is in {ALLOW_SETTING}",
                    url=text,
                )
        return url.with_fragment(None)


def _redact(url: URL) -> str:
    return str(url.with_user(None).with_password(None))
