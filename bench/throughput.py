"""Crawl throughput: topicwatch's full pipeline beside a bare Scrapy fetch of the same pages.

    .venv/bin/python bench/throughput.py [--articles 2000] [--per-page 20] [--repeat 3]
                                         [--db sqlite,postgresql] [--concurrency 16]
                                         [--profile DIR] [--json FILE]

A local site on 127.0.0.1 (the fixture site of the tests, ``FixtureSite.generate``: pages
shaped like the reference site, article bodies of 500–900 words, behind four topic listings
of ``--per-page`` links a page) is rendered once and served from memory by a small keep-alive
HTTP server in a process of its own, with the fixture site's ``ETag`` / ``Last-Modified`` / 304
behaviour. Then, in each repetition, every crawl in a child process of its own:

- ``bare``: a Scrapy spider that requests every page the pipeline reads (listing pages,
  article pages, the ``?page=all`` view of multi-page articles) and does nothing with them,
  with topicwatch's own Scrapy settings, and with Scrapy's defaults;
- ``full``: ``crawler.run.crawl_topic`` on a fresh database (SQLite, PostgreSQL): listings,
  discovery, extraction, fingerprint, database writes, the run's row;
- ``recheck``: the same topic crawled again on the unchanged site: right after the first
  crawl (the site's articles were published one every 17 minutes, the newest minutes before
  the benchmark started, so the age table has few of them re-checked); with every article
  made under an hour old (all of them due); and in the steady state of a watched topic
  (first seen two hours ago, checked minutes ago). Beside them, the bare spider sending the
  same conditional requests as the pass with every article due (``If-None-Match`` /
  ``If-Modified-Since`` from the database): the listings' first pages, every article and the
  view of the whole of each multi-page one.

Politeness limits are lifted for this local host only, through the benchmark topic's own
crawl settings (no delay, no AutoThrottle, ``--concurrency`` requests per domain); the
product's defaults are untouched. Rates are pages (responses) per second of crawl time
(Scrapy's ``elapsed_time_seconds``, spider opened to spider closed); CPU is that of the crawl
process, start-up included; the figures are medians over the repetitions.
``--profile DIR`` records the first crawl and the re-check of every article of the first
repetition with py-spy (when installed in the virtualenv) and prints where their time goes.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

TOPIC = "bench"
USER_AGENT = "topicwatch-bench/1.0 (+http://127.0.0.1/bench)"
POSTGRES_SERVER = os.environ.get(
    "TOPICWATCH_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432"
)
CHILD_TIMEOUT = 600.0


# -- the site: rendered once, served from memory ---------------------------------------------


@dataclass
class Page:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Manifest:
    """What the served site holds: its base URL, the listings and every page a crawl reads."""

    base_url: str
    sources: list[str]
    max_pages: int
    listing_urls: list[str]
    article_urls: list[str]
    whole_urls: list[str]
    article_bytes: int

    def pages(self) -> list[str]:
        return [*self.listing_urls, *self.article_urls, *self.whole_urls]


def render_site(n_articles: int, per_page: int) -> tuple[dict[str, Page], Manifest]:
    """Generate the fixture site, fetch each of its pages once, and keep them in memory."""
    from fixture_site import FixtureSite

    # A live site: the newest article published minutes ago, one every 17 minutes before it.
    newest = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=NEWEST_AGE)
    site = FixtureSite.generate(n_articles, per_page=per_page, newest=newest)
    try:
        base = site.base_url
        listing_paths = [
            site.listing_path(topic, page)
            for topic in site.topics
            for page in range(1, site.page_count(topic) + 1)
        ]
        article_paths: list[str] = []
        whole_paths: list[str] = []
        for article in site.articles:
            article_paths.append(article.path)
            if article.pages > 1:
                whole_paths.append(f"{article.path}?page=all")
        pages: dict[str, Page] = {}
        for target in ["/robots.txt", *listing_paths, *article_paths, *whole_paths]:
            pages[target] = _fetch(base + target)
        manifest = Manifest(
            base_url=base,
            sources=[site.listing_url(topic) for topic in site.topics],
            max_pages=max(site.page_count(topic) for topic in site.topics),
            listing_urls=[base + p for p in listing_paths],
            article_urls=[base + p for p in article_paths],
            whole_urls=[base + p for p in whole_paths],
            article_bytes=sum(len(pages[p].body) for p in article_paths),
        )
    finally:
        site.close()
    return pages, manifest


def _fetch(url: str) -> Page:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            headers = {k: v for k, v in response.headers.items() if k.lower() != "date"}
            return Page(response.status, headers, response.read())
    except urllib.error.HTTPError as error:
        return Page(error.code, dict(error.headers.items()), error.read())


def _not_modified(page: Page, request_headers: dict[str, str]) -> bool:
    """RFC 9110 as the fixture site applies it: If-None-Match when sent, else the date."""
    import email.utils

    etag = page.headers.get("ETag")
    if_none_match = request_headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return etag is not None and ("*" in tags or etag in tags)
    since_text = request_headers.get("if-modified-since")
    last_modified = page.headers.get("Last-Modified")
    if since_text and last_modified:
        try:
            since = email.utils.parsedate_to_datetime(since_text)
            modified = email.utils.parsedate_to_datetime(last_modified)
        except (TypeError, ValueError):
            return False
        return modified <= since
    return False


class _SiteProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive over the pages in memory: GET and HEAD, nothing else."""

    def __init__(self, pages: dict[str, Page], counts: Counter[int]) -> None:
        self.pages = pages
        self.counts = counts
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer and self.transport is not None:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = [*lines[0].split(" ", 2), "", ""][:3]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            keep_alive = version == "HTTP/1.1" and headers.get("connection", "") != "close"
            self.transport.write(self.answer(method, target, headers, keep_alive))
            if not keep_alive:
                self.transport.close()
                return

    def answer(self, method: str, target: str, headers: dict[str, str], keep_alive: bool) -> bytes:
        page = self.pages.get(target)
        if page is None:
            page = Page(404, {"Content-Type": "text/html; charset=UTF-8"}, b"<h1>404</h1>")
        status, body, extra = page.status, page.body, dict(page.headers)
        if status == 200 and _not_modified(page, headers):
            status, body = 304, b""
            extra.pop("Content-Type", None)
        self.counts[status] += 1
        extra["Content-Length"] = str(len(body))
        extra["Connection"] = "keep-alive" if keep_alive else "close"
        reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}.get(status, "Status")
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in extra.items()
        )
        return head.encode("latin-1") + b"\r\n" + (b"" if method == "HEAD" else body)


