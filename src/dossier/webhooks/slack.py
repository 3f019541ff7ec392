"""Slack: an account's incoming webhook, the notices it picked, and queueing messages to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dossier.db.base import utcnow
from dossier.errors import InvalidInput, NotFound
from dossier.net import OutboundClient
from dossier.queue.service import enqueue
from dossier.webhooks.models import SlackConnection
from dossier.webhooks.service import validate_url

SLACK_TASK = "webhooks.slack"
# Slack notices an account can pick.
NOTICE_ENRICHMENT_FINISHED = "enrichment_finished"
NOTICE_ENDPOINT_FAILING = "endpoint_failing"
NOTICE_ENDPOINT_DISABLED = "endpoint_disabled"
NOTICES = (NOTICE_ENRICHMENT_FINISHED, NOTICE_ENDPOINT_FAILING, NOTICE_ENDPOINT_DISABLED)


def _blocks(title: str, text: str) -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
        {"type": "section", "text": {"type": "plain_text", "text": text}},
    ]


def queue_slack(session: AsyncSession, account_id: str, text: str, blocks: list[dict[str, Any]]) -> None:
    """Queue a Slack message (``text`` is the fallback shown in notifications, ``blocks`` the layout)."""
    enqueue(session, SLACK_TASK, {"account_id": account_id, "text": text, "blocks": blocks})


async def wants_notice(session: AsyncSession, account_id: str, notice: str) -> bool:
    """Whether the account connected Slack and picked ``notice``."""
    connection = await session.get(SlackConnection, account_id)
    return connection is not None and notice in connection.notices


def queue_notice(session: AsyncSession, account_id: str, title: str, text: str) -> None:
    """Queue a notice: ``title`` in bold above ``text`` (which is also the notification's fallback)."""
    queue_slack(session, account_id, text, _blocks(title, text))


async def notify_slack(session: AsyncSession, account_id: str, notice: str, text: str, title: str) -> bool:
    """Queue a Slack message if the account connected Slack and picked ``notice``; returns whether it did."""
    if not await wants_notice(session, account_id, notice):
        return False
    queue_notice(session, account_id, title, text)
    return True


def _check_notices(notices: Sequence[str] | None) -> list[str]:
    if notices is None:
        return list(NOTICES)
    unknown = [n for n in notices if n not in NOTICES]
    if unknown:
        raise InvalidInput(f"unknown Slack notice(s) {unknown}; choose from: {', '.join(NOTICES)}")
    return list(dict.fromkeys(notices))


async def connect_slack(
    session: AsyncSession,
    account_id: str,
    *,
    url: str,
    notices: Sequence[str] | None,
    http: OutboundClient,
) -> SlackConnection:
    """Connect (or replace) the account's Slack incoming webhook, validated by the outbound policy."""
    checked = _check_notices(notices)
    url = await validate_url(http, url)
    now = utcnow()
    connection = await session.get(SlackConnection, account_id)
    if connection is None:
        connection = SlackConnection(account_id=account_id, url=url, notices=checked, created_at=now)
        session.add(connection)
    else:
        connection.url = url
        connection.notices = checked
    connection.updated_at = now
    await session.flush()
    return connection


async def get_slack(session: AsyncSession, account_id: str) -> SlackConnection:
    """The account's Slack connection; NotFound when Slack is not connected."""
    connection = await session.get(SlackConnection, account_id)
    if connection is None:
        raise NotFound("Slack is not connected")
    return connection


async def update_slack_notices(
    session: AsyncSession, account_id: str, notices: Sequence[str]
) -> SlackConnection:
    """Choose which notices go to Slack."""
    connection = await get_slack(session, account_id)
    connection.notices = _check_notices(notices)
    connection.updated_at = utcnow()
    await session.flush()
    return connection


async def disconnect_slack(session: AsyncSession, account_id: str) -> None:
    """Forget the account's Slack connection."""
    connection = await get_slack(session, account_id)
    await session.delete(connection)
    await session.flush()


async def send_test_message(session: AsyncSession, account_id: str) -> SlackConnection:
    """Queue a test message to the connected Slack webhook; NotFound when Slack is not connected."""
    connection = await get_slack(session, account_id)
    queue_notice(
        session,
        account_id,
        "*Dossier test message*",
        "Slack is connected: Dossier will post the notices you picked here.",
    )
    return connection
