"""Keys in URLs (`?api_key=`, which the reconciliation service accepts) never reach the logs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import start_server, stop_server
from tests.test_logs import SECRET


def test_the_servers_access_log_never_prints_the_key(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path, "--no-worker")
    try:
        manifest = httpx.get(f"{server.base_url}/api/reconcile", params={"api_key": SECRET}, timeout=30)
        assert manifest.status_code == 200
        queries = json.dumps({"q": {"query": "Acme"}})
        refused = httpx.get(
            f"{server.base_url}/api/reconcile", params={"queries": queries, "api_key": SECRET}, timeout=30
        )
        assert refused.status_code == 401
        preview = httpx.get(f"{server.base_url}/api/reconcile/preview?api_key={SECRET}&id=1", timeout=30)
        assert preview.status_code == 401
    finally:
        stop_server(server)
    output = server.output()
    assert SECRET not in output
    access = [line for line in output.splitlines() if '"logger": "uvicorn.access"' in line]
    assert len(access) >= 3, output
    assert all(
        "api_key=[redacted]" in line for line in access if "/api/reconcile?" in line or "preview" in line
    )
