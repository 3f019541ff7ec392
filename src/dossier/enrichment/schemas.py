"""Wire shapes of the tool catalogue."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dossier.enrichment.protocol import Tool


class ToolInputOut(BaseModel):
    name: str
    description: str
    required: bool


class ToolOut(BaseModel):
    name: str = Field(description="The `tool.type` to use in a column.")
    description: str
    inputs: list[ToolInputOut]
    accepts_any_inputs: bool = Field(description="True when the column may name its own inputs (http).")
    config_schema: dict[str, Any] = Field(description="JSON Schema of `tool.config`.")


def tool_out(tool: Tool) -> ToolOut:
    return ToolOut(
        name=tool.name,
        description=tool.description,
        inputs=[
            ToolInputOut(name=i.name, description=i.description, required=i.required) for i in tool.inputs
        ],
        accepts_any_inputs=bool(getattr(tool, "accepts_any_inputs", False)),
        config_schema=tool.config_model.model_json_schema(),
    )
