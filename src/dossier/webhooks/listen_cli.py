"""``dossier listen``: receive a Dossier server's webhooks on this machine, over one outbound connection.

The CLI opens (or resumes, by name) a listener endpoint on the server, reads its Server-Sent Events stream,
forwards each streamed request byte for byte, headers included, to the local URL, prints one line per
delivery and posts the local answer back, so the attempt is recorded as ``Success`` or ``Error Response``
like any other. A dropped stream is reconnected (deliveries wait on the server and retry meanwhile); Ctrl-C
removes the endpoint. This is a client of our own API running on the user's machine: the local URL is the
user's own, so it is not subject to the server's outbound policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import time
from datetime import datetime
from typing import Annotated, Any

import aiohttp
import typer
from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

API = "/api/enterprise/webhooks"
# Headers the local request gets from the connection itself, never copied from the streamed request.
_HOP_BY_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding"})
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
ANSWER_BODY_SENT = 4096


class ListenError(Exception):
    """The server refused the listener (bad key, bad profile...): there is no point retrying."""


def default_name(forward_to: str) -> str:
    """The same --forward-to resumes the same endpoint on the next start."""
    return "cli-" + hashlib.sha256(forward_to.encode()).hexdigest()[:12]


def _error_message(status: int, text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return f"HTTP {status}: {text[:200]}"
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            if isinstance(body.get(key), str):
                return f"HTTP {status}: {body[key]}"
    return f"HTTP {status}: {text[:200]}"


class Listen:
    def __init__(
        self, *, base: str, key: str, forward_to: str, name: str, profile: str, events: list[str] | None
    ) -> None:
        self.base = base.rstrip("/")
        self.headers = {"kur-api-key": key}
        self.forward_to = forward_to
        self.name = name
        self.profile = profile
        self.events = events
        self.endpoint_id: str | None = None
        self.forwarded = 0

    async def open(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        body = {"name": self.name, "profile": self.profile, "events": self.events}
        async with session.post(self.base + API + "/listen", json=body, headers=self.headers) as response:
            text = await response.text()
            if response.status != 200:
                raise ListenError(_error_message(response.status, text))
            opened: dict[str, Any] = json.loads(text)
        self.endpoint_id = opened["id"]
        return opened

    async def stream(self, session: aiohttp.ClientSession, opened: dict[str, Any]) -> None:
        """Read the stream until it ends; forward every delivery as it comes."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=15)
        url = self.base + opened["stream"]
        pending: set[asyncio.Task[None]] = set()
        async with session.get(url, headers=self.headers, timeout=timeout) as response:
            if response.status != 200:
                raise ListenError(_error_message(response.status, await response.text()))
            event, data = "", ""
            async for raw in response.content:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith(":"):
                    continue
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif not line:
                    if event == "delivery" and data:
                        task = asyncio.create_task(self.forward(session, opened, json.loads(data)))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                    elif event == "replaced":
                        raise ListenError("another `dossier listen` took over this listener name")
                    event, data = "", ""
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def forward(
        self, session: aiohttp.ClientSession, opened: dict[str, Any], item: dict[str, Any]
    ) -> None:
        headers = {k: v for k, v in item["headers"].items() if k.lower() not in _HOP_BY_HOP}
        body = item["body"].encode("utf-8")
        started = time.monotonic()
        answer: dict[str, Any] = {"attempt_id": item["attempt_id"]}
        try:
            async with session.post(
                self.forward_to,
                data=body,
                headers=headers,
                # Only the delivery's own headers (and Host, Content-Length): none of aiohttp's defaults.
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=60),
            ) as response:
                text = (await response.content.read(ANSWER_BODY_SENT)).decode("utf-8", errors="replace")
                answer.update(status=response.status, headers=dict(response.headers), body=text)
                shown = str(response.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            answer["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            shown = "ERR"
        elapsed = int((time.monotonic() - started) * 1000)
        answer["duration_ms"] = elapsed
        self.forwarded += 1
        when = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        colour = "green" if shown.startswith("2") else "red"
        console.print(
            f"{when}  {item['event_type']:<32} [{colour}]{shown:>3}[/{colour}]  {elapsed:>5} ms  "
            f"{item['delivery_id']}" + (f"  ({answer['error']})" if "error" in answer else "")
        )
        async with session.post(self.base + opened["answers"], json=answer, headers=self.headers) as response:
            if response.status != 200:
                # The attempt gave up waiting (the profile's timeout): it is retried and forwarded again.
                err_console.print(
                    f"answer not recorded: {_error_message(response.status, await response.text())}"
                )

    async def remove(self, session: aiohttp.ClientSession) -> None:
        if self.endpoint_id is None:
            return
        async with session.delete(f"{self.base}{API}/{self.endpoint_id}", headers=self.headers) as response:
            if response.status == 200:
                console.print(f"Removed the listener endpoint {self.endpoint_id}.")

    async def run(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session:
            opened = await self._open_with_retries(session, stop)
            if opened is None:
                return
            console.print(
                f"Ready. Forwarding [bold]{', '.join(opened['events'])}[/bold] ({opened['profile']} profile) "
                f"to [bold]{self.forward_to}[/bold]"
            )
            console.print(f"Signing secret: [bold]{opened['secret']}[/bold]  (endpoint {opened['id']})")
            console.print("Ctrl-C removes the endpoint; a restart with the same --forward-to resumes it.")
            try:
                failures = 0
                while not stop.is_set():
                    runner = asyncio.create_task(self.stream(session, opened))
                    stopper = asyncio.create_task(stop.wait())
                    done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    stopper.cancel()
                    if runner not in done:
                        runner.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await runner
                        break
                    error = runner.exception()
                    if isinstance(error, ListenError):
                        raise error
                    delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                    failures += 1
                    err_console.print(
                        f"connection lost ({error or 'stream ended'}); reconnecting in {delay:g} s"
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    if not stop.is_set():
                        resumed = await self._open_with_retries(session, stop)
                        if resumed is not None:
                            opened = resumed
                            failures = 0
            finally:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    await self.remove(session)

    async def _open_with_retries(
        self, session: aiohttp.ClientSession, stop: asyncio.Event
    ) -> dict[str, Any] | None:
        attempt = 0
        while not stop.is_set():
            try:
                return await self.open(session)
            except (aiohttp.ClientError, OSError) as exc:
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                attempt += 1
                err_console.print(f"cannot reach {self.base} ({exc}); retrying in {delay:g} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        return None


def listen_cmd(
    forward_to: Annotated[
        str,
        typer.Option(
            "--forward-to",
            "-f",
            help="Local URL that receives the deliveries, e.g. http://localhost:3000/webhooks.",
        ),
    ],
    url: Annotated[
        str, typer.Option("--url", envvar="DOSSIER_URL", help="Base URL of the Dossier server.")
    ] = "http://127.0.0.1:8000",
    key: Annotated[
        str | None,
        typer.Option("--key", envvar="DOSSIER_API_KEY", help="API key of the account (DOSSIER_API_KEY)."),
    ] = None,
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="Wire profile: standard, kuration, kernel, kruncher.")
    ] = "standard",
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events", "-e", help="Event type to receive (repeat; default all the profile carries)."
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Listener name (default derived from --forward-to): the same name resumes."
        ),
    ] = None,
) -> None:
    """Forward a Dossier server's webhooks to a local URL over one outbound connection, like stripe listen."""
    if not key:
        err_console.print("an API key is needed: --key or DOSSIER_API_KEY")
        raise typer.Exit(2)
    wanted = [e for raw in events or [] for e in raw.split(",") if e.strip()] or None
    listener = Listen(
        base=url,
        key=key,
        forward_to=forward_to,
        name=name or default_name(forward_to),
        profile=profile,
        events=wanted,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await listener.run(stop)

    try:
        asyncio.run(main())
    except ListenError as exc:
        err_console.print(f"dossier listen: {exc}")
        raise typer.Exit(1) from None
    console.print(f"Stopped after {listener.forwarded} deliveries.")
