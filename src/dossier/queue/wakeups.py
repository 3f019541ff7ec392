"""Wake-ups: a commit that enqueued tells idle workers at once, instead of at their next poll.

A session that enqueued (``mark_enqueued``) sends ``NOTIFY dossier_tasks`` inside its own transaction on
PostgreSQL (delivered by the server on commit only), and signals the workers of this process after commit on
every backend. Workers on PostgreSQL ``listen``. Both only shorten the wait; workers poll regardless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger("dossier.queue")

NOTIFY_CHANNEL = "dossier_tasks"
# Set in ``session.info`` by enqueue: this transaction added tasks, so its commit should wake workers.
ENQUEUED_FLAG = "dossier_enqueued"


def mark_enqueued(session: AsyncSession) -> None:
    """This session's transaction made tasks claimable: its commit wakes the workers."""
    session.info[ENQUEUED_FLAG] = True


_local_wakeups: set[Callable[[], None]] = set()


def add_local_wakeup(callback: Callable[[], None]) -> None:
    """Call ``callback`` after every commit in this process that enqueued (it must be thread-safe)."""
    _local_wakeups.add(callback)


def remove_local_wakeup(callback: Callable[[], None]) -> None:
    """Stop calling ``callback`` (a worker that stopped)."""
    _local_wakeups.discard(callback)


@event.listens_for(Session, "before_commit")
def _notify_in_transaction(session: Session) -> None:
    # NOTIFY is transactional: PostgreSQL delivers it when this transaction commits and drops it on rollback,
    # which is exactly "wake workers when the tasks become visible". Identical notifications in one
    # transaction are folded into one by the server. A savepoint's release is not the commit: wait for the
    # root transaction.
    if (
        session.info.get(ENQUEUED_FLAG)
        and not session.in_nested_transaction()
        and session.get_bind().dialect.name == "postgresql"
    ):
        session.connection().exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")


@event.listens_for(Session, "after_commit")
def _signal_local_workers(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released; the tasks are not visible until the root transaction commits
    if session.info.pop(ENQUEUED_FLAG, None):
        for callback in list(_local_wakeups):
            try:
                callback()
            except Exception:  # a wake-up is an optimisation; never fail the caller's commit over it
                log.exception("local wake-up failed")


@event.listens_for(Session, "after_transaction_end")
def _forget_when_the_transaction_ends(session: Session, transaction: SessionTransaction) -> None:
    # After a root rollback the tasks do not exist: a later transaction of this session must not signal for
    # them. (A savepoint rollback keeps the flag: the root may still commit other tasks; at worst one spurious
    # wake-up.)
    if transaction.parent is None:
        session.info.pop(ENQUEUED_FLAG, None)


async def listen(
    engine: AsyncEngine,
    wake: Callable[[], None],
    stop: asyncio.Event,
    listening: asyncio.Event,
    *,
    worker_id: str,
) -> None:
    """LISTEN on a dedicated pooled connection and call ``wake`` on every notification, until ``stop``;
    reconnect when it drops (polling covers the gap). ``listening`` is set once it listens (or failed)."""
    backoff = 0.5
    while not stop.is_set():
        lost = asyncio.Event()
        conn = None
        try:
            conn = await engine.connect()
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(NOTIFY_CHANNEL, lambda *_: wake())
            driver.add_termination_listener(lambda *_, lost=lost: lost.set())
            listening.set()
            wake()  # whatever was enqueued while we were not listening
            backoff = 0.5
            await wait_any([lost, stop], within=None)
            if lost.is_set():
                log.warning("LISTEN connection lost; reconnecting", extra={"worker_id": worker_id})
        except Exception:
            log.warning(
                "LISTEN failed; polling until it works",
                extra={"worker_id": worker_id},
                exc_info=True,
            )
        finally:
            listening.set()
            if conn is not None:
                # Never hand a LISTENing connection back to the pool.
                await quietly(conn.invalidate())
                await quietly(conn.close())
        if not stop.is_set():
            await wait_any([stop], within=backoff)
            backoff = min(backoff * 2, 30.0)


async def wait_any(events: Sequence[asyncio.Event], within: float | None) -> None:
    """Return when any of ``events`` is set or after ``within`` seconds (None: no limit)."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        log.debug("ignored error while closing", exc_info=True)
