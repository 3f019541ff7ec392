"""``website``: fetch a company's home page -> {url, status, title, description, language, social}.

The page is fetched through the outbound-HTTP policy (redirects followed, each hop checked; size and time
bounded) and parsed with the standard library's HTML parser: it never runs scripts and tolerates broken
markup. Only the first ``max_bytes`` of the page are read: the head and the footer links of ordinary home
pages fit well within that.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from dossier.enrichment.protocol import Tool, ToolContext, ToolInput, ToolOutcome
from dossier.enrichment.tools import register
from dossier.net import BlockedURL, OutboundError, RequestTimeout

HTML_TYPES = ("text/html", "application/xhtml+xml")
# Network -> the registrable hosts its profile links live on.
SOCIAL_HOSTS: dict[str, tuple[str, ...]] = {
    "linkedin": ("linkedin.com",),
    "x": ("x.com", "twitter.com"),
    "facebook": ("facebook.com", "fb.com"),
    "instagram": ("instagram.com",),
    "youtube": ("youtube.com", "youtu.be"),
    "github": ("github.com",),
    "tiktok": ("tiktok.com",),
    "xing": ("xing.com",),
    "pinterest": ("pinterest.com",),
}
# Share buttons and login pages link to the network but are not the company's profile.
_NOT_A_PROFILE = re.compile(
    r"^/(share|sharer|sharing|intent|shareArticle|dialog|plugins|login|signup|watch\b|embed|hashtag|search)",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)
MAX_TEXT = 1000


def _clean(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None:
        return None
    cleaned = _SPACE.sub(" ", text).strip()
    return cleaned[:limit] or None


def social_network(href: str) -> str | None:
    """Which network a link is a profile on ("linkedin", "x", ...), or None."""
    try:
        parts = urlsplit(href)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return None
    if _NOT_A_PROFILE.match(parts.path or "/") or (parts.path or "/") == "/":
        return None
    for network, hosts in SOCIAL_HOSTS.items():
        if any(host == base or host.endswith("." + base) for base in hosts):
            return network
    return None


class _PageParser(HTMLParser):
    """Collects the title, descriptions, language and social profile links of one page."""

    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.language: str | None = None
        self.title: str | None = None
        self.og_title: str | None = None
        self.description: str | None = None
        self.og_description: str | None = None
        self.content_language: str | None = None
        self.social: dict[str, str] = {}
        self._in_title = False
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key.lower(): (value or "") for key, value in attrs}
        if tag == "html" and self.language is None and attributes.get("lang"):
            self.language = attributes["lang"].strip()
        elif tag == "title" and self.title is None:
            self._in_title = True
        elif tag == "meta":
            self._meta(attributes)
        elif tag == "a" and attributes.get("href"):
            href = urljoin(self.base_url, attributes["href"].strip())
            network = social_network(href)
            if network is not None and network not in self.social:
                self.social[network] = href

    def _meta(self, attributes: dict[str, str]) -> None:
        content = attributes.get("content")
        if content is None:
            return
        if attributes.get("http-equiv", "").lower() == "content-language":
            self.content_language = self.content_language or content
            return
        key = (attributes.get("name") or attributes.get("property") or "").strip().lower()
        if key == "description" and self.description is None:
            self.description = content
        elif key == "og:description" and self.og_description is None:
            self.og_description = content
        elif key == "og:title" and self.og_title is None:
            self.og_title = content

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.title = "".join(self._title_parts)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)

    def close(self) -> None:
        super().close()
        if self._in_title:  # a cut-off page: the title never closed
            self._in_title = False
            self.title = "".join(self._title_parts)


def parse_page(html: str, url: str) -> dict[str, Any]:
    """What a home page says about the company: title, description, language, social profiles."""
    parser = _PageParser(url)
    # The stdlib parser gives up on some pathological markup; what it read until then still counts.
    with contextlib.suppress(AssertionError, ValueError):
        parser.feed(html)
    parser.close()
    language = parser.language or parser.content_language
    return {
        "title": _clean(parser.title, 300) or _clean(parser.og_title, 300),
        "description": _clean(parser.description) or _clean(parser.og_description),
        "language": _clean(language.split(",")[0], 35) if language else None,
        "social": {network: parser.social.get(network) for network in SOCIAL_HOSTS},
    }


def _decode(body: bytes, charset: str | None) -> str:
    if charset is None:
        declared = _META_CHARSET.search(body[:4096])
        charset = declared.group(1).decode("ascii", "replace") if declared else "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def home_page_url(value: str) -> str | None:
    """The URL to fetch for a website value: as given when it has a scheme, else https:// + the value."""
    text = value.strip()
    if not text:
        return None
    if "://" not in text:
        text = "https://" + text.lstrip("/")
    return text


class WebsiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=15.0, gt=0, le=120, description="Seconds for the whole fetch.")
    max_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=10 * 1024 * 1024, description="Most bytes of the page read."
    )


class WebsiteTool(Tool):
    name = "website"
    description = "Fetches the company's home page: title, description, language and social profiles."
    inputs = (ToolInput("website", "The company's website: a URL or a bare domain.", required=True),)
    config_model = WebsiteConfig

    async def run(self, values: Mapping[str, Any], config: BaseModel, ctx: ToolContext) -> ToolOutcome:
        """Fetch and parse the home page; a network failure or non-2xx answer is an error with the reason."""
        assert isinstance(config, WebsiteConfig)
        raw = values.get("website")
        url = home_page_url(str(raw)) if raw is not None else None
        if url is None:
            return ToolOutcome.skipped("no website in the row")
        try:
            response = await ctx.http.request(
                "GET",
                url,
                headers={"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"},
                timeout=config.timeout,
                max_bytes=config.max_bytes,
                follow_redirects=True,
            )
        except BlockedURL as exc:
            return ToolOutcome.failed(f"refused: {exc.message}")
        except RequestTimeout:
            return ToolOutcome.failed(f"{url} did not answer within {config.timeout:g} s")
        except OutboundError as exc:
            return ToolOutcome.failed(exc.message)
        if not response.ok:
            return ToolOutcome.failed(f"{response.url} answered HTTP {response.status}")
        if response.content_type and response.content_type not in HTML_TYPES:
            return ToolOutcome.failed(f"{response.url} is not an HTML page ({response.content_type})")
        page = parse_page(_decode(response.body, response.charset), response.url)
        return ToolOutcome.success({"url": response.url, "status": response.status, **page})


register(WebsiteTool())
