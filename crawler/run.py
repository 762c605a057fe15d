"""One crawl run of one topic, in this process: the body of a crawl child.

Scrapy's reactor cannot be started twice in one process, so every run gets a process of its
own (``python -m crawler``); the scheduler starts and supervises it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from scrapy.crawler import AsyncCrawlerProcess

from crawler import collector
from crawler.settings import scrapy_settings
from crawler.spiders.topic import TopicSpider
from storage import repository
from storage.db import make_engine, session_factory

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
    try:
        topic_id, spec = repository.load_topic(sessions, topic)
        settings = scrapy_settings(spec, database_url, **setting_overrides)
        # The process's own logging (crawler.observability) stays in charge of the output.
        settings["LOG_INSTALL_ROOT_HANDLER"] = False
        if not logger.isEnabledFor(logging.DEBUG):
            for handler in logging.getLogger().handlers:
                handler.addFilter(_quiet_scrapy)
        process = AsyncCrawlerProcess(settings)
        crawler = process.create_crawler(TopicSpider)
        process.crawl(crawler, topic_id=topic_id, spec=spec, run_id=run_id)
        collector.settle()
        process.start(install_signal_handlers=True)
        spider = crawler.spider
        assert isinstance(spider, TopicSpider)
        stats = {key: _jsonable(value) for key, value in crawler.stats.get_stats().items()}
        result = summarise(spider, stats)
        repository.finish_run(
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
        engine.dispose()


def summarise(spider: TopicSpider, stats: dict[str, Any]) -> RunResult:
    """The run's status and counters, from the spider's failures and Scrapy's stats."""

    def stat(key: str) -> int:
        return int(stats.get(f"topicwatch/{key}", 0))

    # Most counters are the pipeline's own stats; these two are not.
    counts = {key: stat(key) for key in repository.COUNTERS}
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
