"""Articles split over several pages: the view that shows the whole article, or the pages.

A site with a ``whole_article_query`` in its profile (e.g. ``page=all``) shows the whole
article at the page's URL with that query; the page says it is split by its pagination. On
any other site, an article's own pagination is found from its links
(:func:`next_page_url_of`, :func:`view_all_url_of`, by the shape of their targets,
:func:`page_number`), and the pages read are joined into one article (:func:`join_pages`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import lxml.html

from crawler.article import ExtractedArticle
from crawler.extraction.parsing import ExtractionError, parse
from crawler.extraction.text import PageElements, select, text_content
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


class PageLinks:
    """The targets of a page's links, read from its tree once for every search of its
    pages (:func:`whole_article_url_of`, :func:`next_page_url_of`, :func:`view_all_url_of`),
    when first asked for: the ``href`` of each ``a`` element that has one, and the ``href``
    (stripped) of each ``a`` and ``link rel=next`` element that has one, in page order
    (``elements``: the page's, when already found)."""

    def __init__(self, tree: lxml.html.HtmlElement, elements: PageElements | None = None) -> None:
        self.tree = tree
        self.elements = elements
        self._anchors: list[str] | None = None
        self._targets: list[str] = []

    def _read(self) -> list[str]:
        anchors: list[str] = []
        targets = self._targets
        found = (
            ((element.tag, element) for element in self.tree.iter("a", "link"))
            if self.elements is None
            else self.elements.links_and_anchors
        )
        for tag, element in found:
            href = element.get("href")
            if tag == "a":
                if href:
                    anchors.append(href)
            elif "next" not in (element.get("rel") or "").lower().split():
                continue
            if href and (href := href.strip()):
                targets.append(href)
        self._anchors = anchors
        return anchors

    @property
    def anchors(self) -> list[str]:
        """The ``href`` of each ``a`` element that has one (not empty)."""
        return self._read() if self._anchors is None else self._anchors

    @property
    def targets(self) -> list[str]:
        """The ``href``, stripped, of each ``a`` and ``link rel=next`` element that has one."""
        if self._anchors is None:
            self._read()
        return self._targets


def whole_article_url_of(
    tree: lxml.html.HtmlElement,
    url: str,
    profile: SiteProfile | None = None,
    *,
    links: PageLinks | None = None,
) -> str | None:
    """:func:`whole_article_url` of a page already parsed
    (:func:`~crawler.extraction.parsing.parse`); ``links`` are its links, when already
    read."""
    profile = profile or profile_for(url)
    query = _whole_article_query(url, profile)
    if query is None or not _is_paginated(tree, url, profile, links or PageLinks(tree)):
        return None
    parts = urlsplit(url)
    wanted = _query_pairs(query)
    current = parse_qsl(parts.query, keep_blank_values=True)
    keys = {key for key, _ in wanted}
    merged = [*((k, v) for k, v in current if k not in keys), *wanted]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(merged), ""))


def _whole_article_query(url: str, profile: SiteProfile) -> str | None:
    """The profile's query for the whole article, unless there is none or ``url`` has it."""
    query = profile.whole_article_query
    if not query:
        return None
    wanted = _query_pairs(query)
    current = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    return None if all(pair in current for pair in wanted) else query


@lru_cache(maxsize=64)
def _query_pairs(query: str) -> tuple[tuple[str, str], ...]:
    """A profile's query as pairs, blank values kept (read once for every page)."""
    return tuple(parse_qsl(query, keep_blank_values=True))


def _is_paginated(
    tree: lxml.html.HtmlElement, url: str, profile: SiteProfile, links: PageLinks
) -> bool:
    for selector in profile.pagination_selectors:
        if select(tree, selector, links.elements):
            return True
    body = tree.find("body")
    if body is not None:
        text = text_content(body)
        # Only a page holding its words is searched with the regex, which costs more. The
        # words are looked for in the text's UTF-8 bytes with ASCII letters lowercased, many
        # times cheaper than lowercasing a text that is not all ASCII; no other character
        # lowercases to, or matches case-insensitively, a letter of these words.
        folded = text.encode("utf-8", "ignore").lower()
        if (b"halaman" in folded or b"page" in folded) and _PAGINATION_TEXT.search(text):
            return True
    path = urlsplit(url).path.rstrip("/")
    param = profile.pagination_param or "page"
    for href in links.anchors:
        # A link that may turn the page names a parameter (``=``), or is a fragment or
        # nothing: most links hold neither, and are passed over before asking.
        if not ("=" in href or "#" in href or not href.strip()) or not may_turn_page(href, param):
            continue
        target = urlsplit(urljoin(url, href))
        if target.path.rstrip("/") == path and any(
            k == param and v.isdigit() and v != "1" for k, v in parse_qsl(target.query)
        ):
            return True
    return False


# -- pages of an article on any site ------------------------------------------------------
#
# A split article links its own pages: numbered links ("1 2 3"), a "next" link, often
# ``rel=next``, sometimes a "view all" link. Whatever their text (a word in any language or a
# number), their targets have the shape of a page of the same article: the article's own
# path with a page parameter (``?page=2``, ``?p=2``) or a page segment appended
# (``/2``, ``/page/2``), or ``-2`` / ``_2`` before the file extension, and otherwise the
# same query. Only such links are followed, so pagination never leads to another article or
# another host.

