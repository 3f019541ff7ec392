"""docs/list-building.md and docs/configuration.md stay in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

from dossier.lists import service
from dossier.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_list_settings_are_documented_with_their_defaults() -> None:
    section = (DOCS / "configuration.md").read_text().split("## List building", 1)[1].split("\n## ", 1)[0]
    for name in ("list_foreground_max", "list_batch_rows", "list_max_companies"):
        row = next((line for line in section.splitlines() if f"`DOSSIER_{name.upper()}`" in line), None)
        assert row is not None, f"DOSSIER_{name.upper()} is missing from docs/configuration.md"
        assert f"`{Settings.model_fields[name].default}`" in row


def test_every_filter_and_sort_is_documented() -> None:
    text = (DOCS / "list-building.md").read_text()
    for name in [*service.FILTER_NAMES, *service.SORTS, *service.FIELD_VALUES]:
        assert re.search(rf"`-?{re.escape(name)}`", text), f"{name} is not in docs/list-building.md"
