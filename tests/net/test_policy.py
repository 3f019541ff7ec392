"""The outbound policy on its own: URL syntax, schemes, address classes, the allow-list. No I/O."""

from __future__ import annotations

import ipaddress

import pytest

from dossier.errors import InvalidInput
from dossier.net import BlockedURL, InvalidURL, OutboundPolicy, public_refusal
from dossier.net._resolver import GuardedResolver, check_connect_address
from dossier.settings import Settings

STRICT = OutboundPolicy()  # empty allow-list: production defaults


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.10", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.100.100.200", "metadata"),
        ("168.63.129.16", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("198.18.0.1", "benchmarking"),
        ("[::1]", "loopback"),
        ("[::]", "unspecified"),
        ("[fe80::1]", "link-local"),
        ("[fc00::1]", "private"),
        ("[fd00:ec2::254]", "metadata"),
        ("[ff02::1]", "multicast"),
        ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped
        ("[::ffff:169.254.169.254]", "metadata"),
        ("[64:ff9b::a9fe:a9fe]", "metadata"),  # NAT64 of 169.254.169.254
        ("[2002:7f00:1::]", "loopback"),  # 6to4 of 127.0.0.1
        ("[2001:db8::1]", "documentation"),
    ],
)
def test_non_public_addresses_are_refused_without_an_allow_list(host: str, reason: str) -> None:
    with pytest.raises(BlockedURL, match=reason):
        STRICT.check_url(f"https://{host}/hook")


@pytest.mark.parametrize("host", ["8.8.8.8", "[2606:4700:4700::1111]", "[::ffff:8.8.8.8]", "example.com"])
def test_public_hosts_pass_the_syntax_check(host: str) -> None:
    assert str(STRICT.check_url(f"https://{host}/a?b=c#frag")).endswith("/a?b=c")  # fragment dropped


def test_https_only_unless_the_host_is_allow_listed() -> None:
    with pytest.raises(BlockedURL, match=r"plain http is refused for example\.com"):
        STRICT.check_url("http://example.com/")
    OutboundPolicy(allow=("example.com",)).check_url("http://example.com/")
    OutboundPolicy(allow_http=True).check_url("http://example.com/")
    OutboundPolicy(allow=("127.0.0.0/8",)).check_url("http://127.0.0.2:8080/")
    with pytest.raises(BlockedURL, match="plain http"):
        # An address entry does not cover a *name*: the name is what the request is sent to.
        OutboundPolicy(allow=("127.0.0.1",)).check_url("http://localhost:8080/")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("/relative/path", "only http and https"),
        ("https://", "no host"),
        ("https://user:secret@example.com/", "credentials"),
        ("https://token@example.com/", "credentials"),
        ("https://127.1/", "canonical IPv4"),
        ("https://2130706433/", "canonical IPv4"),
        ("https://0x7f.0.0.1/", "canonical IPv4"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com:0/", "port"),
        ("https://example.com:99999/", "URL"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://bad_host!.com/", "valid host"),
    ],
)
def test_malformed_urls_are_invalid(url: str, message: str) -> None:
    with pytest.raises(InvalidURL, match=message) as caught:
        OutboundPolicy(allow_http=True).check_url(url)
    # InvalidURL is a BlockedURL is an InvalidInput: an API route that lets it through answers 422.
    assert isinstance(caught.value, BlockedURL)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.status_code == 422
    assert "secret" not in str(caught.value.url)


def test_any_port_is_allowed() -> None:
    STRICT.check_url("https://example.com:8443/hook")
    STRICT.check_url("https://example.com:22/")


def test_allow_list_entries() -> None:
    policy = OutboundPolicy(
        allow=(" 10.0.0.0/8", "[::1]", "hooks.internal.", "*.corp.example", "Bücher.example")
    )
    assert policy.address_refusal(ipaddress.ip_address("10.9.9.9")) is None
    assert policy.address_refusal(ipaddress.ip_address("::1")) is None
    assert policy.address_refusal(ipaddress.ip_address("::ffff:10.0.0.1")) is None
    assert policy.address_refusal(ipaddress.ip_address("192.168.0.1")) == "a private address"
    # A name entry lets that name reach any address it resolves to.
    assert policy.address_refusal(ipaddress.ip_address("192.168.0.1"), "HOOKS.internal") is None
    assert policy.address_refusal(ipaddress.ip_address("192.168.0.1"), "a.b.corp.example") is None
    assert policy.address_refusal(ipaddress.ip_address("192.168.0.1"), "corp.example") is not None
    assert policy.address_refusal(ipaddress.ip_address("192.168.0.1"), "xn--bcher-kva.example") is None
    assert policy.address_refusal(ipaddress.ip_address("8.8.8.8")) is None


