"""Queue handler of analyses: mark running, run the tools outside any transaction, write the report.

The report and ``analysisCompleted`` are written in one transaction; a task that runs twice finds the
analysis completed and sends nothing again.
"""

from __future__ import annotations

from collections.abc import Mapping

from dossier.enrichment.protocol import ToolContext
from dossier.pipeline import service
from dossier.queue.handlers import TaskRun, task_handler

MAX_ATTEMPTS = 5


@task_handler(service.RUN_ANALYSIS, max_attempts=MAX_ATTEMPTS, backoff=(1.0, 5.0, 15.0, 60.0))
async def run_analysis(run: TaskRun) -> None:
    """Run one analysis; when its last attempt fails too, the analysis ends ``failed`` with its event."""
    analysis_id = str(run.payload["analysis_id"])
    try:
        await _run_analysis(run, analysis_id)
    except Exception as exc:
        if run.attempt < MAX_ATTEMPTS:
            raise  # the queue retries it
        async with run.resources.sessionmaker() as session, session.begin():
            await service.fail_analysis(session, analysis_id, f"{type(exc).__name__}: {exc}")
            await run.complete_in(session)


async def _run_analysis(run: TaskRun, analysis_id: str) -> None:
    resources = run.resources
    async with resources.sessionmaker() as session, session.begin():
        work = await service.begin_analysis(session, analysis_id)
    if work is None:
        return
    ctx = ToolContext(settings=resources.settings, sessionmaker=resources.sessionmaker, http=resources.http)
    results = await service.run_analysis_tools(work, ctx)
    report = service.build_report(work.name, work.website, results)
    resolved = results.entity_resolution
    kernel_id = (
        str(resolved.value["kernel_id"])
        if resolved.status == "success" and isinstance(resolved.value, Mapping)
        else None
    )
    async with resources.sessionmaker() as session, session.begin():
        await service.finish_analysis(session, analysis_id, report, kernel_id)
