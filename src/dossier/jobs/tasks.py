"""Queue handler of jobs: start a chunk of jobs, run their tools outside any transaction, finish them.

Tool results (a match, nothing matched, an unknown kernel_id) end the job; only infrastructure failures
(the database) make the task retry, and a retried task skips the jobs already finished.
"""

from __future__ import annotations

import asyncio

from dossier.enrichment.protocol import ToolContext, ToolOutcome
from dossier.jobs import service
from dossier.queue.handlers import TaskRun, task_handler


@task_handler(service.RUN_JOBS, max_attempts=5, backoff=(1.0, 5.0, 15.0, 60.0))
async def run_jobs(run: TaskRun) -> None:
    """Run the jobs of one chunk."""
    resources = run.resources
    settings = resources.settings
    job_ids = [str(job_id) for job_id in run.payload["job_ids"]]
    async with resources.sessionmaker() as session, session.begin():
        jobs = await service.start_jobs(session, job_ids)
        # Detached copies: the tools run after this transaction ends.
        work = [(job.id, job.kind, dict(job.input)) for job in jobs]
    if not work:
        return
    ctx = ToolContext(settings=settings, sessionmaker=resources.sessionmaker, http=resources.http)
    limit = asyncio.Semaphore(settings.tool_concurrency)

    async def bounded(job_id: str, kind: str, job_input: dict[str, object]) -> tuple[str, ToolOutcome]:
        async with limit:
            return job_id, await service.run_job_tool(kind, job_input, ctx)

    outcomes = await asyncio.gather(*(bounded(*item) for item in work))
    async with resources.sessionmaker() as session, session.begin():
        for job_id, outcome in outcomes:
            await service.finish_job(session, job_id, outcome)