# Query parameters that number the pages of an article, and the values that ask for all of it.
_PAGE_QUERY_KEYS = frozenset({"page", "p", "pg", "paged", "halaman", "pagina", "seite"})
_WHOLE_QUERY = {"showall": ("1", "true", "yes"), "view": ("all", "full"), "single": ("1", "true")}
_PAGE_SEGMENT = re.compile(r"^/(?:(?:page|halaman|pagina|seite)/)?(\d{1,3}|all)$", re.I)
_FILE_PAGE = re.compile(r"^(?P<stem>.+?)[-_,](?P<n>\d{1,3})(?P<ext>\.(?:s?html?|php|aspx?))$", re.I)
_FILE = re.compile(r"^(?P<stem>.+?)(?P<ext>\.(?:s?html?|php|aspx?))$", re.I)

PageNumber = int | Literal["all"]


def page_number(target: str, article_url: str) -> PageNumber | None:
    """Which page of the article at ``article_url`` (its first page) the absolute URL
    ``target`` names: its number (1, 2, …), ``"all"`` for the view of the whole article, or
    None when it names no page of that article (another path, host or query)."""
    base, there = urlsplit(article_url), urlsplit(target)
    if there.scheme not in ("http", "https") or there.netloc.lower() != base.netloc.lower():
        return None
    base_path, path = base.path.rstrip("/"), there.path.rstrip("/")
    base_query = sorted(parse_qsl(base.query, keep_blank_values=True))
    query = parse_qsl(there.query, keep_blank_values=True)
    if path == base_path:
        extra = list(query)
        for pair in base_query:
            if pair not in extra:
                return None
            extra.remove(pair)
        if not extra:
            return 1
        if len(extra) != 1:
            return None
        key, value = extra[0][0].lower(), extra[0][1].lower()
        if value in _WHOLE_QUERY.get(key, ()):
            return "all"
        return _number(value) if key in _PAGE_QUERY_KEYS else None
    if sorted(query) != base_query:
        return None
    if path.startswith(base_path) and (segment := _PAGE_SEGMENT.match(path[len(base_path) :])):
        return _number(segment.group(1).lower())
    file_page, file_base = _FILE_PAGE.match(path), _FILE.match(base_path)
    if (
        file_page
        and file_base
        and file_page.group("stem") == file_base.group("stem")
        and file_page.group("ext") == file_base.group("ext")
    ):
        return _number(file_page.group("n"))
    return None


def _number(value: str) -> PageNumber | None:
    if value == "all":
        return "all"
    return int(value) if value.isdigit() and int(value) >= 1 else None


def next_page_url_of(
    tree: lxml.html.HtmlElement,
    url: str,
    article_url: str,
    page: int,
    *,
    links: PageLinks | None = None,
) -> str | None:
    """The URL of page ``page + 1`` of the article at ``article_url`` when this page (page
    ``page`` of it, fetched from ``url``; ``links``: its links, when already read) links to
    it, else None."""
    wanted = str(page + 1)
    for href in _page_links(links or PageLinks(tree), article_url):
        if wanted in href:
            target = _absolute(url, href)
            if target is not None and page_number(target, article_url) == page + 1:
                return target
    return None


def view_all_url_of(
    tree: lxml.html.HtmlElement,
    url: str,
    article_url: str,
    *,
    links: PageLinks | None = None,
) -> str | None:
    """The URL of the view of the whole article at ``article_url`` when this page
    (``links``: its links, when already read) links to one ("view all": ``?page=all``,
    ``?showall=1``, ``/all``), else None."""
    for href in _page_links(links or PageLinks(tree), article_url):
        lowered = href.lower()
        if "all" in lowered or "full" in lowered or "single" in lowered:
            target = _absolute(url, href)
            if target is not None and page_number(target, article_url) == "all":
                return target
    return None


def _page_links(links: PageLinks, article_url: str) -> Iterator[str]:
    """The targets of the page's links (``a``, and ``link rel=next``) that may lead to a
    page of the article at ``article_url``: a query of its own page (``?page=2``), a short
    relative path (``2/``), or a URL that names the article's last path segment. Resolving
    every link of a page costs more than reading it; most links fail this test at once."""
    segment = urlsplit(article_url).path.rstrip("/").rsplit("/", 1)[-1]
    stem = _FILE.match(segment)
    needle = stem.group("stem") if stem else segment
    for href in links.targets:
        if href[0] == "?" or len(href) <= 8 or (needle and needle in href):
            yield href


def _absolute(url: str, href: str) -> str | None:
    try:
        return urlunsplit(urlsplit(urljoin(url, href))._replace(fragment=""))
    except ValueError:
        return None


def join_pages(pages: Sequence[ExtractedArticle]) -> ExtractedArticle:
    """The article read from its pages in order: the first page's title, lead, authors,
    dates and identity, and the body of every page, where a paragraph a later page repeats
    from an earlier one (the site's own text around each page) counts once."""
    first = pages[0]
    seen: set[str] = set()
    paragraphs: list[str] = []
    for page in pages:
        for paragraph in page.body.split("\n\n"):
            if paragraph and paragraph not in seen:
                seen.add(paragraph)
                paragraphs.append(paragraph)
    return replace(first, body="\n\n".join(paragraphs))
