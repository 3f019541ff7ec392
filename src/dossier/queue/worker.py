"""The worker: claim due tasks in batches, run their handlers concurrently, keep their leases alive.

Every state change of a task is one short statement of the store, guarded by ownership, so a worker whose
lease was taken over can never overwrite the new owner's state (see ``store``). Delivery is at-least-once:
a task runs again if its worker dies after the handler's work committed but before the task was deleted,
so handlers must be idempotent.

Time is the workers' clocks (UTC); machines sharing one PostgreSQL should run NTP, and the lease should be
much longer than any clock skew.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from dossier import metrics, tracing
from dossier.db.base import utcnow
from dossier.queue.handlers import PermanentFailure, RetryLater, Snooze, TaskRun, WorkerResources, get_kind
from dossier.queue.store import (
    Claimed,
    Maker,
    beat,
    claim_batch,
    complete,
    extend_leases,
    fail,
    forget,
    next_wakeup_at,
    release,
    reschedule,
    snooze,
)
from dossier.queue.wakeups import add_local_wakeup, listen, remove_local_wakeup, wait_any

log = logging.getLogger("dossier.queue")

MAX_KEPT_ERRORS = 20
MAX_MESSAGE_CHARS = 2000
# Least time between two claims of a busy worker (seconds): claims gather the slots freed meanwhile.
CLAIM_COOLDOWN = 0.005


def default_worker_id() -> str:
    """host:pid:random, unique per worker process even when pids repeat across machines or restarts."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


# --- the worker -----------------------------------------------------------------------------------------


