"""One crawl run of one topic, in this process: the body of a crawl child.

Scrapy's reactor cannot be started twice in one process, so every run gets a process of its
own (``python -m crawler``); the scheduler starts and supervises it.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from typing import Any

from scrapy.crawler import AsyncCrawlerProcess

from crawler.run_in_progress import RunInProgress
from crawler.settings import scrapy_settings
from crawler.spiders.topic import TopicSpider
from storage.runs import COUNTERS, finish_run

logger = logging.getLogger(__name__)

# Collect the youngest objects every 50,000 allocations rather than Python's 700.
GC_THRESHOLDS = (50_000, 20, 100)


@dataclass
class RunResult:
    status: str
    counts: dict[str, int]
    failures: list[dict[str, str]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


def crawl_topic(database_url: str, topic: str, run_id: int, **setting_overrides: Any) -> RunResult:
    """Crawl ``topic`` once, record everything, and finish crawl run ``run_id``."""
    run = RunInProgress(database_url, topic, run_id)
    try:
        settings = scrapy_settings(run.spec, **setting_overrides)
        # The process's own logging (crawler.observability) stays in charge of the output.
        settings["LOG_INSTALL_ROOT_HANDLER"] = False
        if not logger.isEnabledFor(logging.DEBUG):
            for handler in logging.getLogger().handlers:
                handler.addFilter(_quiet_scrapy)
        process = AsyncCrawlerProcess(settings)
        crawler = process.create_crawler(TopicSpider)
        process.crawl(crawler, run=run)
        settle_garbage_collector()
        process.start(install_signal_handlers=True)
        stats = {key: _jsonable(value) for key, value in crawler.stats.get_stats().items()}
        result = summarise(run, stats)
        finish_run(
            run.sessions,
            run_id,
            status=result.status,
            counts=result.counts,
            errors=result.failures,
            stats=result.stats,
            message=result.message,
        )
        return result
    finally:
        run.close()


def settle_garbage_collector() -> None:
    """Call once start-up is over. A crawl allocates many short-lived objects for every
    response, and with Python's default thresholds the collector runs every 700 allocations,
    each time walking again the objects Scrapy, Twisted, lxml and SQLAlchemy set up at
    start-up and keep for the whole run. Those are moved out of its sight (``gc.freeze``),
    and collections come less often; reference counting still frees nearly everything at
    once, and a run is a short-lived process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def summarise(run: RunInProgress, stats: dict[str, Any]) -> RunResult:
    """The run's status and counters, from its failures and counters and Scrapy's stats."""
    counts = {key: run.counts[key] for key in COUNTERS}
    counts["pages_fetched"] = int(stats.get("downloader/response_count", 0))
    counts["errors"] = len(run.failures)
    listing_pages = run.counts["listing_pages"]
    message = None
    if run.listing_refused and listing_pages == 0:
        status = "refused"
        message = "; ".join(f"{f['url']}: {f['reason']}" for f in run.listing_failures)
    elif listing_pages == 0 and run.listing_failures:
        status = "failed"
        message = "; ".join(f"{f['url']}: {f['reason']}" for f in run.listing_failures)
    elif run.failures:
        status = "partial"
    else:
        status = "ok"
    finish = stats.get("finish_reason")
    if finish not in (None, "finished") and status == "ok":
        status = "partial"
        message = f"crawl ended early: {finish}"
    return RunResult(
        status=status, counts=counts, failures=run.failures, stats=stats, message=message
    )


def _quiet_scrapy(record: logging.LogRecord) -> bool:
    """Scrapy's start-up and statistics chatter stays out of the log below DEBUG level."""
    return record.levelno >= logging.WARNING or not record.name.startswith("scrapy")


def _jsonable(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
