"""Run a worker: build its resources from settings, import the task modules, run until told to stop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from dossier.db.engine import create_engine, create_sessionmaker
from dossier.net import OutboundClient
from dossier.queue.handlers import WorkerResources
from dossier.queue.worker import Worker
from dossier.settings import Settings
from dossier.tasks_registry import import_task_modules, task_modules

log = logging.getLogger("dossier.queue")


async def run_worker(
    settings: Settings,
    *,
    concurrency: int | None = None,
    stop_event: asyncio.Event,
    modules: Sequence[str] | None = None,
    engine: AsyncEngine | None = None,
    http: Any = None,
    worker_id: str | None = None,
) -> None:
    """Run one worker until ``stop_event`` is set, then finish or release its tasks in hand and return.

    ``modules`` defaults to the composition root's list (``dossier.tasks_registry``). ``engine`` lets an API
    process share its pool with its in-process worker; ``http`` replaces the outbound client (tests).
    """
    import_task_modules(modules if modules is not None else task_modules(settings))
    own_engine = engine is None
    engine = engine or create_engine(settings)
    # An injected client (tests) belongs to the caller; ours is closed here.
    own_http = http is None
    if http is None:
        http = open_outbound_client(settings)
    try:
        resources = WorkerResources(settings=settings, sessionmaker=create_sessionmaker(engine), http=http)
        worker = Worker.from_settings(resources, concurrency=concurrency, worker_id=worker_id)
        await worker.run(stop_event)
    finally:
        if own_http:
            await close_outbound_client(http)
        if own_engine:
            await engine.dispose()


async def run_worker_until_signalled(settings: Settings, *, concurrency: int | None = None) -> None:
    """`dossier worker`: run until SIGTERM or SIGINT, then stop gracefully (the process then exits 0)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_worker(settings, concurrency=concurrency, stop_event=stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


@asynccontextmanager
async def worker_in_background(
    settings: Settings, *, engine: AsyncEngine | None = None, http: Any = None, enabled: bool = True
) -> AsyncIterator[None]:
    """Run a worker beside other work in this process (`dossier serve`); stop it gracefully on exit.

    ``engine`` and ``http`` let the worker share the API's connection pools (the caller keeps them).
    """
    if not enabled:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_worker(settings, stop_event=stop, engine=engine, http=http), name="dossier-worker"
    )

    def crashed(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.error("in-process worker stopped with an error", exc_info=done.exception())

    task.add_done_callback(crashed)
    try:
        yield
    finally:
        # In-flight tasks get the shutdown grace; the rest go back to the queue for the next start.
        stop.set()
        await asyncio.gather(task, return_exceptions=True)


def open_outbound_client(settings: Settings) -> OutboundClient:
    """The process's one outbound HTTP client (dossier.net enforces the outbound policy on every request)."""
    return OutboundClient.from_settings(settings)


async def close_outbound_client(http: Any) -> None:
    """Close a client opened by ``open_outbound_client``, or an injected one that has ``aclose``."""
    closer = getattr(http, "aclose", None)
    if closer is not None:
        result = closer()
        if inspect.isawaitable(result):
            await result
