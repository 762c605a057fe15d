"""Warm crawl processes, real ones (``python -m crawler.worker``): runs back to back in one
process, a run past its limit, a process killed mid-run, recycling, and a stop request,
against the fixture site and real databases."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from fixture_site import LSI_TOPIC, REFERENCE_TOPIC, SEED_ARTICLE_ID, FixtureSite
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from scheduler.runner import CrawlRunner, RunOutcome
from storage.models import CrawlRun
from storage.spec import CrawlSettings, TopicSpec
from storage.topics import sync_topics

T = TypeVar("T")


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as served:
        yield served


def topics(site: FixtureSite) -> list[TopicSpec]:
    fast = CrawlSettings(download_delay=0, autothrottle=False, retry_times=0)
    return [
        TopicSpec(
            name="konflik",
            title="Konflik",
            sources=(site.listing_url(REFERENCE_TOPIC),),
            crawl=fast,
        ),
        TopicSpec(
            name="timnas", title="Timnas", sources=(site.listing_url(LSI_TOPIC),), crawl=fast
        ),
    ]


def with_runner(
    url: str,
    sessions: sessionmaker[Session],
    body: Callable[[CrawlRunner], Awaitable[T]],
    **options: object,
) -> T:
    """``body(runner)`` in an event loop, the runner's processes ended afterwards."""

    async def main() -> T:
        runner = CrawlRunner(url, sessions, kill_after=3.0, **options)  # type: ignore[arg-type]
        try:
            return await asyncio.wait_for(body(runner), 120)
        finally:
            await runner.close()
            assert not [p for p in runner.pool.processes if p.alive]

    return asyncio.run(main())


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def test_runs_back_to_back_in_one_process_are_independent(
    site: FixtureSite, db_url: str, session_factory: sessionmaker[Session]
) -> None:
    sync_topics(session_factory, topics(site))

    async def body(runner: CrawlRunner) -> list[RunOutcome]:
        outcomes = [await runner.run(name, timeout=60) for name in ("konflik", "timnas")]
        site.edit_body(SEED_ARTICLE_ID, insert_sentence="Kremlin menolak berkomentar.")
        outcomes += [await runner.run(name, timeout=60) for name in ("konflik", "timnas")]
        assert runner.pool.started == 1
        return outcomes

    first_a, first_b, second_a, second_b = with_runner(db_url, session_factory, body)
    assert [o.status for o in (first_a, first_b, second_a, second_b)] == ["ok"] * 4
    assert (first_a.count("articles_new"), first_b.count("articles_new")) == (6, 3)
    # the second runs start from what the first recorded, each from its own topic's
    assert (second_a.count("articles_new"), second_a.count("articles_updated")) == (0, 1)
    assert (second_b.count("articles_new"), second_b.count("articles_updated")) == (0, 0)
    assert second_b.count("articles_seen") == 3
    # each run's stats are its own, not the sum of the process's runs
    assert second_b.stats["topicwatch/articles_seen"] == 3
    with session_factory() as session:
        pids = session.scalars(select(CrawlRun.process_id).distinct()).all()
    assert len(pids) == 1


def test_a_run_over_its_limit_is_a_timeout_and_the_next_run_works(
    site: FixtureSite, sqlite_url: str
) -> None:
    from storage.db import make_engine, session_factory, upgrade

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    sessions = session_factory(engine)
    sync_topics(sessions, topics(site))
    site.set_fault(site.listing_path(LSI_TOPIC), "hang", seconds=60, times=1)

    async def body(runner: CrawlRunner) -> tuple[RunOutcome, RunOutcome]:
        hung = await runner.run("timnas", timeout=3)
        return hung, await runner.run("konflik", timeout=60)

    try:
        hung, next_run = with_runner(sqlite_url, sessions, body)
    finally:
        engine.dispose()
    assert (hung.status, hung.message) == ("timeout", "killed after 3 s")
    assert next_run.status == "ok"
    assert next_run.count("articles_new") == 6


def test_a_process_killed_mid_run_fails_that_run_only(
    site: FixtureSite, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from storage.db import make_engine, session_factory, upgrade

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    sessions = session_factory(engine)
    sync_topics(sessions, topics(site))
    site.set_fault(site.listing_path(LSI_TOPIC), "hang", seconds=60, times=1)

    async def body(runner: CrawlRunner) -> tuple[RunOutcome, RunOutcome, RunOutcome, int]:
        warm = await runner.run("konflik", timeout=60)
        [process] = runner.pool.idle
        loop = asyncio.get_running_loop()
        # SIGKILL as a segfault or the out-of-memory killer would end it, mid-run.
        loop.call_later(1.5, os.kill, process.pid, signal.SIGKILL)
        killed = await runner.run("timnas", timeout=60)
        after = await runner.run("timnas", timeout=60)
        return warm, killed, after, process.pid

    caplog.set_level(logging.INFO)
    try:
        warm, killed, after, pid = with_runner(sqlite_url, sessions, body)
    finally:
        engine.dispose()
    assert warm.status == "ok"
    assert (killed.status, killed.message) == (
        "failed",
        "the crawl process was killed by signal SIGKILL",
    )
    assert after.status == "ok"
    assert after.count("articles_new") == 3
    assert not alive(pid)


def test_a_process_is_recycled_after_its_runs_and_a_stop_ends_a_run(
    site: FixtureSite, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from storage.db import make_engine, session_factory, upgrade

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    sessions = session_factory(engine)
    sync_topics(sessions, topics(site))
    site.set_fault(site.listing_path(LSI_TOPIC), "hang", seconds=60, times=1)

    async def body(runner: CrawlRunner) -> list[RunOutcome]:
        outcomes = [await runner.run("konflik", timeout=60) for _ in range(3)]
        assert runner.pool.started == 2  # the third run had a fresh process
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(2.0, stop.set)
        outcomes.append(await runner.run("timnas", timeout=60, stop=stop))
        return outcomes

    caplog.set_level(logging.INFO)
    try:
        outcomes = with_runner(sqlite_url, sessions, body, process_max_runs=2)
    finally:
        engine.dispose()
    assert [o.status for o in outcomes[:3]] == ["ok"] * 3
    assert (outcomes[3].status, outcomes[3].message.split(";")[0]) == (  # type: ignore[union-attr]
        "failed",
        "stopped at shutdown",
    )
    assert "after 2 runs" in caplog.text
