"""One page → :class:`~crawler.article.ExtractedArticle`: the parts put together.

The body is the article's paragraphs in page order, separated by blank lines. A page without
article text (empty, binary, a listing) raises
:class:`~crawler.extraction.parsing.ExtractionError`.
"""

from __future__ import annotations

import logging
from typing import Any

import lxml.html

from crawler.article import ExtractedArticle
from crawler.extraction.body import general_body, profile_body, tidy, word_count
from crawler.extraction.json_ld import article_object, json_ld_objects
from crawler.extraction.lead import lead_of
from crawler.extraction.metadata import authors_of, canonical_of, dates_of, meta_tags, title_of
from crawler.extraction.parsing import ExtractionError, parse
from crawler.profiles import SiteProfile, profile_for

logger = logging.getLogger(__name__)

# Pages without any sign of being an article need this many words of main text.
_MIN_WORDS_WITHOUT_ARTICLE_SIGNS = 50


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
    tree: lxml.html.HtmlElement, url: str, *, profile: SiteProfile | None = None
) -> ExtractedArticle:
    """:func:`extract` of a page already parsed (:func:`~crawler.extraction.parsing.parse`);
    the tree is not changed."""
    profile = profile or profile_for(url)
    meta = meta_tags(tree)
    ld = article_object(json_ld_objects(tree))

    paragraphs = profile_body(tree, profile) if profile.body_selectors else None
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
        and not _has_article_signs(tree, ld, meta)
        and word_count(paragraphs) < _MIN_WORDS_WITHOUT_ARTICLE_SIGNS
    ):
        raise ExtractionError(
            f"No article text found at URL: {url} (the page has no article markup and only "
            f"{word_count(paragraphs)} words of main text; it looks like a listing)"
        )

    published, modified = dates_of(tree, ld, meta, profile)
    return ExtractedArticle(
        url=canonical_of(tree, ld, meta, url),
        title=title,
        body="\n\n".join(paragraphs),
        lead=lead_of(tree, ld, meta, profile),
        authors=authors_of(tree, ld, meta, profile),
        published=published,
        modified=modified,
    )


def _has_article_signs(
    tree: lxml.html.HtmlElement, ld: dict[str, Any] | None, meta: dict[str, str]
) -> bool:
    if ld is not None or "article" in meta.get("og:type", "").lower():
        return True
    return bool(tree.xpath("//article[.//p]"))
