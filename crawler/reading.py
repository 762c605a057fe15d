"""Reading one article page: extraction and fingerprint, parsed once for both.

Reading is most of the CPU a crawl spends; the crawl run
(:class:`crawler.run_in_progress.RunInProgress`) asks for it for each article page.
"""

from __future__ import annotations

from dataclasses import dataclass

from crawler.article import ExtractedArticle, Fingerprint
from crawler.extraction.extractor import extract_tree
from crawler.extraction.multipage import whole_article_url_of
from crawler.extraction.parsing import ExtractionError, parse
from crawler.fingerprint import fingerprint
from crawler.profiles import SiteProfile
from crawler.urls import canonical_url, same_site


@dataclass(frozen=True)
class Reading:
    """What reading one article page gave: the URL of the whole article when the page shows
    only part of it; else the article, its fingerprint (None when the body is empty) and the
    URL it is known by (``identity``: the page's canonical URL when it names one on the same
    site, else the URL it was requested as); or, when there is no article, why."""

    whole_url: str | None = None
    article: ExtractedArticle | None = None
    fingerprint: Fingerprint | None = None
    error: str | None = None
    identity: str | None = None


def read_page(
    body: bytes,
    url: str,
    *,
    encoding: str,
    profile: SiteProfile,
    ignore_patterns: tuple[str, ...],
    find_whole: bool = False,
    requested: str | None = None,
) -> Reading:
    """Extract and fingerprint one article page (``url`` is where it was fetched from,
    ``requested`` the URL it was asked for, before redirects, by default ``url``); with
    ``find_whole``, first look for a view of the whole article. The page is parsed once for
    both."""
    try:
        tree = parse(body, url, encoding=encoding)
        if find_whole:
            whole = whole_article_url_of(tree, url, profile)
            if whole and whole != url:
                return Reading(whole_url=whole)
        article = extract_tree(tree, url, profile=profile)
    except ExtractionError as exc:
        return Reading(error=str(exc))
    requested = requested or url
    identity = (
        canonical_url(article.url)
        if article.url and same_site(article.url, requested)
        else requested
    )
    if not article.body.strip():
        return Reading(article=article, identity=identity)
    return Reading(
        article=article, fingerprint=fingerprint(article, ignore_patterns), identity=identity
    )
