"""The domain exception tree.

Services raise these; each HTTP surface maps them to its documented error envelope in one place
(``dossier.api.errors``). Nothing below knows about HTTP status codes except the ``status_code`` hint
each class carries, which keeps the mapping table-free.
"""

from __future__ import annotations

from typing import Any


class DossierError(Exception):
    """Base of every error Dossier raises on purpose."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInput(DossierError):
    """The request is well-formed but its content is not acceptable."""

    status_code = 422
    code = "invalid_input"


class MalformedRequest(DossierError):
    """The request body could not be parsed at all."""

    status_code = 400
    code = "malformed_request"


class NotAuthenticated(DossierError):
    """No API key, or one that is not valid."""

    status_code = 401
    code = "not_authenticated"


class NotFound(DossierError):
    """The thing does not exist, or belongs to another account (the two are indistinguishable)."""

    status_code = 404
    code = "not_found"


class Conflict(DossierError):
    """The change contradicts the current state (a duplicate name, a column still in use)."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(DossierError):
    """The request body is over the configured limit."""

    status_code = 413
    code = "payload_too_large"
