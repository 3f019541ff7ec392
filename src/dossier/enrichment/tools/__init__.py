"""The registry of enrichment tools: one module per tool, one line here per tool."""

from __future__ import annotations

from dossier.enrichment.protocol import Tool
from dossier.errors import InvalidInput

TOOLS: dict[str, Tool] = {}


def register(tool: Tool) -> Tool:
    TOOLS[tool.name] = tool
    return tool


def get_tool(name: str) -> Tool:
    """The tool called ``name``; InvalidInput naming the known tools when there is none."""
    _load_builtin_tools()
    tool = TOOLS.get(name)
    if tool is None:
        raise InvalidInput(f"unknown tool {name!r}; known tools: {', '.join(sorted(TOOLS))}")
    return tool


def all_tools() -> dict[str, Tool]:
    _load_builtin_tools()
    return dict(TOOLS)


def _load_builtin_tools() -> None:
    # Imported lazily so that importing the registry never imports every tool's dependencies.
    # Registration lines (one per tool) go here:
    from dossier.enrichment.tools import (
        domain,  # noqa: F401
        entity_resolution,  # noqa: F401
        firmographics,  # noqa: F401
        http,  # noqa: F401
        website,  # noqa: F401
    )
