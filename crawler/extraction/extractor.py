"""One page → :class:`~crawler.article.ExtractedArticle`: the parts put together.

The body is the article's paragraphs in page order, separated by blank lines. A page without
article text (empty, binary, a listing) raises
:class:`~crawler.extraction.parsing.ExtractionError`, naming why. A short text is no reason
by itself: a page a topic's listing links to is an article, however short, unless it is
plainly not one (its main text mostly the texts of links: headlines of other pages).
"""

from __future__ import annotations

import logging
from typing import Any

import lxml.html

from crawler.article import ExtractedArticle
from crawler.extraction.body import general_body, profile_body, tidy, word_count
from crawler.extraction.json_ld import article_object, json_ld_objects
from crawler.extraction.lead import descriptions_of, lead_of
from crawler.extraction.metadata import authors_of, canonical_of, dates_of, meta_tags, title_of
from crawler.extraction.parsing import ExtractionError, parse
from crawler.extraction.text import PageElements, text_of
from crawler.profiles import SiteProfile, profile_for

logger = logging.getLogger(__name__)

# A page without any sign of being an article and with less main text than this many words is
# looked at again: it is refused when this share of its main text or more is link text.
_SHORT_WORDS = 50
_LISTING_LINK_SHARE = 0.5


def extract(
    html: str | bytes,
    url: str,
    *,
    profile: SiteProfile | None = None,
    encoding: str | None = None,
) -> ExtractedArticle:
    """Extract the article on one page.

    ``html`` may be bytes, decoded with ``encoding`` when given, else by BOM, declared
    charset, or UTF-8 with a windows-1252 fallback. ``profile`` defaults to the profile for the
    URL's host. Raises :class:`~crawler.extraction.parsing.ExtractionError` when the page holds
    no article text.
    """
    return extract_tree(parse(html, url, encoding=encoding), url, profile=profile)


def extract_tree(
    tree: lxml.html.HtmlElement,
    url: str,
    *,
    profile: SiteProfile | None = None,
    elements: PageElements | None = None,
) -> ExtractedArticle:
    """:func:`extract` of a page already parsed (:func:`~crawler.extraction.parsing.parse`);
    the tree is not changed (``elements``: its elements, when already found)."""
    profile = profile or profile_for(url)
    meta = meta_tags(tree, elements)
    ld = article_object(json_ld_objects(tree, articles_only=True, elements=elements))

    paragraphs = profile_body(tree, profile, elements) if profile.body_selectors else None
    from_profile = paragraphs is not None
    if paragraphs is None:
        if profile.body_selectors:
            logger.debug("No body selector of profile %s matched at %s", profile.name, url)
        paragraphs = general_body(tree, url, profile)
    title = title_of(tree, ld, meta, profile)
    paragraphs = tidy(paragraphs, title, drop_repeats=not from_profile)

    if not paragraphs:
        raise ExtractionError(f"No article text found at URL: {url}")
    if (
        not from_profile
        and word_count(paragraphs) < _SHORT_WORDS
        and not _has_article_signs(tree, ld, meta)
    ):
        reason = _listing_reason(tree, paragraphs)
        if reason:
            raise ExtractionError(f"No article text found at URL: {url} ({reason})")

    published, modified = dates_of(tree, ld, meta, profile)
    descriptions = descriptions_of(ld, meta)
    return ExtractedArticle(
        url=canonical_of(tree, ld, meta, url, elements),
        title=title,
        body="\n\n".join(paragraphs),
        lead=lead_of(
            tree,
            ld,
            meta,
            profile,
            descriptions[0] if descriptions else "",
            title=title,
            paragraphs=paragraphs,
            squashed=True,
            elements=elements,
        ),
        description="\n".join(descriptions),
        authors=authors_of(tree, ld, meta, profile),
        published=published,
        modified=modified,
    )


def _listing_reason(tree: lxml.html.HtmlElement, paragraphs: list[str]) -> str:
    """Why a page with a short main text is plainly not an article, or "" when it may be one:
    most of its main text is the text of links (the headlines of a listing)."""
    links = {text_of(a) for a in tree.iter("a")} - {""}
    linked = [
        p for p in paragraphs if p in links or any(len(t) >= 0.6 * len(p) and t in p for t in links)
    ]
    words, linked_words = word_count(paragraphs), word_count(linked)
    if linked_words < _LISTING_LINK_SHARE * words:
        return ""
    return (
        f"it looks like a listing: {len(linked)} of its {len(paragraphs)} paragraphs of main "
        f"text are links ({linked_words} of {words} words) and the page has no article markup"
    )


def _has_article_signs(
    tree: lxml.html.HtmlElement, ld: dict[str, Any] | None, meta: dict[str, str]
) -> bool:
    if ld is not None or "article" in meta.get("og:type", "").lower():
        return True
    return bool(tree.xpath("//article[.//p]"))