def serve(n_articles: int, per_page: int, manifest_path: Path) -> int:
    """The site process: render, write the manifest, print the base URL, serve until SIGTERM."""
    pages, manifest = render_site(n_articles, per_page)
    port = int(manifest.base_url.rsplit(":", 1)[1])
    counts: Counter[int] = Counter()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        server = await loop.create_server(
            lambda: _SiteProtocol(pages, counts), "127.0.0.1", port, reuse_address=True
        )
        manifest_path.write_text(json.dumps(manifest.__dict__), encoding="utf-8")
        print(manifest.base_url, flush=True)
        async with server:
            await stop.wait()

    asyncio.run(main())
    print(json.dumps(dict(counts)), file=sys.stderr, flush=True)
    return 0


class SiteProcess:
    """The site, served by ``throughput.py --child serve`` in a process of its own."""

    def __init__(self, n_articles: int, per_page: int, workdir: Path) -> None:
        manifest_path = workdir / "manifest.json"
        self.popen = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                "serve",
                "--articles",
                str(n_articles),
                "--per-page",
                str(per_page),
                "--manifest",
                str(manifest_path),
            ],
            stdout=subprocess.PIPE,
            stderr=(workdir / "site.stderr").open("wb"),
        )
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline().decode().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"The benchmark site did not start; see {workdir / 'site.stderr'}")
        self.manifest = Manifest(**json.loads(manifest_path.read_text(encoding="utf-8")))

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


