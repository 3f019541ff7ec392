"""The one authentication dependency every API surface uses."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dossier.accounts import service
from dossier.accounts.models import Account
from dossier.db.session import SessionDep
from dossier.errors import NotAuthenticated

# The headers the documents use: `kur-api-key` (000), `x-api-key` (003), and `Authorization`
# (001, bare or Bearer).
KEY_HEADERS = ("kur-api-key", "x-api-key")


def api_key_from_request(request: Request) -> str | None:
    for header in KEY_HEADERS:
        value = request.headers.get(header)
        if value:
            return value.strip()
    authorization = request.headers.get("authorization", "").strip()
    if authorization.lower().startswith("bearer "):
        authorization = authorization[7:].strip()
    return authorization or None


async def current_account(request: Request, session: SessionDep) -> Account:
    key = api_key_from_request(request)
    if key is None:
        raise NotAuthenticated(
            "missing API key: send it in the kur-api-key, x-api-key or Authorization header"
        )
    account = await service.authenticate(session, key)
    if account is None:
        raise NotAuthenticated("invalid API key")
    request.state.account_id = account.id
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]
