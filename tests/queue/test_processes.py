"""Real `dossier worker` processes: sharing one queue, dying mid-task (SIGKILL), stopping (SIGTERM).

Workers import ``tests.queue.fixture_tasks`` (DOSSIER_TASK_MODULES), whose handler records every run in
``fixture_runs``; time is compressed with the DOSSIER_WORKER_* settings.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.queue.models import QUEUED
from dossier.queue.service import enqueue
from dossier.settings import Settings
from tests.conftest import DOSSIER_BIN, REPO, dossier_env, run_cli, start_server, stop_server
from tests.helpers import eventually
from tests.queue.fixture_tasks import RECORD, create_runs_table, runs
from tests.queue.helpers import all_tasks, get_task

Maker = async_sessionmaker[AsyncSession]
PG_ONLY = (
    "needs PostgreSQL (runs when DOSSIER_TEST_DATABASE_URL is set): several worker processes share a queue"
    " only there; SQLite serves one process"
)


@dataclass
class WorkerProcess:
    process: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def worker_id(self) -> str:
        for line in self.log().splitlines():
            if '"worker started"' in line:
                return str(json.loads(line)["worker_id"])
        raise AssertionError(f"worker did not start:\n{self.log()}")


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Started worker processes; any still alive at the end are killed."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()


async def start_worker(
    started: list[WorkerProcess], database_url: str, tmp_path: Path, *args: str, **settings: str
) -> WorkerProcess:
    """`dossier worker` with the fixture handlers; returns once it logged that it runs (and listens)."""
    env = dossier_env(
        database_url,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        DOSSIER_TASK_MODULES="tests.queue.fixture_tasks",
        DOSSIER_WORKER_POLL_INTERVAL="30",
        **{f"DOSSIER_{name.upper()}": value for name, value in settings.items()},
    )
    log_path = tmp_path / f"worker-{len(started)}.log"
    process = subprocess.Popen(  # noqa: ASYNC220 - starting a child does not block; waiting is polled
        [DOSSIER_BIN, "worker", "--no-migrate", *args],
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = WorkerProcess(process, log_path)
    started.append(worker)

    async def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.log()}")
        return '"worker started"' in worker.log()

    await eventually(up, within=30, interval=0.05, what="worker start")
    return worker


async def fixture_runs(maker: Maker) -> list[dict[str, Any]]:
    async with maker() as session:
        rows = await session.execute(select(runs).order_by(runs.c.id))
        return [dict(row._mapping) for row in rows]


async def exited(process: subprocess.Popen[str]) -> bool:
    return process.poll() is not None


@pytest.fixture
async def runs_table(sessionmaker: Maker) -> None:
    engine = sessionmaker.kw["bind"]
    await create_runs_table(engine)


async def test_two_worker_processes_run_every_task_and_never_the_same_one_at_once(
    settings: Settings, sessionmaker: Maker, runs_table: None, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    if settings.is_sqlite:
        pytest.skip(PG_ONLY)
    first = await start_worker(workers, settings.database_url, tmp_path, "--concurrency", "4")
    second = await start_worker(workers, settings.database_url, tmp_path, "--concurrency", "4")
    count = 150
    async with sessionmaker() as session, session.begin():
        for n in range(count):
            enqueue(session, RECORD, {"n": n, "sleep": 0.01})

    async def drained() -> bool:
        return await all_tasks(sessionmaker) == []

    # Both workers idle with a 30 s poll interval: only NOTIFY explains the work starting at once.
    await eventually(drained, within=60, interval=0.1, what="queue drained")
    recorded = await fixture_runs(sessionmaker)
    by_task: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for run in recorded:
        by_task[run["task_id"]].append(run)
    assert len(by_task) == count  # every task ran
    for task_runs in by_task.values():
        assert all(run["ended"] is not None for run in task_runs)
        ordered = sorted(task_runs, key=lambda run: run["started"])
        for earlier, later in itertools.pairwise(ordered):
            assert later["started"] >= earlier["ended"], f"task ran twice at once: {task_runs}"
    ran_by = {run["worker_id"] for run in recorded}
    assert ran_by == {first.worker_id(), second.worker_id()}  # the queue was shared
    for worker in workers:
        worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.process.wait(timeout=30) == 0, worker.log()


async def _enqueue_hanging(maker: Maker) -> int:
    async with maker() as session, session.begin():
        task = enqueue(session, RECORD, {"hang_on_attempt": 1})
        await session.flush()
        return task.id


async def test_a_worker_killed_mid_task_leaves_it_to_run_again_after_the_lease(
    settings: Settings, sessionmaker: Maker, runs_table: None, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    if settings.is_sqlite:
        pytest.skip(PG_ONLY)
    fast = {"worker_lease_seconds": "1.5", "worker_heartbeat_interval": "0.2"}
    doomed = await start_worker(workers, settings.database_url, tmp_path, **fast)
    task_id = await _enqueue_hanging(sessionmaker)

    async def started_once() -> bool:
        return len(await fixture_runs(sessionmaker)) == 1

    await eventually(started_once, what="first attempt started")
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(timeout=10)
    task = await get_task(sessionmaker, task_id)
    assert task is not None and task.lease_expires_at is not None
    lease_end = task.lease_expires_at.timestamp()

    survivor = await start_worker(workers, settings.database_url, tmp_path, **fast)

    async def gone() -> bool:
        return await get_task(sessionmaker, task_id) is None

    await eventually(gone, within=30, what="task rerun and deleted")
    first, second = await fixture_runs(sessionmaker)
    assert (first["worker_id"], first["attempt"], first["ended"]) == (doomed.worker_id(), 1, None)
    assert (second["worker_id"], second["attempt"]) == (survivor.worker_id(), 2)
    assert second["ended"] is not None
    # Not before the dead worker's lease ran out (its heartbeats stopped with it).
    assert second["started"] >= lease_end - 0.05


async def test_sigterm_releases_tasks_in_hand_and_exits_zero(
    settings: Settings, sessionmaker: Maker, runs_table: None, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    # Enqueued first: a worker's first claim is at start (on SQLite nothing would wake a separate process).
    task_id = await _enqueue_hanging(sessionmaker)
    worker = await start_worker(workers, settings.database_url, tmp_path, worker_shutdown_grace="0.2")

    async def started() -> bool:
        return len(await fixture_runs(sessionmaker)) == 1

    await eventually(started, within=30, what="task started")
    worker.process.send_signal(signal.SIGTERM)
    await eventually(lambda: exited(worker.process), within=30, what="worker exit")
    assert worker.process.returncode == 0, worker.log()
    task = await get_task(sessionmaker, task_id)
    assert task is not None
    assert (task.status, task.attempts, task.locked_by, task.lease_expires_at) == (QUEUED, 0, None, None)
    assert '"released tasks in hand"' in worker.log()


async def test_queue_stats_cli(settings: Settings, sessionmaker: Maker) -> None:
    async with sessionmaker() as session, session.begin():
        enqueue(session, RECORD, {})
        enqueue(session, RECORD, {})
    env = dossier_env(settings.database_url)
    result = await asyncio.to_thread(run_cli, "queue", "stats", "--json", env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["kind"], line["status"], line["count"]) for line in lines] == [(RECORD, QUEUED, 2)]


async def test_serve_runs_a_worker_in_process(
    settings: Settings, sessionmaker: Maker, runs_table: None, tmp_path: Path
) -> None:
    task_id = await _enqueue_hanging(sessionmaker)  # hangs on attempt 1: in hand when the server stops
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        "DOSSIER_TASK_MODULES": "tests.queue.fixture_tasks",
        "DOSSIER_WORKER_SHUTDOWN_GRACE": "0.2",
    }
    server = await asyncio.to_thread(start_server, settings.database_url, tmp_path, env_extra=env)
    try:

        async def started() -> bool:
            return len(await fixture_runs(sessionmaker)) == 1

        await eventually(started, within=30, what="task started by the server's worker")
    finally:
        await asyncio.to_thread(stop_server, server)
    # (uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status is -15, not 0.)
    assert '"released tasks in hand"' in server.output()
    task = await get_task(sessionmaker, task_id)
    assert task is not None and (task.status, task.attempts) == (QUEUED, 0), server.output()
