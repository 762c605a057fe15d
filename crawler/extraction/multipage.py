"""Articles split over several pages: the URL of the view that shows the whole article.

A site with a ``whole_article_query`` in its profile (e.g. ``page=all``) shows the whole
article at the page's URL with that query; the page says it is split by its pagination.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import lxml.html

from crawler.extraction.parsing import ExtractionError, parse
from crawler.extraction.text import select
from crawler.profiles import SiteProfile, profile_for
from crawler.urls import may_turn_page

_PAGINATION_TEXT = re.compile(r"\bHalaman\s+\d+\s*/\s*\d+\b|\bPage\s+\d+\s+of\s+\d+\b", re.I)


def whole_article_url(
    html: str | bytes, url: str, profile: SiteProfile | None = None
) -> str | None:
    """The URL that shows the whole article when this page shows only part of it, else None.

    Needs a profile with ``whole_article_query`` (e.g. ``page=all``) and a page that shows
    pagination (the profile's pagination selectors, "Halaman 1/2", or a link to ``?page=2`` of
    the same path). Returns None when the URL already asks for the whole article.
    """
    profile = profile or profile_for(url)
    if _whole_article_query(url, profile) is None:
        return None
    try:
        tree = parse(html, url)
    except ExtractionError:
        return None
    return whole_article_url_of(tree, url, profile)


def whole_article_url_of(
    tree: lxml.html.HtmlElement, url: str, profile: SiteProfile | None = None
) -> str | None:
    """:func:`whole_article_url` of a page already parsed
    (:func:`~crawler.extraction.parsing.parse`)."""
    profile = profile or profile_for(url)
    query = _whole_article_query(url, profile)
    if query is None or not _is_paginated(tree, url, profile):
        return None
    parts = urlsplit(url)
    wanted = parse_qsl(query, keep_blank_values=True)
    current = parse_qsl(parts.query, keep_blank_values=True)
    keys = {key for key, _ in wanted}
    merged = [(k, v) for k, v in current if k not in keys] + wanted
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(merged), ""))


def _whole_article_query(url: str, profile: SiteProfile) -> str | None:
    """The profile's query for the whole article, unless there is none or ``url`` has it."""
    query = profile.whole_article_query
    if not query:
        return None
    wanted = parse_qsl(query, keep_blank_values=True)
    current = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    return None if all(pair in current for pair in wanted) else query


def _is_paginated(tree: lxml.html.HtmlElement, url: str, profile: SiteProfile) -> bool:
    for selector in profile.pagination_selectors:
        if select(tree, selector):
            return True
    body = tree.find("body")
    if body is not None:
        text = body.text_content()
        # Only a page holding its words is searched with the regex, which costs more. The
        # words are looked for in the text's UTF-8 bytes with ASCII letters lowercased, many
        # times cheaper than lowercasing a text that is not all ASCII; no other character
        # lowercases to, or matches case-insensitively, a letter of these words.
        folded = text.encode("utf-8", "ignore").lower()
        if (b"halaman" in folded or b"page" in folded) and _PAGINATION_TEXT.search(text):
            return True
    path = urlsplit(url).path.rstrip("/")
    param = profile.pagination_param or "page"
    for link in tree.iter("a"):
        href = link.get("href")
        if not href or not may_turn_page(href, param):
            continue
        target = urlsplit(urljoin(url, href))
        if target.path.rstrip("/") == path and any(
            k == param and v.isdigit() and v != "1" for k, v in parse_qsl(target.query)
        ):
            return True
    return False
