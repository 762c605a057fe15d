"""One crawl run of one topic, in this process.

Two ways to run it, with the same settings, spider and result:

- :func:`crawl_topic` runs one crawl and returns: it starts Scrapy's reactor itself, which
  cannot be started twice in one process (``python -m crawler``, the benchmarks);
- :func:`crawl_in_reactor` runs one crawl inside a reactor that is already running, through
  Scrapy's :class:`~scrapy.crawler.AsyncCrawlerRunner`, so that a warm crawl process
  (:mod:`crawler.worker`) runs crawl after crawl without starting again.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
from dataclasses import dataclass, field
from typing import Any

from scrapy.crawler import AsyncCrawlerProcess, AsyncCrawlerRunner, Crawler
from scrapy.utils.misc import build_from_crawler, load_object

from crawler.addresses import forget_lookups
from crawler.run_in_progress import RunInProgress
from crawler.settings import scrapy_settings
from crawler.spiders.topic import TopicSpider
from storage.health import EMPTY_BODY_STAT
from storage.runs import COUNTERS, finish_run

logger = logging.getLogger(__name__)

# Collect the youngest objects every 50,000 allocations rather than Python's 700.
GC_THRESHOLDS = (50_000, 20, 100)
CPU_STAT = "topicwatch/cpu_seconds"


@dataclass
class RunResult:
    status: str
    counts: dict[str, int]
    failures: list[dict[str, str]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


def crawl_topic(database_url: str, topic: str, run_id: int, **setting_overrides: Any) -> RunResult:
    """Crawl ``topic`` once, record everything, and finish crawl run ``run_id``; starts and
    stops Scrapy's reactor, so once per process."""
    run = RunInProgress(database_url, topic, run_id)
    try:
        process = AsyncCrawlerProcess(_settings(run, setting_overrides))
        crawler = process.create_crawler(TopicSpider)
        process.crawl(crawler, run=run)
        settle_garbage_collector()
        process.start(install_signal_handlers=True)
        return _finish(run, crawler, _cpu_seconds())
    finally:
        run.close()


async def crawl_in_reactor(
    database_url: str,
    topic: str,
    run_id: int,
    *,
    stop: asyncio.Event | None = None,
    **setting_overrides: Any,
) -> RunResult:
    """Crawl ``topic`` once in the reactor already running in this process (Twisted's
    asyncio reactor), record everything, and finish crawl run ``run_id``.

    ``stop`` set while the crawl runs stops it the way a SIGTERM stops :func:`crawl_topic`:
    requests under way end, what was read is recorded, the run is finished as ``partial``
    ("crawl ended early: shutdown").

    Nothing of the run stays behind in the process: the crawler, its settings and signal
    connections are the run's own, the DNS cache and the address guard's refusals are
    forgotten before it starts, and its database connections are closed when it ends.
    """
    from twisted.internet import reactor

    began = _cpu_seconds()
    forget_lookups()
    run = RunInProgress(database_url, topic, run_id)
    try:
        settings = _settings(run, setting_overrides)
        runner = AsyncCrawlerRunner(settings)
        crawler = runner.create_crawler(TopicSpider)
        # AsyncCrawlerProcess installs the resolver when it starts the reactor; a reactor
        # that keeps running gets the resolver of each run, with the run's address policy.
        resolver_class = load_object(settings["TWISTED_DNS_RESOLVER"])
        build_from_crawler(resolver_class, crawler, reactor=reactor).install_on_reactor()
        crawl = runner.crawl(crawler, run=run)
        if stop is not None:
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({crawl, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not crawl.done():
                await crawler.stop_async()
        await crawl
        return _finish(run, crawler, _cpu_seconds() - began)
    finally:
        run.close()


def _settings(run: RunInProgress, overrides: dict[str, Any]) -> dict[str, Any]:
    settings = scrapy_settings(run.spec, **overrides)
    # The process's own logging (crawler.observability) stays in charge of the output.
    settings["LOG_INSTALL_ROOT_HANDLER"] = False
    if not logger.isEnabledFor(logging.DEBUG):
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_scrapy)
    return settings


def _finish(run: RunInProgress, crawler: Crawler, cpu: float) -> RunResult:
    """The run's result from its counters and the crawler's stats, recorded as the run's end;
    ``cpu`` is the crawl's CPU time in this process (start-up included in a one-off crawl),
    kept as the ``topicwatch/cpu_seconds`` stat."""
    assert crawler.stats is not None
    crawler.stats.set_value(CPU_STAT, round(cpu, 4))
    stats = {key: _jsonable(value) for key, value in crawler.stats.get_stats().items()}
    result = summarise(run, stats)
    finish_run(
        run.sessions,
        run.run_id,
        status=result.status,
        counts=result.counts,
        errors=result.failures,
        stats=result.stats,
        message=result.message,
    )
    return result


def settle_garbage_collector() -> None:
    """Call once start-up is over. A crawl allocates many short-lived objects for every
    response, and with Python's default thresholds the collector runs every 700 allocations,
    each time walking again the objects Scrapy, Twisted, lxml and SQLAlchemy set up at
    start-up and keep for the whole run. Those are moved out of its sight (``gc.freeze``),
    and collections come less often; reference counting still frees nearly everything at
    once, and a run is a short-lived process. No collection comes first: start-up leaves
    next to no garbage in cycles, and walking every object to find none costs a run about
    40 ms of CPU."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def summarise(run: RunInProgress, stats: dict[str, Any]) -> RunResult:
    """The run's status and counters, from its failures and counters and Scrapy's stats."""
    counts = {key: run.counts[key] for key in COUNTERS}
    counts["pages_fetched"] = int(stats.get("downloader/response_count", 0))
    counts["errors"] = len(run.failures)
    # Article pages without article text, for the topic's health (storage.health).
    stats[EMPTY_BODY_STAT] = run.counts["empty_body"]
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


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _quiet_scrapy(record: logging.LogRecord) -> bool:
    """Scrapy's start-up and statistics chatter stays out of the log below DEBUG level."""
    return record.levelno >= logging.WARNING or not record.name.startswith("scrapy")


def _jsonable(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
