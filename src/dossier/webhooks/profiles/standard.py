"""``standard``: Standard Webhooks 1.0 and nothing else; carries any event.

Body: ``{"type", "timestamp", "data"}`` (the envelope the Standard Webhooks spec recommends). The signature
headers are added by :meth:`WebhookProfile.render` for every profile, so this one adds only the basics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, create_model

from dossier.webhooks.profiles.base import (
    ENGINE_EVENTS,
    USER_AGENT,
    EventType,
    WebhookProfile,
    iso_z,
    literal,
)


class StandardProfile(WebhookProfile):
    """``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64>``; 15 s; default schedule."""

    name: ClassVar[str] = "standard"
    events: ClassVar[frozenset[str] | None] = None
    event_types: ClassVar[tuple[EventType, ...]] = ENGINE_EVENTS
    timeout: ClassVar[float] = 15.0

    def payload_model(self, event: EventType) -> type[BaseModel]:
        """``{type, timestamp, data}`` around the event's data."""
        return create_model(
            "Standard" + "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", event.name) if p),
            __config__=ConfigDict(extra="forbid"),
            type=(literal(event.name), ...),
            timestamp=(str, Field(description="ISO 8601, UTC, microseconds (Z).")),
            data=(event.data, ...),
        )

    def envelope(self, event_type: str, data: Mapping[str, Any], *, occurred_at: datetime) -> dict[str, Any]:
        """``{"type": event_type, "timestamp": "...Z" (microseconds), "data": data}``."""
        return {"type": event_type, "timestamp": iso_z(occurred_at, micro=True), "data": dict(data)}

    def check_payload(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """The standard envelope names the event ``type``, not ``event``."""
        if payload.get("type") != event_type:
            raise ValueError(f"standard: payload['type'] must be {event_type!r}")

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
        """No vendor signature: only ``Content-Type`` and ``User-Agent``."""
        return {"Content-Type": "application/json", "User-Agent": USER_AGENT}
