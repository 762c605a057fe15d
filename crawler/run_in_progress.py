"""One crawl run of one topic: the state the run keeps and the services the spider asks of it.

:func:`crawler.run.crawl_topic` builds the run, hands it to the spider, and reads what it
kept once the crawl is over. The spider fetches and decides what each page is; the run reads
article pages, records outcomes, queries the database, counts and keeps failures.

Every database call of the run goes through one thread of its own
(:meth:`RunInProgress.in_database`): the event loop never waits for the database, the crawl's
own writes never wait for each other, and what a listing page needs goes before batches of
outcomes to record (:mod:`crawler.database_thread`). Outcomes are recorded in batches
(:mod:`crawler.recording`) in that thread; the spider drains them when it closes, so the run
is over only once every outcome is written.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from crawler.database_thread import DatabaseThread
from crawler.observability import log_fields
from crawler.profiles import SiteProfile
from crawler.recording import Recorder, RecordFailure, Result, record_batch
from storage.changes import Gone, NotModified, Outcome, PageRead
from storage.db import make_engine, session_factory
from storage.topics import load_topic

if TYPE_CHECKING:
    # Imported when the run reads its first page (extraction's modules): a re-check answered
    # by 304s reads none.
    from crawler.reading import Reading

T = TypeVar("T")
fetch_logger = logging.getLogger("topicwatch.fetch")
change_logger = logging.getLogger("topicwatch.change")


class RunInProgress:
    """The run of topic ``topic_id`` (``spec``) recorded as crawl run ``run_id``: its
    database connection and thread, its counters (Scrapy's ``topicwatch/<key>`` stats, and
    the counts of its ``crawl_runs`` row), and its failures, each with its URL and reason."""

    def __init__(self, database_url: str, topic: str, run_id: int) -> None:
        self.engine = make_engine(database_url)
        self.sessions = session_factory(self.engine)
        try:
            self.topic_id, self.spec = load_topic(self.sessions, topic)
        except BaseException:
            self.engine.dispose()
            raise
        self.run_id = run_id
        self.counts: Counter[str] = Counter()
        self.failures: list[dict[str, str]] = []
        self.listing_failures: list[dict[str, str]] = []
        self.listing_refused = False
        self.database = DatabaseThread()
        self.recorder = Recorder(self._write, self._note)

    def close(self) -> None:
        """Stop the database thread (after what is queued) and close the connections."""
        self.database.shutdown()
        self.engine.dispose()

    async def in_database(
        self, function: Callable[..., T], /, *args: Any, urgent: bool = False, **kwargs: Any
    ) -> T:
        """``function(*args, **kwargs)`` in the run's database thread; ``urgent`` calls go
        before the others queued there."""
        call = functools.partial(function, *args, **kwargs)
        result: T = await asyncio.wrap_future(self.database.submit(call, urgent=urgent))
        return result

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the run's counter ``key``."""
        self.counts[key] += n

    def fail(self, url: str, reason: str, *, listing: bool = False, refused: bool = False) -> None:
        """Note that ``url`` failed; a failed listing page may fail the run, and one the site
        ``refused`` (robots.txt, 401, 403) makes it ``refused``."""
        entry = {"url": url, "reason": reason}
        self.failures.append(entry)
        if listing:
            self.listing_failures.append(entry)
        self.listing_refused = self.listing_refused or refused
        self.count("failures")
        fetch_logger.warning("fetch failed topic=%s url=%s reason=%s", self.spec.name, url, reason)

    def read(
        self,
        body: bytes,
        url: str,
        *,
        encoding: str,
        profile: SiteProfile,
        find_whole: bool,
        requested: str,
        part: int | None = None,
        first_url: str | None = None,
        with_page_blocks: bool = False,
    ) -> Reading:
        """Extract and fingerprint an article page (:func:`crawler.reading.read_page`), with
        the topic's ignore patterns."""
        from crawler.reading import read_page

        self.count("pages_read")
        return read_page(
            body,
            url,
            encoding=encoding,
            profile=profile,
            ignore_patterns=tuple(self.spec.ignore_patterns),
            find_whole=find_whole,
            requested=requested,
            part=part,
            first_url=first_url,
            with_page_blocks=with_page_blocks,
        )

    def join(self, pages: Sequence[Reading]) -> Reading:
        """The article read from its pages (:func:`crawler.reading.read_pages`), with the
        topic's ignore patterns."""
        from crawler.reading import read_pages

        return read_pages(pages, tuple(self.spec.ignore_patterns))

    async def record(self, outcome: Outcome) -> None:
        """Record ``outcome`` with the next batch (counted as seen); waits only while too
        many batches are on their way to the database."""
        waiting = self.record_soon(outcome)
        if waiting is not None:
            await waiting

    def record_soon(self, outcome: Outcome) -> Coroutine[Any, Any, None] | None:
        """:meth:`record` without waiting: None, or, while too many batches are on their way
        to the database, what to await before handing over more. A spider callback that
        needs no ``await`` costs Scrapy no asyncio task per response."""
        self.count("articles_seen")
        if isinstance(outcome, NotModified):
            # A removed article answering 304 again is back: that is a change too.
            self.count("articles_not_modified")
        if self.recorder.queue(outcome):
            return self.recorder.room()
        return None

    async def drain(self) -> None:
        """Wait until every outcome handed to :meth:`record` is written."""
        await self.recorder.drain()

    async def _write(self, batch: list[Outcome]) -> list[Result]:
        return await self.in_database(
            record_batch, self.sessions, topic_id=self.topic_id, run_id=self.run_id, batch=batch
        )

    def _note(self, outcome: Outcome, result: Result) -> None:
        """Count a recorded outcome and log its change, if it made one; an outcome that
        could not be recorded is a failure of the run."""
        if isinstance(result, RecordFailure):
            self.fail(outcome.url, f"could not be recorded in the database: {result.reason}")
            return
        if result is None:
            if isinstance(outcome, PageRead):
                self.count("articles_unchanged")
            elif isinstance(outcome, Gone):
                self.count("gone_unknown")
            return
        self.count(f"articles_{result.kind}")
        log_fields(
            change_logger,
            logging.INFO,
            None,
            kind=result.kind,
            topic=result.topic,
            url=result.url,
            title=" ".join(result.title.split()),
            fields=",".join(result.fields) or "-",
            # Alert emails queued (the dispatcher sends them): one per recipient, none when
            # the content went back to a version already alerted on.
            alerts=len(self.spec.alerts_for(result.kind)) if result.alerted else 0,
        )
