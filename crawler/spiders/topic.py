"""The topic spider: listing pages → article links → article pages → outcomes to record.

One spider instance crawls for one crawl run (the ``run`` argument,
:class:`crawler.run_in_progress.RunInProgress`). The spider decides what each response is: a
listing's links to follow, an article's outcome (new content, not modified, gone; the rules
are :func:`storage.changes.response_outcome`'s) or a failure with its reason; the run reads
article pages, records outcomes, answers its database questions, counts and keeps the
failures. When the spider closes, it waits for the run to write every outcome.

A run fetches at most ``crawl.max_articles_per_run`` article pages. Articles new to the topic
go first, in the listing's order (newest first), as each listing page is read; re-checks of
known articles (those still listed, in the listing's order, then those off the listing,
newest first) wait until the listing pages and the new articles are done, so a long listing
can never crowd out its own new articles. What the cap leaves is fetched by the next runs:
new articles stay in the database, unannounced, until one reads them.

An article split over several pages is read whole (:class:`ArticleFetch`): the view of the
whole article when the site has one, else its pages in turn, up to
``crawl.max_pages_per_article`` (the cap counts articles, not their later pages). A re-check
of a multi-page article whose first page is not modified asks for each stored later page
with its own validators; it is not modified only when none of its pages is, and the first
page that changed has the article read again in full.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import (
    CannotResolveHostError,
    DontCloseSpider,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import ConnectionRefusedError as TxConnectionRefusedError
from twisted.internet.error import DNSLookupError
from twisted.internet.error import TimeoutError as TxTimeoutError
from twisted.python.failure import Failure

from crawler.addresses import AddressRefused
from crawler.botwall import bot_wall_reason
from crawler.discover import discover, matches_keywords
from crawler.extraction.multipage import page_number
from crawler.profiles import SiteProfile, profile_by_name, profile_for
from crawler.run_in_progress import RunInProgress
from crawler.urls import canonical_url
from storage.changes import (
    LaterPage,
    NotModified,
    Outcome,
    PageRead,
    later_page_unchanged,
    response_outcome,
)
from storage.listings import KnownArticle, note_listing, recheck_candidates

if TYPE_CHECKING:
    from crawler.reading import Reading

logger = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_TYPES = ("xml", "rss", "atom")


def _now() -> datetime:
    return datetime.now(UTC)


class TopicSpider(scrapy.Spider):
    """Crawls one topic for ``run`` (:class:`RunInProgress`)."""

    name = "topic"

    def __init__(self, *args: Any, run: RunInProgress, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run = run
        self.spec = spec = run.spec
        self.profile: SiteProfile | None = profile_by_name(spec.profile) if spec.profile else None
        # Article URLs this run has placed: fetched, waiting for the re-checks, or left over.
        self._placed: set[str] = set()
        self._fetches_left = spec.crawl.max_articles_per_run
        self._left_for_next_run = 0
        self._listed_known: list[KnownArticle] = []
        self._recheck_candidates: list[KnownArticle] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> TopicSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.start_rechecks, signal=signals.spider_idle)
        return spider

    async def closed(self, reason: str) -> None:
        """At the end of the crawl (``spider_closed``): every outcome written, the run's
        counters added to Scrapy's stats (``topicwatch/<key>``)."""
        await self.run.drain()
        if self._left_for_next_run:
            self.run.count("articles_left_for_next_run", self._left_for_next_run)
            logger.warning(
                "article fetches capped topic=%s max_articles_per_run=%d left_for_next_run=%d",
                self.spec.name,
                self.spec.crawl.max_articles_per_run,
                self._left_for_next_run,
            )
        stats = self.crawler.stats
        assert stats is not None
        for key, n in self.run.counts.items():
            stats.set_value(f"topicwatch/{key}", n)

    # -- helpers ------------------------------------------------------------------------

    def profile_of(self, url: str) -> SiteProfile:
        return self.profile or profile_for(url)

    def article_request(
        self, url: str, known: KnownArticle | None, *, origin: str
    ) -> scrapy.Request:
        headers: dict[str, str] = {}
        if known is not None and known.status == "live" and known.current_version > 0:
            if known.etag:
                headers["If-None-Match"] = known.etag
            if known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
        priority = 0 if origin == "listing" else -10
        return scrapy.Request(
            url,
            headers=headers,
            callback=self.parse_article,
            errback=self.article_error,
            meta={
                "handle_httpstatus_list": [304, 404, 410],
                "topicwatch_url": url,
                "topicwatch_fetch": ArticleFetch(url, known, priority),
                "topicwatch_origin": origin,
            },
            priority=priority,
            # The spider de-duplicates articles itself; Scrapy's filter would also drop the
            # hops of a redirect loop silently, and the article would vanish from the run.
            dont_filter=True,
        )

    def within_cap(
        self, url: str, known: KnownArticle | None, *, origin: str
    ) -> scrapy.Request | None:
        """The request for an article, or None when the run has fetched its share of
        articles (the article is counted as left for the next run)."""
        if self._fetches_left <= 0:
            self._left_for_next_run += 1
            return None
        self._fetches_left -= 1
        return self.article_request(url, known, origin=origin)

    def start_rechecks(self) -> None:
        """On ``spider_idle``, once the listing pages and the new articles are done: the
        re-checks of known articles, within what the cap leaves (see the module's
        docstring)."""
        unread = [k for k in self._recheck_candidates if k.current_version == 0]
        read = [k for k in self._recheck_candidates if k.current_version > 0]
        waiting = [
            *((k, "recheck") for k in unread),
            *((k, "listing") for k in self._listed_known),
            *((k, "recheck") for k in read),
        ]
        self._listed_known, self._recheck_candidates = [], []
        engine = self.crawler.engine
        assert engine is not None
        started = False
        for known, origin in waiting:
            if origin == "recheck":
                if known.url in self._placed:
                    continue
                self._placed.add(known.url)
            request = self.within_cap(known.url, known, origin=origin)
            if request is None:
                continue
            if origin == "recheck":
                self.run.count("rechecks")
            engine.crawl(request)
            started = True
        if started:
            raise DontCloseSpider

    # -- start ----------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for source in self.spec.sources:
            yield scrapy.Request(
                source,
                callback=self.parse_listing,
                errback=self.listing_error,
                meta={"topicwatch_page": 1, "topicwatch_source": source},
                priority=10,
                dont_filter=True,
            )
        # Known articles that left the listing are re-checked on an age-based table; the
        # listing pages above re-check everything still listed.
        # They are fetched once the listing pages are read (start_rechecks).
        self._recheck_candidates = await self.run.in_database(
            recheck_candidates,
            self.run.sessions,
            self.run.topic_id,
            _now(),
            self.spec.recheck_for,
            exclude=(),
            urgent=True,
        )

    # -- listings --------------------------------------------------------------------------

    async def parse_listing(self, response: Response) -> list[scrapy.Request]:
        """A listing page's requests: its new articles' (within the cap) and its next page's
        or child sitemaps'. A list, not an async generator: Scrapy hands each request of a
        list through its spider middlewares' plain methods, cheaper than through their
        asynchronous ones."""
        requests: list[scrapy.Request] = []
        page: int = response.meta["topicwatch_page"]
        source: str = response.meta["topicwatch_source"]
        self.run.count("listing_pages")
        content_type = (header(response, "Content-Type") or "").lower()
        if not isinstance(response, TextResponse) and not any(
            t in content_type for t in FEED_TYPES
        ):
            self.run.fail(
                response.url,
                f"listing is not a web page or feed (Content-Type {content_type or 'missing'})",
                listing=True,
            )
            return requests
        listing = discover(
            response.body, response.url, content_type or None, self.profile_of(source)
        )
        links = [
            link
            for link in listing.links
            if matches_keywords(f"{link.title} {link.summary}", self.spec.keywords)
        ]
        urls = [link.url for link in links]
        self.run.count("links_listed", len(urls))
        if page == 1 and not listing.links and not listing.children:
            # A configured source with not even a link the keywords could have filtered
            # out: the page is not a listing (any more), or nothing could be read from it.
            # (A later page, or a sitemap index's child listing only pages, may hold none.)
            self.run.count("listing_pages_empty")
            logger.warning(
                "listing has no article links topic=%s url=%s", self.spec.name, response.url
            )
            self.run.fail(
                response.url,
                f"no article links could be read from this {listing.kind} listing",
                listing=True,
            )
            return requests
        if not urls:
            logger.info("no article links topic=%s url=%s", self.spec.name, response.url)
        noted = await self.run.in_database(
            note_listing, self.run.sessions, self.run.topic_id, urls, urgent=True
        )
        known_urls, known = noted.announced, noted.known
        new_here = 0
        for url in urls:
            is_new = url not in known_urls
            if is_new:
                new_here += 1
            if url in self._placed:
                continue
            self._placed.add(url)
            stored = known.get(url)
            if is_new or stored is None:
                request = self.within_cap(url, stored, origin="listing")
                if request is not None:
                    requests.append(request)
            else:
                self._listed_known.append(stored)
        if listing.kind == "sitemap" and listing.children:
            # A sitemap index: its child sitemaps, as many as the topic reads listing pages.
            for child in listing.children[: self.spec.max_pages]:
                requests.append(
                    scrapy.Request(
                        child,
                        callback=self.parse_listing,
                        errback=self.listing_error,
                        meta={"topicwatch_page": self.spec.max_pages, "topicwatch_source": source},
                        priority=10,
                    )
                )
            return requests
        if listing.next_page and page < self.spec.max_pages:
            if new_here == 0 and page > 0 and urls:
                # Listings are newest first: a page with nothing new means the pages after
                # it hold nothing new either; their articles are re-checked by age.
                self.run.count("pagination_stopped_early")
                return requests
            requests.append(
                scrapy.Request(
                    listing.next_page,
                    callback=self.parse_listing,
                    errback=self.listing_error,
                    meta={"topicwatch_page": page + 1, "topicwatch_source": source},
                    priority=10,
                )
            )
        return requests

    def listing_error(self, failure: Failure) -> None:
        request = failure.request  # type: ignore[attr-defined]
        reason = self.describe(failure, request.url)
        refused = is_refusal(failure)
        if refused:
            reason = f"{reason}; the topic cannot be crawled as configured"
        self.run.fail(request.url, reason, listing=True, refused=refused)

    # -- articles --------------------------------------------------------------------------

    def parse_article(
        self, response: Response
    ) -> list[scrapy.Request] | Coroutine[Any, Any, list[scrapy.Request]]:
        """An article page's outcome goes straight to the run to record, not through
        Scrapy's item machinery, which would cost the crawl process CPU for every page.

        Every response of an article's pages (its own URL, the view of the whole article,
        its later pages) comes here; the article's :class:`ArticleFetch` in the request's
        meta says which it is.

        A plain function: Scrapy runs a coroutine callback as an asyncio task of its own,
        which costs more than most 304s do. Only while the run's batches wait for the
        database is a coroutine returned, which waits for them (as ``async def`` would)."""
        fetch: ArticleFetch = response.meta["topicwatch_fetch"]
        step = response.meta.get("topicwatch_step", "first")
        self.run.count("article_responses")
        if step == "first":
            result = self.first_page(fetch, response)
        elif step == "check":
            result = self.checked_page(fetch, response)
        else:
            result = self.later_page(fetch, response)
        if isinstance(result, scrapy.Request):
            return [result]
        fetch.finish()
        if result is None:
            return []
        waiting = self.run.record_soon(result)
        if waiting is None:
            return []
        return _after(waiting)

    def page_request(
        self, fetch: ArticleFetch, url: str, step: str, *, stored: LaterPage | None = None
    ) -> scrapy.Request:
        """The request for a page of the article other than the first request of its URL:
        conditional with ``stored``'s validators when given."""
        headers: dict[str, str] = {}
        if stored is not None:
            if stored.etag:
                headers["If-None-Match"] = stored.etag
            if stored.last_modified:
                headers["If-Modified-Since"] = stored.last_modified
        return scrapy.Request(
            url,
            headers=headers,
            callback=self.parse_article,
            errback=self.article_error,
            meta={
                "handle_httpstatus_list": [304, 404, 410],
                "topicwatch_url": fetch.url,
                "topicwatch_fetch": fetch,
                "topicwatch_step": step,
            },
            priority=fetch.priority,
            dont_filter=True,
        )

    def first_page(self, fetch: ArticleFetch, response: Response) -> Result:
        """The article's own URL answered: gone, not modified (then its later pages are
        checked, if it has any), or a page to read."""
        known = fetch.known
        web_page = is_web_page(response)
        raw_sha = hashlib.sha256(response.body).hexdigest() if web_page else None
        said = response_outcome(
            fetch.url,
            status=response.status,
            redirected_to_home_or_listing=bool(response.meta.get("redirect_urls"))
            and self.is_home_or_listing(response.url),
            raw_sha256=raw_sha,
            known_status=None if known is None else known.status,
            known_raw_sha256=None if known is None else known.raw_sha256,
            etag=header(response, "ETag"),
            last_modified=header(response, "Last-Modified"),
        )
        if isinstance(said, NotModified) and fetch.must_read:
            said = None  # read in full: a later page changed
        if said is not None:
            if isinstance(said, NotModified):
                if response.status != 304:
                    self.run.count("identical_bodies")
                    fetch.first, fetch.first_raw_sha256 = response, raw_sha
                if known is not None and known.status == "live" and known.pages:
                    # The first page is as stored; an edit may be on a later one.
                    fetch.first_not_modified = said
                    return self.check_next(fetch)
            return said
        if not web_page or not isinstance(response, TextResponse):
            content_type = header(response, "Content-Type") or ""
            self.run.fail(
                fetch.url, f"not a web page (Content-Type {content_type.lower() or 'missing'})"
            )
            return None
        fetch.first, fetch.first_raw_sha256 = response, raw_sha
        return self.read_first(fetch)

    def read_first(self, fetch: ArticleFetch) -> Result:
        """Read the article's first page; go on to the view of the whole article, or to its
        next page, when it shows only part of it."""
        response = fetch.first
        assert isinstance(response, TextResponse)
        reading = self.run.read(
            response.body,
            response.url,
            encoding=response.encoding,
            profile=self.profile_of(fetch.url),
            find_whole=True,
            requested=fetch.url,
            with_page_blocks=fetch.first_read,
        )
        if reading.whole_url is not None:
            self.run.count("multipage")
            fetch.whole = True
            return self.next_page(fetch, reading.whole_url)
        fetch.readings.append(reading)
        if reading.article is not None and reading.next_url is not None:
            self.run.count("multipage")
            return self.next_page(fetch, reading.next_url)
        return self.outcome(fetch, reading)

    def next_page(self, fetch: ArticleFetch, url: str) -> Result:
        """Go on to the later page at ``url`` (with the response the check of the stored
        pages already fetched of it, if any)."""
        limit = self.spec.crawl.max_pages_per_article
        if url in fetch.visited or (not fetch.whole and len(fetch.readings) >= limit):
            if url not in fetch.visited:
                self.run.count("article_pages_capped")
                logger.info(
                    "article pages capped topic=%s url=%s max_pages_per_article=%d",
                    self.spec.name,
                    fetch.url,
                    limit,
                )
            return self.outcome(fetch, self.run.join(fetch.readings))
        fetch.visited.add(url)
        fetched = fetch.fetched.pop(url, None)
        if fetched is not None:
            return self.later_page(fetch, fetched)
        return self.page_request(fetch, url, "later")

    def later_page(self, fetch: ArticleFetch, response: Response) -> Result:
        """A later page of the article (or the view of the whole article), read in full."""
        part = len(fetch.readings) + 1
        what = "the view of the whole article" if fetch.whole else f"page {part} of the article"
        if response.status != 200 or not isinstance(response, TextResponse):
            answer = _bot_wall(response) or f"answered HTTP {response.status}"
            self.run.fail(fetch.url, f"{what} ({response.url}) {answer}")
            return None
        if not is_web_page(response):
            self.run.fail(fetch.url, f"{what} ({response.url}) is not a web page")
            return None
        first = fetch.first
        assert first is not None
        if response.meta.get("redirect_urls") and page_number(response.url, first.url) is None:
            self.run.fail(fetch.url, f"{what} redirected away from the article, to {response.url}")
            return None
        fetch.pages.append(
            LaterPage(
                response.meta.get("redirect_urls", [response.url])[0],
                etag=header(response, "ETag"),
                last_modified=header(response, "Last-Modified"),
                raw_sha256=hashlib.sha256(response.body).hexdigest(),
            )
        )
        reading = self.run.read(
            response.body,
            response.url,
            encoding=response.encoding,
            profile=self.profile_of(fetch.url),
            find_whole=False,
            requested=fetch.url,
            part=None if fetch.whole else part,
            first_url=first.url,
            with_page_blocks=fetch.first_read,
        )
        if fetch.whole:
            return self.outcome(fetch, reading)
        if reading.article is None:
            self.run.fail(fetch.url, f"{what} ({response.url}) could not be read: {reading.error}")
            return None
        fetch.readings.append(reading)
        if reading.next_url is not None:
            return self.next_page(fetch, reading.next_url)
        return self.outcome(fetch, self.run.join(fetch.readings))

    def check_next(self, fetch: ArticleFetch) -> Result:
        """Ask for the next stored later page with its validators, or, when every page is
        as stored, say that the article is not modified."""
        assert fetch.known is not None
        assert fetch.first_not_modified is not None
        index = len(fetch.checked)
        if index < len(fetch.known.pages):
            self.run.count("later_pages_checked")
            stored = fetch.known.pages[index]
            return self.page_request(fetch, stored.url, "check", stored=stored)
        first = fetch.first_not_modified
        pages = tuple(fetch.checked)
        return NotModified(
            first.url,
            etag=first.etag,
            last_modified=first.last_modified,
            pages=() if pages == fetch.known.pages else pages,
        )

    def checked_page(self, fetch: ArticleFetch, response: Response) -> Result:
        """A stored later page answered its conditional request: as stored (go on to the
        next), or changed, gone or moved (read the article in full)."""
        assert fetch.known is not None
        stored = fetch.known.pages[len(fetch.checked)]
        raw_sha = hashlib.sha256(response.body).hexdigest() if is_web_page(response) else None
        if not response.meta.get("redirect_urls") and later_page_unchanged(
            response.status, raw_sha, stored
        ):
            fetch.checked.append(
                replace(
                    stored,
                    etag=header(response, "ETag") or stored.etag,
                    last_modified=header(response, "Last-Modified") or stored.last_modified,
                )
            )
            return self.check_next(fetch)
        self.run.count("later_pages_changed")
        if response.status == 200 and not response.meta.get("redirect_urls"):
            fetch.fetched[stored.url] = response
        fetch.must_read = True
        if fetch.first is not None:
            return self.read_first(fetch)
        # The first page answered 304: it is asked for again, to be read.
        return self.page_request(fetch, fetch.url, "first")

    def outcome(self, fetch: ArticleFetch, reading: Reading) -> Outcome | None:
        """The outcome of the article read from its pages (``reading``), or None when it
        could not be read (the failure is noted)."""
        first = fetch.first
        assert first is not None
        article, fingerprinted = reading.article, reading.fingerprint
        if article is None:
            if not first.body.strip():
                self.run.count("empty_body")
            self.run.fail(fetch.url, reading.error or "the page could not be read")
            return None
        if fingerprinted is None:
            self.run.count("empty_body")
            self.run.fail(fetch.url, "the page has no article text (empty body)")
            return None
        return PageRead(
            url=reading.identity or fetch.url,
            title=article.title,
            body=article.body,
            lead=article.lead,
            authors=article.authors,
            published=article.published,
            modified=article.modified,
            fingerprint=fingerprinted.digest,
            field_hashes=fingerprinted.fields,
            blocks=fingerprinted.blocks,
            page_blocks=reading.page_blocks,
            etag=header(first, "ETag"),
            last_modified=header(first, "Last-Modified"),
            raw_sha256=fetch.first_raw_sha256 or hashlib.sha256(first.body).hexdigest(),
            raw_html=first.body if self.spec.crawl.store_raw_html else None,
            pages=tuple(fetch.pages),
            live=reading.live.kind if reading.live is not None else None,
            live_ended=reading.live is not None and reading.live.ended,
        )

    def article_error(self, failure: Failure) -> None:
        request = failure.request  # type: ignore[attr-defined]
        url = request.meta.get("topicwatch_url", request.url)
        fetch: ArticleFetch | None = request.meta.get("topicwatch_fetch")
        if fetch is not None:
            fetch.finish()
        reason = self.describe(failure, request.url)
        if request.url != url and request.meta.get("topicwatch_step", "first") != "first":
            reason = f"a later page of the article ({request.url}): {reason}"
        self.run.fail(url, reason)

    def describe(self, failure: Failure, url: str) -> str:
        reason = describe_failure(failure, self.spec.crawl.download_timeout)
        if reason == "refused by robots.txt":
            parts = urlsplit(url)
            reason = (
                f"refused by robots.txt: {parts.scheme}://{parts.netloc}/robots.txt disallows "
                f"this URL for user agent {self.spec.crawl.user_agent!r}"
            )
        return reason

    def is_home_or_listing(self, url: str) -> bool:
        path = urlsplit(url).path
        if path in ("", "/"):
            return True
        target = canonical_url(url)
        return any(canonical_url(source) == target for source in self.spec.sources)


