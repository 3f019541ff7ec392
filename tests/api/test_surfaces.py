"""Every route belongs to a declared surface, and errors under it come back in that surface's envelope."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.routing import APIRoute

from dossier.api.surfaces import ENTERPRISE, JOBS, PIPELINE, SURFACES, Surface, surface_for


def _routes(app: Any) -> list[APIRoute]:
    return [route for route in app.routes if isinstance(route, APIRoute)]


def test_every_route_is_inside_a_declared_surface(app: Any) -> None:
    outside = [route.path for route in _routes(app) if surface_for(route.path) is None]
    assert outside == [], f"routes outside every surface in dossier.api.surfaces: {outside}"


def test_a_route_outside_every_surface_is_caught(app: Any) -> None:
    app.add_api_route("/nowhere/ping", lambda: {"ok": True}, methods=["GET"])
    assert [r.path for r in _routes(app) if surface_for(r.path) is None] == ["/nowhere/ping"]


def test_documented_errors_come_from_the_surface(app: Any) -> None:
    for route in _routes(app):
        surface = surface_for(route.path)
        assert isinstance(surface, Surface)
        if route.responses:
            assert set(surface.errors) <= set(route.responses), route.path


def test_the_longest_prefix_owns_a_path() -> None:
    assert surface_for("/api/enterprise/projects") is ENTERPRISE
    assert surface_for("/rest/v1/entity-resolution") is JOBS
    assert surface_for("/api/company/retrieve") is PIPELINE
    assert surface_for("/api/enterprisey") is None
    assert all(surface.prefixes for surface in SURFACES)


async def test_each_surface_answers_in_its_envelope(client: httpx.AsyncClient) -> None:
    enterprise = (await client.get("/api/enterprise/projects")).json()
    assert set(enterprise) == {"message", "error_detail"}
    jobs = (await client.get("/rest/v1/entity-resolution/x")).json()
    assert jobs["error"]["code"] == "not_authenticated"
    pipeline = (await client.get("/api/company/retrieve")).json()
    assert pipeline["success"] is False
    generic = (await client.get("/nowhere")).json()
    assert generic["error"]["status"] == 404
