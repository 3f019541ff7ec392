"""A wire profile is one module and one registration: a profile defined here, and registered only here,
is delivered, redacted, tested and retried (then its endpoint disabled) with no change anywhere else."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.accounts.service import NewAccount
from dossier.errors import InvalidInput
from dossier.net import OutboundClient
from dossier.settings import Settings
from dossier.webhooks import service
from dossier.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from dossier.webhooks.profiles import EndpointOption, WebhookProfile, register_profile, unregister_profile
from dossier.webhooks.profiles.base import hmac_sha256_hex
from dossier.webhooks.retry import RetrySchedule
from tests.conftest import Receiver
from tests.helpers import eventually, running_worker
from tests.webhooks.conftest import TIME_SCALE

ACME_EVENT = "acme.ping"


class TokenOption(EndpointOption):
    def check(self, value: str) -> str:
        if not value.startswith("tok_"):
            raise ValueError(f"{self.field} must start with tok_")
        return value


class AcmeProfile(WebhookProfile):
    """A vendor of our own: its header, its secret, its option, its test event, its timeout and schedule."""

    name: ClassVar[str] = "acme-test"
    events: ClassVar[frozenset[str] | None] = frozenset({ACME_EVENT})
    timeout: ClassVar[float] = 2.0
    endpoint_options: ClassVar[tuple[EndpointOption, ...]] = (TokenOption(field="acme_token", key="token"),)
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-acme-signature", "x-acme-token"})
    default_schedule: ClassVar[RetrySchedule] = RetrySchedule(delays=(7.0, 11.0), jitter=0.0)

    def envelope(self, event_type: str, data: Mapping[str, Any], *, occurred_at: datetime) -> dict[str, Any]:
        return {"event": event_type, "acme": dict(data)}

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
        return {
            "Content-Type": "application/json",
            "X-Acme-Signature": hmac_sha256_hex(secret, body),
            "X-Acme-Token": options["token"],
            "X-Acme-Attempt": attempt_id,
        }

    def test_event(self, now: datetime) -> tuple[str, dict[str, Any]]:
        return ACME_EVENT, {"hello": "acme"}


@pytest.fixture
def acme() -> Iterator[AcmeProfile]:
    profile = AcmeProfile()
    register_profile(profile)
    yield profile
    unregister_profile(profile.name)


async def _endpoint(
    maker: async_sessionmaker[AsyncSession], account: NewAccount, http: OutboundClient, url: str
) -> service.NewSecret:
    async with maker() as session, session.begin():
        return await service.create_endpoint(
            session,
            account.account.id,
            url=url,
            profile="acme-test",
            events=None,
            http=http,
            options={"acme_token": "tok_123"},
        )


async def _deliveries(maker: async_sessionmaker[AsyncSession], endpoint_id: str) -> list[WebhookDelivery]:
    async with maker() as session:
        return list(
            await session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
        )


async def _attempts(maker: async_sessionmaker[AsyncSession], delivery_id: str) -> list[WebhookAttempt]:
    async with maker() as session:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.number)
        )
        return list(rows)


async def test_an_extra_profile_is_tested_delivered_redacted_and_retried(
    acme: AcmeProfile,
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    receiver.answers = [(500, {}, b"no"), (200, {}, b"ok")]
    created = await _endpoint(sessionmaker, account, http, receiver.url + "/acme")
    assert created.endpoint.events == [ACME_EVENT]  # everything the profile carries
    async with sessionmaker() as session, session.begin():
        delivery = await service.send_test_event(session, account.account.id, created.endpoint.id)
    async with running_worker(settings, sessionmaker, http):
        await receiver.wait_for(2)

        async def succeeded() -> WebhookDelivery | None:
            [found] = await _deliveries(sessionmaker, created.endpoint.id)
            return found if found.status == "succeeded" else None

        await eventually(succeeded, what="the retry succeeded")
    first, second = receiver.requests
    assert first.body == second.body and json.loads(first.body) == {
        "event": ACME_EVENT,
        "acme": {"hello": "acme"},
    }
    assert first.headers["x-acme-signature"] == hmac_sha256_hex(created.secret, first.body)
    assert first.headers["x-acme-token"] == "tok_123"
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.id
    attempts = await _attempts(sessionmaker, delivery.id)
    assert [a.outcome for a in attempts] == ["Error Response", "Success"]
    for attempt in attempts:
        assert attempt.request_headers["X-Acme-Signature"] == "[redacted]"
        assert attempt.request_headers["X-Acme-Token"] == "[redacted]"
        assert attempt.request_headers["webhook-signature"] == "[redacted]"
        assert attempt.request_headers["X-Acme-Attempt"] == attempt.attempt_id
    [gap] = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gap >= 7 * TIME_SCALE  # the profile's own schedule


async def test_an_extra_profile_s_schedule_gives_up_and_its_410_disables(
    acme: AcmeProfile,
    account: NewAccount,
    receiver: Receiver,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    receiver.answers = [(500, {}, b"no")]
    created = await _endpoint(sessionmaker, account, http, receiver.url)
    async with sessionmaker() as session, session.begin():
        [delivery_id] = await service.emit_event(session, account.account.id, ACME_EVENT, {"n": 1})
    async with running_worker(settings, sessionmaker, http):

        async def failed() -> WebhookDelivery | None:
            [found] = await _deliveries(sessionmaker, created.endpoint.id)
            return found if found.status == "failed" else None

        await eventually(failed, what="the schedule is exhausted")
        assert len(await _attempts(sessionmaker, delivery_id)) == 3  # 2 delays: 3 attempts
        receiver.answers = [(410, {}, b"gone")]
        async with sessionmaker() as session, session.begin():
            await service.emit_event(session, account.account.id, ACME_EVENT, {"n": 2})

        async def disabled() -> WebhookEndpoint | None:
            async with sessionmaker() as session:
                endpoint = await session.get(WebhookEndpoint, created.endpoint.id)
                return endpoint if endpoint is not None and not endpoint.active else None

        endpoint = await eventually(disabled, what="410 disables the endpoint")
    assert "410" in (endpoint.disabled_reason or "")


async def test_an_extra_profile_s_options_are_validated_by_it(
    acme: AcmeProfile,
    account: NewAccount,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: OutboundClient,
) -> None:
    async with sessionmaker() as session, session.begin():
        with pytest.raises(InvalidInput, match="must start with tok_"):
            await service.create_endpoint(
                session,
                account.account.id,
                url="http://127.0.0.1:9/",
                profile="acme-test",
                events=None,
                http=http,
                options={"acme_token": "nope"},
            )
        with pytest.raises(InvalidInput, match="only for endpoints of the acme-test profile"):
            await service.create_endpoint(
                session,
                account.account.id,
                url="http://127.0.0.1:9/",
                profile="standard",
                events=None,
                http=http,
                options={"acme_token": "tok_1"},
            )
