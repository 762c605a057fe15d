"""Bad input during a crawl: each failure is recorded with its URL and reason, nothing half-done.

Every case runs ``topicwatch crawl`` as a real process against the local site with faults
injected at article or listing URLs, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixture_site import CP1252_ARTICLE_ID, MULTIPAGE_ARTICLE_ID, REFERENCE_TOPIC, FixtureSite
from sqlalchemy import select
from test_crawl_e2e import Crawl, topicwatch, write_config

from storage.models import Article, ArticleVersion, Change

pytestmark = pytest.mark.slow


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as site:
        site.start()
        yield site


def make_crawl(site: FixtureSite, db_url: str, tmp_path: Path, sources: list[str]) -> Crawl:
    return Crawl(write_config(tmp_path / "topicwatch.toml", db_url, sources), db_url)


def failures_of(crawl: Crawl, run_id: int) -> dict[str, str]:
    from storage.models import CrawlRun

    with crawl.sessions() as session:
        run = session.get(CrawlRun, run_id)
        assert run is not None
        return {f["url"]: f["reason"] for f in run.error_details.get("failures", [])}


def recorded_urls(crawl: Crawl) -> set[str]:
    with crawl.sessions() as session:
        return set(session.scalars(select(Article.url).join(ArticleVersion)))


def test_article_faults_are_recorded_and_leave_nothing_half_done(
    site: FixtureSite, db_url: str, tmp_path: Path
) -> None:
    crawl = make_crawl(site, db_url, tmp_path, [site.listing_url(REFERENCE_TOPIC)])
    try:
        ids = site.listing_ids(REFERENCE_TOPIC)
        healthy = CP1252_ARTICLE_ID
        faulty = [i for i in ids if i not in (healthy, MULTIPAGE_ARTICLE_ID)]
        expected = dict(
            zip(
                faulty,
                [
                    ("pdf", {}, "not a web page (Content-Type application/pdf)"),
                    ("image", {}, "not a web page (Content-Type image/png)"),
                    ("huge", {"mb": 4}, "larger than the download size cap"),
                    ("redirect_loop", {}, "redirect loop"),
                ],
                strict=False,
            )
        )
        site.set_fault(site.article_path(MULTIPAGE_ARTICLE_ID), "status", code=500)
        for article_id, (kind, opts, _) in expected.items():
            site.set_fault(site.article_path(article_id), kind, **opts)
        site.set_fault(site.article_path(healthy), "windows1252")

        run, changes, log = crawl.run()
        assert run.status == "partial"
        failures = failures_of(crawl, run.id)
        for article_id, (_, _, reason) in expected.items():
            url = site.article_url(article_id)
            assert reason in failures.get(url, ""), (url, failures)
            assert f"url={url} reason=" in log
        assert failures[site.article_url(MULTIPAGE_ARTICLE_ID)] == "HTTP 500"
        assert run.errors == len(expected) + 1
        # Only the healthy article was recorded; the failing ones left no rows behind.
        assert recorded_urls(crawl) == {site.article_url(healthy)}
        assert [c.kind for c in changes] == ["new"]
        # The windows-1252 page was read with its declared charset.
        (version,) = crawl.versions(site.article_url(healthy))
        for paragraph in site.article(healthy).paragraphs:
            assert paragraph in version.body
        assert "€" in version.body or "é" in version.body

        # The faults gone, the next run picks the articles up.
        site.clear_faults()
        run, changes, _ = crawl.run()
        assert run.status == "ok"
        assert sorted(c.kind for c in changes) == ["new"] * (len(expected) + 1)
    finally:
        crawl.close()


def test_timeouts_resets_and_malformed_pages(
    site: FixtureSite, db_url: str, tmp_path: Path
) -> None:
    crawl = make_crawl(site, db_url, tmp_path, [site.listing_url(REFERENCE_TOPIC)])
    try:
        ids = site.listing_ids(REFERENCE_TOPIC)
        hang, reset, malformed = ids[0], ids[2], ids[3]
        site.set_fault(site.article_path(hang), "hang", seconds=8)
        site.set_fault(site.article_path(reset), "reset")
        site.set_fault(site.article_path(malformed), "malformed")
        run, _, log = crawl.run()
        failures = failures_of(crawl, run.id)
        assert failures[site.article_url(hang)] == "timed out after 3 s"
        assert site.article_url(reset) in failures
        assert f"url={site.article_url(hang)} reason=" in log
        recorded = recorded_urls(crawl)
        assert site.article_url(hang) not in recorded
        assert site.article_url(reset) not in recorded
        # Broken markup is still read: the parser recovers, and the text is the article's.
        malformed_url = site.article_url(malformed)
        if malformed_url in recorded:
            body = crawl.versions(malformed_url)[0].body
            assert site.article(malformed).paragraphs[0][:40] in body
        else:
            assert malformed_url in failures
        assert run.status == "partial"
    finally:
        crawl.close()


def test_robots_refusal_is_said_plainly(site: FixtureSite, db_url: str, tmp_path: Path) -> None:
    site.set_robots("User-agent: *\nDisallow: /topic/\n")
    crawl = make_crawl(site, db_url, tmp_path, [site.listing_url(REFERENCE_TOPIC)])
    try:
        run, changes, log = crawl.run(exit_code=1)
        assert run.status == "refused"
        assert changes == []
        listing = site.listing_url(REFERENCE_TOPIC)
        assert "robots.txt" in failures_of(crawl, run.id)[listing]
        assert f"url={listing} reason=refused by robots.txt" in log
        assert "status=refused" in log
    finally:
        crawl.close()


def test_unreachable_host_fails_the_run(db_url: str, tmp_path: Path) -> None:
    source = "http://127.0.0.1:9/topic/konflik-rusia-vs-ukraina"
    crawl = Crawl(write_config(tmp_path / "topicwatch.toml", db_url, [source]), db_url)
    try:
        run, changes, log = crawl.run(exit_code=1)
        assert run.status == "failed"
        assert changes == []
        assert "connection refused" in (run.message or "")
        assert f"url={source} reason=connection refused" in log
        with crawl.sessions() as session:
            assert session.scalars(select(Change)).first() is None
    finally:
        crawl.close()


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A port that answers in plain HTTP: TLS to it fails its handshake."""
    with FixtureSite.reference_site() as plain:
        plain.start()
        yield int(plain.base_url.rsplit(":", 1)[1])


