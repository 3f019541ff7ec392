"""The tool catalogue: what a tool column can use. HTTP only."""

from __future__ import annotations

from dossier.accounts.auth import CurrentAccount
from dossier.api.surfaces import ENTERPRISE
from dossier.enrichment import schemas
from dossier.enrichment.tools import all_tools

router = ENTERPRISE.router(tags=["Tools"])


@router.get("/tools", response_model=list[schemas.ToolOut])
async def list_tools(account: CurrentAccount) -> list[schemas.ToolOut]:
    """Every enrichment tool with its inputs and the JSON Schema of its config."""
    return [schemas.tool_out(tool) for _, tool in sorted(all_tools().items())]
