"""The item pipeline that records each article outcome in the database.

The spider hands its outcomes to the pipeline directly (:meth:`StoragePipeline.take`) rather
than as Scrapy items: the item machinery (spider-middleware output, item signals, a Deferred
for each item) is work the crawl process does for every page, 3–4 % of its CPU in a fast
crawl. An outcome that does come as an item (:meth:`StoragePipeline.process_item`) is
recorded the same way.

Outcomes are written in batches (:mod:`crawler.recording`), so the crawl goes on fetching
and reading pages while the database works: in the run's database thread (see
:meth:`crawler.spiders.topic.TopicSpider.in_database`), or, with the setting
``TOPICWATCH_WRITER_PROCESS``, in a writer process of its own (:class:`WriterProcess`). A
batch goes out when it holds ``TOPICWATCH_WRITE_BATCH`` outcomes or its oldest one has
waited ``TOPICWATCH_WRITE_DELAY`` seconds, and whatever is left goes out when the spider
closes; batches are recorded in the order they go out. The writer process is forked at the
start of the run (:func:`crawler.run.crawl_topic`); where it cannot be, it is started afresh
once the run has handed over a batch's worth of outcomes (the few outcomes of a
steady-state run are recorded in the database thread, for less than starting it would
cost). Until it is ready, batches are recorded in the database thread, which it then takes
over from. An outcome that cannot be written is a failure of the run, with its URL and the
reason.

A crawl child killed in the middle of a run loses at most the outcomes not yet written; the
articles they concern are read again, and recorded, by the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crawler import recording
from crawler.observability import logging_configured
from crawler.readers import WorkerPool
from crawler.recording import RecordFailure, Result
from storage.changes import Gone, NotModified, Outcome, PageRead
from storage.recording import ChangeRecord

if TYPE_CHECKING:
    from crawler.spiders.topic import TopicSpider

logger = logging.getLogger(__name__)
change_logger = logging.getLogger("topicwatch.change")

WRITE_BATCH = 100
WRITE_DELAY = 0.5
# Batches handed to the writer and not yet written; past this, new outcomes wait for it.
MAX_BATCHES_IN_FLIGHT = 4


class WriterProcess(WorkerPool):
    """The run's writer: one worker process that records batches of outcomes in the run's
    database (:data:`crawler.recording.WRITER_TASKS`)."""

    name = "tw-writer"
    label = "writer"
    tasks = recording.WRITER_TASKS

    def __init__(self, database_url: str, log_setup: tuple[str, int] | None = None) -> None:
        super().__init__(1, log_setup, (recording.open_writer, (database_url,)))

    async def record(
        self, topic_id: int, run_id: int | None, batch: Sequence[Outcome]
    ) -> list[Result]:
        """:func:`crawler.recording.record_batch` in the writer process."""
        results: list[Result] = await self.run("record", topic_id, run_id, batch)
        return results


class StoragePipeline:
    """Records pages, 304s and removals, in batches of one transaction each.

    Counts each outcome as a Scrapy stat (``topicwatch/articles_new``, …) and logs one
    line per change.
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.changes: list[ChangeRecord] = []
        self.batch_size = max(1, crawler.settings.getint("TOPICWATCH_WRITE_BATCH", WRITE_BATCH))
        self.batch_delay = crawler.settings.getfloat("TOPICWATCH_WRITE_DELAY", WRITE_DELAY)
        self.pending: list[Outcome] = []
        self.handed_over = 0  # outcomes of the run gone out in batches
        self.in_flight: deque[asyncio.Task[None]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.use_writer = crawler.settings.getbool("TOPICWATCH_WRITER_PROCESS", False)
        self.writer: WriterProcess | None = None
        self.writer_starting: asyncio.Task[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> StoragePipeline:
        return cls(crawler)

    @property
    def spider(self) -> TopicSpider:
        spider: TopicSpider = self.crawler.spider
        return spider

    def count(self, key: str) -> None:
        self.spider.count(key)

    def open_spider(self) -> None:
        self.spider.recorder = self
        forked = self.spider.forked_writer
        if forked is not None:
            self.spider.forked_writer = None
            if self.use_writer:
                self.start_writer(forked)
            else:
                forked.discard()

    async def process_item(self, item: Any) -> Any:
        if isinstance(item, PageRead | NotModified | Gone):
            await self.take(item)
        return item

    async def take(self, outcome: Outcome) -> None:
        """Record ``outcome`` with the next batch (counted as seen); waits only while too
        many batches are on their way to the database. The spider hands its outcomes here
        directly (:meth:`crawler.spiders.topic.TopicSpider.parse_article`)."""
        self.count("articles_seen")
        if isinstance(outcome, NotModified):
            # A removed article answering 304 again is back: that is a change too.
            self.count("articles_not_modified")
        self.pending.append(outcome)
        if len(self.pending) >= self.batch_size:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.batch_delay, self.flush)
        while len(self.in_flight) > MAX_BATCHES_IN_FLIGHT:
            await asyncio.wait([self.in_flight[0]])

    async def close_spider(self) -> None:
        self.flush()
        while self.in_flight:
            await asyncio.wait([self.in_flight[0]])
        if self.writer_starting is not None:
            with contextlib.suppress(Exception):
                await self.writer_starting
        if self.writer is not None:
            writer, self.writer = self.writer, None
            if writer.ready:  # a writer that stopped has nothing to close
                with contextlib.suppress(Exception):
                    await writer.run("close")
            await writer.close()

    def flush(self) -> None:
        """Hand the pending outcomes to the writer as one batch."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        self.handed_over += len(batch)
        task = asyncio.get_running_loop().create_task(self.write(batch))
        self.in_flight.append(task)
        task.add_done_callback(self.in_flight.remove)

    async def write(self, batch: list[Outcome]) -> None:
        results = await self.record(batch)
        for outcome, result in zip(batch, results, strict=True):
            if isinstance(result, RecordFailure):
                self.spider.fail(
                    outcome.url, f"could not be recorded in the database: {result.reason}"
                )
            else:
                self.note(outcome, result)

    def start_writer(self, forked: WriterProcess | None = None) -> None:
        """Take up the writer process forked for the run, or start one (once a batch's
        worth of outcomes has gone out: a steady-state run records its few in the database
        thread). Until it is ready, batches are recorded in the crawl process."""
        database_url = self.crawler.settings["TOPICWATCH_DATABASE_URL"]
        self.writer = forked or WriterProcess(database_url, logging_configured())
        self.writer_starting = asyncio.get_running_loop().create_task(self.writer.start())

    async def record(self, batch: list[Outcome]) -> list[Result]:
        """Record one batch, in the writer process or the run's database thread."""
        spider = self.spider
        if self.use_writer and self.writer is None and self.handed_over >= self.batch_size:
            self.start_writer()
        writer = self.writer
        if writer is not None and writer.workers and not writer.alive:  # it stopped
            await self.retire_writer(writer, "it stopped")
        elif writer is not None and writer.ready:
            try:
                results = await writer.record(spider.topic_id, spider.run_id, batch)
                self.count("batches_recorded_by_writer")
                return results
            except Exception as exc:  # stopped, or the batch could not reach it
                if self.writer is writer:  # the first batch to find out says so
                    await self.retire_writer(writer, recording.reason_of(exc))
                # The batch is recorded below; had the writer recorded it already, recording
                # it again changes nothing.
        return await spider.in_database(
            recording.record_batch,
            spider.session_factory,
            topic_id=spider.topic_id,
            run_id=spider.run_id,
            batch=batch,
        )

    async def retire_writer(self, writer: WriterProcess, reason: str) -> None:
        """Record in the crawl process from now on."""
        logger.warning(
            "The writer process of topic %s failed (%s); recording in the crawl process from "
            "now on",
            self.spider.spec.name,
            reason,
        )
        self.writer = None
        self.use_writer = False
        await writer.close()

    def note(self, outcome: Outcome, change: ChangeRecord | None) -> None:
        """Count a recorded outcome and log its change, if it made one."""
        if change is None:
            if isinstance(outcome, PageRead):
                self.count("articles_unchanged")
            elif isinstance(outcome, Gone):
                self.count("gone_unknown")
            return
        self.count(f"articles_{change.kind}")
        self.changes.append(change)
        change_logger.info(
            "kind=%s topic=%s url=%s title=%s fields=%s alerted=%s",
            change.kind,
            change.topic,
            change.url,
            _quote(change.title),
            ",".join(change.fields) or "-",
            "yes" if change.alerted else "no",
        )


def _quote(text: str) -> str:
    """A title as one log token: quoted, with no line breaks."""
    flat = " ".join(text.split())
    return '"' + flat.replace('"', "'") + '"'
