"""Site profiles: what a site's markup says about where its articles and their parts are.

A profile is chosen by the article's host (:func:`profile_for`) or by name
(:func:`profile_by_name`, for a topic that names one, e.g. a test site served from 127.0.0.1
shaped like a known site). Sites without a profile get :data:`GENERIC`, which leaves body
extraction to the general main-content extractor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from lxml.cssselect import CSSSelector

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SiteProfile:
    """Selectors and rules for one site (``hosts``) or, for ``generic``, for any site.

    Selectors are CSS; each list is tried in order and the first that matches wins.
    """

    name: str
    hosts: tuple[str, ...] = ()
    # listing pages
    listing_link_selectors: tuple[str, ...] = ()
    article_url_patterns: tuple[str, ...] = ()  # regexes on the URL path
    pagination_param: str | None = None  # e.g. "page" for ?page=N
    # article pages
    title_selectors: tuple[str, ...] = ()
    title_suffixes: tuple[str, ...] = ()  # stripped from og:title, e.g. " - Tribunnews.com"
    body_selectors: tuple[str, ...] = ()
    lead_selectors: tuple[str, ...] = ()
    author_selectors: tuple[str, ...] = ()
    noise_selectors: tuple[str, ...] = ()  # removed from the body before reading its text
    noise_patterns: tuple[str, ...] = ()  # regexes removed from body text (e.g. datelines)
    whole_article_query: str | None = None  # e.g. "page=all" for multi-page articles
    # Elements whose text states the publication time when the page has no machine-readable
    # date, e.g. "Jumat, 3 Oktober 2025 12:40 WIB".
    published_selectors: tuple[str, ...] = ()
    # Markers of a page that shows only part of a multi-page article.
    pagination_selectors: tuple[str, ...] = ()


class ProfileLookupError(LookupError):
    """No site profile has the requested name."""


GENERIC = SiteProfile(name="generic")

TRIBUNNEWS = SiteProfile(
    name="tribunnews",
    hosts=("tribunnews.com",),
    listing_link_selectors=("li.p2030 h3 a", "ul.lsi li h3 a"),
    article_url_patterns=(
        r"^(?:/[\w-]+)+/\d{4}/\d{2}/\d{2}/[\w-]+/?$",
        r"^/[\w-]+/\d+/[\w-]+/?$",
    ),
    pagination_param="page",
    title_selectors=("h1#arttitle",),
    title_suffixes=(" - Tribunnews.com", " - Tribunnews", " | Tribunnews.com"),
    body_selectors=("div.side-article.txt-article", "div.txt-article"),
    author_selectors=("div#penulis a",),
    noise_selectors=(
        "p.baca",
        "blockquote.summary-article",
        "figure",
        "figcaption",
        "script",
        "style",
        "noscript",
        "iframe",
        "[class^=ads]",
        "[class*=' ads']",
        "[id^=ads]",
        "[id^=div-gpt-ad]",
        "div.paging",
    ),
    noise_patterns=(
        r"^\s*TRIBUNNEWS\.COM\s*[-–—]\s*",
        r"^\s*Baca juga\s*:.*$",
        r"^\s*Halaman\s+\d+\s*/\s*\d+\s*$",
    ),
    whole_article_query="page=all",
    published_selectors=("time",),
    pagination_selectors=("div.paging",),
)

PROFILES: tuple[SiteProfile, ...] = (GENERIC, TRIBUNNEWS)


@lru_cache(maxsize=512)
def compiled_selector(selector: str) -> CSSSelector | None:
    """A profile's CSS selector, compiled (compiling it costs more than matching it on a
    page); None, said once in the log, for one that cannot be parsed."""
    try:
        return CSSSelector(selector, translator="html")
    except Exception:  # cssselect raises several error types for selectors it cannot read
        logger.warning("Ignoring the CSS selector %r, which cannot be parsed", selector)
        return None


def profile_by_name(name: str) -> SiteProfile:
    """The profile called ``name`` (case-insensitive)."""
    wanted = name.strip().lower()
    for profile in PROFILES:
        if profile.name == wanted:
            return profile
    known = ", ".join(p.name for p in PROFILES)
    raise ProfileLookupError(f"No site profile by the name of {name!r} was found (known: {known})")


def profile_for(url: str) -> SiteProfile:
    """The profile whose hosts include the URL's host or a parent domain of it, else GENERIC."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    for profile in PROFILES:
        for suffix in profile.hosts:
            if host == suffix or host.endswith("." + suffix):
                return profile
    return GENERIC
