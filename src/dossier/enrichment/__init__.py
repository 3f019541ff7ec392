"""Enrichment: the tool protocol, the tools, the engine that runs tool cells, and the reference registry.

Importing this package registers the tool-cell engine (the ``service`` module) with projects, which defines
tool columns and adds rows through it without importing enrichment (``dossier.projects.tool_engine``).
Every entry point imports enrichment, so the engine is there before any project needs it.
"""

from dossier.enrichment import service as _service
from dossier.projects.tool_engine import register_tool_engine

register_tool_engine(_service)