@dataclass
class ArticleFetch:
    """One article's pages as the spider asks for and reads them in one run.

    ``url`` is the article's own URL (its first page), ``known`` what is stored of it. A
    re-check of a multi-page article whose first page is not modified asks for each stored
    later page with its validators (``checked``: those found as stored); the first that
    changed (kept in ``fetched``) makes the article read in full (``must_read``), from its
    first page on. A full read keeps the first page's response (``first``, and the SHA-256
    of its body, ``first_raw_sha256``), the pages read
    (``readings``; or ``whole``: the view of the whole article is read instead) and the
    later pages' validators (``pages``). ``first_read``: no version of it is stored, so its
    pages' blocks are read for the site's templates (:func:`crawler.reading.page_blocks`).
    """

    url: str
    known: KnownArticle | None
    priority: int = 0
    first: Response | None = None
    first_raw_sha256: str | None = None
    first_not_modified: NotModified | None = None
    must_read: bool = False
    checked: list[LaterPage] = field(default_factory=list)
    fetched: dict[str, Response] = field(default_factory=dict)
    whole: bool = False
    readings: list[Reading] = field(default_factory=list)
    pages: list[LaterPage] = field(default_factory=list)
    visited: set[str] = field(default_factory=set)

    def finish(self) -> None:
        """Let go of the article's responses and readings once its outcome is known: each
        response refers to its request, whose meta refers to this fetch, a cycle that only
        the garbage collector would otherwise free, pages and all."""
        self.first = None
        self.first_not_modified = None
        self.fetched.clear()
        self.readings.clear()
        self.pages.clear()

    @property
    def first_read(self) -> bool:
        return self.known is None or self.known.current_version == 0


