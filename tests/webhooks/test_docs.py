"""docs/webhooks.md and the Webhooks section of docs/configuration.md stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from dossier.app import create_app
from dossier.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_webhook_setting_is_documented() -> None:
    section = (DOCS / "configuration.md").read_text().split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    for name in Settings.model_fields:
        if name.startswith("webhook_"):
            assert f"`DOSSIER_{name.upper()}`" in section, name


def test_every_webhook_route_is_documented() -> None:
    text = (DOCS / "webhooks.md").read_text()
    paths = create_app(Settings()).openapi()["paths"]
    for path, operations in paths.items():
        if not path.startswith(("/api/enterprise/webhooks", "/api/enterprise/integrations")):
            continue
        documented = path.removeprefix("/api/enterprise").replace("{endpoint_id}", "{id}")
        for method in operations:
            assert f"`{method.upper()} {documented}`" in text, f"{method.upper()} {documented}"
