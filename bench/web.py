"""The web view on a large database: how long each page takes with 100,000 articles.

    .venv/bin/python bench/web.py [--articles 100000] [--db sqlite,postgresql] [--repeat 7]

A fresh database per kind is filled by bulk inserts (:func:`bench.growth.fill`: each article
with its topic link, one version of realistic length, its ``new`` change and a sent alert, over
4 topics), then 200 articles get a second version (an ``updated`` change, recorded as a crawl
records it) and 2,000 finished crawl runs are added. The web view (:class:`web.app.WebApp`,
served by uvicorn on 127.0.0.1 in this process, as ``topicwatch web`` serves it) is then asked
for each page ``--repeat`` times over HTTP; the figures are the median wall time of a request
in milliseconds, and the server's CPU time per request (thread CPU time of the process less
the client's; the wall time includes waiting for a busy machine, the CPU time does not).
``/metrics`` is timed apart on its first scrape (which reads the run history)
and on later ones. The same pages are also timed on a database of ``--articles / 100``
articles, side by side: the ratio says how the cost grows with the database.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import insert, select  # noqa: E402

from bench.growth import TOPICS, Bodies, fill, observation, prepare  # noqa: E402
from bench.throughput import fresh_database  # noqa: E402
from storage.db import make_engine, session_factory  # noqa: E402
from storage.models import Change, CrawlRun  # noqa: E402
from storage.recording import record_outcomes  # noqa: E402
from web.app import DaemonState, WebApp  # noqa: E402
from web.server import WebServer, bind  # noqa: E402

UPDATED = 200
RUNS = 2000


def populate(url: str, articles: int, bodies: Bodies) -> tuple[int, int]:
    """Fill the database; (an updated article's id, a change id in the middle)."""
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        filled = prepare(sessions)
        fill(engine, filled, articles, bodies)
        rng = random.Random(articles)
        edited = rng.sample(range(articles), min(UPDATED, articles))
        for i in edited:
            record_outcomes(
                sessions,
                topic_id=filled.topic_ids[i % TOPICS],
                run_id=filled.run_id,
                outcomes=[observation(i, bodies, version=2)],
            )
        now = datetime.now(UTC)
        runs = [
            {
                "topic_id": filled.topic_ids[k % TOPICS],
                "started_at": now - timedelta(minutes=15 * (RUNS - k)),
                "finished_at": now - timedelta(minutes=15 * (RUNS - k)) + timedelta(seconds=6),
                "status": "ok" if k % 50 else "failed",
                "pages_fetched": 3,
                "articles_seen": 41,
                "articles_new": 2,
                "articles_updated": 1,
                "error_details": {},
                "stats": {},
            }
            for k in range(RUNS)
        ]
        with engine.begin() as connection:
            connection.execute(insert(CrawlRun), runs)
        with sessions() as session:
            updated = session.scalar(
                select(Change.article_id).where(Change.kind == "updated").limit(1)
            )
            ids = session.scalars(select(Change.id).order_by(Change.id)).all()
        assert updated is not None
        return updated, ids[len(ids) // 2]
    finally:
        engine.dispose()


class Served:
    """The web view of ``url`` on a free port, served from a thread with its own loop."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        app = WebApp(session_factory(self.engine), state=lambda: DaemonState(running=False))
        self.server = WebServer(app, bind("127.0.0.1", 0))
        self.base = f"http://{self.server.address}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.server.started:
            if time.monotonic() > deadline:
                raise SystemExit("the web view did not start")
            time.sleep(0.02)

    def _run(self) -> None:
        self.loop.run_until_complete(self.server.serve())

    def close(self) -> None:
        self.server.server.should_exit = True
        self.thread.join(timeout=30)
        self.server.socket.close()
        self.engine.dispose()


def timed(base: str, path: str) -> tuple[float, float]:
    """(wall ms, server CPU ms) of one GET of ``path``."""
    cpu = time.process_time()
    client = time.thread_time()
    wall = time.perf_counter()
    with urllib.request.urlopen(base + path, timeout=120) as response:
        body = response.read()
        assert response.status == 200, (path, response.status)
    wall = time.perf_counter() - wall
    server_cpu = (time.process_time() - cpu) - (time.thread_time() - client)
    assert body
    return wall * 1000, server_cpu * 1000


def pages(updated: int, middle: int) -> list[tuple[str, str]]:
    return [
        ("topics", "/"),
        ("changes, first page", "/changes"),
        ("changes, a middle page", f"/changes?older={middle}"),
        ("topic", "/topics/topic-0"),
        ("topic, updated only", "/topics/topic-0?kind=updated"),
        ("article diff", f"/articles/{updated}?from=1&to=2"),
        ("runs", "/runs"),
        ("feed, all topics", "/feeds/all.atom"),
        ("metrics, later scrapes", "/metrics"),
        ("healthz", "/healthz"),
    ]


def measure(url: str, updated: int, middle: int, repeat: int) -> dict[str, tuple[float, float]]:
    served = Served(url)
    try:
        results: dict[str, tuple[float, float]] = {}
        results["metrics, first scrape"] = timed(served.base, "/metrics")
        for name, path in pages(updated, middle):
            samples = [timed(served.base, path) for _ in range(repeat)]
            results[name] = (
                statistics.median(s[0] for s in samples),
                statistics.median(s[1] for s in samples),
            )
        return results
    finally:
        served.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    small_size = max(100, args.articles // 100)
    bodies = Bodies()
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        for kind in args.db.split(","):
            with ExitStack() as stack:
                small = stack.enter_context(fresh_database(kind, workdir))
                large = stack.enter_context(fresh_database(kind, workdir))
                started = time.perf_counter()
                small_ids = populate(small, small_size, bodies)
                large_ids = populate(large, args.articles, bodies)
                print(
                    f"\n{kind}: filled {small_size:,} and {args.articles:,} articles in "
                    f"{time.perf_counter() - started:.0f}s"
                )
                figures = {
                    size: measure(url, *ids, args.repeat)
                    for size, url, ids in (
                        (small_size, small, small_ids),
                        (args.articles, large, large_ids),
                    )
                }
                header = (
                    f"{'page':24} {'wall ms':>9} {'wall ms':>9} {'CPU ms':>8} {'CPU ms':>8} "
                    f"{'CPU ratio':>9}\n{'':24} {small_size:>9,} {args.articles:>9,} "
                    f"{small_size:>8,} {args.articles:>8,}"
                )
                print(header)
                for page in figures[args.articles]:
                    wall_a, cpu_a = figures[small_size][page]
                    wall_b, cpu_b = figures[args.articles][page]
                    print(
                        f"{page:24} {wall_a:9.1f} {wall_b:9.1f} {cpu_a:8.1f} {cpu_b:8.1f} "
                        f"{cpu_b / cpu_a:9.2f}"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
