"""Structured logs never carry an API key, not even one sent in a URL."""

from __future__ import annotations

import json
import logging

from dossier.logs import JsonFormatter, RedactSecrets, redact_secrets

SECRET = "dk_live_DoNotLogMe0123456789"


def test_a_uvicorn_access_record_is_redacted() -> None:
    # uvicorn.access logs '%s - "%s %s HTTP/%s" %d' with the path and query string as one argument.
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/api/reconcile/preview?id=1&api_key={SECRET}&x=y", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record) is True
    line = json.loads(JsonFormatter().format(record))
    assert (
        line["msg"]
        == '127.0.0.1:5000 - "GET /api/reconcile/preview?id=1&api_key=[redacted]&x=y HTTP/1.1" 200'
    )


def test_redaction_leaves_other_parameters_and_text_alone() -> None:
    assert redact_secrets("GET /a?b=1&c=2") == "GET /a?b=1&c=2"
    assert redact_secrets(f"/x?API_KEY={SECRET}") == "/x?API_KEY=[redacted]"
    assert redact_secrets(f"/x?my_api_key={SECRET}") == f"/x?my_api_key={SECRET}"  # another parameter
    assert redact_secrets("no key here = fine") == "no key here = fine"
