"""A crawl lets go of each article's pages once its outcome is known: no response, request or
article fetch of the run is left for the garbage collector to find in a reference cycle
(a crawl process would otherwise hold every page it fetched until the next collection, and
spend the collection's time walking them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixture_site import REFERENCE_TOPIC, FixtureSite

from storage.db import make_engine, session_factory, upgrade
from storage.runs import start_run
from storage.spec import CrawlSettings, TopicSpec
from storage.topics import load_topic, sync_topics

ROOT = Path(__file__).resolve().parent.parent

# Runs one crawl with the collector saving what it finds (gc.DEBUG_SAVEALL) and prints, per
# type of the crawl's own objects, how many were found only in cycles.
CRAWL = """
import collections, gc, json, sys
from crawler.observability import configure_logging
from crawler.run import crawl_topic
from crawler.spiders.topic import ArticleFetch
from scrapy.http import Request, Response

configure_logging("text", "WARNING")
gc.collect()
gc.set_debug(gc.DEBUG_SAVEALL)
result = crawl_topic(sys.argv[1], sys.argv[2], int(sys.argv[3]))
gc.collect()
kinds = (ArticleFetch, Request, Response)
found = collections.Counter(
    kind.__name__ for o in gc.garbage for kind in kinds if isinstance(o, kind)
)
print(json.dumps({"status": result.status, "new": result.counts["articles_new"], **found}))
"""


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as site:
        site.start()
        yield site


def test_a_crawl_leaves_no_page_in_a_reference_cycle(
    site: FixtureSite, db_url: str, tmp_path: Path
) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        sessions = session_factory(engine)
        spec = TopicSpec(
            name="cycles",
            title="Cycles",
            sources=(site.listing_url(REFERENCE_TOPIC),),
            allow_private_addresses=True,
            crawl=CrawlSettings(download_delay=0.0, autothrottle=False, obey_robots=False),
        )
        sync_topics(sessions, [spec])
        topic_id, _ = load_topic(sessions, "cycles")
        run_id = start_run(sessions, topic_id)
    finally:
        engine.dispose()
    done = subprocess.run(
        [sys.executable, "-c", CRAWL, db_url, "cycles", str(run_id)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # The reference topic's six articles (one of them on two pages) were read and recorded.
    assert found["status"] == "ok", done.stderr
    assert found["new"] >= 6
    assert found.get("ArticleFetch", 0) == 0
    assert found.get("Response", 0) == 0
    assert found.get("Request", 0) == 0
