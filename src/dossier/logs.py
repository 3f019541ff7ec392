"""Logging: readable lines (the default) or one JSON object per line. Never log API keys or secrets.

Fields bound with :func:`bound_log_context` (a delivery's id while it is attempted) are added to every line
logged inside that block, by any logger, in either format.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


# A key in a URL (the reconciliation service accepts `?api_key=`): the access log prints the request line.
_KEY_IN_URL = re.compile(r"([?&;](?:api_key|api%5fkey)=)[^&;\s\"']*", re.IGNORECASE)
REDACTED = "[redacted]"


def redact_secrets(text: str) -> str:
    """``text`` with the value of every ``api_key`` query parameter replaced by ``[redacted]``."""
    return _KEY_IN_URL.sub(lambda m: m.group(1) + REDACTED, text) if "=" in text else text


class RedactSecrets(logging.Filter):
    """Rewrites a record whose message holds an API key in a URL (uvicorn's access log lines among them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the formatter report it as it would
            return True
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("dossier_log_context", default=None)


class bound_log_context:
    """Add ``fields`` to every log record made in this block (this task and what it awaits).

    A class rather than a generator: it wraps every webhook attempt, and costs a third as much."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        current = _CONTEXT.get()
        self._token = _CONTEXT.set({**current, **self._fields} if current else self._fields)

    def __exit__(self, *exc_info: object) -> None:
        _CONTEXT.reset(self._token)


class AddContext(logging.Filter):
    """Copies the bound context fields (see :func:`bound_log_context`) onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _CONTEXT.get()
        if fields:
            for key, value in fields.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """The readable default: ``time level logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if not extras:
            return line
        fields = " ".join(f"{key}={value}" for key, value in extras.items())
        head, newline, rest = line.partition("\n")  # a traceback stays below the first line
        return f"{head} {fields}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", as_json: bool = False) -> None:
    """Route every logger (ours, uvicorn's, SQLAlchemy's) to stderr in one format: readable lines, or one
    JSON object per line with ``as_json``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(AddContext())
    handler.addFilter(RedactSecrets())
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # aiosqlite logs every call with its arguments at DEBUG: statement parameters, secrets among them.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