Result = Outcome | scrapy.Request | None


async def _after(waiting: Awaitable[None]) -> list[scrapy.Request]:
    """No requests, once ``waiting`` is done."""
    await waiting
    return []


def is_web_page(response: Response) -> bool:
    content_type = (header(response, "Content-Type") or "").lower()
    return isinstance(response, TextResponse) and any(t in content_type for t in HTML_TYPES)


def header(response: Response, name: str) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


def _is(failure: Failure, *kinds: type[BaseException]) -> bool:
    """Whether the failure's exception is one of ``kinds`` (Twisted's ``check``, typed)."""
    return failure.check(*kinds) is not None  # type: ignore[no-untyped-call]


def is_refusal(failure: Failure) -> bool:
    if _is(failure, AddressRefused):
        return False
    if _is(failure, HttpError):
        response: Response = failure.value.response  # type: ignore[union-attr]
        return response.status in (401, 403) or _bot_wall(response) is not None
    return _is(failure, IgnoreRequest) and "robots.txt" in str(failure.value)


def _bot_wall(response: Response) -> str | None:
    """The reason to give for a response that is a bot wall (:mod:`crawler.botwall`)."""

    def headers() -> str:
        return "\n".join(
            f"{name.decode('latin-1')}: {value.decode('latin-1')}"
            for name, values in response.headers.items()
            for value in values
        )

    return bot_wall_reason(response.status, headers, response.body)


