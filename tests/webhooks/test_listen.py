"""`dossier listen` end to end: a real server (`dossier serve`, worker in-process), the CLI in subprocesses,
a local receiver verifying every signature with the secret the CLI printed. Killing the CLI and starting it
again loses nothing; redelivery works into it; Ctrl-C removes the endpoint; two listeners run at once."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from dossier.accounts.service import NewAccount
from dossier.webhooks import service
from tests.conftest import DOSSIER_BIN, Receiver, ServerProcess, start_server, stop_server
from tests.helpers import eventually

BASE = "/api/enterprise/webhooks"
SECRET_LINE = re.compile(r"Signing secret: (whsec_\S+)\s+\(endpoint ([0-9a-f-]{36})\)")


class Cli:
    """`dossier listen` in a subprocess, its output in a file."""

    def __init__(self, server: ServerProcess, key: str, forward_to: str, log: Path, *extra: str) -> None:
        self.log = log
        handle = log.open("w")
        self.process = subprocess.Popen(
            [DOSSIER_BIN, "listen", "--forward-to", forward_to, "--url", server.base_url, *extra],
            env={"DOSSIER_API_KEY": key, "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = SECRET_LINE.search(self.output())
            if found:
                self.secret, self.endpoint_id = found.group(1), found.group(2)
                return
            if self.process.poll() is not None:
                raise AssertionError(f"dossier listen exited:\n{self.output()}")
            time.sleep(0.05)
        self.process.kill()
        raise AssertionError(f"dossier listen did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=20)


def _verify(secret: str, request: Any) -> dict[str, Any]:
    headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    payload: dict[str, Any] = Webhook(secret).verify(request.body, headers)
    return payload


async def _history(base: str, key: str, delivery_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, headers={"kur-api-key": key}) as client:
        response = await client.get(f"{BASE}/deliveries/{delivery_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


async def _emit(maker: async_sessionmaker[AsyncSession], account_id: str, n: int, tag: str) -> list[str]:
    async with maker() as session, session.begin():
        return await service.emit_events(
            session, account_id, "demo.happened", [{"n": i, "tag": tag} for i in range(n)]
        )


@pytest.fixture
def server(database_url: str, tmp_path: Path, account: NewAccount) -> Any:
    # Retries a hundred times sooner than in production: 50 ms, 3 s, 18 s... while the CLI is away.
    process = start_server(
        database_url,
        tmp_path,
        "--no-migrate",
        env_extra={"DOSSIER_WEBHOOK_TIME_SCALE": "0.01", "DOSSIER_WORKER_POLL_INTERVAL": "0.05"},
    )
    yield process
    stop_server(process)


async def test_listen_forwards_signed_deliveries_resumes_after_a_kill_and_cleans_up(
    server: ServerProcess,
    account: NewAccount,
    receiver: Receiver,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    key, account_id = account.api_key, account.account.id
    first = Cli(server, key, receiver.url + "/one", tmp_path / "one.log")
    second = Cli(server, key, receiver.url + "/two", tmp_path / "two.log")
    assert first.endpoint_id != second.endpoint_id

    # Both listeners get every event; the local code verifies each signature with its CLI's secret. The
    # first answer is a 500: recorded as Error Response, retried, then a Success.
    receiver.answers = [(500, {}, b"boom"), (200, {}, b"ok")]
    ids = await _emit(sessionmaker, account_id, 2, "before")
    await receiver.wait_for(5, timeout=30)
    by_path: dict[str, list[Any]] = {}
    for request in receiver.requests:
        by_path.setdefault(request.path, []).append(request)
    for request in by_path["/one"]:
        _verify(first.secret, request)
    for request in by_path["/two"]:
        _verify(second.secret, request)
    assert {json.loads(r.body)["data"]["n"] for r in by_path["/two"]} == {0, 1}

    async def all_succeeded(delivery_ids: list[str]) -> list[dict[str, Any]] | None:
        found = [await _history(server.base_url, key, d) for d in delivery_ids]
        return found if all(d["status"] == "succeeded" for d in found) else None

    histories = await eventually(lambda: all_succeeded(ids), within=30, what="deliveries succeeded")
    outcomes = sorted(a["outcome"] for h in histories for a in h["history"])
    assert outcomes.count("Error Response") == 1 and outcomes.count("Success") == 4
    failed = next(a for h in histories for a in h["history"] if a["outcome"] == "Error Response")
    assert failed["response_status"] == 500 and failed["response_body"] == "boom"
    assert failed["url"].startswith("listen://")
    # One line per delivery: time, event, local status, duration.
    printed = first.output() + second.output()
    assert len(re.findall(r"\d\d:\d\d:\d\d  demo\.happened\s+200\s+\d+ ms", printed)) == 4
    assert len(re.findall(r"demo\.happened\s+500\s+\d+ ms", printed)) == 1

    # Killed without a chance to clean up: deliveries made meanwhile wait and retry, and a restart with the
    # same --forward-to resumes the same endpoint and secret and receives them all.
    assert first.stop(signal.SIGKILL) != 0
    before = len(receiver.requests)
    missed = await _emit(sessionmaker, account_id, 3, "while-away")
    missed_one = [
        d for d in missed if (await _history(server.base_url, key, d))["endpoint_id"] == first.endpoint_id
    ]

    async def tried(delivery_ids: list[str]) -> bool:
        found = [await _history(server.base_url, key, d) for d in delivery_ids]
        return all(d["attempts"] >= 1 for d in found)

    await eventually(lambda: tried(missed_one), within=30, what="attempts while the CLI is away")
    away = await _history(server.base_url, key, missed_one[0])
    assert away["history"][0]["outcome"] == "Error Request" and away["status"] == "pending"
    restarted = Cli(server, key, receiver.url + "/one", tmp_path / "one-again.log")
    assert (restarted.endpoint_id, restarted.secret) == (first.endpoint_id, first.secret)
    await eventually(lambda: all_succeeded(missed), within=30, what="missed deliveries delivered")
    resumed = [r for r in receiver.requests[before:] if r.path == "/one"]
    assert sorted(json.loads(r.body)["data"]["n"] for r in resumed) == [0, 1, 2]
    for request in resumed:
        _verify(restarted.secret, request)

    # A manual redelivery goes into the stream too, with the same webhook-id.
    async with httpx.AsyncClient(base_url=server.base_url, headers={"kur-api-key": key}) as client:
        again = await client.post(f"{BASE}/deliveries/{missed_one[0]}/redeliver")
        assert again.status_code == 202, again.text
    redelivered = await receiver.wait_for(len(receiver.requests) + 1, timeout=30)
    assert redelivered[-1].headers["webhook-id"] == missed_one[0]

    # Ctrl-C removes the temporary endpoint; the other listener keeps running until its own.
    assert restarted.stop() == 0
    assert "Removed the listener endpoint" in restarted.output()
    async with httpx.AsyncClient(base_url=server.base_url, headers={"kur-api-key": key}) as client:
        assert (await client.get(f"{BASE}/{first.endpoint_id}")).status_code == 404
        assert (await client.get(f"{BASE}/{second.endpoint_id}")).status_code == 200
    assert second.stop() == 0


async def test_listen_refuses_a_bad_key_and_a_bad_profile(server: ServerProcess, account: NewAccount) -> None:
    for args, key, message in (
        ((), "nope", "invalid API key"),
        (("--profile", "nosuch"), account.api_key, "unknown webhook profile"),
    ):
        done = await asyncio.to_thread(
            subprocess.run,
            [DOSSIER_BIN, "listen", "--forward-to", "http://127.0.0.1:9/x", "--url", server.base_url, *args],
            env={"PATH": "/usr/bin:/bin", "DOSSIER_API_KEY": key, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert message in done.stdout + done.stderr
