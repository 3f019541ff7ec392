"""The work queue in one process, on SQLite and PostgreSQL: claim, complete, retry, fail, leases, wake-ups."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.db.base import utcnow
from dossier.queue import worker as worker_module
from dossier.queue.handlers import PermanentFailure, RetryLater, TaskRun, task_handler
from dossier.queue.models import FAILED, QUEUED, RUNNING, Task
from dossier.queue.service import enqueue, enqueue_or_advance, enqueue_unique
from dossier.queue.store import (
    claim_batch,
    complete,
    extend_leases,
    fail,
    queue_stats,
    release,
    reschedule,
    retry_failed,
)
from dossier.queue.wakeups import ENQUEUED_FLAG, NOTIFY_CHANNEL, add_local_wakeup, remove_local_wakeup
from dossier.settings import Settings
from tests.helpers import eventually
from tests.queue.helpers import all_tasks, get_task, running_worker

Maker = async_sessionmaker[AsyncSession]

# Each test passes a fresh key in the payload; handlers record their runs under it.
RUNS: dict[str, list[dict[str, Any]]] = defaultdict(list)
GATES: dict[str, asyncio.Event] = {}


def _record(run: TaskRun) -> None:
    RUNS[run.payload["key"]].append(
        {"attempt": run.attempt, "worker": run.worker_id, "at": time.monotonic(), "task_id": run.task_id}
    )


@task_handler("test.ok")
async def ok(run: TaskRun) -> None:
    _record(run)


@task_handler("test.always_fails", max_attempts=3, backoff=(0.2, 0.4))
async def always_fails(run: TaskRun) -> None:
    _record(run)
    raise ValueError(f"boom {run.attempt}")


@task_handler("test.fails_once", max_attempts=3, backoff=(0.0,))
async def fails_once(run: TaskRun) -> None:
    _record(run)
    if run.attempt == 1:
        raise ConnectionError("transient")


@task_handler("test.permanent")
async def permanent(run: TaskRun) -> None:
    _record(run)
    raise PermanentFailure("the input can never work")


@task_handler("test.retry_later", max_attempts=5, backoff=(0.0,))
async def retry_later(run: TaskRun) -> None:
    _record(run)
    if run.attempt == 1:
        raise RetryLater("rate limited", delay=float(run.payload["delay"]))


@task_handler("test.slow")
async def slow(run: TaskRun) -> None:
    _record(run)
    await asyncio.sleep(float(run.payload["seconds"]))
    RUNS[run.payload["key"]][-1]["ended"] = time.monotonic()


@task_handler("test.gate")
async def gate(run: TaskRun) -> None:
    _record(run)
    await GATES[run.payload["key"]].wait()


def new_key() -> str:
    return uuid.uuid4().hex


async def enqueue_one(maker: Maker, kind: str, payload: dict[str, Any], **options: Any) -> int:
    async with maker() as session, session.begin():
        task = enqueue(session, kind, payload, **options)
        await session.flush()
        return task.id


async def gone(maker: Maker, task_id: int) -> bool:
    return await get_task(maker, task_id) is None


async def in_status(maker: Maker, task_id: int, status: str) -> Task | None:
    task = await get_task(maker, task_id)
    return task if task is not None and task.status == status else None


async def test_a_task_runs_once_and_is_deleted(settings: Settings, sessionmaker: Maker) -> None:
    key = new_key()
    async with running_worker(settings, sessionmaker, worker_id="w-1") as worker:
        task_id = await enqueue_one(sessionmaker, "test.ok", {"key": key})
        await eventually(lambda: gone(sessionmaker, task_id), what="task deleted")
        assert worker.in_hand == 0
    assert [(r["attempt"], r["worker"], r["task_id"]) for r in RUNS[key]] == [(1, "w-1", task_id)]
    assert await all_tasks(sessionmaker) == []


async def test_retries_with_the_kinds_backoff_then_fails_keeping_each_error(
    settings: Settings, sessionmaker: Maker
) -> None:
    key = new_key()
    # A long poll interval: retries must come due through the worker's own "next due" wake-up.
    async with running_worker(settings, sessionmaker, poll_interval=60):
        task_id = await enqueue_one(sessionmaker, "test.always_fails", {"key": key})
        task = await eventually(lambda: in_status(sessionmaker, task_id, FAILED), what="task failed")
    assert task.attempts == 3 and task.locked_by is None and task.lease_expires_at is None
    assert task.finished_at is not None
    assert [(e["attempt"], e["error"], e["message"]) for e in task.errors] == [
        (1, "ValueError", "boom 1"),
        (2, "ValueError", "boom 2"),
        (3, "ValueError", "boom 3"),
    ]
    times = [r["at"] for r in RUNS[key]]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4  # backoff honoured, never early
    assert times[2] - times[0] < 10  # and not left to a 60 s poll


async def test_a_retry_that_succeeds_deletes_the_task(settings: Settings, sessionmaker: Maker) -> None:
    key = new_key()
    async with running_worker(settings, sessionmaker):
        task_id = await enqueue_one(sessionmaker, "test.fails_once", {"key": key})
        await eventually(lambda: gone(sessionmaker, task_id))
    assert [r["attempt"] for r in RUNS[key]] == [1, 2]


async def test_kept_errors_are_bounded_to_the_last_twenty(settings: Settings, sessionmaker: Maker) -> None:
    key = new_key()
    async with running_worker(settings, sessionmaker):
        task_id = await enqueue_one(sessionmaker, "test.fails_once", {"key": key}, max_attempts=1)
        await eventually(lambda: in_status(sessionmaker, task_id, FAILED))
    # 25 tries with no backoff, each failing
    key = new_key()
    task_handler("test.fails_always_fast", max_attempts=25, backoff=(0.0,))(always_fails)
    async with running_worker(settings, sessionmaker):
        task_id = await enqueue_one(sessionmaker, "test.fails_always_fast", {"key": key})
        task = await eventually(lambda: in_status(sessionmaker, task_id, FAILED), within=30)
    assert task.attempts == 25
    assert [e["attempt"] for e in task.errors] == list(range(6, 26))


async def test_permanent_failure_is_not_retried(settings: Settings, sessionmaker: Maker) -> None:
    key = new_key()
    async with running_worker(settings, sessionmaker):
        task_id = await enqueue_one(sessionmaker, "test.permanent", {"key": key})
        task = await eventually(lambda: in_status(sessionmaker, task_id, FAILED))
    assert task.attempts == 1 and len(RUNS[key]) == 1
    assert task.errors[0]["error"] == "PermanentFailure"
    assert task.errors[0]["message"] == "the input can never work"


async def test_retry_later_delay_is_honoured(settings: Settings, sessionmaker: Maker) -> None:
    key = new_key()
    async with running_worker(settings, sessionmaker, poll_interval=60):
        task_id = await enqueue_one(sessionmaker, "test.retry_later", {"key": key, "delay": 0.5})
        task = await eventually(lambda: _rescheduled(sessionmaker, task_id), what="rescheduled")
        errors = [(e["attempt"], e["error"], e["message"]) for e in task.errors]
        assert errors == [(1, "RetryLater", "rate limited")]
        await eventually(lambda: gone(sessionmaker, task_id))
    first, second = RUNS[key]
    assert second["attempt"] == 2
    assert second["at"] - first["at"] >= 0.5  # the handler's delay, not the kind's zero backoff


async def _rescheduled(maker: Maker, task_id: int) -> Task | None:
    task = await in_status(maker, task_id, QUEUED)
    return task if task is not None and task.errors else None


async def test_an_unknown_kind_fails_with_a_clear_error(settings: Settings, sessionmaker: Maker) -> None:
    async with running_worker(settings, sessionmaker):
        task_id = await enqueue_one(sessionmaker, "test.nobody_handles_this", {})
        task = await eventually(lambda: in_status(sessionmaker, task_id, FAILED))
    assert task.errors[0]["error"] == "UnknownTaskKind"
    assert "test.nobody_handles_this" in task.errors[0]["message"]


async def test_a_stale_owner_cannot_overwrite_the_new_owners_state(sessionmaker: Maker) -> None:
    task_id = await enqueue_one(sessionmaker, "test.ok", {"key": new_key()})
    [dead] = await claim_batch(sessionmaker, worker_id="dead", limit=5, lease_seconds=0.05)
    assert dead.id == task_id and dead.attempts == 1
    # Within its lease nobody else can claim it.
    assert await claim_batch(sessionmaker, worker_id="other", limit=5, lease_seconds=30, now=utcnow()) == []
    later = utcnow() + timedelta(seconds=1)
    [taken] = await claim_batch(sessionmaker, worker_id="new", limit=5, lease_seconds=30, now=later)
    assert taken.id == task_id and taken.attempts == 2
    assert not await complete(sessionmaker, dead, "dead")
    assert not await fail(sessionmaker, dead, "dead", errors=[])
    assert not await reschedule(sessionmaker, dead, "dead", errors=[], run_at=utcnow())
    assert await release(sessionmaker, [dead], "dead") == 0
    assert await extend_leases(sessionmaker, [task_id], "dead", lease_seconds=30) == set()
    task = await get_task(sessionmaker, task_id)
    assert task is not None and (task.status, task.locked_by, task.attempts) == (RUNNING, "new", 2)
    assert await extend_leases(sessionmaker, [task_id], "new", lease_seconds=30) == {task_id}
    assert await complete(sessionmaker, taken, "new")


async def test_a_task_whose_worker_died_is_run_again_after_its_lease(
    settings: Settings, sessionmaker: Maker
) -> None:
    key = new_key()
    task_id = await enqueue_one(sessionmaker, "test.ok", {"key": key})
    assert len(await claim_batch(sessionmaker, worker_id="died", limit=1, lease_seconds=0.5)) == 1
    started = time.monotonic()
    # The poll interval is long: the worker wakes when the known lease runs out.
    async with running_worker(settings, sessionmaker, poll_interval=60):
        await eventually(lambda: gone(sessionmaker, task_id))
    [run] = RUNS[key]
    assert run["attempt"] == 2 and run["worker"] != "died"
    assert run["at"] - started >= 0.4 and run["at"] - started < 10


async def test_a_stop_during_the_claim_cooldown_stops_the_worker_at_once(
    settings: Settings, sessionmaker: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long cooldown and poll: the stop arrives while the worker pauses after a finished task, and must
    # not wait out the poll interval (the worker used to clear the stop's wake-up and sleep 60 s).
    monkeypatch.setattr(worker_module, "CLAIM_COOLDOWN", 2.0)
    task_id = await enqueue_one(sessionmaker, "test.ok", {"key": new_key()})
    async with running_worker(settings, sessionmaker, poll_interval=60):
        await eventually(lambda: gone(sessionmaker, task_id))
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5


async def test_a_worker_died_on_the_last_attempt_fails_the_task(
    settings: Settings, sessionmaker: Maker
) -> None:
    task_id = await enqueue_one(sessionmaker, "test.ok", {"key": new_key()}, max_attempts=1)
    await claim_batch(sessionmaker, worker_id="died", limit=1, lease_seconds=0.05)
    async with running_worker(settings, sessionmaker):
        task = await eventually(lambda: in_status(sessionmaker, task_id, FAILED))
    assert task.errors[-1]["error"] == "LeaseExpired"


async def test_heartbeats_keep_a_long_task_from_being_run_twice(
    settings: Settings, sessionmaker: Maker
) -> None:
    key = new_key()
    fast = {"lease_seconds": 0.3, "heartbeat_interval": 0.05, "poll_interval": 0.02}
    async with (
        running_worker(settings, sessionmaker, worker_id="a", **fast),
        running_worker(settings, sessionmaker, worker_id="b", **fast),
    ):
        task_id = await enqueue_one(sessionmaker, "test.slow", {"key": key, "seconds": 1.2})
        await eventually(lambda: gone(sessionmaker, task_id))
    assert len(RUNS[key]) == 1 and RUNS[key][0]["attempt"] == 1


async def test_rolled_back_enqueue_leaves_no_task(sessionmaker: Maker) -> None:
    session = sessionmaker()
    try:
        async with session.begin():
            enqueue(session, "test.ok", {"key": new_key()})
            await session.flush()
            assert await session.scalar(select(func.count()).select_from(Task)) == 1
            await session.rollback()
        assert ENQUEUED_FLAG not in session.info
    finally:
        await session.close()
    with pytest.raises(RuntimeError):
        async with sessionmaker() as other, other.begin():
            enqueue(other, "test.ok", {"key": new_key()})
            await other.flush()
            raise RuntimeError("the change that caused the task failed")
    assert await all_tasks(sessionmaker) == []


async def test_the_in_process_signal_fires_after_the_root_commit_only(sessionmaker: Maker) -> None:
    signals: list[str] = []

    def wakeup() -> None:
        signals.append("wake")

    add_local_wakeup(wakeup)
    try:
        async with sessionmaker() as session:
            async with session.begin():
                enqueue(session, "test.ok", {"key": new_key()})
                await session.flush()
                async with session.begin_nested():  # released, but nothing is visible yet
                    await session.execute(select(1))
                assert signals == []
            assert signals == ["wake"]
            async with session.begin():  # the next transaction of the session enqueues nothing
                await session.execute(select(1))
            async with session.begin():
                enqueue(session, "test.ok", {"key": new_key()})
                await session.flush()
                await session.rollback()
            async with session.begin():
                await session.execute(select(1))
        assert signals == ["wake"]
    finally:
        remove_local_wakeup(wakeup)


async def test_a_commit_wakes_an_idle_worker_at_once(settings: Settings, sessionmaker: Maker) -> None:
    key = new_key()
    # Only a wake-up can explain a run within seconds when the worker polls once a minute.
    async with running_worker(settings, sessionmaker, poll_interval=60):
        started = time.monotonic()
        task_id = await enqueue_one(sessionmaker, "test.ok", {"key": key})
        await eventually(lambda: gone(sessionmaker, task_id), within=10)
    assert RUNS[key][0]["at"] - started < 5


def _pg_dsn(settings: Settings) -> str:
    return make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_postgres_listen_wakes_a_worker_for_another_process_commit(
    settings: Settings, sessionmaker: Maker
) -> None:
    if settings.is_sqlite:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite uses the in-process signal tested above")
    key = new_key()
    async with running_worker(settings, sessionmaker, poll_interval=60):
        # A raw connection outside SQLAlchemy: only NOTIFY, not the in-process signal, reaches the worker.
        conn = await asyncpg.connect(_pg_dsn(settings))
        try:
            started = time.monotonic()
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO tasks (kind, payload, status, priority, run_at, attempts, max_attempts,"
                    " errors, created_at)"
                    " VALUES ('test.ok', $1::jsonb, 'queued', 0, now(), 0, 5, '[]'::jsonb, now())",
                    f'{{"key": "{key}"}}',
                )
                await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
        finally:
            await conn.close()
        await eventually(lambda: _ran(key), within=10)
    assert RUNS[key][0]["at"] - started < 5


async def _ran(key: str) -> bool:
    return bool(RUNS[key])


async def test_postgres_enqueue_notifies_on_commit_only(settings: Settings, sessionmaker: Maker) -> None:
    if settings.is_sqlite:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    received: list[str] = []
    arrived = asyncio.Event()

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        received.append(payload)
        arrived.set()

    listener = await asyncpg.connect(_pg_dsn(settings))
    await listener.add_listener(NOTIFY_CHANNEL, on_notify)
    try:
        async with sessionmaker() as session:
            async with session.begin():
                enqueue(session, "test.ok", {"key": new_key()})
                await session.flush()
                await session.rollback()
            async with session.begin():
                enqueue(session, "test.ok", {"key": new_key()})
                await session.flush()
                # A savepoint released or rolled back after the enqueue is not the commit that notifies.
                async with session.begin_nested():
                    await session.execute(select(1))
                savepoint = await session.begin_nested()
                await savepoint.rollback()
                assert received == []
        async with sessionmaker() as session, session.begin():
            await session.execute(select(1))  # a commit without enqueue sends nothing
        marker = await asyncpg.connect(_pg_dsn(settings))
        try:
            await marker.execute(f"NOTIFY {NOTIFY_CHANNEL}, 'marker'")
        finally:
            await marker.close()
        # Notifications arrive in commit order: everything before the marker is in `received` once it is.
        await eventually(lambda: _contains(received, "marker"), within=10)
    finally:
        await listener.close()
    assert received == ["", "marker"]


async def _contains(items: list[str], item: str) -> bool:
    return item in items


async def test_stop_lets_a_short_task_finish(settings: Settings, sessionmaker: Maker) -> None:
    key = new_key()
    async with running_worker(settings, sessionmaker, shutdown_grace=10):
        task_id = await enqueue_one(sessionmaker, "test.slow", {"key": key, "seconds": 0.3})
        await eventually(lambda: _ran(key))
    # The context exit stopped the worker while the task was in hand; it finished within the grace.
    assert "ended" in RUNS[key][0]
    assert await get_task(sessionmaker, task_id) is None


async def test_stop_releases_a_task_that_outlives_the_grace(settings: Settings, sessionmaker: Maker) -> None:
    key = new_key()
    GATES[key] = asyncio.Event()  # never set: the handler hangs
    async with running_worker(settings, sessionmaker, shutdown_grace=0.1):
        task_id = await enqueue_one(sessionmaker, "test.gate", {"key": key})
        await eventually(lambda: _ran(key))
    task = await get_task(sessionmaker, task_id)
    assert task is not None
    assert (task.status, task.attempts, task.locked_by, task.lease_expires_at) == (QUEUED, 0, None, None)
    # Released means claimable at once by the next worker.
    GATES[key].set()
    async with running_worker(settings, sessionmaker):
        await eventually(lambda: gone(sessionmaker, task_id))
    assert [r["attempt"] for r in RUNS[key]] == [1, 1]


async def test_higher_priority_is_claimed_first(sessionmaker: Maker) -> None:
    low = await enqueue_one(sessionmaker, "test.ok", {"key": new_key()})
    high = await enqueue_one(sessionmaker, "test.ok", {"key": new_key()}, priority=10)
    [first] = await claim_batch(sessionmaker, worker_id="w", limit=1, lease_seconds=30)
    assert first.id == high
    [second] = await claim_batch(sessionmaker, worker_id="w", limit=1, lease_seconds=30)
    assert second.id == low


async def test_delayed_tasks_are_not_claimed_early(sessionmaker: Maker) -> None:
    await enqueue_one(sessionmaker, "test.ok", {"key": new_key()}, delay=60)
    assert await claim_batch(sessionmaker, worker_id="w", limit=5, lease_seconds=30) == []
    later = utcnow() + timedelta(seconds=61)
    assert len(await claim_batch(sessionmaker, worker_id="w", limit=5, lease_seconds=30, now=later)) == 1


async def test_enqueue_unique_skips_a_duplicate_of_unfinished_work(sessionmaker: Maker) -> None:
    async with sessionmaker() as session, session.begin():
        first = await enqueue_unique(session, "test.ok", {"key": "x"}, dedupe_key="cell:1")
        again = await enqueue_unique(session, "test.ok", {"key": "x"}, dedupe_key="cell:1")
    assert first is not None and again is None
    [claim] = await claim_batch(sessionmaker, worker_id="w", limit=5, lease_seconds=30)
    async with sessionmaker() as session, session.begin():  # running still holds the key
        assert await enqueue_unique(session, "test.ok", {"key": "x"}, dedupe_key="cell:1") is None
    assert await fail(sessionmaker, claim, "w", errors=[])
    async with sessionmaker() as session, session.begin():  # a failed task does not
        assert await enqueue_unique(session, "test.ok", {"key": "x"}, dedupe_key="cell:1") is not None


async def test_deduplicated_enqueues_keep_working_on_a_busy_connection(sessionmaker: Maker) -> None:
    # PostgreSQL plans a prepared statement generically after five runs; the ON CONFLICT clause must still
    # find the partial unique index then (it did not while its predicate was a bound parameter).
    async with sessionmaker() as session, session.begin():
        for n in range(12):
            assert await enqueue_unique(session, "test.ok", {"n": n}, dedupe_key=f"many:{n}") is not None
            assert await enqueue_unique(session, "test.ok", {"n": n}, dedupe_key=f"many:{n}") is None
    assert len(await all_tasks(sessionmaker)) == 12


async def test_enqueue_or_advance_keeps_one_task_per_key_at_the_earliest_time(sessionmaker: Maker) -> None:
    now = utcnow()
    async with sessionmaker() as session, session.begin():
        for n in range(8):  # again more than five runs on one connection
            await enqueue_or_advance(
                session, "test.ok", {"k": 1}, dedupe_key="sweep:1", run_at=now + timedelta(seconds=60 - n)
            )
        await enqueue_or_advance(
            session, "test.ok", {"k": 1}, dedupe_key="sweep:1", run_at=now + timedelta(hours=1)
        )
    [task] = await all_tasks(sessionmaker)
    assert task.dedupe_key == "sweep:1" and task.status == QUEUED
    assert abs((task.run_at - (now + timedelta(seconds=53))).total_seconds()) < 0.001  # never moved later
    [claim] = await claim_batch(
        sessionmaker, worker_id="w", limit=5, lease_seconds=30, now=now + timedelta(minutes=2)
    )
    async with sessionmaker() as session, session.begin():  # a running task holds the key too
        await enqueue_or_advance(session, "test.ok", {"k": 1}, dedupe_key="sweep:1", run_at=now)
    assert len(await all_tasks(sessionmaker)) == 1
    assert await complete(sessionmaker, claim, "w")
    async with sessionmaker() as session, session.begin():
        await enqueue_or_advance(session, "test.ok", {"k": 1}, dedupe_key="sweep:1", run_at=now)
    [task] = await all_tasks(sessionmaker)  # a new task: the finished one no longer holds the key
    assert (task.status, task.attempts) == (QUEUED, 0) and abs((task.run_at - now).total_seconds()) < 0.001


async def test_an_advance_does_not_move_a_held_task_before_its_hold(sessionmaker: Maker) -> None:
    now = utcnow()
    hold = now + timedelta(seconds=30)
    async with sessionmaker() as session, session.begin():
        await enqueue_or_advance(
            session,
            "test.ok",
            {"k": 2},
            dedupe_key="sweep:2",
            run_at=now + timedelta(seconds=90),
            not_before=hold,
        )
    async with sessionmaker() as session, session.begin():
        await enqueue_or_advance(session, "test.ok", {"k": 2}, dedupe_key="sweep:2", run_at=now)
    [task] = await all_tasks(sessionmaker)
    assert abs((task.run_at - hold).total_seconds()) < 0.001  # moved earlier, to the hold, not to now
    async with sessionmaker() as session, session.begin():
        await enqueue_or_advance(session, "test.ok", {"k": 2}, dedupe_key="sweep:2", run_at=now)
    [task] = await all_tasks(sessionmaker)
    assert abs((task.run_at - hold).total_seconds()) < 0.001
    assert await claim_batch(sessionmaker, worker_id="w", limit=5, lease_seconds=30, now=now) == []
    # A run_at asked before the hold starts the task at the hold.
    async with sessionmaker() as session, session.begin():
        await enqueue_or_advance(
            session, "test.ok", {"k": 3}, dedupe_key="sweep:3", run_at=now, not_before=hold
        )
    assert sorted(abs((t.run_at - hold).total_seconds()) < 0.001 for t in await all_tasks(sessionmaker)) == [
        True,
        True,
    ]


async def test_retry_failed_requeues_with_a_fresh_budget(sessionmaker: Maker) -> None:
    task_id = await enqueue_one(sessionmaker, "test.ok", {"key": new_key()})
    [claim] = await claim_batch(sessionmaker, worker_id="w", limit=5, lease_seconds=30)
    await fail(sessionmaker, claim, "w", errors=[{"attempt": 1, "error": "X", "message": "m", "at": "t"}])
    async with sessionmaker() as session, session.begin():
        stats = await queue_stats(session)
        assert [(s.kind, s.status, s.count) for s in stats] == [("test.ok", FAILED, 1)]
        assert await retry_failed(session, kind="test.ok") == 1
    task = await get_task(sessionmaker, task_id)
    assert task is not None and (task.status, task.attempts, len(task.errors)) == (QUEUED, 0, 1)
