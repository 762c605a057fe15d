"""One crawl run of one topic, in this process: the body of a crawl child.

Scrapy's reactor cannot be started twice in one process, so every run gets a process of its
own (``python -m crawler``); the scheduler starts and supervises it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from scrapy.crawler import AsyncCrawlerProcess
from sqlalchemy import Engine

from crawler import collector
from crawler.pipelines import WriterProcess
from crawler.readers import ReaderPool, WorkerPool, can_fork, fork_workers
from crawler.settings import scrapy_settings
from crawler.spiders.topic import TopicSpider
from storage.db import make_engine, session_factory
from storage.runs import COUNTERS, finish_run
from storage.topics import load_topic

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    status: str
    counts: dict[str, int]
    failures: list[dict[str, str]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


def crawl_topic(database_url: str, topic: str, run_id: int, **setting_overrides: Any) -> RunResult:
    """Crawl ``topic`` once, record everything, and finish crawl run ``run_id``."""
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    workers: dict[str, WorkerPool] = {}
    try:
        topic_id, spec = load_topic(sessions, topic)
        settings = scrapy_settings(spec, database_url, **setting_overrides)
        # The process's own logging (crawler.observability) stays in charge of the output.
        settings["LOG_INSTALL_ROOT_HANDLER"] = False
        if not logger.isEnabledFor(logging.DEBUG):
            for handler in logging.getLogger().handlers:
                handler.addFilter(_quiet_scrapy)
        workers = fork_workers_for(settings, database_url, engine)
        process = AsyncCrawlerProcess(settings)
        crawler = process.create_crawler(TopicSpider)
        process.crawl(crawler, topic_id=topic_id, spec=spec, run_id=run_id, **workers)
        collector.settle()
        process.start(install_signal_handlers=True)
        spider = crawler.spider
        assert isinstance(spider, TopicSpider)
        stats = {key: _jsonable(value) for key, value in crawler.stats.get_stats().items()}
        result = summarise(spider, stats)
        finish_run(
            sessions,
            run_id,
            status=result.status,
            counts=result.counts,
            errors=result.failures,
            stats=result.stats,
            message=result.message,
        )
        return result
    finally:
        for pool in workers.values():
            pool.discard()  # forked, and never taken up (the run failed to start)
        engine.dispose()


def fork_workers_for(
    settings: dict[str, Any], database_url: str, engine: Engine
) -> dict[str, WorkerPool]:
    """The run's reading workers and writer process (``crawl.workers`` above 0), forked now,
    before the crawl starts any thread: they start at once, at next to no cost, having
    everything imported. Where this process cannot fork (:func:`crawler.readers.can_fork`)
    there are none; the spider and the pipeline start them afresh when they need them."""
    size = int(settings.get("TOPICWATCH_EXTRACTION_WORKERS", 0))
    writer = bool(settings.get("TOPICWATCH_WRITER_PROCESS", False))
    if not (size > 0 or writer) or not can_fork():
        return {}
    engine.dispose()  # no connection of this process's is copied into a worker
    collector.settle()  # and no worker walks what start-up left with its collector
    workers: dict[str, WorkerPool] = {}
    if size > 0:
        workers["readers"] = ReaderPool(size)
    if writer:
        workers["writer"] = WriterProcess(database_url)
    fork_workers(*workers.values())
    return workers


def summarise(spider: TopicSpider, stats: dict[str, Any]) -> RunResult:
    """The run's status and counters, from the spider's failures and Scrapy's stats."""

    def stat(key: str) -> int:
        return int(stats.get(f"topicwatch/{key}", 0))

    # Most counters are the pipeline's own stats; these two are not.
    counts = {key: stat(key) for key in COUNTERS}
    counts["pages_fetched"] = int(stats.get("downloader/response_count", 0))
    counts["errors"] = len(spider.failures)
    listing_pages = stat("listing_pages")
    message = None
    if spider.listing_refused and listing_pages == 0:
        status = "refused"
        message = "; ".join(f"{f['url']}: {f['reason']}" for f in spider.listing_failures)
    elif listing_pages == 0 and spider.listing_failures:
        status = "failed"
        message = "; ".join(f"{f['url']}: {f['reason']}" for f in spider.listing_failures)
    elif spider.failures:
        status = "partial"
    else:
        status = "ok"
    finish = stats.get("finish_reason")
    if finish not in (None, "finished") and status == "ok":
        status = "partial"
        message = f"crawl ended early: {finish}"
    return RunResult(
        status=status, counts=counts, failures=spider.failures, stats=stats, message=message
    )


def _quiet_scrapy(record: logging.LogRecord) -> bool:
    """Scrapy's start-up and statistics chatter stays out of the log below DEBUG level."""
    return record.levelno >= logging.WARNING or not record.name.startswith("scrapy")


def _jsonable(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
