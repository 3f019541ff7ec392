"""Every outbound setting is documented, with its default, in both places a user looks."""

from __future__ import annotations

import re
from pathlib import Path

from dossier.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"
OUTBOUND = [name for name in Settings.model_fields if name.startswith("outbound_")]


def _rows(text: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `(DOSSIER_[A-Z_]+)` \|.*$", text, re.M)}


def test_outbound_settings_are_documented() -> None:
    section = (DOCS / "configuration.md").read_text().split("## Outbound HTTP", 1)[1].split("\n## ", 1)[0]
    guide = (DOCS / "outbound-http.md").read_text()
    assert len(OUTBOUND) >= 10
    for rows in (_rows(section), _rows(guide)):
        for name in OUTBOUND:
            row = rows.get(f"DOSSIER_{name.upper()}")
            assert row is not None, f"DOSSIER_{name.upper()} is not documented"
            default = Settings.model_fields[name].get_default(call_default_factory=True)
            if default not in (None, "", []) and not isinstance(default, bool):
                assert f"`{default}`" in row, f"{name}: default {default!r} not in {row!r}"