def describe_failure(failure: Failure, timeout: float) -> str:
    """One short sentence saying why a request failed."""
    value = failure.value
    if _is(failure, HttpError):
        response: Response = value.response  # type: ignore[union-attr]
        return _bot_wall(response) or f"HTTP {response.status}"
    if _is(failure, AddressRefused):
        return str(value)
    if _is(failure, IgnoreRequest):
        text = str(value)
        if "robots.txt" in text:
            return "refused by robots.txt"
        if "redirections" in text:
            return "redirect loop (too many redirects)"
        return f"request ignored: {text}"
    if _is(failure, DownloadTimeoutError, TxTimeoutError):
        return f"timed out after {timeout:g} s"
    if _is(failure, DownloadConnectionRefusedError, TxConnectionRefusedError):
        return "connection refused"
    if _is(failure, CannotResolveHostError, DNSLookupError):
        return "host name could not be resolved"
    if _is(failure, DownloadCancelledError):
        return f"response larger than the download size cap: {value}"
    if _is(failure, ResponseDataLossError, DownloadFailedError):
        tls = _tls_error(value)
        if tls is not None:
            return f"TLS handshake failed: {tls}"
        return f"download failed: {value}"
    return f"{type(value).__name__}: {value}"


def _tls_error(error: BaseException | None) -> str | None:
    """What OpenSSL said, when ``error`` (or what it wraps) is a failed TLS handshake."""
    seen = 0
    while error is not None and seen < 5:
        for reason in getattr(error, "reasons", None) or ():
            inner = getattr(reason, "value", reason)
            if type(inner).__module__.startswith("OpenSSL"):
                details = inner.args[0] if inner.args else None
                if isinstance(details, list) and details and isinstance(details[-1], tuple):
                    return str(details[-1][-1]) or type(inner).__name__
                return str(inner) or type(inner).__name__
        error = error.__cause__ or error.__context__
        seen += 1
    return None
