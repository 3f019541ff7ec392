"""``http``: ask the user's own HTTP service about a row, and keep (part of) its JSON answer.

Config::

    {"method": "POST", "url": "https://api.example.com/companies/{{ domain }}",
     "body": {"name": "{{ name }}", "limit": 1}, "headers": {"Authorization": "Bearer ..."},
     "path": "data.items.0.name", "timeout": 10}

``{{ input }}`` placeholders refer to the column's inputs by name (any names: the column chooses them).
In ``url`` a value is percent-encoded, so row data can never change the host or add query parameters; the
scheme and host must be written literally. In ``body`` a string that is exactly one placeholder takes the
value with its JSON type; elsewhere values are inserted as text. Header values may use placeholders too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dossier.enrichment.protocol import Tool, ToolContext, ToolOutcome
from dossier.enrichment.tools import register
from dossier.errors import InvalidInput
from dossier.net import (
    BlockedURL,
    InvalidURL,
    OutboundError,
    OutboundPolicy,
    RequestTimeout,
    ResponseTooLarge,
)

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_AUTHORITY = re.compile(r"^(https?)://([^/?#]*)", re.IGNORECASE)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Set by the HTTP client from the request itself; a config that sets them could only break the request.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade", "te"})
_SYNTAX_ONLY = OutboundPolicy(allow_http=True)
_SNIPPET = 200


class HttpConfig(BaseModel):
    """The config of an ``http`` column."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(
        default="GET", description="HTTP method."
    )
    url: str = Field(min_length=1, max_length=4096, description="URL template; {{ input }} placeholders.")
    body: Any = Field(default=None, description="JSON body template (not with GET).")
    headers: dict[str, str] = Field(default_factory=dict, description="Headers; values may use placeholders.")
    path: str | None = Field(
        default=None,
        max_length=500,
        description='Where the value is in the JSON answer, e.g. "data.items.0.name"; none keeps it all.',
    )
    timeout: float = Field(default=10.0, gt=0, le=60, description="Seconds for the whole request.")
    max_bytes: int = Field(
        default=1024 * 1024, ge=1, le=10 * 1024 * 1024, description="Largest answer accepted, in bytes."
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        match = _AUTHORITY.match(value.strip())
        if match is None:
            raise ValueError("must start with https:// (or http://) and a host")
        if "{{" in match.group(0):
            raise ValueError("placeholders are not allowed in the scheme or host; write the host literally")
        try:
            _SYNTAX_ONLY.check_url(PLACEHOLDER.sub("x", value.strip()))
        except InvalidURL as exc:
            raise ValueError(exc.message) from None
        except BlockedURL:
            pass  # whether the address is allowed is decided when the request is sent
        return value.strip()

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"the {name} header is set by Dossier and cannot be configured")
            if "\r" in text or "\n" in text:
                raise ValueError(f"the value of {name} contains a line break")
        return value

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().removeprefix("$").removeprefix(".")
        if not value:
            return None
        if any(not segment for segment in value.split(".")):
            raise ValueError('must be dot-separated keys and list indexes, e.g. "data.items.0.name"')
        return value

    @model_validator(mode="after")
    def _no_body_with_get(self) -> HttpConfig:
        if self.method == "GET" and self.body is not None:
            raise ValueError("a GET request has no body; use POST (or remove body)")
        return self

    def placeholders(self) -> set[str]:
        """Every input name the templates refer to."""
        found = set(PLACEHOLDER.findall(self.url))
        for text in self.headers.values():
            found.update(PLACEHOLDER.findall(text))
        found.update(_json_placeholders(self.body))
        return found


def _json_placeholders(template: Any) -> set[str]:
    if isinstance(template, str):
        return set(PLACEHOLDER.findall(template))
    if isinstance(template, list):
        return {name for item in template for name in _json_placeholders(item)}
    if isinstance(template, dict):
        return {name for item in template.values() for name in _json_placeholders(item)}
    return set()


def as_text(value: Any) -> str:
    """A row value as text in a template: "" for empty, JSON for lists and objects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def fill_url(template: str, values: Mapping[str, Any]) -> str:
    """The URL with each placeholder replaced by its percent-encoded value."""
    return PLACEHOLDER.sub(lambda match: quote(as_text(values.get(match.group(1))), safe=""), template)


def fill_text(template: str, values: Mapping[str, Any]) -> str:
    """The text with each placeholder replaced by its value (line breaks removed: header-safe)."""
    filled = PLACEHOLDER.sub(lambda match: as_text(values.get(match.group(1))), template)
    return filled.replace("\r", " ").replace("\n", " ")


def fill_json(template: Any, values: Mapping[str, Any]) -> Any:
    """The JSON template with placeholders replaced; ``"{{ x }}"`` alone keeps x's JSON type."""
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template.strip())
        if whole is not None:
            return values.get(whole.group(1))
        return PLACEHOLDER.sub(lambda match: as_text(values.get(match.group(1))), template)
    if isinstance(template, list):
        return [fill_json(item, values) for item in template]
    if isinstance(template, dict):
        return {key: fill_json(item, values) for key, item in template.items()}
    return template


