"""Dependencies every router shares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dossier.net import OutboundClient
from dossier.settings import Settings


# Coroutines, though they only read the app's state: FastAPI runs a plain function dependency on a thread of
# its pool, a hand-off that costs more than the request's own work on small machines (docs/performance.md).
async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_outbound_client(request: Request) -> OutboundClient:
    """The process's one outbound-HTTP client (URL checks; the in-process worker shares its pool)."""
    client: OutboundClient = request.app.state.http
    return client


Outbound = Annotated[OutboundClient, Depends(get_outbound_client)]
