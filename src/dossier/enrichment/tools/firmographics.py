"""``firmographics``: a kernel_id (or an ``entity_resolution`` value) -> the registry's firmographics record.

The value always has the same keys (``registry.service.firmographics_record``), null where the registry knows
nothing. An empty input (for instance an ``entity_resolution`` cell that was skipped) gives ``skipped``; a
kernel_id that is not in the registry gives ``error`` with the reason, because it is a wrong input, not an
absence of data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from dossier.enrichment.protocol import Tool, ToolContext, ToolInput, ToolOutcome
from dossier.enrichment.registry.service import firmographics_record, get_entity
from dossier.enrichment.tools import register
from dossier.enrichment.tools.entity_resolution import ensure_default_once, input_text

_KERNEL_ID = re.compile(r"\d{1,20}")


class FirmographicsTool(Tool):
    name = "firmographics"
    description = (
        "Firmographics of a registry company: industry, sector, employees, revenue, headquarters, country, "
        "founding year, company type and ISINs."
    )
    inputs = (
        ToolInput(
            "kernel_id",
            "A registry kernel_id, or the output of an entity_resolution column.",
            required=True,
        ),
    )

    async def run(self, values: Mapping[str, Any], config: BaseModel, ctx: ToolContext) -> ToolOutcome:
        raw = values.get("kernel_id")
        kernel_id = input_text(raw, "kernel_id")
        if kernel_id is None:
            return ToolOutcome.skipped("no kernel_id (the company was not resolved)")
        if not _KERNEL_ID.fullmatch(kernel_id):
            return ToolOutcome.failed(f"{kernel_id[:40]!r} is not a kernel_id (a string of up to 20 digits)")
        await ensure_default_once(ctx.sessionmaker, ctx.settings)
        async with ctx.sessionmaker() as session:
            entity = await get_entity(session, kernel_id)
            record = firmographics_record(entity) if entity is not None else None
        if record is None:
            return ToolOutcome.failed(f"no registry company has kernel_id {kernel_id}")
        return ToolOutcome.success(record)


register(FirmographicsTool())
