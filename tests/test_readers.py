"""Reading pages in worker processes: the same reading as in the crawl process, errors
reported per page, and a stopped worker reported so the crawl can read on without it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from crawler.discover import discover
from crawler.profiles import TRIBUNNEWS
from crawler.readers import ReaderPool, ReadersStopped, WorkerTaskError, can_fork, fork_workers
from crawler.reading import read_page

PAGES = Path(__file__).parent / "fixtures" / "pages"
PAGE = (PAGES / "tribunnews_article.html").read_bytes()
LISTING = (PAGES / "tribunnews_listing.html").read_bytes()
LISTING_URL = "http://127.0.0.1:8080/topic/ukraina"
URL = (
    "http://127.0.0.1:8080/internasional/2025/10/03/"
    "diplomasi-jalur-belakang-as-rusia-soal-ukraina-terungkap"
)
OPTIONS: dict[str, Any] = {
    "encoding": "utf-8",
    "profile": TRIBUNNEWS,
    "ignore_patterns": (),
    "find_whole": False,
}
WAIT = 60.0


def with_pool(size: int, scenario: Callable[[ReaderPool], Awaitable[None]]) -> None:
    async def main() -> None:
        pool = ReaderPool(size)
        await pool.start()
        try:
            async with asyncio.timeout(WAIT):
                while not all(w.ready for w in pool.workers):
                    await asyncio.sleep(0.05)
                await scenario(pool)
        finally:
            await pool.close()
        assert not any(w.process.is_alive() for w in pool.workers)

    asyncio.run(main())


def test_workers_read_as_the_crawl_process_does() -> None:
    expected = read_page(PAGE, URL, **OPTIONS)
    assert expected.article is not None
    assert expected.fingerprint is not None

    async def scenario(pool: ReaderPool) -> None:
        readings = await asyncio.gather(*(pool.read(PAGE, URL, **OPTIONS) for _ in range(9)))
        assert readings == [expected] * 9

    with_pool(2, scenario)


def test_workers_find_the_links_of_a_listing_as_the_crawl_process_does() -> None:
    expected = discover(LISTING, LISTING_URL, "text/html; charset=utf-8", TRIBUNNEWS)
    assert len(expected.links) >= 3

    async def scenario(pool: ReaderPool) -> None:
        listings = await asyncio.gather(
            *(
                pool.discover(LISTING, LISTING_URL, "text/html; charset=utf-8", TRIBUNNEWS)
                for _ in range(5)
            ),
            pool.read(PAGE, URL, **OPTIONS),
        )
        assert listings[:5] == [expected] * 5
        assert listings[5] == read_page(PAGE, URL, **OPTIONS)

    with_pool(2, scenario)


def test_a_profile_of_ones_own_reaches_the_workers_whole() -> None:
    own = dataclasses.replace(TRIBUNNEWS, name="own", title_suffixes=(" - Tribunnews.com",))
    options = {**OPTIONS, "profile": own, "requested": URL + "?utm_source=x"}
    expected = read_page(PAGE, URL, **options)
    assert expected.identity is not None

    async def scenario(pool: ReaderPool) -> None:
        assert await pool.read(PAGE, URL, **options) == expected

    with_pool(1, scenario)


def test_a_task_that_fails_in_a_worker_is_raised_where_it_was_asked_for() -> None:
    async def scenario(pool: ReaderPool) -> None:
        with pytest.raises(WorkerTaskError, match="AttributeError"):
            # Not a profile: finding the links fails in the worker.
            await pool.discover(LISTING, LISTING_URL, "text/html", "no profile")  # type: ignore[arg-type]
        listing = await pool.discover(LISTING, LISTING_URL, "text/html", TRIBUNNEWS)
        assert listing.links

    with_pool(1, scenario)


def test_a_page_that_breaks_reading_is_an_error_of_that_page_only() -> None:
    async def scenario(pool: ReaderPool) -> None:
        broken = await pool.read(PAGE, URL, **{**OPTIONS, "ignore_patterns": ("(unclosed",)})
        assert broken.article is None
        assert broken.error is not None
        assert "(unclosed" in broken.error
        fine = await pool.read(PAGE, URL, **OPTIONS)
        assert fine.fingerprint is not None

    with_pool(1, scenario)


def test_a_stopped_worker_is_reported_and_the_others_read_on() -> None:
    async def scenario(pool: ReaderPool) -> None:
        first, second = pool.workers
        assert first.process.pid is not None
        os.kill(first.process.pid, signal.SIGKILL)
        while first.alive:
            await asyncio.sleep(0.05)
        assert pool.alive
        assert pool.ready
        readings = await asyncio.gather(*(pool.read(PAGE, URL, **OPTIONS) for _ in range(4)))
        assert all(r.fingerprint is not None for r in readings)

        assert second.process.pid is not None
        os.kill(second.process.pid, signal.SIGKILL)
        while second.alive:
            await asyncio.sleep(0.05)
        assert not pool.alive
        with pytest.raises(ReadersStopped, match="every reading worker stopped"):
            await pool.read(PAGE, URL, **OPTIONS)

    with_pool(2, scenario)


def test_a_worker_process_imports_nothing_of_the_crawl_machinery() -> None:
    """A worker started afresh (where the crawl cannot fork it) starts while the crawl runs,
    on the crawl's own CPU: what it imports is what reading needs, as a crawl child's spawned
    process imports it (``crawler.__main__`` is the parent's main module)."""
    heavy = ("asyncio", "scrapy", "twisted", "sqlalchemy", "sentry_sdk", "trafilatura")
    code = (
        "import sys, crawler.__main__, crawler.reading_worker; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


def forked_pools_scenario() -> None:
    """Run in a fresh process (one thread): two pools forked at once read as the crawl
    process does, name themselves, and end by themselves when their sockets close; prints
    what it saw, as JSON."""
    first, second = ReaderPool(2), ReaderPool(1)
    fork_workers(first, second)
    processes = [p for pool in (first, second) for p, _ in pool.forked]

    async def main() -> dict[str, Any]:
        await first.start()
        await second.start()
        async with asyncio.timeout(WAIT):
            await first.wait_ready()
            await second.wait_ready()
            readings = await asyncio.gather(
                *(pool.read(PAGE, URL, **OPTIONS) for pool in (first, first, second))
            )
        names = [Path(f"/proc/{p.pid}/comm").read_text().strip() for p in processes]
        await first.close()
        await second.close()
        return {
            "fingerprints": [r.fingerprint.digest if r.fingerprint else None for r in readings],
            "names": names,
        }

    seen = asyncio.run(main())
    seen["exitcodes"] = [p.exitcode for p in processes]
    print(json.dumps(seen))


def test_workers_forked_at_once_read_and_end_when_their_sockets_close() -> None:
    """Workers forked together (:func:`fork_workers`) each close the crawl's ends of the
    sockets they inherited: each ends by itself (exit 0, not terminated) when the crawl
    closes its socket."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from test_readers import forked_pools_scenario; forked_pools_scenario()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    expected = read_page(PAGE, URL, **OPTIONS).fingerprint
    assert expected is not None
    assert seen["fingerprints"] == [expected.digest] * 3
    assert seen["names"] == ["tw-reader"] * 3
    assert seen["exitcodes"] == [0, 0, 0]


def test_workers_are_not_forked_from_a_process_that_runs_threads() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert not can_fork()
        pool = ReaderPool(1)
        with pytest.raises(RuntimeError, match="cannot be forked"):
            fork_workers(pool)
        assert pool.forked == []
    finally:
        stop.set()
        thread.join(timeout=WAIT)
