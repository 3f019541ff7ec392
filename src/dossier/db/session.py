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


def writing_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """The sessions that may write, whatever the method: for the reads that write on the side (the default
    registry built on first use, a listener's stream marking what it handed out). On SQLite the read-only
    ones cannot write at all (``create_read_engine``)."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request: committed if the handler returns, else rolled back."""
    async with sessionmaker_from(request)() as session, session.begin():
        yield session


# scope="function": the transaction ends (commit or rollback) when the route returns, before the response
# is sent, so a client never reads an answer whose change might still roll back.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_writing_session(request: Request) -> AsyncIterator[AsyncSession]:
    """As ``get_session``, on the writing sessions whatever the method (a GET that writes)."""
    async with writing_sessionmaker(request)() as session, session.begin():
        yield session


WritingSessionDep = Annotated[AsyncSession, Depends(get_writing_session, scope="function")]