_MISSING = object()


def dig(document: Any, path: str) -> Any:
    """The value at a dot path ("data.items.0.name") in parsed JSON, or ``_MISSING``."""
    current = document
    for segment in path.split("."):
        if isinstance(current, dict):
            if segment not in current:
                return _MISSING
            current = current[segment]
        elif isinstance(current, list):
            try:
                current = current[int(segment)]
            except (ValueError, IndexError):
                return _MISSING
        else:
            return _MISSING
    return current


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "…"


class HttpTool(Tool):
    name = "http"
    description = "Calls your own HTTP service with values of the row and keeps (part of) its JSON answer."
    inputs = ()  # any names: the column's inputs are what its templates refer to
    accepts_any_inputs = True
    config_model = HttpConfig

    def check_destinations(self, config: BaseModel, policy: OutboundPolicy) -> None:
        """The URL's scheme and host are literal: a private, loopback or metadata address (or plain http)
        the policy refuses is a 422 when the column is saved. Names are resolved when requests are sent."""
        assert isinstance(config, HttpConfig)
        try:
            policy.check_url(PLACEHOLDER.sub("x", config.url))
        except (BlockedURL, InvalidURL) as exc:
            raise InvalidInput(f"invalid config for tool 'http': url: {exc.message}") from None

    def check_inputs(self, config: BaseModel, input_names: set[str]) -> None:
        """Every placeholder of the templates must be one of the column's inputs, checked when it is added."""
        assert isinstance(config, HttpConfig)
        unknown = sorted(config.placeholders() - input_names)
        if unknown:
            raise InvalidInput(
                f"the http templates refer to {', '.join(unknown)}, which the column's inputs do not name "
                f"(inputs: {', '.join(sorted(input_names)) or 'none'})"
            )

    async def run(self, values: Mapping[str, Any], config: BaseModel, ctx: ToolContext) -> ToolOutcome:
        """One request per cell; every failure (refused, unreachable, timeout, non-2xx, bad answer) is an
        error cell with the reason, and the request is bounded by the config's timeout."""
        assert isinstance(config, HttpConfig)
        referenced = config.placeholders()
        unknown = sorted(name for name in referenced if name not in values)
        if unknown:
            return ToolOutcome.failed(
                f"the templates refer to {', '.join(unknown)}, which the column does not read "
                f"(its inputs: {', '.join(sorted(values)) or 'none'})"
            )
        if referenced and all(as_text(values.get(name)).strip() == "" for name in referenced):
            return ToolOutcome.skipped("the inputs the request uses are empty")

        url = fill_url(config.url, values)
        headers = {name: fill_text(text, values) for name, text in config.headers.items()}
        body = fill_json(config.body, values) if config.body is not None else None
        headers.setdefault("Accept", "application/json")
        try:
            response = await ctx.http.request(
                config.method,
                url,
                headers=headers,
                json=body,
                timeout=config.timeout,
                max_bytes=config.max_bytes,
                on_too_large="raise",
                follow_redirects=True,
            )
        except RequestTimeout:
            return ToolOutcome.failed(f"no answer from {url.split('?', 1)[0]} within {config.timeout:g} s")
        except ResponseTooLarge:
            return ToolOutcome.failed(f"the answer is larger than {config.max_bytes} bytes")
        except BlockedURL as exc:
            return ToolOutcome.failed(f"refused: {exc.message}")
        except OutboundError as exc:
            return ToolOutcome.failed(exc.message)

        if not response.ok:
            detail = _snippet(response.text())
            return ToolOutcome.failed(
                f"the service answered HTTP {response.status}" + (f": {detail}" if detail else "")
            )
        if not response.body.strip():
            return ToolOutcome.skipped(f"the service answered {response.status} with no content")
        try:
            document = response.json()
        except ValueError:
            if config.path is not None:
                kind = response.content_type or "no content type"
                return ToolOutcome.failed(f"the answer is not JSON ({kind}): {_snippet(response.text())}")
            return ToolOutcome.success(response.text())
        if config.path is None:
            return ToolOutcome.success(document)
        value = dig(document, config.path)
        if value is _MISSING or value is None:
            return ToolOutcome.skipped(f"nothing at {config.path!r} in the answer")
        return ToolOutcome.success(value)


register(HttpTool())
