"""``domain``: a website or an e-mail address -> the registrable domain ("www.bbc.co.uk/news" -> "bbc.co.uk").

Offline: tldextract with the public suffix list bundled in the package, no fetch and no disk cache, so
the answer never depends on the network or on what some earlier process downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import tldextract
from pydantic import BaseModel

from dossier.enrichment.protocol import Tool, ToolContext, ToolInput, ToolOutcome
from dossier.enrichment.tools import register
from dossier.net import parse_ip

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@lru_cache(maxsize=1)
def _extractor() -> tldextract.TLDExtract:
    # suffix_list_urls=() never fetches; cache_dir=None never reads or writes a cache. Private suffixes
    # (github.io, herokuapp.com, ...) count as suffixes: "acme.github.io" is Acme's site, not GitHub's.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


def host_of(value: str) -> str | None:
    """The host in a URL, a bare domain ("acme.com/about") or an e-mail address; None if there is none."""
    text = value.strip()
    if not text:
        return None
    if "@" in text and not _SCHEME.match(text):
        text = text.rsplit("@", 1)[1].strip().strip(">")
        if not text or "/" in text:
            return None
    if not _SCHEME.match(text):
        text = "http://" + text.lstrip("/")  # also a scheme-relative "//host/path"
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host.rstrip(".").lower() or None


def registrable_domain(value: str) -> str | None:
    """The registrable domain of a website or e-mail value, or None (no host, an IP, no public suffix)."""
    host = host_of(value)
    if host is None or parse_ip(host) is not None:
        return None
    parts = _extractor()(host)
    if not parts.domain or not parts.suffix:
        return None
    return f"{parts.domain}.{parts.suffix}"


class DomainTool(Tool):
    name = "domain"
    min_chunk_rows = 500
    waits = False
    description = "The registrable domain of the company's website, or else of its e-mail address (offline)."
    inputs = (
        ToolInput("website", "The company's website: a URL or a bare domain."),
        ToolInput("email", "An e-mail address at the company; used when there is no usable website."),
    )

    async def run(self, values: Mapping[str, Any], config: BaseModel, ctx: ToolContext) -> ToolOutcome:
        """The domain of ``website`` if it has one, else of ``email``; skipped when neither gives one."""
        given = False
        for key in ("website", "email"):
            value = values.get(key)
            if value is None or not str(value).strip():
                continue
            given = True
            domain = registrable_domain(str(value))
            if domain is not None:
                return ToolOutcome.success(domain)
        if not given:
            return ToolOutcome.skipped("no website or e-mail in the row")
        return ToolOutcome.skipped("no registrable domain in the website or e-mail given")


register(DomainTool())
