"""What every request's text must be before any route sees it, enforced once for every surface.

- No NUL character anywhere: in the path (ids), the query string, or the body (a JSON ``\\u0000`` escape,
  a form's ``%00``, a raw zero byte). PostgreSQL cannot store it in text and SQLite would; refusing it here
  answers the same 422 on both stores, on every API.
- No lone UTF-16 surrogate (``\\ud800`` in JSON): no database can store it either.
- A body declared in another charset (``Content-Type: application/json; charset=latin-1``) is decoded with
  that charset and handed on as UTF-8; an unknown charset is a 415 and bytes that are not in it a 400.

A path or query problem is answered here, in the envelope of the surface that owns the path; a body problem
is raised when the route reads the body, so it gets that envelope too.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dossier.api.errors import error_response

NUL_MESSAGE = "text must not contain NUL characters (\\u0000)"
SURROGATE_MESSAGE = "text must not contain lone UTF-16 surrogates (e.g. \\ud800)"
# Charsets that are UTF-8 on the wire already (JSON's own default).
_UTF8 = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
# In a JSON body: a \u escape of NUL or of a surrogate (cheap test before a precise one).
_SUSPECT_JSON = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored on every supported database, or None when it can."""
    if "\x00" in text:
        return NUL_MESSAGE
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_MESSAGE
    return None


def _json_problem(value: Any) -> tuple[str, str] | None:
    """(problem, where) of the first key or string inside a parsed JSON document that cannot be stored;
    iterative, so a deep document costs no recursion."""
    stack: list[tuple[Any, str]] = [(value, "body")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if (problem := text_problem(item)) is not None:
                return problem, where
        elif isinstance(item, dict):
            for key, child in item.items():
                if (problem := text_problem(key)) is not None:
                    return problem, f"{where} (a key)"
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}.{index}") for index, child in enumerate(item))
    return None


def _content_type(scope: Scope) -> tuple[str, str | None]:
    """(media type, declared charset) of the request."""
    raw = dict(scope.get("headers", [])).get(b"content-type", b"").decode("latin-1")
    media, _, params = raw.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


def body_problem(body: bytes, media: str) -> tuple[str, str] | None:
    """(why, where) a (UTF-8) body holds text no database stores, or None."""
    if media.startswith("multipart/") or media == "application/octet-stream":
        return None  # binary by nature; no route stores such a body as text
    if b"\x00" in body:
        return NUL_MESSAGE, "body"
    if media == "application/x-www-form-urlencoded":
        return _pairs_problem(body.decode("latin-1"), "body")
    if _SUSPECT_JSON.search(body) is None:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON (or nested past what Python parses): the route says so
    return _json_problem(document)


def _pairs_problem(encoded: str, where: str) -> tuple[str, str] | None:
    """The first problem of a form- or query-encoded string (``a=1&b=%00``)."""
    for key, value in parse_qsl(encoded, keep_blank_values=True):
        if (problem := text_problem(key) or text_problem(value)) is not None:
            return problem, f"{where} parameter {key!r}"
    return None


def _message(problem: str, where: str) -> str:
    return f"{where if len(where) <= 200 else where[:199] + '…'}: {problem}"


class RequestText:
    """Refuse NUL characters and lone surrogates in path, query and body; decode declared charsets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = (
            (NUL_MESSAGE, "path")
            if "\x00" in scope["path"]
            else _pairs_problem(scope.get("query_string", b"").decode("latin-1"), "query")
        )
        if found is not None:
            await error_response(Request(scope), 422, _message(*found))(scope, receive, send)
            return
        media, charset = _content_type(scope)
        codec = None
        if charset is not None and charset not in _UTF8:
            try:
                codec = codecs.lookup(charset).name
            except LookupError:
                message = f"unknown charset {charset[:40]!r} in Content-Type; send UTF-8"
                await error_response(Request(scope), 415, message)(scope, receive, send)
                return
        chunks: list[bytes] = []
        delivered = False

        async def checked() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return message
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            delivered = True
            body = b"".join(chunks)
            chunks.clear()
            if codec is not None and codec != "utf-8":
                try:
                    body = body.decode(codec).encode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    raise HTTPException(400, f"request body is not valid {charset}") from None
            if (found := body_problem(body, media)) is not None:
                raise HTTPException(422, _message(*found))
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, checked, send)
