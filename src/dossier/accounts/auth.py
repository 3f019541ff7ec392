"""The one authentication dependency every API surface uses."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, APIKeyQuery
from sqlalchemy.ext.asyncio import AsyncSession

from dossier.accounts import service
from dossier.accounts.models import Account
from dossier.db.session import SessionDep, sessionmaker_from
from dossier.errors import NotAuthenticated

# The headers the documents use: `kur-api-key` (000), `x-api-key` (003), and `Authorization`
# (001, bare or Bearer).
KEY_HEADERS = ("kur-api-key", "x-api-key")


# The query parameter the reconciliation surface (and only it) also reads the key from: OpenRefine sends no
# custom headers. Access logs redact it (dossier.logs).
QUERY_KEY_PARAMETER = "api_key"


def api_key_from_request(request: Request, *, query_parameter: str | None = None) -> str | None:
    """The key from the usual headers, else (only when ``query_parameter`` is given) from the query string."""
    for header in KEY_HEADERS:
        value = request.headers.get(header)
        if value:
            return value.strip()
    authorization = request.headers.get("authorization", "").strip()
    if authorization.lower().startswith("bearer "):
        authorization = authorization[7:].strip()
    if authorization:
        return authorization
    if query_parameter is not None:
        return request.query_params.get(query_parameter, "").strip() or None
    return None


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


_QUERY_API_KEY = APIKeyQuery(
    name=QUERY_KEY_PARAMETER,
    scheme_name=QUERY_KEY_PARAMETER,
    auto_error=False,
    description="Your API key as a query parameter (the reconciliation service only).",
)


async def authenticate_request(
    request: Request, session: AsyncSession, *, query_parameter: str | None = None
) -> Account:
    """The account whose key the request carries; NotAuthenticated when there is none or it is not valid."""
    key = api_key_from_request(request, query_parameter=query_parameter)
    if key is None:
        where = "the kur-api-key, x-api-key or Authorization header"
        if query_parameter is not None:
            where += f", or the {query_parameter} query parameter"
        raise NotAuthenticated(f"missing API key: send it in {where}")
    account = await service.authenticate(session, key)
    if account is None:
        raise NotAuthenticated("invalid API key")
    request.state.account_id = account.id
    return account


async def current_account(
    request: Request,
    session: SessionDep,
    _kur: Annotated[str | None, Security(_KUR_API_KEY)] = None,
    _x: Annotated[str | None, Security(_X_API_KEY)] = None,
    _authorization: Annotated[str | None, Security(_AUTHORIZATION)] = None,
) -> Account:
    return await authenticate_request(request, session)


async def current_account_or_query_key(
    request: Request,
    _kur: Annotated[str | None, Security(_KUR_API_KEY)] = None,
    _x: Annotated[str | None, Security(_X_API_KEY)] = None,
    _authorization: Annotated[str | None, Security(_AUTHORIZATION)] = None,
    _query: Annotated[str | None, Security(_QUERY_API_KEY)] = None,
) -> Account:
    """Like ``current_account``, and also accepts the key in the ``api_key`` query parameter. Opt-in for the
    surfaces whose clients cannot send headers (the reconciliation service); every other surface refuses keys
    in URLs, which leak into logs and browser histories.

    It checks the key in a short transaction of its own rather than the request's: the handlers behind it
    read the registry index, which takes a connection of its own (SQLite has one).
    """
    async with sessionmaker_from(request)() as session, session.begin():
        return await authenticate_request(request, session, query_parameter=QUERY_KEY_PARAMETER)


CurrentAccount = Annotated[Account, Depends(current_account)]
CurrentAccountOrQueryKey = Annotated[Account, Depends(current_account_or_query_key)]
