"""Signing in to the dashboard over plain HTTP (the browser tests do it through Chromium)."""

from __future__ import annotations

import re

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, api_key: str) -> str:
    """Sign in with ``api_key``; returns the session's CSRF token."""
    page = await client.get("/signin")
    answer = await client.post("/signin", data={"api_key": api_key, "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/projects"
    projects = await client.get("/projects")
    assert projects.status_code == 200
    return csrf_of(projects.text)
