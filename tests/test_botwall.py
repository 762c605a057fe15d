"""Bot walls are named as such: "blocked by the site's bot protection", not "HTTP 403".

The unit cases read answers as the crawler gets them; the crawl cases run ``topicwatch crawl``
as a real process against the local site answering with a challenge page, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixture_site import REFERENCE_TOPIC, SEED_ARTICLE_ID, FixtureSite
from test_crawl_faults import failures_of, make_crawl

from crawler.botwall import bot_wall_reason
from scheduler.cli import main

CLOUDFLARE = b"<html><head><title>Just a moment...</title></head><body></body></html>"


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (403, "cf-mitigated: challenge", b"", "(Cloudflare, HTTP 403)"),
        (503, "server: cloudflare", CLOUDFLARE, "(Cloudflare, HTTP 503)"),
        (403, "x-datadome: protected", b"", "(DataDome, HTTP 403)"),
        (429, "", b'<div class="g-recaptcha"></div>', "(HTTP 429)"),
        (403, "", b"<script>var _incapsula_resource</script>", "(Imperva, HTTP 403)"),
        (503, "", b"<h1>Service Unavailable</h1>", None),
        (403, "server: nginx", b"<h1>Forbidden</h1>", None),
        (404, "cf-mitigated: challenge", CLOUDFLARE, None),
        (200, "cf-mitigated: challenge", CLOUDFLARE, None),
    ],
)
def test_the_signs_of_a_bot_wall(
    status: int, headers: str, body: bytes, expected: str | None
) -> None:
    reason = bot_wall_reason(status, lambda: headers, body)
    if expected is None:
        assert reason is None
    else:
        assert reason == f"blocked by the site's bot protection {expected}"


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as site:
        site.start()
        yield site


@pytest.mark.slow
def test_a_bot_wall_is_named_in_the_run_and_in_status(
    site: FixtureSite, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = site.listing_url(REFERENCE_TOPIC)
    crawl = make_crawl(site, db_url, tmp_path, [listing])
    try:
        # An article behind a DataDome wall: the run is partial, the article's reason says so.
        site.set_fault(site.article_path(SEED_ARTICLE_ID), "botwall", code=403, service="datadome")
        run, _, log = crawl.run()
        assert run.status == "partial"
        reason = failures_of(crawl, run.id)[site.article_url(SEED_ARTICLE_ID)]
        assert reason == "blocked by the site's bot protection (DataDome, HTTP 403)"
        assert f"reason={reason}" in log

        # The listing behind Cloudflare's challenge (503): the topic cannot be crawled.
        site.clear_faults()
        site.set_fault(site.listing_path(REFERENCE_TOPIC), "botwall", code=503)
        run, _, log = crawl.run(exit_code=1)
        assert run.status == "refused"
        assert "status=refused" in log
        assert "blocked by the site's bot protection (Cloudflare, HTTP 503)" in (run.message or "")
        assert main(["--config", str(crawl.config), "status", "--json"]) == 0
        (topic,) = json.loads(capsys.readouterr().out)
        assert "blocked by the site's bot protection (Cloudflare, HTTP 503)" in topic["reason"]
    finally:
        crawl.close()
