"""Reading one article page: extraction and fingerprint, parsed once for both.

Reading is most of the CPU a crawl spends; the crawl run
(:class:`crawler.run_in_progress.RunInProgress`) asks for it for each article page. An
article split over several pages is read page by page (each page says where the next one
is) and the pages are joined (:func:`read_pages`) before the fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crawler.article import ExtractedArticle, Fingerprint
from crawler.extraction.extractor import extract_tree
from crawler.extraction.multipage import (
    PageLinks,
    join_pages,
    next_page_url_of,
    view_all_url_of,
    whole_article_url_of,
)
from crawler.extraction.parsing import ExtractionError, parse
from crawler.extraction.text import PageElements
from crawler.fingerprint import fingerprint
from crawler.live import LiveSignal, live_signal
from crawler.profiles import SiteProfile
from crawler.urls import canonical_url, same_site


@dataclass(frozen=True)
class Reading:
    """What reading one article page gave: the URL of the whole article when the page shows
    only part of it and the site has a view of the whole; else the article, its fingerprint
    (None when the body is empty, or when the article goes on at ``next_url``, its next
    page) and the URL it is known by (``identity``: the page's canonical URL when it names
    one on the same site, else the URL it was requested as); or, when there is no article,
    why. ``live`` is the sign that the page is live coverage (:mod:`crawler.live`)."""

    whole_url: str | None = None
    article: ExtractedArticle | None = None
    fingerprint: Fingerprint | None = None
    error: str | None = None
    identity: str | None = None
    next_url: str | None = None
    live: LiveSignal | None = None


def read_page(
    body: bytes,
    url: str,
    *,
    encoding: str,
    profile: SiteProfile,
    ignore_patterns: tuple[str, ...],
    find_whole: bool = False,
    requested: str | None = None,
    part: int | None = None,
    first_url: str | None = None,
) -> Reading:
    """Extract and fingerprint one article page (``url`` is where it was fetched from,
    ``requested`` the URL it was asked for, before redirects, by default ``url``); the page
    is parsed once for everything.

    With ``find_whole`` the page is an article's first page: first look for a view of the
    whole article (the profile's, else a "view all" link of a page that links its next
    page), then for its next page. ``part`` > 1 says the page is that page of the article
    whose first page was fetched from ``first_url``; its next page is looked for. A page of
    an article with several pages is not fingerprinted: :func:`read_pages` joins the pages
    first.
    """
    requested = requested or url
    try:
        tree = parse(body, url, encoding=encoding)
        next_url = None
        elements = PageElements(tree)
        links = PageLinks(tree, elements)
        if find_whole:
            whole = whole_article_url_of(tree, url, profile, links=links)
            if whole is None:
                next_url = next_page_url_of(tree, url, url, 1, links=links)
                if next_url is not None:
                    whole = view_all_url_of(tree, url, url, links=links)
            if whole and whole != url:
                return Reading(whole_url=whole)
        elif part is not None:
            next_url = next_page_url_of(tree, url, first_url or requested, part, links=links)
        article = extract_tree(tree, url, profile=profile, elements=elements)
        live = live_signal(tree, article.title, elements=elements)
    except ExtractionError as exc:
        return Reading(error=str(exc))
    identity = (
        canonical_url(article.url)
        if article.url and same_site(article.url, requested)
        else requested
    )
    if next_url is not None or part is not None or not article.body.strip():
        return Reading(article=article, identity=identity, next_url=next_url, live=live)
    return Reading(
        article=article,
        fingerprint=fingerprint(article, ignore_patterns),
        identity=identity,
        live=live,
    )


def read_pages(pages: Sequence[Reading], ignore_patterns: tuple[str, ...]) -> Reading:
    """The article read from its pages (:func:`read_page` of each, in order, each with an
    article): the pages joined, fingerprinted, known by the first page's identity."""
    first = pages[0]
    articles = [page.article for page in pages if page.article is not None]
    article = join_pages(articles)
    if not article.body.strip():
        return Reading(article=article, identity=first.identity, live=first.live)
    return Reading(
        article=article,
        fingerprint=fingerprint(article, ignore_patterns),
        identity=first.identity,
        live=first.live,
    )
