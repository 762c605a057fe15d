"""The item pipeline that records each article outcome in the database.

Outcomes are written in batches, in the run's database thread (see
:meth:`crawler.spiders.topic.TopicSpider.in_database`), so the crawl goes on fetching and
reading pages while the database works. A batch goes out when it holds
``TOPICWATCH_WRITE_BATCH`` outcomes or its oldest one has waited ``TOPICWATCH_WRITE_DELAY``
seconds, and whatever is left goes out when the spider closes. Each batch is one transaction:
every change in it is written with its alert rows, or nothing of the batch is. A batch that
fails is written again one outcome at a time, so a bad outcome costs only itself; an outcome
that still cannot be written is a failure of the run, with its URL and the reason.

A crawl child killed in the middle of a run loses at most the outcomes not yet written; the
articles they concern are read again, and recorded, by the next run.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from storage import repository
from storage.repository import ChangeRecord, Observation, Outcome, PageGone, PageNotModified

if TYPE_CHECKING:
    from crawler.spiders.topic import TopicSpider

logger = logging.getLogger(__name__)
change_logger = logging.getLogger("topicwatch.change")

WRITE_BATCH = 100
WRITE_DELAY = 0.5
# Batches handed to the writer and not yet written; past this, new items wait for it.
MAX_BATCHES_IN_FLIGHT = 4

Result = ChangeRecord | None | Exception


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
        self.in_flight: deque[asyncio.Task[None]] = deque()
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> StoragePipeline:
        return cls(crawler)

    @property
    def spider(self) -> TopicSpider:
        spider: TopicSpider = self.crawler.spider
        return spider

    def count(self, key: str) -> None:
        self.crawler.stats.inc_value(f"topicwatch/{key}")

    async def process_item(self, item: Any) -> Any:
        outcome = self.outcome_of(item)
        if outcome is None:
            return item
        self.pending.append(outcome)
        if len(self.pending) >= self.batch_size:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.batch_delay, self.flush)
        while len(self.in_flight) > MAX_BATCHES_IN_FLIGHT:
            await asyncio.wait([self.in_flight[0]])
        return item

    async def close_spider(self) -> None:
        self.flush()
        while self.in_flight:
            await asyncio.wait([self.in_flight[0]])

    def outcome_of(self, item: Any) -> Outcome | None:
        """The spider's item as an outcome to record (counted as seen), or None."""
        if not isinstance(item, Observation | PageNotModified | PageGone):
            return None
        self.count("articles_seen")
        if isinstance(item, PageNotModified):
            # A removed article answering 304 again is back: that is a change too.
            self.count("articles_not_modified")
        return item

    def flush(self) -> None:
        """Hand the pending outcomes to the writer as one batch."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        task = asyncio.get_running_loop().create_task(self.write(batch))
        self.in_flight.append(task)
        task.add_done_callback(self.in_flight.remove)

    async def write(self, batch: list[Outcome]) -> None:
        results = await self.spider.in_database(self.record, batch)
        for outcome, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                self.spider.fail(
                    outcome.url, f"could not be recorded in the database: {_reason(result)}"
                )
            else:
                self.note(outcome, result)

    def record(self, batch: list[Outcome]) -> list[Result]:
        """Write one batch (in the database thread); per outcome its change, None or the
        error."""
        spider = self.spider
        common: dict[str, Any] = {"topic_id": spider.topic_id, "run_id": spider.run_id}
        try:
            return list(
                repository.record_outcomes(spider.session_factory, outcomes=batch, **common)
            )
        except Exception as exc:
            if len(batch) == 1:
                logger.exception("Could not record the outcome for %s", batch[0].url)
                return [exc]
            logger.warning(
                "A batch of %d outcomes could not be recorded; recording them one by one",
                len(batch),
                exc_info=True,
            )
        results: list[Result] = []
        for outcome in batch:
            try:
                results.extend(
                    repository.record_outcomes(spider.session_factory, outcomes=[outcome], **common)
                )
            except Exception as exc:
                logger.exception("Could not record the outcome for %s", outcome.url)
                results.append(exc)
        return results

    def note(self, outcome: Outcome, change: ChangeRecord | None) -> None:
        """Count a recorded outcome and log its change, if it made one."""
        if change is None:
            if isinstance(outcome, repository.Observation):
                self.count("articles_unchanged")
            elif isinstance(outcome, PageGone):
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


def _reason(error: Exception) -> str:
    """The error in one short line: a database error's own message, not its SQL."""
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split()) or type(original).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _quote(text: str) -> str:
    """A title as one log token: quoted, with no line breaks."""
    flat = " ".join(text.split())
    return '"' + flat.replace('"', "'") + '"'
