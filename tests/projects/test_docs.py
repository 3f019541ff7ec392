"""The documents a user reads first stay in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

from dossier.app import create_app
from dossier.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"
# The settings of issue 2, documented under "Server and storage".
SERVER_AND_STORAGE = [
    "database_url",
    "host",
    "port",
    "public_url",
    "auto_migrate",
    "db_pool_size",
    "sqlite_busy_timeout_ms",
    "max_body_bytes",
    "max_batch_rows",
    "max_value_chars",
    "log_level",
    "log_json",
]


def test_server_and_storage_settings_are_documented_with_their_defaults() -> None:
    text = (DOCS / "configuration.md").read_text()
    section = text.split("## Server and storage", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(DOSSIER_[A-Z_]+|PORT)` \|.*$", section, re.M)}
    for name in SERVER_AND_STORAGE:
        field = Settings.model_fields[name]
        row = rows.get(f"DOSSIER_{name.upper()}")
        assert row is not None, f"DOSSIER_{name.upper()} is missing from docs/configuration.md"
        if field.default not in (None, "") and not isinstance(field.default, bool):
            assert str(field.default) in row, f"{name}: default {field.default!r} not in {row!r}"
    assert "PORT" in rows


def test_every_project_path_is_in_the_api_reference() -> None:
    text = (DOCS / "api-enterprise.md").read_text()
    paths = [p for p in create_app(Settings()).openapi()["paths"] if p.startswith("/api/enterprise/projects")]
    issue_2 = [p for p in paths if not p.endswith("/run")]  # re-runs are documented with the tools
    assert len(issue_2) >= 6
    for path in issue_2:
        documented = path.removeprefix("/api/enterprise").replace("{project_id}", "{id}")
        assert documented in text, f"{documented} is not in docs/api-enterprise.md"
