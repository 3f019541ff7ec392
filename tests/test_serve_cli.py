"""`dossier serve` and `--help` as a new user meets them, through the real command."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from pathlib import Path

from tests.conftest import DOSSIER_BIN, dossier_env, run_cli, start_server, stop_server


def test_a_taken_port_fails_first_with_one_plain_line(tmp_path: Path) -> None:
    database = tmp_path / "never.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), env=dossier_env(f"sqlite:///{database}"), timeout=30)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port} is already in use" in lines[0], result.stderr
    assert (
        "Traceback" not in result.stderr and "ready" not in result.stdout and "serving" not in result.stdout
    )
    assert not database.exists()  # nothing started: no migration, no account, no worker


def test_sigterm_after_a_clean_shutdown_exits_0(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0, server.output()


def test_the_first_start_shows_the_signing_secret_and_the_outbound_allow_setting(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path)
    try:
        text = server.output()
    finally:
        stop_server(server)
    assert re.search(r"whsec_[A-Za-z0-9+/=]{40,}", text), text
    assert "DOSSIER_OUTBOUND_ALLOW" in text and "rotate-secret" in text


def test_help_shows_no_type_beside_flags() -> None:
    for command in (["serve"], ["accounts", "create"], ["export"], ["import"], ["worker"]):
        result = subprocess.run(
            [DOSSIER_BIN, *command, "--help"], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "<bool>" not in result.stdout, (command, result.stdout)
    serve = subprocess.run(
        [DOSSIER_BIN, "serve", "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    assert "<int>" in serve  # options that take a value still say what
