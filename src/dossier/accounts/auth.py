"""The one authentication dependency every API surface uses."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

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


# Declared so that the OpenAPI schema (and the Authorize button of /docs) knows how to send a key; the key
# itself is read by api_key_from_request, which accepts any of them.
_KUR_API_KEY = APIKeyHeader(
    name="kur-api-key",
    scheme_name="kur-api-key",
    auto_error=False,
    description="Your API key (document 000).",
)
_X_API_KEY = APIKeyHeader(
    name="x-api-key", scheme_name="x-api-key", auto_error=False, description="Your API key."
)
_AUTHORIZATION = APIKeyHeader(
    name="Authorization",
    scheme_name="Authorization",
    auto_error=False,
    description="Your API key, bare or as `Bearer <key>`.",
)


async def current_account(
    request: Request,
    session: SessionDep,
    _kur: Annotated[str | None, Security(_KUR_API_KEY)] = None,
    _x: Annotated[str | None, Security(_X_API_KEY)] = None,
    _authorization: Annotated[str | None, Security(_AUTHORIZATION)] = None,
) -> Account:
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
