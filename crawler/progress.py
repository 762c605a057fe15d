"""How a crawl run is going, while it goes: a Scrapy extension of every crawl.

On a terminal (``topicwatch crawl`` whose stderr is one: it sets ``TOPICWATCH_PROGRESS``
to ``terminal`` for its crawl process) a live line, redrawn twice a second, says the pages
fetched, the articles read, the new and updated ones so far and the time elapsed; log lines
are written above it. It is drawn with tqdm, which takes care of terminals that are narrow,
not ANSI-capable or resized, and of clearing the line at the end.

Elsewhere (the daemon's runs, ``crawl`` on a pipe) a run that lasts longer than
``[crawl] progress_every`` (30 s by default; 0 turns it off) logs one line that often::

    2026-11-26T10:15:32Z INFO topicwatch.progress topic=konflik run=412 pages=120 \
        articles=96 new=4 updated=1 elapsed=30.0s
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from scrapy import signals
from scrapy.utils.asyncio import create_looping_call

from crawler.observability import (
    PROGRESS_ENV,
    PROGRESS_TERMINAL,
    Seconds,
    log_fields,
    log_handlers,
)

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.spiders import Spider
    from tqdm import tqdm

    from crawler.run_in_progress import RunInProgress

# How often the terminal line is redrawn.
REDRAW_EVERY = 0.5
progress_logger = logging.getLogger("topicwatch.progress")


class _AboveTheLine:
    """A stream for the log handler while the live line is drawn: each log line is written
    above it (``tqdm.write``), so the two never mix."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        from tqdm import tqdm

        tqdm.write(text, file=self.stream, end="")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class CrawlProgress:
    """The Scrapy extension: a live line on a terminal, else a log line every
    ``progress_every`` seconds (see the module docstring)."""

    def __init__(self, crawler: Crawler, *, terminal: bool) -> None:
        self.crawler = crawler
        self.terminal = terminal
        self.began = time.monotonic()
        self.run: RunInProgress | None = None
        self.bar: tqdm[Any] | None = None
        self.task: Any = None
        self.streams: list[tuple[logging.StreamHandler[Any], IO[str]]] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlProgress:
        terminal = os.environ.get(PROGRESS_ENV) == PROGRESS_TERMINAL and sys.stderr.isatty()
        extension = cls(crawler, terminal=terminal)
        crawler.signals.connect(extension.opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.closed, signal=signals.spider_closed)
        return extension

    def opened(self, spider: Spider) -> None:
        run: RunInProgress | None = getattr(spider, "run", None)
        if run is None:
            return
        self.run = run
        self.began = time.monotonic()
        if self.terminal:
            self.start_line()
            interval = REDRAW_EVERY
        else:
            interval = run.spec.crawl.progress_every
            if interval <= 0:
                return
        self.task = create_looping_call(self.report)
        self.task.start(interval, now=False)

    def closed(self, spider: Spider, reason: str) -> None:
        if self.task is not None and self.task.running:
            self.task.stop()
        self.task = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            for handler, stream in self.streams:
                handler.setStream(stream)
            self.streams = []

    def counts(self) -> dict[str, int]:
        """What the run has done so far, as the summary line names it."""
        assert self.run is not None
        counts = self.run.counts
        stats = self.crawler.stats
        pages = stats.get_value("downloader/response_count", 0) if stats is not None else 0
        return {
            "pages": int(pages or 0),
            "articles": counts["articles_seen"],
            "new": counts["articles_new"],
            "updated": counts["articles_updated"],
        }

    def report(self) -> None:
        if self.run is None:
            return
        counts = self.counts()
        elapsed = time.monotonic() - self.began
        if self.bar is not None:
            self.bar.set_description_str(describe(self.run.spec.name, counts), refresh=False)
            self.bar.refresh()
            return
        log_fields(
            progress_logger,
            logging.INFO,
            None,
            topic=self.run.spec.name,
            run=self.run.run_id,
            **counts,
            elapsed=Seconds(elapsed),
        )

    def start_line(self) -> None:
        from tqdm import tqdm

        assert self.run is not None
        self.bar = tqdm(
            total=None,
            file=sys.stderr,
            bar_format="{desc}  {elapsed}",
            desc=describe(self.run.spec.name, dict.fromkeys(("pages", "articles"), 0)),
            dynamic_ncols=True,
            leave=False,
            mininterval=REDRAW_EVERY,
        )
        for handler in log_handlers():
            if handler.stream in (sys.stderr, sys.__stderr__):
                self.streams.append((handler, handler.stream))
                handler.setStream(_AboveTheLine(handler.stream))


def describe(topic: str, counts: dict[str, int]) -> str:
    """``konflik: 12 pages fetched, 40 articles read, 3 new, 1 updated``."""
    return (
        f"{topic}: {counts.get('pages', 0)} pages fetched, {counts.get('articles', 0)} "
        f"articles read, {counts.get('new', 0)} new, {counts.get('updated', 0)} updated"
    )
