"""The topic spider: listing pages → article links → article pages → outcomes for storage.

One spider instance is one crawl run of one topic. It reads what it needs from the database
(the topic's known articles and their validators) and hands every article's outcome to the
storage pipeline (:class:`crawler.pipelines.StoragePipeline`, straight from the callback);
failures are kept in ``self.failures`` with the URL and a reason.

Every database call of the run goes through one thread of its own (``in_database``): the
event loop never waits for the database, the crawl's own writes never wait for each other,
and what a listing page needs goes before batches of outcomes to record
(:mod:`crawler.database_thread`).
Reading an article page (extraction and fingerprint, :func:`crawler.reading.read_page`) is
most of the CPU a crawl spends. With the setting ``TOPICWATCH_EXTRACTION_WORKERS`` above 0
(``crawl.workers`` in the configuration) it happens in that many worker processes
(:mod:`crawler.readers`), so a crawl that politeness limits do not hold back (a site of one's
own, a big backlog) uses more than one core; by default pages are read in the crawl process,
which costs less for the few pages a polite run fetches. The workers are forked at the start
of the run (:func:`crawler.run.crawl_topic`, the ``readers`` argument) and take pages from
the first one. Where they cannot be forked, a run reads its first ``WORKERS_AFTER`` pages
itself and starts workers afresh only when it has more: starting one that way costs about
as much CPU as reading a hundred pages, which the handful of pages of a steady-state run
does not repay. Once the workers are up, they also find the links on listing pages.

The spider's counters (``topicwatch/…`` in Scrapy's stats) are kept in the spider while the
run lasts and added to Scrapy's stats when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from twisted.internet.error import ConnectionRefusedError as TxConnectionRefusedError
from twisted.internet.error import DNSLookupError
from twisted.internet.error import TimeoutError as TxTimeoutError
from twisted.python.failure import Failure

from crawler.database_thread import DatabaseThread
from crawler.discover import Listing, discover, matches_keywords
from crawler.observability import logging_configured
from crawler.profiles import SiteProfile, profile_by_name, profile_for
from crawler.readers import ReaderPool, ReadersStopped, WorkerTaskError
from crawler.reading import Reading, read_page
from crawler.urls import canonical_url
from storage.changes import NotModified, Outcome, PageRead, response_outcome
from storage.db import make_engine, session_factory
from storage.listings import KnownArticle, note_listing, recheck_candidates
from storage.spec import TopicSpec

if TYPE_CHECKING:
    from crawler.pipelines import StoragePipeline, WriterProcess

logger = logging.getLogger(__name__)

# Pages a run reads in the crawl process before it starts reading workers afresh (when it
# could not fork them at its start).
WORKERS_AFTER = 30

T = TypeVar("T")
fetch_logger = logging.getLogger("topicwatch.fetch")

HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_TYPES = ("xml", "rss", "atom")


def _now() -> datetime:
    return datetime.now(UTC)


class TopicSpider(scrapy.Spider):
    """Crawls one topic. Arguments: ``topic_id``, ``spec`` (TopicSpec), ``run_id``; and the
    worker processes forked for the run, if any: ``readers`` (:class:`ReaderPool`) and
    ``writer`` (taken up by the storage pipeline)."""

    name = "topic"
    engine: Engine
    session_factory: sessionmaker[Session]
    database: DatabaseThread
    workers = 0
    readers: ReaderPool | None = None
    retired_readers: tuple[ReaderPool, ...] = ()
    readers_starting: asyncio.Task[None] | None = None
    forked_writer: WriterProcess | None = None
    recorder: StoragePipeline | None = None  # set by the pipeline when the spider opens

    def __init__(
        self,
        *args: Any,
        topic_id: int,
        spec: TopicSpec,
        run_id: int | None = None,
        readers: ReaderPool | None = None,
        writer: WriterProcess | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.topic_id = topic_id
        self.spec = spec
        self.run_id = run_id
        self.readers = readers
        self.forked_writer = writer
        self.failures: list[dict[str, str]] = []
        self.counts: Counter[str] = Counter()
        self.listing_failures: list[dict[str, str]] = []
        self.listing_refused = False
        self.listed: set[str] = set()
        self._scheduled: set[str] = set()
        self.profile: SiteProfile | None = profile_by_name(spec.profile) if spec.profile else None

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> TopicSpider:
        spider: TopicSpider = super().from_crawler(crawler, *args, **kwargs)
        spider.engine = make_engine(crawler.settings["TOPICWATCH_DATABASE_URL"])
        spider.session_factory = session_factory(spider.engine)
        spider.database = DatabaseThread()
        spider.workers = crawler.settings.getint("TOPICWATCH_EXTRACTION_WORKERS", 0)
        crawler.signals.connect(spider.take_up_readers, signal=signals.spider_opened)
        crawler.signals.connect(spider.stop_readers, signal=signals.spider_closed)
        crawler.signals.connect(spider.publish_counts, signal=signals.spider_closed)
        return spider

    def publish_counts(self) -> None:
        """At the end of the run (``spider_closed``): the counters into Scrapy's stats."""
        stats = self.crawler.stats
        assert stats is not None
        for key, n in self.counts.items():
            stats.inc_value(f"topicwatch/{key}", n)
        self.counts.clear()

    def closed(self, reason: str) -> None:
        self.database.shutdown()
        self.engine.dispose()

    # -- helpers ------------------------------------------------------------------------

    async def in_database(
        self, function: Callable[..., T], /, *args: Any, urgent: bool = False, **kwargs: Any
    ) -> T:
        """``function(*args, **kwargs)`` in the run's database thread; ``urgent`` calls go
        before the others queued there."""
        call = functools.partial(function, *args, **kwargs)
        result: T = await asyncio.wrap_future(self.database.submit(call, urgent=urgent))
        return result

    def profile_of(self, url: str) -> SiteProfile:
        return self.profile or profile_for(url)

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the run's counter ``key`` (Scrapy's ``topicwatch/<key>`` stat)."""
        self.counts[key] += n

    def fail(self, url: str, reason: str, *, listing: bool = False) -> None:
        entry = {"url": url, "reason": reason}
        self.failures.append(entry)
        if listing:
            self.listing_failures.append(entry)
        self.count("failures")
        fetch_logger.warning("fetch failed topic=%s url=%s reason=%s", self.spec.name, url, reason)

    def article_request(
        self, url: str, known: KnownArticle | None, *, origin: str
    ) -> scrapy.Request:
        headers: dict[str, str] = {}
        if known is not None and known.status == "live" and known.current_version > 0:
            if known.etag:
                headers["If-None-Match"] = known.etag
            if known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
        return scrapy.Request(
            url,
            headers=headers,
            callback=self.parse_article,
            errback=self.article_error,
            meta={
                "handle_httpstatus_list": [304, 404, 410],
                "topicwatch_url": url,
                "topicwatch_known": known,
                "topicwatch_origin": origin,
            },
            priority=0 if origin == "listing" else -10,
            # The spider de-duplicates articles itself; Scrapy's filter would also drop the
            # hops of a redirect loop silently, and the article would vanish from the run.
            dont_filter=True,
        )

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
        candidates = await self.in_database(
            recheck_candidates,
            self.session_factory,
            self.topic_id,
            _now(),
            self.spec.recheck_for,
            exclude=(),
            urgent=True,
        )
        for known in candidates:
            if known.url in self._scheduled:
                continue
            self._scheduled.add(known.url)
            self.count("rechecks")
            yield self.article_request(known.url, known, origin="recheck")

    # -- listings --------------------------------------------------------------------------

    async def parse_listing(self, response: Response) -> AsyncIterator[scrapy.Request]:
        page: int = response.meta["topicwatch_page"]
        source: str = response.meta["topicwatch_source"]
        self.count("listing_pages")
        content_type = (header(response, "Content-Type") or "").lower()
        if not isinstance(response, TextResponse) and not any(
            t in content_type for t in FEED_TYPES
        ):
            self.fail(
                response.url,
                f"listing is not a web page or feed (Content-Type {content_type or 'missing'})",
                listing=True,
            )
            return
        listing = await self.discover_links(response, content_type or None, source)
        links = [
            link
            for link in listing.links
            if matches_keywords(f"{link.title} {link.summary}", self.spec.keywords)
        ]
        urls = [link.url for link in links]
        self.count("links_listed", len(urls))
        if not urls:
            logger.info("no article links topic=%s url=%s", self.spec.name, response.url)
        noted = await self.in_database(
            note_listing, self.session_factory, self.topic_id, urls, urgent=True
        )
        known_urls, known = noted.announced, noted.known
        self.listed.update(urls)
        new_here = 0
        for url in urls:
            if url not in known_urls:
                new_here += 1
            if url in self._scheduled:
                continue
            self._scheduled.add(url)
            yield self.article_request(url, known.get(url), origin="listing")
        if listing.kind == "sitemap" and listing.children:
            # A sitemap index: its child sitemaps, as many as the topic reads listing pages.
            for child in listing.children[: self.spec.max_pages]:
                yield scrapy.Request(
                    child,
                    callback=self.parse_listing,
                    errback=self.listing_error,
                    meta={"topicwatch_page": self.spec.max_pages, "topicwatch_source": source},
                    priority=10,
                )
            return
        if listing.next_page and page < self.spec.max_pages:
            if new_here == 0 and page > 0 and urls:
                # Listings are newest first: a page with nothing new means the pages after
                # it hold nothing new either; their articles are re-checked by age.
                self.count("pagination_stopped_early")
                return
            yield scrapy.Request(
                listing.next_page,
                callback=self.parse_listing,
                errback=self.listing_error,
                meta={"topicwatch_page": page + 1, "topicwatch_source": source},
                priority=10,
            )

    async def discover_links(
        self, response: Response, content_type: str | None, source: str
    ) -> Listing:
        """The links of a listing page: found by a reading worker when one is ready (a run
        does not start them, nor wait for them, for its listings), else here."""
        profile = self.profile_of(source)
        readers = self.readers
        if readers is not None and readers.ready:
            try:
                listing = await readers.discover(response.body, response.url, content_type, profile)
                self.count("listings_read_by_workers")
                return listing
            except ReadersStopped:
                pass  # found below; the pages are read here once every worker has stopped
            except WorkerTaskError as exc:
                logger.warning(
                    "Finding the links of %s failed in a reading worker (%s); trying again "
                    "in the crawl process",
                    response.url,
                    exc,
                )
        return discover(response.body, response.url, content_type, profile)

    def listing_error(self, failure: Failure) -> None:
        request = failure.request  # type: ignore[attr-defined]
        reason = self.describe(failure, request.url)
        if is_refusal(failure):
            self.listing_refused = True
            reason = f"{reason}; the topic cannot be crawled as configured"
        self.fail(request.url, reason, listing=True)

    # -- articles --------------------------------------------------------------------------

    async def parse_article(self, response: Response) -> list[Any]:
        """An article page's outcome goes straight to the storage pipeline
        (:meth:`crawler.pipelines.StoragePipeline.take`), not through Scrapy's item
        machinery, which would cost the crawl process CPU for every page. Scrapy waits for
        this callback either way, so the spider closes only once every outcome is handed
        over. Without the pipeline (Scrapy settings of one's own), the outcome is returned
        as an item."""
        result = await self.article_outcome(response)
        if result is None:
            return []
        if isinstance(result, scrapy.Request) or self.recorder is None:
            return [result]
        await self.recorder.take(result)
        return []

    async def article_outcome(self, response: Response) -> Outcome | scrapy.Request | None:
        """What an article page gave: its outcome to record; the request for the view of
        the whole article when the page shows only part of it; or None when it failed (the
        failure is noted)."""
        url: str = response.meta["topicwatch_url"]
        known: KnownArticle | None = response.meta["topicwatch_known"]
        self.count("article_responses")
        content_type = (header(response, "Content-Type") or "").lower()
        web_page = isinstance(response, TextResponse) and any(t in content_type for t in HTML_TYPES)
        first_page: Response = response.meta.get("topicwatch_first_page", response)
        raw_sha = hashlib.sha256(first_page.body).hexdigest() if web_page else None
        said = response_outcome(
            url,
            status=response.status,
            redirected_to_home_or_listing=bool(response.meta.get("redirect_urls"))
            and self.is_home_or_listing(response.url),
            raw_sha256=raw_sha,
            known_status=None if known is None else known.status,
            known_raw_sha256=None if known is None else known.raw_sha256,
            etag=header(first_page, "ETag"),
            last_modified=header(first_page, "Last-Modified"),
        )
        if said is not None:
            if isinstance(said, NotModified) and response.status != 304:
                self.count("identical_bodies")
            return said
        if not web_page:
            self.fail(url, f"not a web page (Content-Type {content_type or 'missing'})")
            return None
        profile = self.profile_of(url)
        first = "topicwatch_first_page" not in response.meta
        reading = await self.read(response, profile, find_whole=first, requested=url)
        if reading.whole_url is not None:
            self.count("multipage")
            # Only the run's own keys go on: Scrapy's (redirects, retries, latency) belong
            # to the first page's request.
            meta = {k: v for k, v in response.meta.items() if k.startswith("topicwatch_")}
            meta["handle_httpstatus_list"] = response.meta["handle_httpstatus_list"]
            meta["topicwatch_first_page"] = response
            return response.request.replace(  # type: ignore[union-attr]
                url=reading.whole_url, headers={}, meta=meta, dont_filter=True
            )
        article, fingerprinted = reading.article, reading.fingerprint
        if article is None:
            if not response.body.strip():
                self.count("empty_body")
            self.fail(url, reading.error or "the page could not be read")
            return None
        if fingerprinted is None:
            self.count("empty_body")
            self.fail(url, "the page has no article text (empty body)")
            return None
        identity = reading.identity or url
        raw_html = first_page.body if self.settings.getbool("TOPICWATCH_STORE_RAW_HTML") else None
        return PageRead(
            url=identity,
            title=article.title,
            body=article.body,
            lead=article.lead,
            authors=article.authors,
            published=article.published,
            modified=article.modified,
            fingerprint=fingerprinted.digest,
            field_hashes=fingerprinted.fields,
            etag=header(first_page, "ETag"),
            last_modified=header(first_page, "Last-Modified"),
            raw_sha256=raw_sha,
            raw_html=raw_html,
        )

    def take_up_readers(self) -> None:
        """At the start of the run (``spider_opened``): take up the reading workers forked
        for it, if any."""
        if self.readers is not None:
            if self.workers > 0:
                self.start_readers()
            else:
                self.readers.discard()
                self.readers = None

    def start_readers(self) -> None:
        """Take up the reading workers forked for the run; or, where they could not be
        forked, start them afresh once the run has read ``WORKERS_AFTER`` pages itself and
        has another to read (a run that reads fewer, such as a re-check of a listing's first
        page answered mostly by 304s, starts none). Pages wait for them to be ready (the
        crawl goes on fetching meanwhile); they are read in the crawl process only when
        every worker has stopped."""
        if self.readers is None:
            self.readers = ReaderPool(self.workers, logging_configured())
        self.readers_starting = asyncio.get_running_loop().create_task(self.readers.start())

    async def stop_readers(self) -> None:
        """At the end of the run (``spider_closed``): stop the extraction workers."""
        if self.readers_starting is not None:
            with contextlib.suppress(Exception):
                await self.readers_starting
        for pool in (*self.retired_readers, self.readers):
            if pool is not None:
                await pool.close()
        self.readers = None

    async def read(
        self, response: Response, profile: SiteProfile, *, find_whole: bool, requested: str
    ) -> Reading:
        """Read an article page, in a worker process when there are any."""
        assert isinstance(response, TextResponse)
        options: dict[str, Any] = {
            "encoding": response.encoding,
            "profile": profile,
            "ignore_patterns": tuple(self.spec.ignore_patterns),
            "find_whole": find_whole,
            "requested": requested,
        }
        if (
            self.workers > 0
            and self.readers is None
            and self.counts["pages_read_in_process"] >= WORKERS_AFTER
        ):  # not forked at the start of the run
            self.start_readers()
        readers = self.readers
        if readers is not None:
            await readers.wait_ready()
            if readers.alive:
                try:
                    reading = await readers.read(response.body, response.url, **options)
                    self.count("pages_read_by_workers")
                    return reading
                except ReadersStopped:
                    pass  # read below; a worker that stopped failed the pages it held
            if self.readers is readers and not readers.alive:  # the first page to find out
                logger.warning(
                    "The extraction workers of topic %s stopped; reading pages in the "
                    "crawl process from now on",
                    self.spec.name,
                )
                self.retired_readers = (*self.retired_readers, readers)
                self.readers = None
                self.workers = 0
        self.count("pages_read_in_process")
        return read_page(response.body, response.url, **options)

    def article_error(self, failure: Failure) -> None:
        request = failure.request  # type: ignore[attr-defined]
        self.fail(
            request.meta.get("topicwatch_url", request.url), self.describe(failure, request.url)
        )

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


def header(response: Response, name: str) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


def _is(failure: Failure, *kinds: type[BaseException]) -> bool:
    """Whether the failure's exception is one of ``kinds`` (Twisted's ``check``, typed)."""
    return failure.check(*kinds) is not None  # type: ignore[no-untyped-call]


def is_refusal(failure: Failure) -> bool:
    if _is(failure, HttpError):
        return failure.value.response.status in (401, 403)  # type: ignore[union-attr]
    return _is(failure, IgnoreRequest) and "robots.txt" in str(failure.value)


def describe_failure(failure: Failure, timeout: float) -> str:
    """One short sentence saying why a request failed."""
    value = failure.value
    if _is(failure, HttpError):
        status = value.response.status  # type: ignore[union-attr]
        return f"HTTP {status}"
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
        return f"download failed: {value}"
    return f"{type(value).__name__}: {value}"
