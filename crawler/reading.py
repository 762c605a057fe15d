"""Reading one article page: extraction and fingerprint, parsed once for both.

Reading is most of the CPU a crawl spends; the crawl run
(:class:`crawler.run_in_progress.RunInProgress`) asks for it for each article page. An
article split over several pages is read page by page (each page says where the next one
is) and the pages are joined (:func:`read_pages`) before the fingerprint.

An article read for the first time also gives the hashes of its page's text blocks
(:func:`page_blocks`), whether extraction kept them or not: site templates are learned from
what recurs on a site's pages (:mod:`storage.templates`).
"""

from __future__ import annotations

import functools
from collections.abc import Container, Sequence
from dataclasses import dataclass

import lxml.html

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
from crawler.extraction.text import (
    BLOCK_TAGS,
    UNSEEN_TAGS,
    PageElements,
    block_text,
    squash,
    text_of,
)
from crawler.fingerprint import BLOCK_SEPARATOR, block_hashes, fingerprint
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
    page_blocks: tuple[str, ...] = ()


# The elements whose text is a block of the page as extraction reads the article's: its
# paragraphs, and blocks of prose set in a div, section, aside or blockquote with no block
# inside them.
_PAGE_BLOCK_TAGS = ("p", "div", "section", "aside", "blockquote")
_INNER_BLOCK_TAGS = BLOCK_TAGS - {"br"}
# What an element's text as libxml2 writes it (:func:`text_of`, a fraction of the cost of
# :func:`block_text`) would run together or show: a line break, text no reader sees.
_NOT_RUN_TOGETHER = ("br", *UNSEEN_TAGS)


def page_blocks(
    tree: lxml.html.HtmlElement,
    ignore_patterns: Sequence[str] = (),
    known: Container[str] = (),
) -> tuple[str, ...]:
    """The hashes of the page's blocks of text, whether extraction kept them in the article
    or not, normalised as a body's paragraphs are (:func:`crawler.fingerprint.block_hashes`,
    so a block extraction keeps on one page has the same hash where another page shows it
    outside the article): the text of each paragraph, and of each ``div``, ``section``,
    ``aside`` or ``blockquote`` with no block inside it, each block once, in page order.
    A block whose text is one of ``known`` (the article's paragraphs, which the fingerprint
    hashes already) is left out.

    Lists, tables and inline elements are left out: their texts are mostly the site's
    navigation and the headlines of its listings, three times as many blocks as the rest
    for a block of an article's container seldom set that way."""
    texts: dict[str, None] = {}
    for element in tree.iter(*_PAGE_BLOCK_TAGS):
        if not len(element):
            own = element.text
            if not own:
                continue
            text = squash(own)
        elif element.tag != "p" and any(
            inner.tag in _INNER_BLOCK_TAGS for inner in element.iterdescendants()
        ):
            continue
        elif next(element.iter(*_NOT_RUN_TOGETHER), None) is None:
            text = text_of(element)
        else:
            text = block_text(element)
        if text and text not in known:
            texts[text] = None
    patterns = tuple(ignore_patterns)
    return tuple(dict.fromkeys(hash_ for text in texts for hash_ in _block_hash(text, patterns)))


@functools.lru_cache(maxsize=4096)
def _block_hash(text: str, ignore_patterns: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`crawler.fingerprint.block_hashes` of one block's text, remembered: most of the
    blocks of a page outside its article (the site's name, its sections, its footer) stand on
    every page of the site, and a crawl reads a site's pages one after another."""
    return block_hashes(text, ignore_patterns)


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
    with_page_blocks: bool = False,
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

    ``with_page_blocks``: the page's :func:`page_blocks` too (for an article read for the
    first time, whose page site templates are learned from).
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
        blocks = (
            page_blocks(tree, ignore_patterns, set(article.body.split(BLOCK_SEPARATOR)))
            if with_page_blocks
            else ()
        )
    except ExtractionError as exc:
        return Reading(error=str(exc))
    identity = (
        canonical_url(article.url)
        if article.url and same_site(article.url, requested)
        else requested
    )
    if next_url is not None or part is not None or not article.body.strip():
        return Reading(
            article=article, identity=identity, next_url=next_url, live=live, page_blocks=blocks
        )
    return Reading(
        article=article,
        fingerprint=fingerprint(article, ignore_patterns),
        identity=identity,
        live=live,
        page_blocks=blocks,
    )


def read_pages(pages: Sequence[Reading], ignore_patterns: tuple[str, ...]) -> Reading:
    """The article read from its pages (:func:`read_page` of each, in order, each with an
    article): the pages joined, fingerprinted, known by the first page's identity."""
    first = pages[0]
    articles = [page.article for page in pages if page.article is not None]
    article = join_pages(articles)
    blocks = tuple(dict.fromkeys(block for page in pages for block in page.page_blocks))
    if not article.body.strip():
        return Reading(
            article=article, identity=first.identity, live=first.live, page_blocks=blocks
        )
    return Reading(
        article=article,
        fingerprint=fingerprint(article, ignore_patterns),
        identity=first.identity,
        live=first.live,
        page_blocks=blocks,
    )
