"""Enrichment's own events, decided here and handed to the webhook engine's generic emit.

``tool_output_ready`` (``002``) for every cell a tool column writes, and the Slack notice that a project's
enrichment finished. They are written in the caller's transaction (the outbox), right after the outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.projects.models import FINAL_STATUSES, Cell, Column, Project, Row
from dossier.webhooks import slack
from dossier.webhooks.profiles.kuration import TOOL_OUTPUT_READY, value_string
from dossier.webhooks.service import emit_events, subscribed_endpoints


async def emit_tool_outputs(session: AsyncSession, column: Column, row_pks: Sequence[int]) -> int:
    """``tool_output_ready`` for each written cell of ``column`` (``002``), in the caller's transaction.

    Called by the enrichment engine right after it writes outcomes. Nothing is written when no endpoint of
    the account subscribes. Also tells Slack when the project has no cell left to compute. Returns the number
    of events written.
    """
    if not row_pks:
        return 0
    account_id = await session.scalar(select(Project.account_id).where(Project.id == column.project_id))
    if account_id is None:
        return 0
    endpoints = await subscribed_endpoints(session, account_id, TOOL_OUTPUT_READY)
    count = 0
    if endpoints:
        rows = await session.execute(
            select(Row.id, Cell.value, Cell.status)
            .join(Row, Row.pk == Cell.row_pk)
            .where(Cell.column_id == column.id, Cell.row_pk.in_(list(row_pks)))
            .order_by(Cell.row_pk)
        )
        payloads = [
            {
                "project_id": column.project_id,
                "row_id": row_id,
                "col_id": column.id,
                "value": value_string(value),
                "status": status,
            }
            for row_id, value, status in rows
        ]
        await emit_events(session, account_id, TOOL_OUTPUT_READY, payloads, endpoints=endpoints)
        count = len(payloads)
    await _maybe_enrichment_finished(session, account_id, column.project_id)
    return count


async def _maybe_enrichment_finished(session: AsyncSession, account_id: str, project_id: str) -> None:
    if not await slack.wants_notice(session, account_id, slack.NOTICE_ENRICHMENT_FINISHED):
        return
    # Two chunks finishing at once would each see the other's cells still running and both stay silent.
    # Locking the project row serialises the checks: the second waits for the first to commit, and under READ
    # COMMITTED its next statement sees those cells final (SQLite serialises writers anyway).
    await session.execute(select(Project.id).where(Project.id == project_id).with_for_update())
    unfinished = await session.scalar(
        select(Cell.row_pk)
        .join(Row, Row.pk == Cell.row_pk)
        .where(Row.project_id == project_id, Cell.status.not_in(list(FINAL_STATUSES)))
        .limit(1)
    )
    if unfinished is not None:
        return
    name = await session.scalar(select(Project.name).where(Project.id == project_id))
    text = f"Enrichment of project {name!r} finished: every tool cell has a result."
    slack.queue_notice(session, account_id, ":white_check_mark: *Enrichment finished*", text)
