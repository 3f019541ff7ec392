"""Tables of webhook delivery: endpoints and their secrets, events, deliveries, attempts, Slack connections.

An event is what happened (written in the transaction of the change it reports); a delivery is that event
for one destination (a subscribed endpoint, or a job's one-off ``webhook_url``); an attempt is one HTTP try
of a delivery. Deliveries keep the rendered envelope so every retry and manual redelivery sends the same
body under the same ``webhook-id`` (the delivery id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from dossier.db.base import Base, BigIntPK, JSONType, new_hex_id, new_uuid, utcnow
from dossier.db.secrets import EncryptedJSON, EncryptedText

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
DELIVERY_STATUSES = (PENDING, SUCCEEDED, FAILED)

# Attempt outcomes, spelled as in 001's delivery history.
SUCCESS = "Success"
ERROR_REQUEST = "Error Request"
ERROR_RESPONSE = "Error Response"

SCHEDULED = "scheduled"
MANUAL = "manual"


def new_message_id() -> str:
    """A delivery id: ``msg_`` + 32 hex digits, the Standard Webhooks style of ``webhook-id``."""
    return "msg_" + new_hex_id()


class WebhookEndpoint(Base):
    """A URL of an account that receives the events it subscribes to, in one wire profile."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    profile: Mapped[str] = mapped_column(String(32))
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    # Profile options (kruncher's opted-in API key): credentials, so each value is encrypted at rest. Never
    # returned in full by the API.
    options: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON(), default=dict)
    # Start of the current run of failed attempts (None while healthy): drives auto-disable.
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    # When the account was told this endpoint is failing, once per failing run (so Slack is not flooded).
    failure_notified_at: Mapped[datetime | None] = mapped_column(default=None)
    last_delivery_at: Mapped[datetime | None] = mapped_column(default=None)
    # Static headers sent with every delivery (the profile's own and the Standard Webhooks ones win).
    headers: Mapped[dict[str, str] | None] = mapped_column(JSONType, default=None)
    # At most this many attempts per second to the endpoint, cluster-wide (WebhookRateLimit); None: no limit.
    rate_limit: Mapped[float | None] = mapped_column(Float, default=None)
    # The name of the `dossier listen` session this endpoint streams to (None: an HTTP endpoint).
    listener: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookRateLimit(Base):
    """The rate limit's state of an endpoint, shared by every worker process: the theoretical arrival time
    of the next attempt (GCRA). An attempt may go when ``tat`` is at most one second ahead of now."""

    __tablename__ = "webhook_rate_limits"

    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    tat: Mapped[datetime] = mapped_column()


class WebhookListenerSession(Base):
    """A connected (or recently connected) `dossier listen` stream of a listener endpoint."""

    __tablename__ = "webhook_listener_sessions"

    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    connection_id: Mapped[str] = mapped_column(String(40))
    # Refreshed by the stream while the CLI is connected; a listener unseen for a few seconds is gone.
    seen_at: Mapped[datetime] = mapped_column()


class WebhookListenExchange(Base):
    """One attempt to a listener endpoint: the request the stream hands to the CLI, and the answer the
    CLI got from the local URL (written back by the CLI, read by the dispatcher waiting for it)."""

    __tablename__ = "webhook_listen_exchanges"

    attempt_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(100))
    request_headers: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The body exactly as sent (every profile's body is ASCII JSON).
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    # Set when the CLI could not reach the local URL (no response): the attempt is an ``Error Request``.
    error_text: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)


class WebhookSecret(Base):
    """A signing secret of an endpoint. ``expires_at`` None = current; else a rotated-out one in its grace."""

    __tablename__ = "webhook_secrets"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    # Encrypted at rest (we sign with it, so it is not hashed; like accounts.webhook_secret).
    value: Mapped[str] = mapped_column(EncryptedText())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookEvent(Base):
    """Something that happened to an account, with its data (the profile builds the envelope from it)."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_account_created", "account_id", "created_at"),
        # Retention walks events by age.
        Index("ix_webhook_events_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one destination; its id is the ``webhook-id`` on every attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        Index("ix_webhook_deliveries_endpoint_status", "endpoint_id", "status", "created_at"),
        Index("ix_webhook_deliveries_account_created", "account_id", "created_at"),
        # Retention walks finished deliveries by age.
        Index("ix_webhook_deliveries_status_created", "status", "created_at"),
        # The retry sweep of a destination: its pending deliveries by due time.
        Index(
            "ix_webhook_deliveries_retry_due",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_message_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(100))
    # Exactly one of endpoint_id (a configured endpoint) and target_url (a job's one-off webhook_url).
    endpoint_id: Mapped[str | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), default=None
    )
    target_url: Mapped[str | None] = mapped_column(Text, default=None)
    profile: Mapped[str] = mapped_column(String(32))
    # The wire object (the profile's envelope), built once so retries send identical bytes. Plain JSON, not
    # JSONB, on PostgreSQL: JSONB reorders keys, and the documented key order is part of what receivers see.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON(none_as_null=True))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts made before the current round: 0, or the count when it was last redelivered by hand. The
    # retry schedule counts from here, so a redelivered message gets the whole schedule again.
    round_start: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The current round was started by hand (a redelivery): its first attempt's trigger is ``manual``.
    redelivered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookAttempt(Base):
    """One HTTP try of a delivery, as it was sent (secrets excluded) and as it was answered."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    attempt_id: Mapped[str] = mapped_column(String(40))
    trigger: Mapped[str] = mapped_column(String(16), default=SCHEDULED)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    url: Mapped[str] = mapped_column(Text)
    request_headers: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error_class: Mapped[str | None] = mapped_column(String(100), default=None)
    error_text: Mapped[str | None] = mapped_column(Text, default=None)
    outcome: Mapped[str] = mapped_column(String(20))
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)


class SlackConnection(Base):
    """An account's Slack incoming webhook and the notices it wants there."""

    __tablename__ = "slack_connections"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    # The incoming-webhook URL is itself a credential (anyone holding it can post): never returned in full,
    # encrypted at rest.
    url: Mapped[str] = mapped_column(EncryptedText())
    notices: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
