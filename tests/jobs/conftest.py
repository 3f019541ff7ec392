"""Fixtures of the jobs tests: the webhook tests' compressed time, DNS table, outbound client and app."""

from __future__ import annotations

import hashlib
import hmac

import dossier.jobs.tasks
import dossier.pipeline.tasks  # noqa: F401  (registers the analysis handler)
from tests.webhooks.conftest import api, dns, http, settings, wclient

__all__ = ["api", "dns", "http", "settings", "verify_signature", "wclient"]


def verify_signature(body: bytes, signature: str, secret: str) -> bool:
    """003, "Verifying signatures", verbatim."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.removeprefix("sha256="))
