"""Bounds on one crawl run's work: a capped number of article fetches, taken in the listing's
order, the rest in the next runs; a listing that parses to nothing is a warning and a failure
of the run.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from fixture_site import REFERENCE_TOPIC, FixtureSite
from sqlalchemy import func, select
from test_crawl_e2e import TOPIC, Crawl, write_config
from test_crawl_faults import failures_of

from storage.models import Article, ArticleVersion

pytestmark = pytest.mark.slow

LISTED = 300
CAP = 50


@pytest.fixture(scope="module")
def long_listing() -> Iterator[FixtureSite]:
    with FixtureSite.generate(LISTED, topics=(REFERENCE_TOPIC,)) as site:
        site.start()
        yield site


def fetched_articles(site: FixtureSite) -> set[str]:
    """The articles requested so far (not the feed nor robots.txt; the pages of a
    multi-page article are one article)."""
    return {
        site.base_url + request.url_path
        for request in site.requests
        if not request.url_path.startswith(("/rss/", "/robots.txt"))
    }


def feed_order(site: FixtureSite) -> list[str]:
    """The articles in the feed's order, as the crawl reads them (tracking parameters off)."""
    with urllib.request.urlopen(site.feed_url(REFERENCE_TOPIC), timeout=10) as answer:
        feed = ElementTree.fromstring(answer.read())
    return [item.findtext("link", "").split("?")[0] for item in feed.iter("item")]


def test_a_long_listing_is_fetched_over_several_runs_in_its_order(
    long_listing: FixtureSite, db_url: str, tmp_path: Path
) -> None:
    site = long_listing
    site.clear_requests()
    config = write_config(
        tmp_path / "topicwatch.toml",
        db_url,
        [site.feed_url(REFERENCE_TOPIC)],
        crawl=f"max_articles_per_run = {CAP}\n",
    )
    crawl = Crawl(config, db_url)
    listed = feed_order(site)
    assert len(listed) == LISTED
    try:
        run, changes, log = crawl.run()
        assert fetched_articles(site) == set(listed[:CAP])
        assert len(changes) == CAP
        assert (
            f"article fetches capped topic={TOPIC} max_articles_per_run={CAP} "
            f"left_for_next_run={LISTED - CAP}"
        ) in log
        assert run.status == "ok"

        site.clear_requests()
        run, changes, log = crawl.run()
        # The next fifty: the known ones wait behind the new ones, and the cap is spent.
        assert fetched_articles(site) == set(listed[CAP : 2 * CAP])
        assert len(changes) == CAP
        assert {c.kind for c in changes} == {"new"}
        # Left: 200 new articles, and the re-checks of the 50 read in the first run.
        assert f"left_for_next_run={LISTED - CAP}" in log

        with crawl.sessions() as session:
            versions = session.execute(
                select(Article.url, func.count(ArticleVersion.id))
                .join(ArticleVersion)
                .group_by(Article.url)
            ).all()
        # No article lost, none read twice.
        assert dict(versions) == dict.fromkeys(listed[: 2 * CAP], 1)
    finally:
        crawl.close()


class EmptyListing:
    """A local site whose topic page parses to nothing: 100,000 nested divs, no link."""

    def __init__(self) -> None:
        body = ("<html><body>" + "<div>" * 100_000 + "kosong" + "</div>" * 100_000).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path == "/topic/kosong"
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body) if found else 0))
                self.end_headers()
                if found:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/topic/kosong"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_listing_that_parses_to_nothing_warns_and_the_run_is_not_ok(
    db_url: str, tmp_path: Path
) -> None:
    site = EmptyListing()
    crawl = Crawl(write_config(tmp_path / "topicwatch.toml", db_url, [site.url]), db_url)
    try:
        run, changes, log = crawl.run()
        assert f"listing has no article links topic={TOPIC} url={site.url}" in log
        assert "WARNING" in next(
            line for line in log.splitlines() if "listing has no article links" in line
        )
        # Partial, not failed: the page was fetched, and the daemon's health check
        # (empty_listing) compares its links with the last good run's.
        assert run.status == "partial"
        assert failures_of(crawl, run.id) == {
            site.url: "no article links could be read from this html listing"
        }
        assert changes == []
    finally:
        crawl.close()
        site.close()
