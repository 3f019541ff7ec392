"""Fixtures of the pipeline tests: those of the jobs tests (compressed time, outbound client, app)."""

from __future__ import annotations

from tests.jobs.conftest import api, dns, http, settings, wclient

__all__ = ["api", "dns", "http", "settings", "wclient"]
