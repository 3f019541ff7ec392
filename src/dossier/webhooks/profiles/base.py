"""The profile interface: what every wire profile decides, and the parts all of them share.

A profile turns an event into the exact bytes and headers of one HTTP attempt. It is pure: no clock, no
randomness, no network. Everything that varies per attempt (the attempt id, the time, the secrets) comes
in as an argument, so the dispatcher can record precisely what it sent and tests can pin every byte.

Two layers, on purpose:
- :meth:`WebhookProfile.envelope` builds the wire object (a dict) from an event's data once per delivery;
  the dispatcher stores it, so every retry and manual redelivery sends the same body.
- :meth:`WebhookProfile.render` serialises that object and signs it for one attempt.

A profile module holds everything about its wire, and nothing outside it branches on a profile's name: the
rendering, the headers that carry secrets (redacted in the history), the test event an account can send,
the endpoint options it understands and how they are validated, its timeout and its retry schedule.

Every profile adds the Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) to its documented ones, because some documented ids are unique per attempt
(``X-Kernel-Delivery``) and receivers need a stable id to deduplicate on and a timestamped signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from dossier.db.base import as_utc
from dossier.webhooks.retry import DEFAULT_SCHEDULE, RetrySchedule

SECRET_PREFIX = "whsec_"
USER_AGENT = "Dossier-Webhook/1.0"
#: The Standard Webhooks signature header every profile sends (see :meth:`WebhookProfile.render`).
STANDARD_SIGNATURE_HEADER = "webhook-signature"
#: The event of a test delivery, for profiles that carry any event.
TEST_EVENT = "webhook.test"
#: Sent by the engine when it disables an endpoint (see ``dispatch``).
ENDPOINT_DISABLED_EVENT = "webhook_endpoint.disabled"
#: The events the engine itself emits, whatever the profile.
ENGINE_EVENT_NAMES = frozenset({TEST_EVENT, ENDPOINT_DISABLED_EVENT})
REDACTED = "[redacted]"
#: Headers an endpoint's static headers may never set: the Standard Webhooks ones and those of HTTP itself.
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        STANDARD_SIGNATURE_HEADER,
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "host",
        "connection",
        "user-agent",
        "te",
        "upgrade",
        "trailer",
        "keep-alive",
        "proxy-authorization",
        "expect",
    }
)


@dataclass(frozen=True)
class EndpointOption:
    """An option an endpoint of a profile can set: its name in the API (``field``), the key it is stored
    and rendered under (``key``). :meth:`check` validates a value given through the API (a ValueError's
    message is shown to the caller)."""

    field: str
    key: str
    #: The value is a credential: never shown back by the API, only whether it is set.
    secret: bool = False

    def check(self, value: Any) -> str:
        """The value to store; by default a non-empty single line, surrounding spaces removed."""
        if not isinstance(value, str):
            raise ValueError(f"{self.field} must be a string")
        text: str = value.strip()
        if not text or any(ch in text for ch in "\r\n\0"):
            raise ValueError(f"{self.field} must be a non-empty single-line value")
        return text


@dataclass(frozen=True)
class EventType:
    """An event type a profile defines, for the catalogue (``GET /webhooks/event-types``).

    ``data`` is the model of the event's data (what is emitted, and what the ``standard`` profile wraps in
    its envelope); ``example`` is example data for it. The payload each profile renders is described by
    :meth:`WebhookProfile.payload_model`.
    """

    name: str
    description: str
    data: type[BaseModel]
    example: Mapping[str, Any]


class TestEventData(BaseModel):
    """``webhook.test``: a test delivery sent from the API or the dashboard."""

    model_config = ConfigDict(extra="forbid")

    message: str


class EndpointDisabledData(BaseModel):
    """``webhook_endpoint.disabled``: one of the account's endpoints was disabled."""

    model_config = ConfigDict(extra="forbid")

    endpoint_id: str
    url: str
    reason: str
    disabled_at: str = Field(description="ISO 8601 time, with zone.")


#: Events of the engine itself, carried by profiles that carry any event.
ENGINE_EVENTS = (
    EventType(
        name=TEST_EVENT,
        description="A test delivery (POST /webhooks/{id}/test) to a standard-profile endpoint.",
        data=TestEventData,
        example={"message": "a test event from Dossier"},
    ),
    EventType(
        name="webhook_endpoint.disabled",
        description="An endpoint of the account was disabled (it answered 410, or failed for days); sent "
        "to the account's other endpoints.",
        data=EndpointDisabledData,
        example={
            "endpoint_id": "00000000-0000-4000-8000-000000000000",
            "url": "https://example.com/webhooks",
            "reason": "the endpoint answered 410 Gone",
            "disabled_at": "2026-06-08T15:30:00+00:00",
        },
    ),
)


