"""The request boundary owns the transaction: services flush, this commits or rolls back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# Methods that change nothing: their sessions read without SQLite's write lock.
SAFE_METHODS = frozenset({"GET", "HEAD"})


def sessionmaker_from(request: Request) -> async_sessionmaker[AsyncSession]:
    """The sessions of this request: read-only ones for GET and HEAD."""
    state = request.app.state
    read_only = request.method in SAFE_METHODS and hasattr(state, "read_sessionmaker")
    maker: async_sessionmaker[AsyncSession] = state.read_sessionmaker if read_only else state.sessionmaker
    return maker


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request: committed if the handler returns, else rolled back."""
    async with sessionmaker_from(request)() as session, session.begin():
        yield session


# scope="function": the transaction ends (commit or rollback) when the route returns, before the response
# is sent, so a client never reads an answer whose change might still roll back.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
