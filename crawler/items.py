"""What the topic spider hands to the storage pipeline: one item per article outcome."""

from __future__ import annotations

from dataclasses import dataclass

from storage.repository import Observation


@dataclass(frozen=True)
class ArticlePage:
    """An article page was fetched and read."""

    observation: Observation


@dataclass(frozen=True)
class ArticleNotModified:
    """The server answered 304, or sent the very bytes it sent last time."""

    url: str
    reason: str  # "304" or "identical"
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class ArticleGone:
    """The article answered 404 / 410, or redirected to the site's home or topic page."""

    url: str
    reason: str