@dataclass(frozen=True)
class SecretVersion:
    """One signing secret of an endpoint.

    ``expires_at`` is None for the current secret; a rotated-out secret keeps signing the Standard Webhooks
    header until then (its grace period).
    """

    value: str
    expires_at: datetime | None = None

    def active_at(self, when: datetime) -> bool:
        """Whether this secret may still sign at ``when``."""
        return self.expires_at is None or as_utc(self.expires_at) > as_utc(when)


@dataclass(frozen=True)
class RenderedRequest:
    """Body and headers of one HTTP attempt, exactly as they go on the wire (the method is always POST)."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def literal(value: str) -> Any:
    """``Literal[value]`` for a value known at run time (a JSON Schema ``const``)."""
    return Literal[value]


def _model_name(profile: str, event: str) -> str:
    """``KurationToolOutputReady``-style names for generated payload models."""
    words = re.split(r"[^A-Za-z0-9]+", f"{profile} {event}")
    return "".join(word[:1].upper() + word[1:] for word in words if word)


def iso_z(when: datetime, *, micro: bool = False) -> str:
    """``2026-06-08T15:30:00Z`` (or with microseconds), the style of ``003`` and ``001``."""
    text = as_utc(when).replace(tzinfo=None).isoformat(timespec="microseconds" if micro else "seconds")
    return text + "Z"


def compact_json(payload: Mapping[str, Any]) -> bytes:
    """``json.dumps(payload, separators=(",", ":")).encode()``: the bytes every profile sends.

    ``ensure_ascii`` stays True so the body is ASCII and a receiver that re-serialises with the default
    settings (``002``'s canonical JSON) gets the very same bytes. NaN and Infinity are refused: they are not
    JSON, and receivers in other languages reject them.
    """
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    """The vendor scheme: hex HMAC-SHA256 keyed on the secret string's UTF-8 bytes (``002``, ``003``)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks key: the base64-decoded part after ``whsec_``."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret is not whsec_ + base64") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` per Standard Webhooks 1.0."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _check_header_value(name: str, value: str) -> str:
    # A CR or LF in a header value would let data from an event split the request (header injection).
    if not value or any(ch in value for ch in "\r\n\0") or value != value.strip():
        raise ValueError(f"{name} must be a non-empty single-line value without surrounding spaces")
    return value


class WebhookProfile(ABC):
    """One wire format. Subclasses set the class attributes and implement the two abstract methods.

    Instances are immutable; :meth:`with_schedule` returns a copy with another retry schedule (a setting, or
    a compressed one in tests).
    """

    name: ClassVar[str]
    #: Event types this profile carries; None means any.
    events: ClassVar[frozenset[str] | None]
    #: Seconds the receiver has to answer one attempt.
    timeout: ClassVar[float]
    #: Options an endpoint of this profile can set (see :class:`EndpointOption`).
    endpoint_options: ClassVar[tuple[EndpointOption, ...]] = ()
    #: Vendor headers whose values carry a secret (lower case); redacted in the delivery history, with the
    #: Standard Webhooks signature every profile sends.
    secret_headers: ClassVar[frozenset[str]] = frozenset()
    default_schedule: ClassVar[RetrySchedule] = DEFAULT_SCHEDULE
    #: Whether a one-off URL (a job's ``webhook_url``) receives the events this profile carries in this
    #: profile unless the caller names one (else such a URL gets ``standard``).
    serves_one_off_urls: ClassVar[bool] = False
    #: Whether the ``webhook_retry_schedule`` setting replaces :attr:`default_schedule` (False when the
    #: profile's document fixes its schedule).
    schedule_configurable: ClassVar[bool] = True
    #: The event types this profile's document defines (the catalogue; see :class:`EventType`).
    event_types: ClassVar[tuple[EventType, ...]] = ()

    def __init__(self, schedule: RetrySchedule | None = None) -> None:
        self._schedule = schedule or self.default_schedule

    @property
    def schedule(self) -> RetrySchedule:
        """The retry schedule deliveries of this profile follow."""
        return self._schedule

    def with_schedule(self, schedule: RetrySchedule) -> WebhookProfile:
        """A copy of this profile that retries on ``schedule``."""
        return type(self)(schedule)

    def __repr__(self) -> str:
        attempts = self.schedule.max_attempts
        return f"<{type(self).__name__} {self.name!r} timeout={self.timeout}s attempts={attempts}>"

    @property
    def option_names(self) -> frozenset[str]:
        """Keys ``render(options=...)`` understands; anything else is a caller bug and raises."""
        return frozenset(option.key for option in self.endpoint_options)

    def redact(
        self, headers: Mapping[str, str], *, custom: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Headers as recorded in the history: those that carry secrets replaced, the rest as sent. The
        endpoint's ``custom`` static headers are redacted too (they often carry a token)."""
        hidden = self.secret_headers | {STANDARD_SIGNATURE_HEADER} | {k.lower() for k in custom or {}}
        return {k: (REDACTED if k.lower() in hidden else v) for k, v in headers.items()}

    def accepts(self, event_type: str, data: Mapping[str, Any], options: Mapping[str, str]) -> bool:
        """Whether an endpoint with these options wants this event (a filter option); by default, yes."""
        return True

    def option_out(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The endpoint's options of this profile as the API shows them (secret ones as a bool)."""
        shown: dict[str, Any] = {}
        for option in self.endpoint_options:
            value = options.get(option.key)
            shown[option.field] = bool(value) if option.secret else value
        return shown

    def test_event(self, now: datetime) -> tuple[str, dict[str, Any]]:
        """The event type and data of a test delivery (what an account sends to try its endpoint)."""
        return TEST_EVENT, {"message": "a test event from Dossier"}

    def payload_model(self, event: EventType) -> type[BaseModel]:
        """The model of the body this profile renders for ``event`` (its JSON Schema is the catalogue's).

        By default ``{"event": <name>, "data": <event data>}``; profiles with another envelope override it.
        """
        return create_model(
            _model_name(self.name, event.name),
            __config__=ConfigDict(extra="forbid"),
            event=(literal(event.name), ...),
            data=(event.data, ...),
        )

    def carries(self, event_type: str) -> bool:
        """Whether an endpoint of this profile can subscribe to ``event_type``."""
        return self.events is None or event_type in self.events

    @abstractmethod
    def envelope(self, event_type: str, data: Mapping[str, Any], *, occurred_at: datetime) -> dict[str, Any]:
        """The documented wire object for an event: built once per delivery and stored; retries resend it."""

    @abstractmethod
    def vendor_headers(
        self,
        event_type: str,
        body: bytes,
        *,
        delivery_id: str,
        attempt_id: str,
        secret: str,
        options: Mapping[str, str],
    ) -> dict[str, str]:
        """The headers the profile's own document specifies, signature included (current secret only)."""

    def check_payload(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """Refuse a payload that is not this profile's envelope for ``event_type`` (a dispatcher mix-up)."""
        if payload.get("event") != event_type:
            raise ValueError(f"{self.name}: payload['event'] must be {event_type!r}")

    def serialize(self, payload: Mapping[str, Any]) -> bytes:
        """The body bytes for a payload; compact, ASCII JSON for every profile (see :func:`compact_json`)."""
        return compact_json(payload)

    def render(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        delivery_id: str,
        attempt_id: str,
        timestamp: datetime,
        secrets: Sequence[SecretVersion],
        options: Mapping[str, str] | None = None,
        custom_headers: Mapping[str, str] | None = None,
    ) -> RenderedRequest:
        """The exact body and headers of one attempt.

        ``payload`` is what :meth:`envelope` returned; ``delivery_id`` is stable across retries and manual
        redeliveries (it is the ``webhook-id``); ``attempt_id`` is unique per attempt; ``timestamp`` is when
        this attempt is sent; ``secrets`` lists the current secret first, then rotated-out ones. The vendor
        signature uses the current secret only (the documented headers hold one value); the Standard
        Webhooks header carries one ``v1`` signature per secret still active at ``timestamp``, so receivers
        that have not switched yet keep verifying during the grace period.
        """
        if not self.carries(event_type):
            raise ValueError(f"profile {self.name!r} does not carry {event_type!r}")
        self.check_payload(event_type, payload)
        opts = dict(options or {})
        unknown = set(opts) - self.option_names
        if unknown:
            raise ValueError(f"profile {self.name!r} has no option(s) {sorted(unknown)}")
        for key, value in opts.items():
            _check_header_value(f"option {key}", value)
        _check_header_value("delivery_id", delivery_id)
        _check_header_value("attempt_id", attempt_id)
        if not secrets:
            raise ValueError("at least one signing secret is required")
        current = secrets[0]
        if current.expires_at is not None:
            raise ValueError("the first secret must be the current one (no expiry)")
        signing = [s.value for s in secrets if s.active_at(timestamp)]

        body = self.serialize(payload)
        headers = self.vendor_headers(
            event_type,
            body,
            delivery_id=delivery_id,
            attempt_id=attempt_id,
            secret=current.value,
            options=opts,
        )
        seconds = math.floor(as_utc(timestamp).timestamp())
        headers["webhook-id"] = delivery_id
        headers["webhook-timestamp"] = str(seconds)
        headers[STANDARD_SIGNATURE_HEADER] = " ".join(
            standard_signature(secret, delivery_id, seconds, body) for secret in signing
        )
        if custom_headers:
            # The endpoint's static headers never replace what the profile sends (signatures included).
            taken = {name.lower() for name in headers}
            extra = {}
            for name, value in custom_headers.items():
                if name.lower() in taken or name.lower() in RESERVED_HEADERS:
                    continue
                extra[name] = _check_header_value(f"header {name}", value)
            headers = {**headers, **extra}
        return RenderedRequest(body=body, headers=headers)
