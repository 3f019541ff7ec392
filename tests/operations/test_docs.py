"""docs/operations.md and docs/configuration.md stay in step with the metrics and settings."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from dossier import metrics
from dossier.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"
OPERATIONS_SETTINGS = ("retention_", "readyz_", "secret_key", "otel_")


def test_every_metric_is_documented_with_its_labels() -> None:
    text = (DOCS / "operations.md").read_text()
    ours = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    assert len(ours) >= 15
    for metric in ours:
        [family] = metric.describe()
        name = family.name + ("_total" if family.type == "counter" else "")
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, f"{name} is not in docs/operations.md"
        for label in metric._labelnames:
            assert f"`{label}`" in row, f"{name}: label {label} undocumented"


def test_every_operations_setting_is_documented() -> None:
    section = (DOCS / "configuration.md").read_text().split("## Operations", 1)[1].split("\n## ", 1)[0]
    for name in Settings.model_fields:
        if name.startswith(OPERATIONS_SETTINGS):
            assert f"`DOSSIER_{name.upper()}`" in section, name
