"""An article's metadata: title, authors, dates and canonical URL, each from the first source
that has it (JSON-LD, the profile's selectors, ``<meta>`` tags, the markup)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.html

from crawler.extraction.json_ld import ld_names, ld_text, ld_url
from crawler.extraction.text import (
    PageElements,
    clean,
    elements_of,
    first_of,
    first_text,
    select,
    selected,
    split_authors,
    text_of,
)
from crawler.profiles import SiteProfile
from crawler.urls import canonical_url, same_site

_TITLE_SEPARATORS = (" - ", " | ", " – ", " — ", " :: ", " · ")
_AUTHOR_META = ("author", "article:author", "dc.creator", "parsely-author", "sailthru.author")
_PUBLISHED_META = (
    "article:published_time",
    "og:article:published_time",
    "datepublished",
    "article.published",
    "published_time",
    "pubdate",
    "publishdate",
    "publish-date",
    "parsely-pub-date",
    "sailthru.date",
    "dc.date",
    "dc.date.issued",
    "dcterms.created",
    "date",
)
_MODIFIED_META = (
    "article:modified_time",
    "og:article:modified_time",
    "og:updated_time",
    "datemodified",
    "article.updated",
    "last-modified",
    "dcterms.modified",
)
# Elements that mark up the publishing date.
_MARKED_DATES = "//time[@datetime] | //*[@itemprop='datePublished']"
_INDONESIAN_MONTHS = {
    "januari": 1,
    "februari": 2,
    "maret": 3,
    "april": 4,
    "mei": 5,
    "juni": 6,
    "juli": 7,
    "agustus": 8,
    "september": 9,
    "oktober": 10,
    "november": 11,
    "desember": 12,
}
_INDONESIAN_ZONES = {"wib": 7, "wita": 8, "wit": 9}
_INDONESIAN_DATE = re.compile(
    r"(\d{1,2})\s+([a-z]+)\s+(\d{4})(?:[,\s]+(\d{1,2})[:.](\d{2})(?:\s*(wib|wita|wit))?)?",
    re.IGNORECASE,
)


def meta_tags(tree: lxml.html.HtmlElement, elements: PageElements | None = None) -> dict[str, str]:
    """The page's ``<meta>`` values by lowercased property, name or itemprop; first one wins
    (``elements``: the page's, when already found)."""
    found: dict[str, str] = {}
    for meta in elements_of(tree, "meta", elements):
        key = meta.get("property") or meta.get("name") or meta.get("itemprop")
        content = meta.get("content")
        if key and content and content.strip():
            found.setdefault(key.strip().lower(), content.strip())
    return found


def meta_value(meta: dict[str, str], keys: Iterable[str]) -> str:
    """The value of the first of ``keys`` the page has a ``<meta>`` tag for, else ``""``."""
    return first_of(*(meta.get(key) for key in keys)) or ""


def _strip_suffix(title: str, suffixes: Iterable[str]) -> str:
    for suffix in suffixes:
        if suffix and title.lower().endswith(suffix.lower()) and len(title) > len(suffix):
            return title[: -len(suffix)].strip()
    return title


def _site_suffixes(ld: dict[str, Any], meta: dict[str, str], profile: SiteProfile) -> list[str]:
    """Endings that name the site rather than the article: " - Tribunnews.com", " | Site"."""
    suffixes = list(profile.title_suffixes)
    names = [meta.get("og:site_name"), meta.get("application-name")]
    if ld:
        names.append(ld_text(ld.get("publisher")))
    for name in names:
        if name and len(name) <= 60:
            suffixes.extend(f"{separator}{name.strip()}" for separator in _TITLE_SEPARATORS)
    return suffixes


def title_of(
    tree: lxml.html.HtmlElement,
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    profile: SiteProfile,
) -> str:
    """The headline, without the site's name where the source appends it."""
    ld = ld or {}
    suffixes = _site_suffixes(ld, meta, profile)
    return (
        first_of(
            _strip_suffix(ld_text(ld.get("headline")) or ld_text(ld.get("name")), suffixes),
            lambda: first_text(selected(tree, profile.title_selectors)),
            lambda: _strip_suffix(clean(meta_value(meta, ("og:title", "twitter:title"))), suffixes),
            lambda: first_text(tree.iter("h1")),
            lambda: _strip_suffix(_document_title(tree), suffixes),
        )
        or ""
    )


def _document_title(tree: lxml.html.HtmlElement) -> str:
    titles = tree.xpath("//title")
    return text_of(titles[0]) if titles else ""


def _texts(tree: lxml.html.HtmlElement, selector: str) -> list[str]:
    return [text for element in select(tree, selector) if (text := text_of(element))]


def authors_of(
    tree: lxml.html.HtmlElement,
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    profile: SiteProfile,
) -> tuple[str, ...]:
    """The names of the authors, each once, in the order the source gives them."""
    ld = ld or {}
    byline = meta_value(
        meta, (key for key in _AUTHOR_META if not meta.get(key, "").startswith("http"))
    )
    names = first_of(
        ld_names(ld.get("author") or ld.get("creator")),
        *(partial(_texts, tree, selector) for selector in profile.author_selectors),
        lambda: split_authors(byline) if byline else [],
    )
    return tuple(dict.fromkeys(names or ()))


def _indonesian_date(text: str) -> str | None:
    match = _INDONESIAN_DATE.search(text)
    if not match or match.group(2).lower() not in _INDONESIAN_MONTHS:
        return None
    day, month_name, year, hour, minute, zone = match.groups()
    month = _INDONESIAN_MONTHS[month_name.lower()]
    try:
        if hour is None:
            return datetime(int(year), month, int(day), tzinfo=UTC).date().isoformat()
        offset = timezone(timedelta(hours=_INDONESIAN_ZONES.get((zone or "wib").lower(), 7)))
        return datetime(
            int(year), month, int(day), int(hour), int(minute), tzinfo=offset
        ).isoformat()
    except ValueError:
        return None


def _stated_date(element: lxml.html.HtmlElement) -> str | None:
    """The element's ``datetime`` attribute, or the date it writes out in Indonesian
    ("3 Oktober 2025 18:00 WIB")."""
    return element.get("datetime") or _indonesian_date(text_of(element))


def _marked_date(element: lxml.html.HtmlElement) -> str:
    return (element.get("datetime") or element.get("content") or "").strip()


def _first_date(
    date_of: Callable[[lxml.html.HtmlElement], str | None],
    elements: Iterable[lxml.html.HtmlElement],
) -> str:
    return first_of(*(partial(date_of, element) for element in elements)) or ""


def dates_of(
    tree: lxml.html.HtmlElement,
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    profile: SiteProfile,
) -> tuple[str | None, str | None]:
    """When the article was published and last modified, as the page states them."""
    ld = ld or {}
    published = first_of(
        ld_text(ld.get("datePublished") or ld.get("dateCreated")),
        meta_value(meta, _PUBLISHED_META),
        lambda: _first_date(_stated_date, selected(tree, profile.published_selectors)),
        lambda: _first_date(_marked_date, tree.xpath(_MARKED_DATES)),
    )
    modified = first_of(ld_text(ld.get("dateModified")), meta_value(meta, _MODIFIED_META))
    return published or None, modified or None


def _usable_canonical(candidate: str, url: str) -> str:
    """``candidate`` resolved and canonical, or ``""`` when it cannot name the page at
    ``url``: empty, not web, on another site, or the home page named by an article."""
    if not candidate:
        return ""
    resolved = urljoin(url, candidate.strip())
    parts = urlsplit(resolved)
    if parts.scheme not in ("http", "https") or not same_site(resolved, url):
        return ""
    # A canonical pointing at the home page of an article is a site template bug.
    if urlsplit(url).path.strip("/") and not parts.path.strip("/"):
        return ""
    return canonical_url(resolved)


def canonical_of(
    tree: lxml.html.HtmlElement,
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    url: str,
    elements: PageElements | None = None,
) -> str:
    """The URL the page names as its own (``rel=canonical``, ``og:url``, JSON-LD), else
    ``url``; canonical either way (``elements``: the page's, when already found)."""
    candidates: list[str] = [
        link.get("href", "")
        for link in elements_of(tree, "link", elements)
        if link.get("href") is not None and "canonical" in (link.get("rel") or "").lower().split()
    ]
    candidates.append(meta.get("og:url", ""))
    if ld:
        candidates.extend((ld_url(ld.get("url")), ld_url(ld.get("mainEntityOfPage"))))
    usable = first_of(*(partial(_usable_canonical, candidate, url) for candidate in candidates))
    return usable or canonical_url(url)