def _unreachable_sources(port: int) -> dict[str, tuple[str, str]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    return {
        "refused": (f"http://127.0.0.1:{closed}/topic", "connection refused"),
        "dns": ("http://news.example.invalid/topic", "host name could not be resolved"),
        "tls": (f"https://127.0.0.1:{port}/topic", "TLS handshake failed: wrong version number"),
    }


@pytest.mark.parametrize("case", ["refused", "dns", "tls"])
def test_a_site_that_cannot_be_reached_is_one_warning_line(
    case: str, sqlite_url: str, tmp_path: Path, plain_http_port: int
) -> None:
    # Scrapy's own ERROR lines and tracebacks (robots.txt, retries given up) go to DEBUG.
    source, reason = _unreachable_sources(plain_http_port)[case]
    config = tmp_path / "topicwatch.toml"
    config.write_text(
        f'[database]\nurl = "{sqlite_url}"\n[crawl]\ndownload_delay = 0\nautothrottle = false\n'
        'retry_times = 1\ndownload_timeout = 5\n[[topic]]\nname = "konflik"\n'
        f'sources = ["{source}"]\nallow_private_addresses = true\n'
    )
    assert topicwatch(config, "db", "upgrade").returncode == 0
    done = topicwatch(config, "crawl", "konflik")
    assert done.returncode == 1
    logged = [
        line.split(" ", 1)[1]
        for line in done.stderr.splitlines()
        if re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", line)
    ]
    assert logged == [
        f"WARNING topicwatch.fetch fetch failed topic=konflik url={source} reason={reason}"
    ], done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("topicwatch.run topic=konflik run=1 status=failed ")
    assert f'message="{source}: {reason}"' in done.stdout

    if case == "dns":  # at DEBUG, Scrapy's lines and their tracebacks are all there
        config.write_text(
            config.read_text().replace("[crawl]", '[logging]\nlevel = "DEBUG"\n[crawl]')
        )
        done = topicwatch(config, "crawl", "konflik")
        assert "DEBUG scrapy.downloadermiddlewares.robotstxt Error downloading" in done.stderr
        assert "Traceback" in done.stderr
