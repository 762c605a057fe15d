"""Reading one article page: extraction and fingerprint, in the crawl process or in a worker.

Reading is most of the CPU a crawl spends, so a crawl may hand it to worker processes (see
:mod:`crawler.readers`). This module imports only what reading needs, so a worker starts in a
fraction of the time a crawl process takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from crawler.article import Article, Fingerprint
from crawler.extract import ExtractionError, extract_tree, parse, whole_article_url_of
from crawler.fingerprint import fingerprint
from crawler.profiles import SiteProfile


@dataclass(frozen=True)
class Reading:
    """What reading one article page gave: the URL of the whole article when the page shows
    only part of it; else the article and its fingerprint (None when the body is empty); or,
    when there is no article, why."""

    whole_url: str | None = None
    article: Article | None = None
    fingerprint: Fingerprint | None = None
    error: str | None = None


def read_page(
    body: bytes,
    url: str,
    *,
    encoding: str,
    profile: SiteProfile,
    ignore_patterns: tuple[str, ...],
    find_whole: bool = False,
) -> Reading:
    """Extract and fingerprint one article page; with ``find_whole``, first look for a view
    of the whole article. The page is parsed once for both."""
    try:
        tree = parse(body, url, encoding=encoding)
        if find_whole:
            whole = whole_article_url_of(tree, url, profile)
            if whole and whole != url:
                return Reading(whole_url=whole)
        article = extract_tree(tree, url, profile=profile)
    except ExtractionError as exc:
        return Reading(error=str(exc))
    if not article.body.strip():
        return Reading(article=article)
    return Reading(article=article, fingerprint=fingerprint(article, ignore_patterns))