def test_metadata_addresses_need_their_exact_address_listed() -> None:
    wide = OutboundPolicy(allow=("169.254.0.0/16", "0.0.0.0/0", "metadata.google.internal"))
    assert wide.address_refusal(ipaddress.ip_address("169.254.1.1")) is None
    assert wide.address_refusal(ipaddress.ip_address("169.254.169.254")) == "a cloud metadata address"
    assert (
        wide.address_refusal(ipaddress.ip_address("169.254.169.254"), "metadata.google.internal")
        == "a cloud metadata address"
    )
    exact = OutboundPolicy(allow=("169.254.169.254",))
    assert exact.address_refusal(ipaddress.ip_address("169.254.169.254")) is None
    assert exact.address_refusal(ipaddress.ip_address("::ffff:169.254.169.254")) is None


@pytest.mark.parametrize(
    "entry", ["http://example.com", "example.com:8080", "exa mple.com", "*", "10.0.0.0/33"]
)
def test_bad_allow_entries_fail_at_start(entry: str) -> None:
    with pytest.raises(ValueError, match="DOSSIER_OUTBOUND_ALLOW"):
        OutboundPolicy(allow=(entry,))


def test_policy_from_settings() -> None:
    settings = Settings(
        outbound_allow="127.0.0.1, hooks.internal",  # type: ignore[arg-type]  # as the environment gives it
        outbound_timeout=3,
        outbound_max_response_bytes=1000,
        outbound_allow_http=True,
    )
    policy = OutboundPolicy.from_settings(settings)
    assert policy.allow == ("127.0.0.1", "hooks.internal")
    assert (policy.timeout, policy.max_response_bytes, policy.allow_http) == (3, 1000, True)


def test_public_refusal_names_the_class() -> None:
    assert public_refusal(ipaddress.ip_address("1.1.1.1")) is None
    assert (
        public_refusal(ipaddress.ip_address("::ffff:10.0.0.1"))
        == "a private address (as IPv4 10.0.0.1 inside IPv6)"
    )


def test_the_address_connected_to_is_checked_again() -> None:
    # The last line of defence, right before connect(): it sees only the socket address.
    policy = OutboundPolicy()
    resolver = GuardedResolver(policy)
    with pytest.raises(BlockedURL, match="loopback"):
        check_connect_address(policy, resolver, "127.0.0.1")
    with pytest.raises(BlockedURL, match="metadata"):
        check_connect_address(policy, resolver, "fd00:ec2::254")
    check_connect_address(policy, resolver, "8.8.8.8")
    # An address the resolver approved for an allow-listed name passes.
    resolver.approved.add("10.1.2.3")
    check_connect_address(policy, resolver, "10.1.2.3")
    with pytest.raises(BlockedURL, match="private"):
        check_connect_address(policy, resolver, "10.1.2.4")


def test_a_bad_allow_entry_in_the_environment_stops_the_settings() -> None:
    with pytest.raises(ValueError, match=r"'example\.com:8080' is not a host name"):
        Settings(outbound_allow="127.0.0.1,example.com:8080")  # type: ignore[arg-type]


def test_a_url_checked_again_gets_the_same_verdict() -> None:
    # The policy remembers accepted URLs (a sweep checks its endpoint's URL for every attempt): a repeat
    # answers the same normalised URL, and a refused URL is refused every time, never remembered as good.
    policy = OutboundPolicy()
    first = policy.check_url("https://example.com/a?b=c#frag")
    assert policy.check_url("https://example.com/a?b=c#frag") == first
    assert str(first) == "https://example.com/a?b=c"
    for _ in range(2):
        with pytest.raises(BlockedURL, match="loopback"):
            policy.check_url("https://127.0.0.1/hook")
        with pytest.raises(InvalidURL, match="credentials"):
            policy.check_url("https://user:secret@example.com/")
    # What one policy accepted says nothing to another: a stricter one still refuses it.
    OutboundPolicy(allow_http=True).check_url("http://example.com/")
    with pytest.raises(BlockedURL, match="plain http"):
        policy.check_url("http://example.com/")
    assert OutboundPolicy() == policy  # the remembered URLs are no part of a policy's identity
