"""The counters fed from the enrichment engine: tool runs by tool and outcome, entity-resolution lookups by
outcome with their latency (the one runner and the one matcher, as every caller uses them)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from dossier.enrichment.protocol import ToolContext
from dossier.enrichment.registry.matcher import EntityIndex, EntityRow
from dossier.enrichment.runner import run_tool
from dossier.settings import Settings


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_tool_runs_are_counted_by_tool_and_outcome() -> None:
    ctx = ToolContext(settings=Settings(), sessionmaker=None, http=None)  # type: ignore[arg-type]
    before = {
        outcome: sample("dossier_tool_runs_total", tool="domain", outcome=outcome)
        for outcome in ("success", "skipped")
    }
    runs = sample("dossier_tool_run_duration_seconds_count", tool="domain")
    assert (await run_tool("domain", {"website": "https://www.example.com/about"}, ctx)).status == "success"
    assert (await run_tool("domain", {}, ctx)).status == "skipped"
    assert sample("dossier_tool_runs_total", tool="domain", outcome="success") == before["success"] + 1
    assert sample("dossier_tool_runs_total", tool="domain", outcome="skipped") == before["skipped"] + 1
    assert sample("dossier_tool_run_duration_seconds_count", tool="domain") == runs + 2


def test_entity_resolution_lookups_are_counted_and_timed() -> None:
    index = EntityIndex([EntityRow(kernel_id="1", name="Acme Widgets Inc", country_code="US")])
    match, miss = (
        sample("dossier_entity_resolution_lookups_total", outcome=o) for o in ("match", "no_match")
    )
    timed = sample("dossier_entity_resolution_duration_seconds_count")
    assert index.resolve("Acme Widgets Inc", country="US").match is not None
    assert index.resolve("Entirely Different Bakery").match is None
    assert sample("dossier_entity_resolution_lookups_total", outcome="match") == match + 1
    assert sample("dossier_entity_resolution_lookups_total", outcome="no_match") == miss + 1
    assert sample("dossier_entity_resolution_duration_seconds_count") == timed + 2
