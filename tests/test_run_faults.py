"""Runs under faults: a database that goes away or freezes while a crawl runs, a daemon
killed under its crawl, more due runs than the daemon can start, runs killed mid-way.

Real parts throughout: PostgreSQL behind a TCP proxy that the test cuts and freezes
(:mod:`db_proxy`), the daemon and its crawl processes as real processes, the fixture site
and an SMTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from db_proxy import database_proxy
from fixture_site import REFERENCE_TOPIC, SEED_ARTICLE_ID, FixtureSite
from mailserver import mail_server
from sqlalchemy import func, select, text
from test_daemon import (
    DaemonProcess,
    Database,
    config_toml,
    start,
    topic_toml,
    wait_for,
)

from scheduler.cli import main
from scheduler.runner import CrawlRunner, run_crawl
from storage.db import DatabaseUnavailable, connect_check, make_engine, read_session
from storage.db import session_factory as make_sessions
from storage.models import Change, CrawlRun
from storage.runs import get_run
from storage.spec import TopicSpec
from storage.topics import sync_topics

LOG_LINE = re.compile(r"^\S+Z (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ ")


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as served:
        yield served


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


def database_at(url: str) -> Iterator[Database]:
    from storage.db import upgrade

    upgrade(url)
    db = Database(url)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[Database]:
    yield from database_at(postgres_url)


@pytest.fixture
def sqlite(sqlite_url: str) -> Iterator[Database]:
    yield from database_at(sqlite_url)


def multi_line_entries(log: str) -> list[str]:
    """Lines of ``log`` that do not start a log entry: tracebacks and other continuations."""
    return [line for line in log.splitlines() if line.strip() and not LOG_LINE.match(line)]


def changes_of(db: Database, run_id: int) -> int:
    with read_session(db.sessions) as session:
        query = select(func.count()).select_from(Change).where(Change.crawl_run_id == run_id)
        return int(session.scalar(query) or 0)


def in_thread(function: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
    """Run ``function`` in a thread; (whether it returned within ``timeout``, what it gave)."""
    result: list[Any] = []

    def call() -> None:
        try:
            result.append(function())
        except Exception as exc:
            result.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive(), result[0] if result else None)


# -- timeouts: a database that does not answer is reported --------------------------------


@pytest.mark.postgres
def test_postgres_connections_have_connect_and_statement_timeouts(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "1min"
    finally:
        engine.dispose()
    # a timeout the URL names wins
    engine = make_engine(f"{postgres_url}?options=-c%20statement_timeout%3D5s")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "5s"
    finally:
        engine.dispose()

    with database_proxy(postgres_url) as (proxy, proxied):
        engine = make_engine(proxied)
        try:
            proxy.freeze()  # accepts connections, answers nothing
            began = time.monotonic()
            returned, error = in_thread(lambda: connect_check(engine), timeout=30)
            assert returned, "connecting to a frozen database waited on and on"
            assert isinstance(error, DatabaseUnavailable)
            assert time.monotonic() - began < 20
            assert "timeout" in str(error).lower()
        finally:
            proxy.restore()
            engine.dispose()


def sleeping_child(seconds: float, code: int) -> Callable[[str, str], list[str]]:
    """A stand-in crawl process: ready at once, then exits with ``code`` ``seconds`` after it
    is handed a run."""
    script = (
        "import json, os, sys, time\n"
        "print(json.dumps({'event': 'ready', 'pid': os.getpid()}), flush=True)\n"
        f"sys.stdin.readline(); time.sleep({seconds}); sys.exit({code})\n"
    )

    def command(log_format: str, log_level: str) -> list[str]:
        return [sys.executable, "-c", script]

    return command


@pytest.mark.postgres
def test_a_frozen_database_is_reported_and_the_run_closed_once_it_answers(
    postgres: Database, caplog: pytest.LogCaptureFixture
) -> None:
    spec = TopicSpec(name="alpha", title="Alpha", sources=("http://127.0.0.1:9/",))
    with database_proxy(postgres.url) as (proxy, proxied):
        engine = make_engine(proxied)
        sessions = make_sessions(engine)
        sync_topics(sessions, [spec])
        runner = CrawlRunner(
            proxied,
            sessions,
            command=sleeping_child(3, 3),
            database_timeout=2.0,
            close_retry=(0.5, 1.0),
        )

        async def crawl() -> Any:
            loop = asyncio.get_running_loop()
            # Frozen while the child runs; thawed a while after the child ended.
            loop.call_later(1.5, proxy.freeze)
            loop.call_later(9.0, proxy.restore)
            return await runner.run("alpha", timeout=60)

        caplog.set_level(logging.INFO)
        began = time.monotonic()
        try:
            outcome = asyncio.run(asyncio.wait_for(crawl(), 60))
        finally:
            proxy.restore()
            engine.dispose()
    assert (outcome.status, outcome.message) == ("failed", "the crawl process exited with code 3")
    assert time.monotonic() - began < 40
    reported = [r for r in caplog.records if r.getMessage().startswith("Cannot record the end")]
    assert reported, caplog.text
    assert all("did not answer within 2 s" in r.getMessage() for r in reported[:1])
    assert all(r.levelno == logging.ERROR and r.exc_info is None for r in reported)
    assert get_run(postgres.sessions, outcome.run_id).status == "failed"


# -- no stuck runs: the database cut while a crawl runs --------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_a_run_ended_while_the_database_is_down_is_closed_when_it_is_back(
    tmp_path: Path, site: FixtureSite, postgres: Database, daemons: list[DaemonProcess]
) -> None:
    # One article hangs; the others are recorded (with their alerts) before the cut.
    site.set_fault(site.article_path(SEED_ARTICLE_ID), "hang", seconds=90)
    with mail_server() as smtp, database_proxy(postgres.url) as (proxy, proxied):
        config = tmp_path / "topicwatch.toml"
        text = config_toml(
            proxied,
            topic_toml(
                "konflik",
                site.listing_url(REFERENCE_TOPIC),
                every="1h",
                alert_to=["desk@example.org"],
            ),
            smtp=smtp,
            run_timeout="25s",
        )
        config.write_text(text.replace('dispatch_every = "2s"', 'dispatch_every = "1h"'))
        daemon = start(daemons, config, tmp_path)
        [run] = wait_for(lambda: postgres.runs("konflik"), 60, "the run to start", daemon)
        wait_for(lambda: changes_of(postgres, run.id) == 5, 60, "five changes", daemon)
        proxy.cut()
        wait_for(
            lambda: daemon.log().count("Cannot record the end of crawl run") >= 3,
            90,
            "failed attempts to close the run",
            daemon,
        )
        # the run is still open, its alerts held, and no mail went out
        assert [r.status for r in postgres.runs("konflik")] == ["running"]
        assert not smtp.received
        assert not daemon.summaries()
        proxy.restore()
        wait_for(lambda: daemon.summaries("konflik"), 90, "the run line", daemon)
        wait_for(lambda: smtp.to("desk@example.org"), 60, "the digest", daemon)
        assert daemon.stop() == 0
    [closed] = postgres.runs("konflik")
    assert closed.status == "timeout"
    [line] = daemon.summaries("konflik")
    assert line["status"] == "timeout"
    # the run line counts what the killed crawl recorded and mailed
    assert " new=5 " in line[0]
    [mail] = smtp.to("desk@example.org")
    assert mail.message["Subject"].endswith(": 5 new")
    log = daemon.log()
    assert multi_line_entries(log) == []
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert errors
    assert len(errors) < 40, "\n".join(errors)


# -- killed runs report what they recorded ---------------------------------------------------


def test_a_run_killed_at_its_timeout_counts_the_changes_it_recorded(
    sqlite: Database, site: FixtureSite
) -> None:
    site.set_fault(site.article_path(SEED_ARTICLE_ID), "hang", seconds=60)
    spec = TopicSpec(name="konflik", title="Konflik", sources=(site.listing_url(REFERENCE_TOPIC),))
    sync_topics(sqlite.sessions, [spec])
    outcome = asyncio.run(
        run_crawl(sqlite.url, sqlite.sessions, "konflik", timeout=15, kill_after=2)
    )
    assert outcome.status == "timeout"
    assert changes_of(sqlite, outcome.run_id) == 5
    assert outcome.count("articles_new") == 5
    assert " new=5 " in outcome.summary()


# -- no orphans: a crawl dies with its daemon ------------------------------------------------


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_crawl_dies_with_its_killed_daemon_and_the_restart_never_overlaps_it(
    tmp_path: Path, site: FixtureSite, sqlite: Database, daemons: list[DaemonProcess]
) -> None:
    site.set_fault(site.listing_path(REFERENCE_TOPIC), "hang", seconds=20, times=1)
    config = tmp_path / "topicwatch.toml"
    config.write_text(
        config_toml(
            sqlite.url, topic_toml("konflik", site.listing_url(REFERENCE_TOPIC), every="8s")
        )
    )
    daemon = start(daemons, config, tmp_path)
    [child] = wait_for(lambda: children_of(daemon.popen.pid), 60, "the crawl process", daemon)
    wait_for(lambda: sqlite.runs("konflik"), 30, "the run", daemon)
    daemon.kill()  # SIGKILL: no shutdown, nothing stops the crawl but the kernel
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child), "the crawl process outlived its daemon"

    restarted = start(daemons, config, tmp_path)
    wait_for(lambda: restarted.summaries("konflik"), 90, "the next run", restarted)
    assert restarted.stop() == 0
    runs = sqlite.runs("konflik")
    assert runs[0].status == "failed"
    assert runs[0].message == "daemon stopped before the run finished"
    assert restarted.log().count("Marked 1 crawl run(s) left running") == 1
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None
        assert earlier.finished_at <= later.started_at


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_restarted_daemon_stops_a_crawl_left_running_before_it_schedules(
    tmp_path: Path, site: FixtureSite, sqlite: Database, daemons: list[DaemonProcess]
) -> None:
    spec = TopicSpec(name="konflik", title="Konflik", sources=(site.listing_url(REFERENCE_TOPIC),))
    sync_topics(sqlite.sessions, [spec])
    # A crawl process that outlived its daemon (in a session of its own, as crawls run).
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        stat = Path(f"/proc/{leftover.pid}/stat").read_text()
        started = stat[stat.rfind(")") + 2 :].split()[19]
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        with sqlite.sessions.begin() as session:
            topic_id = session.scalar(text("SELECT id FROM topics WHERE name = 'konflik'"))
            run = CrawlRun(
                topic_id=topic_id,
                started_at=datetime.now(UTC) - timedelta(hours=2),
                status="running",
                error_details={},
                stats={},
            )
            session.add(run)
            session.flush()
            session.execute(
                text("UPDATE crawl_runs SET process_id = :pid, process_start = :start"),
                {"pid": leftover.pid, "start": f"{boot}:{started}"},
            )
        config = tmp_path / "topicwatch.toml"
        config.write_text(
            config_toml(
                sqlite.url, topic_toml("konflik", site.listing_url(REFERENCE_TOPIC), every="1h")
            )
        )
        daemon = start(daemons, config, tmp_path)
        wait_for(lambda: daemon.summaries("konflik"), 90, "the next run", daemon)
        assert leftover.wait(timeout=10) == -signal.SIGTERM
        assert daemon.stop() == 0
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()
    log = daemon.log()
    stopped = log.index(f"Stopped crawl process {leftover.pid} of run 1 (topic konflik)")
    marked = log.index("Marked 1 crawl run(s) left running by a previous process as failed")
    scheduled = log.index("Topic konflik: every 1h")
    assert stopped < marked < scheduled
    runs = sqlite.runs("konflik")
    assert [r.status for r in runs] == ["failed", "ok"]


# -- lag ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_runs_that_start_late_are_logged_and_status_shows_the_lag(
    tmp_path: Path,
    site: FixtureSite,
    sqlite: Database,
    daemons: list[DaemonProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = ["t1", "t2", "t3", "t4", "t5", "t6"]
    # Each run waits 2 s for its listing: six runs every 4 s, one at a time, fall behind.
    site.set_fault(site.listing_path(REFERENCE_TOPIC), "hang", seconds=2)
    topics = [topic_toml(n, site.listing_url(REFERENCE_TOPIC), every="4s") for n in names]
    config = tmp_path / "topicwatch.toml"
    text = config_toml(sqlite.url, *topics)
    config.write_text(text.replace("max_concurrent_runs = 2", "max_concurrent_runs = 1"))
    daemon = start(daemons, config, tmp_path)
    late = re.compile(
        r"WARNING topicwatch\.health late topic=(t\d) lag=(\d+\.\d)s schedule=\"every 4s\" "
        r"due=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ waiting=\d+ max_concurrent_runs=1$",
        re.MULTILINE,
    )
    [first, *_] = wait_for(lambda: late.findall(daemon.log()), 120, "a late run", daemon)
    assert float(first[1]) >= 5.0  # logged to a tenth: more than 5 s may show as 5.0
    assert daemon.stop() == 0
    code = main(["--config", str(config), "status", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    lags = {e["topic"]: (e["last_run"] or {}).get("lag") for e in json.loads(out)}
    assert any(lag is not None and lag > 5.0 for lag in lags.values()), lags
    main(["--config", str(config), "status"])
    table = capsys.readouterr().out
    assert table.splitlines()[2].split()[:5] == ["TOPIC", "SCHEDULE", "LAST", "RUN", "LAG"]
