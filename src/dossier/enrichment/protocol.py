"""The small protocol every enrichment tool implements.

A tool declares its named inputs and a Pydantic config model, and runs asynchronously on the values
of one row. Adding a tool is one module in ``enrichment/tools/`` and one line in its registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dossier.errors import InvalidInput
from dossier.settings import Settings

if TYPE_CHECKING:
    from dossier.net import OutboundClient, OutboundPolicy

FinalStatus = Literal["success", "error", "skipped"]


@dataclass(frozen=True)
class ToolInput:
    """A named input a tool reads from a column of the row."""

    name: str
    description: str
    required: bool = False


@dataclass(frozen=True)
class ToolOutcome:
    """What one run of a tool produced for one cell."""

    status: FinalStatus
    value: Any = None
    error: str | None = None

    @classmethod
    def success(cls, value: Any) -> ToolOutcome:
        return cls("success", value)

    @classmethod
    def skipped(cls, reason: str) -> ToolOutcome:
        return cls("skipped", None, reason)

    @classmethod
    def failed(cls, reason: str) -> ToolOutcome:
        return cls("error", None, reason)


@dataclass(frozen=True)
class ToolContext:
    """What a run may use: settings, the database (read-only use) and the outbound-HTTP client."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    http: OutboundClient


class NoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tool(ABC):
    """Base class of every enrichment tool."""

    name: ClassVar[str]
    description: ClassVar[str]
    inputs: ClassVar[tuple[ToolInput, ...]]
    config_model: ClassVar[type[BaseModel]] = NoConfig
    # True for tools whose inputs the column names freely (the http tool's templates refer to them by
    # name): the engine then accepts any input name, and ``inputs`` lists only the documented ones.
    accepts_any_inputs: ClassVar[bool] = False
    # Rows per queued task, at least, whatever ``tool_chunk_rows`` says: for a tool whose cells cost
    # microseconds, a task's own cost (claim, two transactions, a dozen statements, its events' sweep) is
    # then spread over more of them. 0: ``tool_chunk_rows``, so a slower tool's results come in steadily.
    min_chunk_rows: ClassVar[int] = 0
    # False for a tool whose cells wait on nothing (no network, no database): a chunk's cells then run one
    # after the other, since running several at once gains nothing and only lengthens each turn of the
    # event loop that the API's requests (in `serve`) wait through. True: ``tool_concurrency`` at once.
    waits: ClassVar[bool] = True
    # True for a tool that computes a chunk's cells in one call (``run_chunk``): the engine then hands it
    # every cell of a chunk at once instead of one at a time (entity_resolution sends a chunk to a
    # matching process).
    runs_chunks: ClassVar[bool] = False

    def check_destinations(self, config: BaseModel, policy: OutboundPolicy) -> None:
        """Refuse (InvalidInput) a config whose fixed destinations the outbound policy refuses; tools that
        call no URL of the config have nothing to check."""
        return None

    def parse_config(self, raw: Mapping[str, Any] | None) -> BaseModel:
        """Validate a column's config; InvalidInput says what is wrong."""
        try:
            return self.config_model.model_validate(dict(raw or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
            )
            raise InvalidInput(f"invalid config for tool {self.name!r}: {problems}") from None

    def check_inputs(self, config: BaseModel, input_names: set[str]) -> None:  # noqa: B027 - optional hook
        """Refuse (InvalidInput) a config naming inputs the column does not give. Most tools have none."""

    @abstractmethod
    async def run(self, values: Mapping[str, Any], config: BaseModel, ctx: ToolContext) -> ToolOutcome:
        """Compute the cell's value from the row's input values (keyed by input name)."""

    async def run_chunk(
        self, chunk: Sequence[Mapping[str, Any]], config: BaseModel, ctx: ToolContext
    ) -> list[ToolOutcome]:
        """Compute several cells, one outcome per element of ``chunk`` in order (tools with
        ``runs_chunks``); by default one after the other through ``run``."""
        return [await self.run(values, config, ctx) for values in chunk]
