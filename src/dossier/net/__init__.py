"""Outbound HTTP: the one way Dossier sends requests to URLs its users choose.

Webhook deliveries, the ``website`` tool and the ``http`` tool all go through an ``OutboundClient``, which
enforces an ``OutboundPolicy`` (built from the ``DOSSIER_OUTBOUND_*`` settings): https only unless the host is
allow-listed; no private, loopback, link-local, multicast, reserved, carrier-grade NAT or cloud-metadata
address unless allow-listed, checked on the addresses DNS returns and on the socket address connected to,
on every redirect hop; bounded response size and time. See ``docs/outbound-http.md``.

Typical use (one client per process, closed at shutdown)::

    client = OutboundClient(OutboundPolicy.from_settings(settings))
    try:
        response = await client.request("POST", url, content=body, headers=headers, timeout=5)
    except BlockedURL: ...        # refused by policy, nothing sent
    except RequestError: ...      # no response (DNS, connect, TLS, timeout, broken connection)
    else:
        response.ok               # False for a 3xx/4xx/5xx: a response, not an exception
    await client.aclose()

The exception tree is documented in ``dossier.net._errors`` and ``docs/outbound-http.md``.
"""

from __future__ import annotations

from dossier.net._client import REDIRECT_STATUSES, OutboundClient, OutboundResponse
from dossier.net._errors import (
    BlockedURL,
    ConnectError,
    DNSError,
    InvalidURL,
    OutboundError,
    ProtocolError,
    RequestError,
    RequestTimeout,
    ResponseError,
    ResponseTooLarge,
    TLSError,
    TooManyRedirects,
)
from dossier.net._policy import METADATA_ADDRESSES, OutboundPolicy, parse_ip, public_refusal
from dossier.net._resolver import ResolveHook

__all__ = [
    "METADATA_ADDRESSES",
    "REDIRECT_STATUSES",
    "BlockedURL",
    "ConnectError",
    "DNSError",
    "InvalidURL",
    "OutboundClient",
    "OutboundError",
    "OutboundPolicy",
    "OutboundResponse",
    "ProtocolError",
    "RequestError",
    "RequestTimeout",
    "ResolveHook",
    "ResponseError",
    "ResponseTooLarge",
    "TLSError",
    "TooManyRedirects",
    "parse_ip",
    "public_refusal",
]
