"""The exception tree of outbound HTTP.

    OutboundError                 anything this module raises on purpose
    ├── BlockedURL                the policy refused the URL; nothing was sent (also an InvalidInput: a 422)
    │   └── InvalidURL            the URL is not a usable absolute http(s) URL at all
    ├── RequestError              no HTTP response was obtained ("Error Request" in webhook history)
    │   ├── DNSError              the host name does not resolve
    │   ├── ConnectError          no TCP connection (refused, unreachable, reset while connecting)
    │   ├── TLSError              TLS handshake or certificate verification failed
    │   ├── RequestTimeout        no complete response within the time allowed
    │   └── ProtocolError         the peer closed the connection or sent something that is not HTTP
    └── ResponseError             a response arrived but cannot be returned as asked
        ├── ResponseTooLarge      the body is over max_bytes and the caller asked for an error, not truncation
        └── TooManyRedirects      more redirects than allowed while following them

A response with any status code (a 404, a 500, a 302 when redirects are not followed) is NOT an exception:
``OutboundClient.request`` returns it. That is the line between "Error Request" and "Error Response".
"""

from __future__ import annotations

from dossier.errors import InvalidInput


class OutboundError(Exception):
    """Base of every error raised by ``dossier.net``; ``message`` is readable by an end user."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url

    def __str__(self) -> str:
        return self.message


class BlockedURL(OutboundError, InvalidInput):
    """The outbound policy refuses this URL or the address it resolves to; no request was sent.

    It is also a ``dossier.errors.InvalidInput``, so an API route that validates a user's URL and lets this
    propagate answers 422 with the message, which says what is wrong and how to allow it.
    """


class InvalidURL(BlockedURL):
    """The URL is malformed: not absolute, not http(s), no host, credentials in it, a bad host or port."""


class RequestError(OutboundError):
    """No HTTP response was obtained. Webhook history records these as "Error Request"."""


class DNSError(RequestError):
    """The host name could not be resolved (it does not exist, or DNS failed)."""


class ConnectError(RequestError):
    """A TCP connection to the resolved address could not be established."""


class TLSError(RequestError):
    """The TLS handshake failed: an invalid or untrusted certificate, a name mismatch, a protocol error."""


class RequestTimeout(RequestError):
    """No complete response within the time allowed (connecting, waiting for headers, or reading the body)."""


class ProtocolError(RequestError):
    """The connection broke or the peer answered with something that is not valid HTTP."""


class ResponseError(OutboundError):
    """A response arrived but cannot be returned as the caller asked."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message, url=url)
        self.status = status


class ResponseTooLarge(ResponseError):
    """The body is larger than ``max_bytes`` and the caller asked for ``on_too_large="raise"``."""


class TooManyRedirects(ResponseError):
    """Following redirects went past the allowed number of hops."""