# -- crawl children ----------------------------------------------------------------------------


def lifted_limits(concurrency: int) -> dict[str, Any]:
    """Scrapy settings that lift politeness limits; used for the local benchmark host only."""
    return {
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
    }


def bare_settings(manifest: Manifest, concurrency: int, *, scrapy_defaults: bool) -> dict[str, Any]:
    """The bare crawl's settings: topicwatch's own Scrapy settings, or Scrapy's defaults;
    politeness limits lifted as for the full crawl either way."""
    if scrapy_defaults:
        return {
            **lifted_limits(concurrency),
            "USER_AGENT": USER_AGENT,
            "LOG_LEVEL": "INFO",
            "LOGSTATS_INTERVAL": 0,
            "TELNETCONSOLE_ENABLED": False,
            "REMOTE_CONTROL_ENABLED": False,
        }
    from crawler.settings import scrapy_settings

    return scrapy_settings(bench_spec(manifest, concurrency), **lifted_limits(concurrency))


def crawl_bare(
    manifest: Manifest,
    concurrency: int,
    *,
    scrapy_defaults: bool,
    validators: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A spider that requests every page and does nothing with the answers; with
    ``validators`` (URL → ``If-None-Match`` / ``If-Modified-Since``), the requests of a
    re-check instead: the first listing pages, and every article with its validators (the
    later pages of multi-page articles too)."""
    import scrapy
    from scrapy.crawler import AsyncCrawlerProcess

    class BareSpider(scrapy.Spider):
        name = "bare"

        async def start(self) -> AsyncIterator[scrapy.Request]:
            if validators is None:
                for url in manifest.pages():
                    yield scrapy.Request(url, callback=self.parse, dont_filter=True)
                return
            for url in manifest.sources:
                yield scrapy.Request(url, callback=self.parse, dont_filter=True)
            articles = set(manifest.article_urls)
            later_pages = [url for url in validators if url not in articles]
            for url in [*manifest.article_urls, *later_pages]:
                yield scrapy.Request(
                    url,
                    headers=validators.get(url, {}),
                    callback=self.parse,
                    meta={"handle_httpstatus_list": [304]},
                    dont_filter=True,
                )

        def parse(self, response: Any) -> None:
            return None

    settings = bare_settings(manifest, concurrency, scrapy_defaults=scrapy_defaults)
    started = own_cpu()
    process = AsyncCrawlerProcess(settings)
    crawler = process.create_crawler(BareSpider)
    process.crawl(crawler)
    process.start()
    return {**_crawl_stats(crawler.stats.get_stats()), "cpu_start_up": started}


def own_cpu() -> float:
    """The CPU seconds this process has used so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def crawl_full(database_url: str, run_id: int, concurrency: int) -> dict[str, Any]:
    """One crawl run of the benchmark topic, exactly as ``python -m crawler`` runs it."""
    from crawler.observability import configure_logging
    from crawler.run import crawl_topic

    configure_logging("text", "INFO")
    start_up = own_cpu()
    started = time.perf_counter()
    result = crawl_topic(database_url, TOPIC, run_id, CONCURRENT_REQUESTS=concurrency)
    wall = time.perf_counter() - started
    stats = _crawl_stats(result.stats)
    stats["cpu_crawl_process"] = own_cpu()
    stats["cpu_start_up"] = start_up
    stats.update(status=result.status, counts=result.counts, run_seconds=wall)
    return stats


def _crawl_stats(stats: dict[str, Any]) -> dict[str, Any]:
    def number(key: str) -> float:
        return float(stats.get(key, 0) or 0)

    return {
        "elapsed": number("elapsed_time_seconds"),
        "responses": int(number("downloader/response_count")),
        "bytes": int(number("downloader/response_bytes")),
        "status_200": int(number("downloader/response_status_count/200")),
        "status_304": int(number("downloader/response_status_count/304")),
        "identical": int(number("topicwatch/identical_bodies")),
        "pages_read": int(number("topicwatch/pages_read")),
        "later_pages_checked": int(number("topicwatch/later_pages_checked")),
        "finish_reason": str(stats.get("finish_reason")),
    }


def run_child(args: list[str], log: Path, *, profile: Path | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", *args]
    if profile is not None:
        command = [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--format",
            "raw",
            "--rate",
            "200",
            "--subprocesses",
            "--output",
            str(profile),
            "--",
            *command,
        ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("ab") as stderr:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=stderr, timeout=CHILD_TIMEOUT, check=False
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"The benchmark child {' '.join(args)} failed (exit {done.returncode}); see {log}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    # CPU of the child, start-up included.
    result["cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


# -- databases ---------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(kind: str, workdir: Path, upgraded: bool = True) -> Iterator[str]:
    """An empty database with topicwatch's schema (none when not ``upgraded``), dropped
    afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from storage.db import upgrade

    if kind == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="db-", dir=workdir))
        url = f"sqlite:///{directory / 'topicwatch.db'}"
        if upgraded:
            upgrade(url)
        try:
            yield url
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    name = f"topicwatch_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = f"{POSTGRES_SERVER}/{name}"
        if upgraded:
            upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bench_spec(manifest: Manifest, concurrency: int) -> Any:
    from storage.spec import CrawlSettings, TopicSpec

    return TopicSpec(
        name=TOPIC,
        title="Benchmark topic",
        sources=tuple(manifest.sources),
        max_pages=manifest.max_pages,
        alert_to=("desk@example.org",),
        profile="tribunnews",
        crawl=CrawlSettings(
            user_agent=USER_AGENT,
            download_delay=0.0,
            autothrottle=False,
            concurrent_per_domain=concurrency,
            # One run reads the whole site: the figure is the pace of a full crawl.
            max_articles_per_run=max(1, len(manifest.article_urls)),
        ),
    )


@dataclass
class Rows:
    versions: int
    changes: int
    alerts: int
    articles: int

    def minus(self, other: Rows) -> Rows:
        return Rows(
            self.versions - other.versions,
            self.changes - other.changes,
            self.alerts - other.alerts,
            self.articles - other.articles,
        )


def count_rows(url: str) -> Rows:
    from sqlalchemy import func, select

    from storage.db import make_engine, session_factory
    from storage.models import Alert, Article, ArticleVersion, Change

    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:

            def n(model: Any) -> int:
                return int(session.scalar(select(func.count()).select_from(model)) or 0)

            return Rows(n(ArticleVersion), n(Change), n(Alert), n(Article))
    finally:
        engine.dispose()


def stored_validators(url: str) -> dict[str, dict[str, str]]:
    """The conditional-request headers a re-check sends for each stored article, and for each
    later page of a multi-page article."""
    from sqlalchemy import select, union_all

    from storage.db import make_engine, session_factory
    from storage.models import Article, ArticlePage

    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            rows = session.execute(
                union_all(
                    select(Article.url, Article.etag, Article.last_modified),
                    select(ArticlePage.url, ArticlePage.etag, ArticlePage.last_modified),
                )
            )
            return {
                article_url: {
                    key: value
                    for key, value in (("If-None-Match", etag), ("If-Modified-Since", modified))
                    if value
                }
                for article_url, etag, modified in rows
            }
    finally:
        engine.dispose()


def new_run(url: str, spec: Any | None = None) -> int:
    from storage.db import make_engine, session_factory
    from storage.runs import start_run
    from storage.topics import load_topic, sync_topics

    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        if spec is not None:
            sync_topics(sessions, [spec])
        topic_id, _ = load_topic(sessions, TOPIC)
        return start_run(sessions, topic_id)
    finally:
        engine.dispose()


def backdate(url: str, hours: float) -> None:
    """Move every article's first sighting ``hours`` back, as if the first crawl had run that
    long ago, and count its age from then (or from earlier, where it already did); when they
    were last checked stays as it is."""
    from sqlalchemy import select, update

    from storage.db import make_engine, session_factory
    from storage.models import Article

    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as session:
            rows = session.execute(select(Article.id, Article.first_seen, Article.age_from)).all()
            moved = []
            for i, seen, age_from in rows:
                earlier = seen - timedelta(hours=hours)
                moved.append({"id": i, "first_seen": earlier, "age_from": min(earlier, age_from)})
            session.execute(update(Article), moved)
    finally:
        engine.dispose()


def make_young(url: str, minutes: float) -> None:
    """Count every article's age from ``minutes`` ago, as if each had been published then:
    the age table then has every one re-checked on every run."""
    from sqlalchemy import update

    from storage.db import make_engine, session_factory
    from storage.models import Article

    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as session:
            session.execute(
                update(Article).values(age_from=datetime.now(UTC) - timedelta(minutes=minutes))
            )
    finally:
        engine.dispose()


def forget(url: str, count: int) -> None:
    """Forget the validators and body hash of the ``count`` articles checked last (those the
    listings' first pages show), so that a re-check fetches and reads them again, as it
    would pages the site edited."""
    from sqlalchemy import select, update

    from storage.db import make_engine, session_factory
    from storage.models import Article

    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as session:
            ids = session.scalars(
                select(Article.id).order_by(Article.last_checked.desc()).limit(count)
            ).all()
            session.execute(
                update(Article),
                [{"id": i, "etag": None, "last_modified": None, "raw_sha256": None} for i in ids],
            )
    finally:
        engine.dispose()


# -- the benchmark -------------------------------------------------------------------------------

STEADY_READS = 10
NEWEST_AGE = 5  # minutes since the site's newest article was published
RECHECKS = {
    "after": f"re-check right after it (one article every 17 min, newest {NEWEST_AGE} min ago)",
    "all": "re-check, every article due (all made < 1 h old)",
    "steady": "re-check, steady state (first seen 2 h ago, checked < 1 h ago)",
    "steady-read": f"the same, with {STEADY_READS} of those pages to read again",
}


@dataclass
class Results:
    bare: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # database -> first crawls
    full: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # (database, a key of RECHECKS) -> (first crawl, re-check, rows the re-check wrote)
    recheck: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any], Rows]]] = field(
        default_factory=dict
    )
    first_rows: dict[str, list[Rows]] = field(default_factory=dict)
    # database -> bare Scrapy sending the conditional requests of a re-check
    bare_recheck: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def rate(result: dict[str, Any]) -> float:
    return float(result["responses"] / result["elapsed"]) if result["elapsed"] else 0.0


def cpu_per_page(result: dict[str, Any]) -> float:
    """The crawl process's CPU milliseconds per response, start-up included."""
    return float(1000 * result["cpu"] / result["responses"]) if result["responses"] else 0.0


def crawl_cpu_per_page(result: dict[str, Any]) -> float:
    """The same without the interpreter's start-up and imports (what a warm crawl process,
    which has them behind it, spends on a run): from the call that builds the crawl on."""
    if not result["responses"]:
        return 0.0
    return float(1000 * (result["cpu"] - result["cpu_start_up"]) / result["responses"])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_benchmark(args: argparse.Namespace, workdir: Path) -> Results:
    results = Results()
    log = workdir / "children.log"
    site = SiteProcess(args.articles, args.per_page, workdir)
    manifest = site.manifest
    manifest_file = str(workdir / "manifest.json")
    spec = bench_spec(manifest, args.concurrency)
    concurrency = ["--concurrency", str(args.concurrency)]
    print(
        f"site: {len(manifest.article_urls)} articles "
        f"(+{len(manifest.whole_urls)} whole-article views), "
        f"{len(manifest.listing_urls)} listing pages, "
        f"{manifest.article_bytes / len(manifest.article_urls) / 1024:.1f} KiB per article page; "
        f"served at {manifest.base_url}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    try:
        for rep in range(1, args.repeat + 1):
            line = [f"rep {rep}:"]
            for mode in ("bare", "bare-defaults"):
                bare = run_child([mode, "--manifest", manifest_file, *concurrency], log)
                results.bare.setdefault(mode, []).append(bare)
                line.append(f"{mode} {rate(bare):.0f} p/s")
            for kind in args.db:
                with fresh_database(kind, workdir) as url:
                    full_args = ["full", "--database-url", url, *concurrency]
                    profile = None
                    if args.profile is not None and rep == 1 and kind == args.db[0]:
                        profile = args.profile / f"full-{kind}.txt"
                    full = run_child(
                        [*full_args, "--run-id", str(new_run(url, spec))], log, profile=profile
                    )
                    results.full.setdefault(kind, []).append(full)
                    line.append(f"{kind} {rate(full):.0f} p/s ({full['status']})")
                    rows = count_rows(url)
                    results.first_rows.setdefault(kind, []).append(rows)
                    validators_file = workdir / "validators.json"
                    validators_file.write_text(json.dumps(stored_validators(url)))
                    bare_again = run_child(
                        [
                            "bare-recheck",
                            "--manifest",
                            manifest_file,
                            "--validators",
                            str(validators_file),
                            *concurrency,
                        ],
                        log,
                    )
                    results.bare_recheck.setdefault(kind, []).append(bare_again)
                    for scenario in RECHECKS:
                        if scenario == "all":
                            make_young(url, minutes=30)
                        elif scenario == "steady":
                            backdate(url, hours=2)
                        elif scenario == "steady-read":
                            forget(url, STEADY_READS)
                        profiled = args.profile is not None and rep == 1 and kind == args.db[0]
                        profile = None
                        if profiled and scenario == "all":
                            profile = args.profile / f"recheck-all-{kind}.txt"
                        again = run_child(
                            [*full_args, "--run-id", str(new_run(url))], log, profile=profile
                        )
                        after = count_rows(url)
                        results.recheck.setdefault((kind, scenario), []).append(
                            (full, again, after.minus(rows))
                        )
                        rows = after
                        line.append(f"{scenario} {again['elapsed']:.2f} s")
            print(" ".join(line), flush=True)
    finally:
        site.stop()
    return results


def print_table(results: Results, args: argparse.Namespace) -> None:
    cores = os.cpu_count()
    print()
    print(
        f"Throughput: {args.articles} articles, {args.concurrency} concurrent requests, "
        f"{cores} cores (nproc), load average {os.getloadavg()[0]:.1f}; "
        f"medians of {args.repeat} repetition(s)"
    )
    header = (
        f"{'crawl':<46}{'pages':>7}{'seconds':>9}{'pages/s':>9}{'CPU ms/page':>13}"
        f"{'full/bare':>11}{'range':>13}{'CPU/bare':>10}{'range':>13}"
        f"{'warm ms/page':>14}{'warm/bare':>11}{'range':>13}"
    )
    print(header)
    print("-" * len(header))
    bare_runs = results.bare["bare"]
    names = {
        "bare": "bare Scrapy, topicwatch's Scrapy settings",
        "bare-defaults": "bare Scrapy, Scrapy's default settings",
    }

    def row(name: str, runs: list[dict[str, Any]], ratio: bool) -> None:
        pages = median([r["responses"] for r in runs])
        cpu = median([cpu_per_page(r) for r in runs])
        speed = median([rate(r) for r in runs])
        shown = ""
        warm = median([crawl_cpu_per_page(r) for r in runs])
        warm_shown = ""
        if ratio:
            # Each repetition against the bare crawl of the same repetition, minutes apart:
            # the machine's speed drifts less within a repetition than across them.
            pairs = list(zip(runs, bare_runs, strict=True))
            speeds = [rate(r) / rate(b) for r, b in pairs]
            cpus = [cpu_per_page(r) / cpu_per_page(b) for r, b in pairs]
            shown = (
                f"{median(speeds):>11.2f}{f'{min(speeds):.2f}-{max(speeds):.2f}':>13}"
                f"{median(cpus):>10.2f}{f'{min(cpus):.2f}-{max(cpus):.2f}':>13}"
            )
            warms = [crawl_cpu_per_page(r) / crawl_cpu_per_page(b) for r, b in pairs]
            warm_shown = f"{median(warms):>11.2f}{f'{min(warms):.2f}-{max(warms):.2f}':>13}"
        else:
            shown = " " * 47
        print(
            f"{name:<46}{pages:>7.0f}{median([r['elapsed'] for r in runs]):>9.2f}"
            f"{speed:>9.1f}{cpu:>13.2f}{shown}{warm:>14.2f}{warm_shown}"
        )

    for mode, runs in results.bare.items():
        row(names[mode], runs, ratio=mode == "bare")
    for kind, runs in results.full.items():
        row(f"full pipeline, {kind}", runs, ratio=True)
    print(
        "CPU ms/page: the crawl process, start-up included; full/bare: pages/s against the "
        "first bare row's in the same repetition, CPU/bare: CPU ms/page against it; warm "
        "ms/page: CPU ms/page without the interpreter's start-up and imports (as a warm crawl "
        "process spends it), warm/bare: against the bare row's; the median and range over "
        "the repetitions."
    )
    print()
    print("Re-checks of the unchanged site, against the first crawl of the same database")
    header = (
        f"{'pass':<80}{'seconds':>8}{'speed-up':>9}{'requests':>9}{'304s':>6}"
        f"{'bytes/1st':>10}{'read':>6}{'CPU s':>7}"
        f"{'new versions':>13}{'new changes':>12}{'new alerts':>11}"
    )
    print(header)
    print("-" * len(header))
    for (kind, scenario), runs in results.recheck.items():
        firsts = [first for first, _, _ in runs]
        again = [second for _, second, _ in runs]
        written = [rows for _, _, rows in runs]
        pairs = list(zip(firsts, again, strict=True))
        speedup = median([f["elapsed"] / r["elapsed"] for f, r in pairs])
        byte_ratio = median([r["bytes"] / f["bytes"] for f, r in pairs])
        print(
            f"{kind + ', ' + RECHECKS[scenario]:<80}"
            f"{median([r['elapsed'] for r in again]):>8.2f}"
            f"{speedup:>8.1f}x"
            f"{median([r['responses'] for r in again]):>9.0f}"
            f"{median([r['status_304'] for r in again]):>6.0f}"
            f"{byte_ratio:>10.3f}"
            f"{median([r['pages_read'] for r in again]):>6.0f}"
            f"{median([r['cpu_crawl_process'] for r in again]):>7.2f}"
            f"{max(w.versions for w in written):>13}{max(w.changes for w in written):>12}"
            f"{max(w.alerts for w in written):>11}"
        )
    for kind, runs in results.bare_recheck.items():
        every = [second for _, second, _ in results.recheck.get((kind, "all"), [])]
        bare_seconds = median([r["elapsed"] for r in runs])
        # Each repetition's re-check of every article against its own bare crawl.
        cpu_ratios = [e["cpu"] / b["cpu"] for e, b in zip(every, runs, strict=True)]
        print(
            f"{kind}: bare Scrapy sending the same conditional requests "
            f"({median([r['responses'] for r in runs]):.0f} requests, "
            f"{median([r['status_304'] for r in runs]):.0f} answered 304) takes "
            f"{bare_seconds:.2f} s and {median([r['cpu'] for r in runs]):.2f} s of CPU; "
            f"the re-check of every article takes "
            f"{median([r['elapsed'] for r in every]) / bare_seconds:.2f}x as long and "
            f"{median(cpu_ratios):.2f}x the CPU ({min(cpu_ratios):.2f}-{max(cpu_ratios):.2f})"
        )
    for kind, rows in results.first_rows.items():
        print(
            f"first crawl, {kind}: {median([r.articles for r in rows]):.0f} articles, "
            f"{median([r.versions for r in rows]):.0f} versions, "
            f"{median([r.changes for r in rows]):.0f} changes, "
            f"{median([r.alerts for r in rows]):.0f} alerts"
        )


def results_json(results: Results) -> dict[str, Any]:
    return {
        "bare": results.bare,
        "full": results.full,
        "recheck": {
            f"{kind}/{scenario}": [
                {"first": first, "recheck": again, "rows_written": rows.__dict__}
                for first, again, rows in runs
            ]
            for (kind, scenario), runs in results.recheck.items()
        },
        "bare_recheck": results.bare_recheck,
        "first_rows": {
            kind: [r.__dict__ for r in rows] for kind, rows in results.first_rows.items()
        },
    }


# -- profile summary -------------------------------------------------------------------------


PROFILE_GROUPS = (
    ("extraction (crawler/extraction/)", ("crawler/extraction/", "trafilatura")),
    ("fingerprint", ("crawler/fingerprint.py",)),
    ("discovery", ("crawler/discover.py",)),
    ("database writes and reads", ("storage/", "sqlalchemy", "psycopg", "sqlite3")),
    ("spider, other", ("crawler/spiders/topic.py",)),
    ("Scrapy and Twisted (download, scheduling)", ("scrapy", "twisted")),
)


IDLE_MARKERS = (
    "select (",
    "poll (",
    "Condition.wait",
    "_worker (concurrent/futures/thread",
    "_worker (thread.py",
)


def summarise_profile(path: Path) -> None:
    """Where the time of a crawl child went, from py-spy's collapsed stacks."""
    totals: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        group = "idle or start-up"
        for name, markers in PROFILE_GROUPS:
            if any(marker in frame for frame in frames for marker in markers):
                group = name
                break
        if any(marker in frames[-1] for marker in IDLE_MARKERS):
            group = "waiting (event loop, idle threads)"
        totals[group] += count
        leaves[frames[-1].split(" (")[0] + " (" + frames[-1].rsplit("/", 1)[-1]] += count
    if not samples:
        print(f"no samples in {path}")
        return
    print()
    print(f"Where the time goes: {path.name} (py-spy, {samples} samples)")
    for group, count in totals.most_common():
        print(f"  {100 * count / samples:5.1f}%  {group}")
    print("  busiest functions (self time):")
    for name, count in leaves.most_common(12):
        print(f"  {100 * count / samples:5.1f}%    {name}")


# -- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-page", type=int, default=20, help="links per listing page")
    parser.add_argument(
        "--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", type=Path, help="directory for py-spy profiles")
    parser.add_argument("--workdir", type=Path, help="keep logs and databases here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--validators", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "serve":
        return serve(args.articles, args.per_page, args.manifest)
    if args.child in ("bare", "bare-defaults", "bare-recheck"):
        manifest = Manifest(**json.loads(args.manifest.read_text(encoding="utf-8")))
        validators = None
        if args.validators is not None:
            validators = json.loads(args.validators.read_text(encoding="utf-8"))
        result = crawl_bare(
            manifest,
            args.concurrency,
            scrapy_defaults=args.child == "bare-defaults",
            validators=validators,
        )
        print(json.dumps(result), flush=True)
        return 0
    if args.child == "full":
        result = crawl_full(args.database_url, args.run_id, args.concurrency)
        print(json.dumps(result), flush=True)
        return 0

    args.db = [kind.strip() for kind in args.db.split(",") if kind.strip()]
    unknown = set(args.db) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown database kind(s): {', '.join(sorted(unknown))}")
    if args.profile is not None:
        if not Path(sys.executable).with_name("py-spy").exists():
            parser.error("--profile needs py-spy in the virtualenv (pip install py-spy)")
        args.profile.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        results = run_benchmark(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="topicwatch-bench-") as tmp:
            results = run_benchmark(args, Path(tmp))
    print_table(results, args)
    if args.json is not None:
        args.json.write_text(json.dumps(results_json(results), indent=1), encoding="utf-8")
    if args.profile is not None:
        for path in sorted([*args.profile.glob("full-*.txt"), *args.profile.glob("recheck-*.txt")]):
            summarise_profile(path)
    print(f"\nbenchmark time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