class Worker:
    """Runs registered task handlers for due tasks until its stop event is set.

    ``concurrency`` handlers run at once; claims take at most ``batch_size`` tasks per statement. Idle, it
    waits for a wake-up (NOTIFY on PostgreSQL, an in-process signal after a local commit) or at most
    ``poll_interval`` seconds, less when a delayed task or an expiring lease is known to come due sooner.
    """

    def __init__(
        self,
        resources: WorkerResources,
        *,
        concurrency: int,
        worker_id: str | None = None,
        poll_interval: float,
        lease_seconds: float,
        heartbeat_interval: float,
        batch_size: int,
        shutdown_grace: float = 20.0,
    ) -> None:
        if concurrency < 1 or batch_size < 1:
            raise ValueError("concurrency and batch_size must be at least 1")
        if poll_interval <= 0 or lease_seconds <= 0 or heartbeat_interval <= 0:
            raise ValueError("poll_interval, lease_seconds and heartbeat_interval must be positive")
        self.resources = resources
        self.maker: Maker = resources.sessionmaker
        self.concurrency = concurrency
        self.worker_id = (worker_id or default_worker_id())[:100]
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        # A lease must survive a late heartbeat or two; renewing three times per lease leaves that margin.
        self.heartbeat_interval = min(heartbeat_interval, lease_seconds / 3)
        self.batch_size = batch_size
        self.shutdown_grace = shutdown_grace
        # Set once the worker listens (PostgreSQL) and made its first claim: tests and callers may wait on it.
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._running: dict[tuple[int, int], tuple[asyncio.Task[None], Claimed]] = {}
        self._interrupted: list[Claimed] = []

    @classmethod
    def from_settings(
        cls, resources: WorkerResources, *, concurrency: int | None = None, worker_id: str | None = None
    ) -> Worker:
        """A worker configured by the ``DOSSIER_WORKER_*`` settings."""
        s = resources.settings
        return cls(
            resources,
            concurrency=concurrency or s.worker_concurrency,
            worker_id=worker_id,
            poll_interval=s.worker_poll_interval,
            lease_seconds=s.worker_lease_seconds,
            heartbeat_interval=s.worker_heartbeat_interval,
            batch_size=s.worker_batch_size,
            shutdown_grace=s.worker_shutdown_grace,
        )

    @property
    def in_hand(self) -> int:
        """How many tasks this worker is running now."""
        return len(self._running)

    def wake(self) -> None:
        """Look for due tasks now instead of at the next poll (thread-unsafe; use from the worker's loop)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run tasks until ``stop`` is set; then finish or release what is in hand and return."""
        loop = asyncio.get_running_loop()

        # Commits happen on this loop's thread in practice, but threadsafe costs nothing and is always right.
        def local_wakeup() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        add_local_wakeup(local_wakeup)
        helpers = [
            asyncio.create_task(self._relay_stop(stop), name="worker-stop"),
            asyncio.create_task(self._heartbeats(), name="worker-heartbeat"),
            asyncio.create_task(self._presence(), name="worker-presence"),
        ]
        engine: AsyncEngine | None = self.maker.kw.get("bind")
        if engine is not None and engine.dialect.name == "postgresql":
            listening = asyncio.Event()
            helpers.append(
                asyncio.create_task(
                    listen(engine, self._wake.set, stop, listening, worker_id=self.worker_id),
                    name="worker-listen",
                )
            )
            await wait_any([listening, stop], within=30)
        log.info(
            "worker started",
            extra={"worker_id": self.worker_id, "concurrency": self.concurrency, "pid": os.getpid()},
        )
        try:
            await self._loop(stop)
        finally:
            remove_local_wakeup(local_wakeup)
            try:
                await self._drain()
            finally:
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                try:
                    await forget(self.maker, self.worker_id)
                except Exception:
                    log.warning("removing the worker's presence failed", extra={"worker_id": self.worker_id})
                log.info("worker stopped", extra={"worker_id": self.worker_id})

    async def _loop(self, stop: asyncio.Event) -> None:
        last_claim = -CLAIM_COOLDOWN
        while not stop.is_set():
            free = self.concurrency - len(self._running)
            # Busy, every finishing task wakes us: claim at most once per cooldown, for all the slots freed
            # meanwhile, rather than one statement per finished task.
            pause = last_claim + CLAIM_COOLDOWN - time.monotonic()
            if free > 0 and pause > 0:
                await wait_any([stop], within=pause)
                free = self.concurrency - len(self._running)
            # Cleared before looking, so a wake-up that arrives while we claim is not lost.
            self._wake.clear()
            timeout = self.poll_interval
            if free > 0 and not stop.is_set():
                last_claim = time.monotonic()
                want = min(free, self.batch_size)
                now = utcnow()
                try:
                    claims = await claim_batch(
                        self.maker,
                        worker_id=self.worker_id,
                        limit=want,
                        lease_seconds=self.lease_seconds,
                        now=now,
                    )
                    for claim in claims:
                        self._start(claim)
                    if len(claims) == want and want < free:
                        continue  # the batch size, not our capacity, stopped us: more may be due right now
                    if not claims:
                        # Idle: sleep until the next delayed task or expiring lease, if sooner than the
                        # poll. (With tasks in hand, each one's end wakes us anyway.)
                        upcoming = await next_wakeup_at(self.maker, after=now)
                        if upcoming is not None:
                            timeout = min(timeout, max((upcoming - utcnow()).total_seconds(), 0.0) + 0.005)
                except Exception:
                    # The database may be restarting: keep the process, try again after a poll interval.
                    log.exception("claiming tasks failed", extra={"worker_id": self.worker_id})
                finally:
                    self.ready.set()
            # Full: a finishing handler sets the wake-up; idle: a notify, the stop event or the timeout does.
            # ``stop`` is waited on itself: its relayed wake-up may have been cleared above, when it came
            # during the cooldown pause.
            await wait_any([self._wake, stop], within=timeout)

    def _start(self, claim: Claimed) -> None:
        key = (claim.id, claim.attempts)
        task = asyncio.create_task(self._execute(claim), name=f"dossier-task-{claim.id}")
        self._running[key] = (task, claim)

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(key, None)
            self._wake.set()  # a slot is free

        task.add_done_callback(done)

    async def _execute(self, claim: Claimed) -> None:
        try:
            started = time.perf_counter()
            with tracing.span(f"task {claim.kind}", **_span_attributes(claim)) as span:
                outcome = await self._run_handler(claim)
                span.set_attribute("dossier.task.outcome", outcome)
            metrics.task_finished(claim.kind, outcome, time.perf_counter() - started)
        except asyncio.CancelledError:
            # Only the shutdown drain cancels handlers: the task goes back to the queue unrun.
            self._interrupted.append(claim)
            raise
        except Exception:
            # Recording the outcome failed (database unreachable): the lease runs out, the task runs again.
            log.exception(
                "recording a task's outcome failed", extra={"task_id": claim.id, "kind": claim.kind}
            )

    async def _run_handler(self, claim: Claimed) -> str:
        """Run the claim's handler and record its outcome: succeeded, retried, failed or snoozed."""
        spec = get_kind(claim.kind)
        context = {
            "task_id": claim.id,
            "kind": claim.kind,
            "attempt": claim.attempts,
            "worker_id": self.worker_id,
        }
        if spec is None:
            message = f"no handler is registered for task kind {claim.kind!r} in this worker"
            log.error("unknown task kind", extra=context)
            await self._fail(claim, "UnknownTaskKind", message)
            return "failed"
        if claim.attempts > claim.max_attempts:
            # Reclaimed after its worker stopped renewing the lease on the last allowed attempt: a handler
            # that kills its worker (out of memory, a hard crash) must not be retried forever.
            await self._fail(
                claim,
                "LeaseExpired",
                f"attempt {claim.attempts - 1} lost its worker (lease expired) and no attempts remain",
            )
            return "failed"
        run = TaskRun(claim.id, claim.kind, claim.payload, claim.attempts, self.resources, self.worker_id)
        try:
            await spec.handler(run)
        except PermanentFailure as exc:
            log.warning("task failed permanently", extra={**context, "error": str(exc)})
            await self._fail(claim, type(exc).__name__, str(exc))
            return "failed"
        except Snooze as exc:
            run_at = utcnow() + timedelta(seconds=max(exc.delay, 0.0))
            await _persist(partial(snooze, self.maker, claim, self.worker_id, run_at=run_at))
            return "snoozed"
        except RetryLater as exc:
            delay = exc.delay if exc.delay is not None else spec.delay_after(claim.attempts)
            return await self._retry_or_fail(claim, exc, delay)
        except Exception as exc:
            log.warning("task raised", extra=context, exc_info=True)
            return await self._retry_or_fail(claim, exc, spec.delay_after(claim.attempts))
        if run.completed:
            return "succeeded"  # the handler deleted its task in its own transaction
        if not await _persist(partial(complete, self.maker, claim, self.worker_id)):
            log.warning("task finished after losing its lease; its new owner decides", extra=context)
        return "succeeded"

    async def _retry_or_fail(self, claim: Claimed, exc: BaseException, delay: float) -> str:
        if claim.attempts >= claim.max_attempts:
            await self._fail(claim, type(exc).__name__, str(exc))
            return "failed"
        errors = _with_error(claim, type(exc).__name__, str(exc))
        run_at = utcnow() + timedelta(seconds=max(delay, 0.0))
        await _persist(partial(reschedule, self.maker, claim, self.worker_id, errors=errors, run_at=run_at))
        return "retried"

    async def _fail(self, claim: Claimed, error: str, message: str) -> None:
        errors = _with_error(claim, error, message)
        await _persist(partial(fail, self.maker, claim, self.worker_id, errors=errors))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            claims = [claim for _, claim in self._running.values()]
            if not claims:
                continue
            try:
                held = await extend_leases(
                    self.maker, [c.id for c in claims], self.worker_id, lease_seconds=self.lease_seconds
                )
            except Exception:
                log.warning("renewing leases failed", extra={"worker_id": self.worker_id}, exc_info=True)
                continue
            # Tasks that ended while the statement ran are not lost, only gone.
            lost = sorted(c.id for c in claims if c.id not in held and (c.id, c.attempts) in self._running)
            if lost:
                # Another worker reclaimed them (we stalled past the lease); our outcome writes are no-ops.
                log.warning("leases lost", extra={"worker_id": self.worker_id, "task_ids": lost})

    async def _presence(self) -> None:
        # The cluster's view of live workers (/readyz, dossier_workers_alive): refreshed every heartbeat.
        started = utcnow()
        while True:
            try:
                await beat(self.maker, self.worker_id, started_at=started)
            except Exception:
                log.warning("recording the worker's heartbeat failed", extra={"worker_id": self.worker_id})
            await asyncio.sleep(self.heartbeat_interval)

    async def _relay_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _drain(self) -> None:
        """Let in-flight handlers finish within the grace period; give back, unrun, what is still in hand."""
        pending = {task for task, _ in self._running.values()}
        if pending:
            log.info(
                "waiting for tasks in hand",
                extra={"worker_id": self.worker_id, "in_hand": len(pending), "grace": self.shutdown_grace},
            )
            _, pending = await asyncio.wait(pending, timeout=self.shutdown_grace)
        for task in pending:
            task.cancel()
        if pending:
            # A handler that swallows cancellation must not hold the process forever; its task is released
            # anyway and the ownership guard makes any late write of its own a no-op.
            await asyncio.wait(pending, timeout=5)
        interrupted = list(self._interrupted) + [c for t, c in self._running.values() if t in pending]
        unique = list({(c.id, c.attempts): c for c in interrupted}.values())
        if unique:
            try:
                released = await release(self.maker, unique, self.worker_id)
                log.info("released tasks in hand", extra={"worker_id": self.worker_id, "released": released})
            except Exception:
                log.exception("releasing tasks failed; their leases will expire instead")


def _span_attributes(claim: Claimed) -> dict[str, Any]:
    return {
        "dossier.task.id": claim.id,
        "dossier.task.kind": claim.kind,
        "dossier.task.attempt": claim.attempts,
    }


def _with_error(claim: Claimed, error: str, message: str) -> list[dict[str, Any]]:
    entry = {
        "attempt": claim.attempts,
        "at": utcnow().isoformat(),
        "error": error,
        "message": message[:MAX_MESSAGE_CHARS],
    }
    return [*claim.errors, entry][-MAX_KEPT_ERRORS:]


async def _persist(write: Callable[[], Awaitable[bool]], tries: int = 3) -> bool:
    # Outcome writes are tiny and idempotent under the ownership guard: retry a transient failure (a
    # restarting database, SQLite busy) rather than let the lease expire and the task run again.
    for attempt in range(1, tries + 1):
        try:
            return await write()
        except Exception:
            if attempt == tries:
                raise
            await asyncio.sleep(0.2 * attempt)
    return False
