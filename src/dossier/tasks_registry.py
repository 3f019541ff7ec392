"""The composition root of background work: which modules register task handlers.

A module listed here registers its handlers with ``@task_handler`` when imported; workers import them all at
start. Built-in modules that are not there (yet) are skipped; extra modules named in the ``task_modules``
setting (plugins, test fixtures) must exist.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable

from dossier.settings import Settings

log = logging.getLogger("dossier.queue")

TASK_MODULES: tuple[str, ...] = (
    "dossier.enrichment.tasks",
    "dossier.webhooks.tasks",
    "dossier.jobs.tasks",
    "dossier.pipeline.tasks",
    "dossier.lists.tasks",
    "dossier.operations.tasks",
)


def task_modules(settings: Settings) -> tuple[str, ...]:
    """The built-in task modules followed by the configured extra ones."""
    return TASK_MODULES + tuple(name for name in settings.task_modules if name not in TASK_MODULES)


def import_task_modules(names: Iterable[str], *, optional: Iterable[str] = TASK_MODULES) -> list[str]:
    """Import every module in ``names`` (registering its handlers); returns those imported.

    A missing module in ``optional`` is skipped; any other missing module, or an error inside a module that
    exists, is raised: a worker that silently lacks handlers would fail their tasks as unknown kinds.
    """
    skippable = set(optional)
    imported: list[str] = []
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if name in skippable and exc.name is not None and name.startswith(exc.name):
                log.debug("task module absent", extra={"module": name})
                continue
            raise
        imported.append(name)
    return imported
