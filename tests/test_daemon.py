"""The daemon as a real process: second-scale schedules against the fixture site, real crawl
children, real databases; signals, reloads, timeouts, restarts and Sentry.

The fixture site serves from a thread of the test process; the daemon and its children reach
it over 127.0.0.1 like any other web site.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fixture_site import (
    LSI_TOPIC,
    REFERENCE_TOPIC,
    SEED_ARTICLE_ID,
    FixtureSite,
)
from mailserver import Handler, MailServer, free_port, mail_server
from sentry_server import SentryServer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crawler.observability import configure_logging
from scheduler.cli import main
from scheduler.config import Config, ConfigError
from scheduler.daemon import Daemon, first_run_time, next_due, plan_schedule
from scheduler.runner import RunOutcome, run_crawl
from storage.daemons import recorded_daemon
from storage.db import make_engine, read_session, safe_url, session_factory, upgrade
from storage.models import Alert, Change, CrawlRun, Topic
from storage.runs import finish_run, get_run, start_run
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

SUMMARY = re.compile(
    r"^\S+Z (?:INFO|WARNING) topicwatch\.run topic=(?P<topic>\S+) run=(?P<run>\d+) "
    r"status=(?P<status>\w+) pages=\d+ articles=\d+ new=\d+ updated=\d+ removed=\d+ "
    r"(?:restored=\d+ )?unchanged=\d+ errors=\d+ duration=\d+\.\ds"
    r"(?: next=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)?"
    r"(?: message=.*)?$",
    re.MULTILINE,
)


def wait_for(check: Callable[[], T], timeout: float, what: str, daemon: DaemonProcess) -> T:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Waited {timeout:g} s for {what}; the daemon's log ends with:\n{daemon.tail()}"
            )
        if daemon.popen.poll() is not None and not value:
            raise AssertionError(
                f"The daemon exited ({daemon.popen.returncode}) while waiting for {what}:\n"
                f"{daemon.tail()}"
            )
        time.sleep(0.2)


@dataclass(frozen=True)
class Run:
    id: int
    topic: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    message: str | None
    articles_seen: int


class Database:
    """What the test reads back from the daemon's database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)

    def runs(self, topic: str | None = None) -> list[Run]:
        query = (
            select(CrawlRun, Topic.name)
            .join(Topic, Topic.id == CrawlRun.topic_id)
            .order_by(CrawlRun.id)
        )
        if topic is not None:
            query = query.where(Topic.name == topic)
        with read_session(self.sessions) as session:
            return [
                Run(
                    run.id,
                    name,
                    run.status,
                    run.started_at,
                    run.finished_at,
                    run.message,
                    run.articles_seen,
                )
                for run, name in session.execute(query)
            ]

    def finished(self, topic: str, status: str | None = None) -> list[Run]:
        return [
            run
            for run in self.runs(topic)
            if run.status != "running" and (status is None or run.status == status)
        ]

    def changes(self, kind: str) -> list[tuple[str, int | None]]:
        with read_session(self.sessions) as session:
            rows = session.execute(
                select(Topic.name, Change.crawl_run_id)
                .join(Topic, Topic.id == Change.topic_id)
                .where(Change.kind == kind)
            )
            return [(name, run_id) for name, run_id in rows]

    def close(self) -> None:
        self.engine.dispose()


class DaemonProcess:
    """``python -m scheduler --config F run`` with its log (and its children's) in a file."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log
        inherited = ("SENTRY_DSN", "TOPICWATCH_DATABASE_URL", "TOPICWATCH_CONFIG")
        environment = {k: v for k, v in os.environ.items() if k not in inherited}
        environment.update(env or {})
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        with log.open("ab") as handle:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "scheduler", "--config", str(config), "run"],
                cwd=ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def summaries(self, topic: str | None = None) -> list[re.Match[str]]:
        return [m for m in SUMMARY.finditer(self.log()) if topic in (None, m["topic"])]

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM, then wait for the exit; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=30)
            raise AssertionError(
                f"The daemon did not exit within {timeout} s of SIGTERM:\n{self.tail()}"
            ) from None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=30)


def topic_toml(name: str, source: str, **options: Any) -> str:
    lines = ["[[topic]]", f'name = "{name}"', f'sources = ["{source}"]', "jitter = 0"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def config_toml(
    database_url: str,
    *topics: str,
    smtp: MailServer | None = None,
    run_timeout: str = "60s",
    shutdown_grace: str = "10s",
    retry_times: int = 0,
) -> str:
    text = f"""
[database]
url = "{database_url}"

[crawl]
download_delay = 0
autothrottle = false
retry_times = {retry_times}
download_timeout = "90s"
run_timeout = "{run_timeout}"
shutdown_grace = "{shutdown_grace}"
max_concurrent_runs = 2

[alerts]
dispatch_every = "2s"
retry_backoff = "2s"
"""
    if smtp is not None:
        text += f"""
[smtp]
host = "{smtp.host}"
port = {smtp.port}
security = "none"
sender = "topicwatch <alerts@example.org>"
timeout = "10s"
"""
    return text + "\n" + "\n".join(topics)


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as served:
        yield served


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    upgrade(db_url)
    db = Database(db_url)
    yield db
    db.close()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    """Daemons started by a test; any still running at its end are killed."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


def start(
    daemons: list[DaemonProcess],
    config: Path,
    tmp_path: Path,
    env: dict[str, str] | None = None,
) -> DaemonProcess:
    daemon = DaemonProcess(config, tmp_path / f"daemon-{len(daemons)}.log", env)
    daemons.append(daemon)
    return daemon


@pytest.mark.slow
def test_topics_run_on_schedule_record_changes_and_send_alerts(
    tmp_path: Path,
    site: FixtureSite,
    database: Database,
    daemons: list[DaemonProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "topicwatch.toml"
    with mail_server() as smtp:
        config.write_text(
            config_toml(
                database.url,
                topic_toml(
                    "konflik",
                    site.listing_url(REFERENCE_TOPIC),
                    every="2s",
                    title="Konflik Rusia Vs Ukraina",
                    alert_to=["desk@example.org"],
                ),
                topic_toml("timnas", site.listing_url(LSI_TOPIC), every="2s"),
                smtp=smtp,
            )
        )
        daemon = start(daemons, config, tmp_path)
        wait_for(
            lambda: database.finished("konflik", "ok") and database.finished("timnas", "ok"),
            90,
            "a first run of each topic",
            daemon,
        )
        site.edit_body(SEED_ARTICLE_ID, insert_sentence="Kremlin menolak berkomentar.")
        updated = wait_for(
            lambda: database.changes("updated"), 90, "the edit to be detected", daemon
        )
        assert [name for name, _ in updated] == ["konflik"]
        wait_for(
            lambda: all(len(database.finished(t, "ok")) >= 3 for t in ("konflik", "timnas")),
            120,
            "three runs of each topic",
            daemon,
        )
        # health: a listing that used to list articles lists none
        site.set_listing(LSI_TOPIC, [])
        wait_for(
            lambda: re.search(
                r"WARNING topicwatch\.health empty_listing topic=timnas url=\S+ previous=3 ",
                daemon.log(),
            ),
            60,
            "the empty listing warning",
            daemon,
        )
        wait_for(
            lambda: any(
                "updated" in str(mail.message["Subject"]) for mail in smtp.to("desk@example.org")
            ),
            60,
            "the digest of the update",
            daemon,
        )
        assert daemon.stop() == 0, daemon.tail()
    subjects = [str(mail.message["Subject"]) for mail in smtp.to("desk@example.org")]
    assert all(s.startswith("[topicwatch] Konflik Rusia Vs Ukraina: ") for s in subjects)
    news = [int(n) for s in subjects for n in re.findall(r"(\d+) new", s)]
    assert sum(news) == 6, subjects
    assert "[topicwatch] Konflik Rusia Vs Ukraina: 1 updated" in subjects

    log = daemon.log()
    for topic in ("konflik", "timnas"):
        lines = daemon.summaries(topic)
        assert len(lines) >= 3, log
        assert {m["status"] for m in lines} <= {"ok", "partial"}
        # the next run is named, except by runs that end while the daemon stops
        assert re.search(r" next=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b", lines[0].group(0))
    # each delivery that sent something says so, as `topicwatch alerts send` does
    assert re.search(
        r"^\S+Z INFO topicwatch\.alerts emails=[1-9]\d* sent=[1-9]\d* failed=0 deferred=0$",
        log,
        re.MULTILINE,
    ), log
    update_run = updated[0][1]
    assert any(m["run"] == str(update_run) for m in daemon.summaries("konflik"))
    assert re.search(
        rf"topicwatch\.run topic=konflik run={update_run} status=ok .* updated=1 ", log
    )
    assert re.search(r"INFO topicwatch\.change kind=updated topic=konflik url=\S+", log)
    assert not [run for run in database.runs() if run.status == "running"]
    assert "Traceback" not in log

    # `topicwatch status` tells what the database holds
    assert main(["--config", str(config), "status", "--json"]) == 0
    shown = {entry["topic"]: entry for entry in json.loads(capsys.readouterr().out)}
    for topic in ("konflik", "timnas"):
        last = database.runs(topic)[-1]
        assert shown[topic]["last_run"]["id"] == last.id
        assert shown[topic]["last_run"]["status"] == last.status
        assert shown[topic]["last_run"]["articles_seen"] == last.articles_seen
        assert shown[topic]["consecutive_failures"] == 0
        assert shown[topic]["schedule"] == "every 2s"


@pytest.mark.slow
def test_a_hanging_topic_is_killed_at_the_run_timeout_while_others_run(
    tmp_path: Path, site: FixtureSite, database: Database, daemons: list[DaemonProcess]
) -> None:
    site.set_fault(site.listing_path(LSI_TOPIC), "hang", seconds=120)
    config = tmp_path / "topicwatch.toml"
    config.write_text(
        config_toml(
            database.url,
            topic_toml("hanging", site.listing_url(LSI_TOPIC), every="1h"),
            topic_toml("good", site.listing_url(REFERENCE_TOPIC), every="1s"),
            # Long enough for the good topic's runs on a loaded machine.
            run_timeout="20s",
        )
    )
    daemon = start(daemons, config, tmp_path)
    [timed_out] = wait_for(
        lambda: database.finished("hanging"), 90, "the hanging run to be killed", daemon
    )
    assert timed_out.status == "timeout"
    assert timed_out.message is not None
    assert timed_out.message.startswith("killed after 20 s")
    # the other topic went on running while one crawl hung
    during = [
        run
        for run in database.finished("good", "ok")
        if timed_out.finished_at is not None
        and run.finished_at is not None
        and timed_out.started_at < run.started_at
        and run.finished_at < timed_out.finished_at
    ]
    assert during, daemon.tail()
    assert daemon.stop() == 0, daemon.tail()
    assert [m["status"] for m in daemon.summaries("hanging")] == ["timeout"]
    assert not [run for run in database.runs() if run.status == "running"]


@pytest.mark.slow
def test_sigterm_during_a_crawl_then_a_restart_runs_the_overdue_topic_once(
    tmp_path: Path, site: FixtureSite, database: Database, daemons: list[DaemonProcess]
) -> None:
    site.set_fault(site.listing_path(LSI_TOPIC), "hang", seconds=120)
    slow = topic_toml("slow", site.listing_url(LSI_TOPIC), every="1h")
    config = tmp_path / "topicwatch.toml"
    config.write_text(config_toml(database.url, slow, shutdown_grace="2s"))
    daemon = start(daemons, config, tmp_path)
    wait_for(
        lambda: [run for run in database.runs("slow") if run.status == "running"],
        60,
        "the crawl to start",
        daemon,
    )
    time.sleep(1.0)  # let the child get into its request
    daemon.signal(signal.SIGTERM)
    assert daemon.stop(timeout=60) == 0
    [stopped] = database.runs("slow")
    assert stopped.status == "failed"
    assert stopped.message is not None
    assert stopped.message.startswith("stopped at shutdown")
    assert not [run for run in database.runs() if run.status == "running"]
    assert "topicwatch daemon stopped" in daemon.log()

    # A topic whose last run is two hours old is overdue at the next start and runs once
    # soon; "slow" ran moments ago and waits for its hour.
    site.clear_faults()
    overdue = TopicSpec(
        name="overdue",
        title="overdue",
        sources=(site.listing_url(REFERENCE_TOPIC),),
        every=3600.0,
        jitter=0.0,
    )
    sync_topics(database.sessions, [overdue])
    topic_id, _ = load_topic(database.sessions, "overdue")
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    old_run = start_run(database.sessions, topic_id, now=long_ago)
    finish_run(
        database.sessions,
        old_run,
        status="ok",
        counts={},
        errors=[],
        stats={},
        now=long_ago + timedelta(seconds=5),
    )
    config.write_text(
        config_toml(
            database.url,
            slow,
            topic_toml("overdue", site.listing_url(REFERENCE_TOPIC), every="1h"),
        )
    )
    restarted = start(daemons, config, tmp_path)
    wait_for(
        lambda: len(database.finished("overdue")) == 2,
        60,
        "the overdue topic to run",
        restarted,
    )
    time.sleep(3.0)  # room for a wrong second run to show up
    assert [run.status for run in database.runs("overdue")] == ["ok", "ok"]
    assert len(database.runs("slow")) == 1
    assert restarted.stop() == 0


@pytest.mark.slow
def test_sighup_reloads_the_config_and_keeps_it_when_the_file_is_broken(
    tmp_path: Path, site: FixtureSite, database: Database, daemons: list[DaemonProcess]
) -> None:
    first = topic_toml("first", site.listing_url(REFERENCE_TOPIC), every="2s")
    config = tmp_path / "topicwatch.toml"
    config.write_text(config_toml(database.url, first))
    daemon = start(daemons, config, tmp_path)
    wait_for(lambda: database.finished("first"), 60, "the first topic's run", daemon)

    second = topic_toml("second", site.listing_url(LSI_TOPIC), every="1h")
    config.write_text(config_toml(database.url, first, second))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: database.finished("second", "ok"), 60, "the added topic to run", daemon)
    assert "Configuration reloaded: 2 topic(s); added second; changed none; removed none" in (
        daemon.log()
    )

    config.write_text(config_toml(database.url, first, second).replace('"1h"', '"sometime"'))
    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: (
            "Reloading the configuration failed; keeping the running one: "
            f'{config}: topic[1].every: expected a duration like "15m" or "2h", got "sometime"'
            in daemon.log()
        ),
        30,
        "the reload error",
        daemon,
    )
    runs_before = len(database.finished("first"))
    wait_for(
        lambda: len(database.finished("first")) >= runs_before + 2,
        60,
        "the running configuration to go on",
        daemon,
    )

    # A topic removed and the log format changed: the daemon's lines, and those of the runs
    # it starts from then on, are JSON.
    config.write_text(config_toml(database.url, first) + '\n[logging]\nformat = "json"\n')
    daemon.signal(signal.SIGHUP)
    reloaded = wait_for(
        lambda: _json_lines(daemon.log(), "scheduler.daemon", "Configuration reloaded"),
        30,
        "the reload as a JSON line",
        daemon,
    )
    assert reloaded[0]["message"].endswith("added none; changed none; removed second")
    at = daemon.log().index('"Configuration reloaded')
    # Two summaries: the second run started after the reload (a topic's runs never overlap).
    wait_for(
        lambda: len(_json_lines(daemon.log()[at:], "topicwatch.run", topic="first")) >= 2,
        60,
        "two runs' summaries as JSON lines",
        daemon,
    )
    site.edit_body(SEED_ARTICLE_ID, insert_sentence="Kremlin menolak berkomentar.")
    [change] = wait_for(
        lambda: _json_lines(daemon.log()[at:], "topicwatch.change"),
        60,
        "the crawl run's change line as JSON",
        daemon,
    )
    assert change["message"].startswith("kind=updated topic=first")
    assert daemon.stop() == 0, daemon.tail()
    assert re.search(r"ERROR scheduler\.daemon Reloading the configuration failed", daemon.log())


RELOAD_FAILED = (
    "ERROR scheduler.daemon Reloading the configuration failed; keeping the running one: "
)


@pytest.mark.slow
def test_a_reload_is_applied_whole_or_not_at_all(
    tmp_path: Path, site: FixtureSite, database: Database, daemons: list[DaemonProcess]
) -> None:
    """Topic b removed, c added with an overflowing interval, d added: nothing is applied,
    and once c is fixed everything is."""
    listing = site.listing_url(REFERENCE_TOPIC)
    a = topic_toml("a", listing, every="2s")
    b = topic_toml("b", listing, every="2s")
    d = topic_toml("d", listing, every="2s")
    config = tmp_path / "topicwatch.toml"
    config.write_text(config_toml(database.url, a, b))
    daemon = start(daemons, config, tmp_path)
    wait_for(
        lambda: database.finished("a") and database.finished("b"), 60, "a run of a and b", daemon
    )

    overflowing = topic_toml("c", listing) + "every = 1e400\n"
    config.write_text(config_toml(database.url, a, overflowing, d))
    daemon.signal(signal.SIGHUP)
    refused = (
        f"{RELOAD_FAILED}{config}: topic[1].every: expected a duration like "
        '"15m" or "2h" of at most 366d, got inf'
    )
    wait_for(lambda: refused in daemon.log(), 30, "the refused reload", daemon)
    runs_of_b = len(database.finished("b"))
    wait_for(lambda: len(database.finished("b")) >= runs_of_b + 2, 60, "b to keep running", daemon)
    assert not database.runs("c")
    assert not database.runs("d")

    config.write_text(config_toml(database.url, a, topic_toml("c", listing, every="1h"), d))
    daemon.signal(signal.SIGHUP)
    applied = "Configuration reloaded: 3 topic(s); added c, d; changed none; removed b"
    wait_for(lambda: applied in daemon.log(), 30, "the reload", daemon)
    runs_of_b = len(database.runs("b"))
    wait_for(
        lambda: database.finished("c") and len(database.finished("d")) >= 2,
        60,
        "c and d to run",
        daemon,
    )
    assert len(database.runs("b")) == runs_of_b

    # A source that cannot be parsed is refused at once, with one line.
    config.write_text(config_toml(database.url, topic_toml("a", "http://[::1"), d))
    daemon.signal(signal.SIGHUP)
    refused = (
        f'{RELOAD_FAILED}{config}: topic[0].sources[0]: expected an http(s) URL, got "http://[::1"'
    )
    wait_for(lambda: refused in daemon.log(), 30, "the refused source", daemon)
    runs_of_a = len(database.finished("a"))
    wait_for(lambda: len(database.finished("a")) >= runs_of_a + 1, 60, "a to keep running", daemon)
    assert daemon.stop() == 0, daemon.tail()
    log = daemon.log()
    assert "Traceback" not in log
    assert log.count("Reloading the configuration failed") == 2


def test_a_schedule_that_cannot_be_built_names_its_topic_and_key() -> None:
    """Refused before anything is scheduled, in the words of a configuration error."""
    spec = TopicSpec(name="b", title="b", sources=("http://x/",), every=1e300)
    config = Config(path=Path("tw.toml"), topics=(TopicSpec("a", "a", ("http://x/",)), spec))
    with pytest.raises(ConfigError) as caught:
        plan_schedule(config, spec, datetime(2026, 11, 26, tzinfo=UTC))
    assert str(caught.value).startswith(
        "tw.toml: topic[1].every: expected a schedule that can be kept, got 1e+300 seconds "
        "(OverflowError: "
    )


def test_a_read_only_sqlite_file_is_named_in_one_line_at_start(tmp_path: Path) -> None:
    path = tmp_path / "topicwatch.db"
    upgrade(f"sqlite:///{path}")
    path.chmod(0o444)
    config = tmp_path / "topicwatch.toml"
    config.write_text(config_toml(f"sqlite:///{path}", topic_toml("a", "http://127.0.0.1:9/")))
    command = [sys.executable, "-m", "scheduler", "--config", str(config), "run"]
    if os.geteuid() == 0:  # root writes read-only files, unless it gives up that power
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
        command = [setpriv, "--bounding-set=-dac_override", *command]
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("TOPICWATCH_", "SENTRY_"))
    }
    environment["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        command, check=False, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    [line] = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert line.endswith(
        f"ERROR scheduler.daemon Cannot start: The SQLite database {path} is read-only for this "
        "user: make the file writable by the user topicwatch runs as"
    )
    assert len(done.stderr.splitlines()) <= 2, done.stderr  # and the warning that no SMTP is set


class Tarpit:
    """A TCP server that accepts connections and never says a word: an SMTP server that
    hangs every client until its timeout."""

    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = port
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        # shutdown() wakes the accept() blocked in the thread; close() alone may not.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(timeout=10)
        for connection in self.held:
            connection.close()


@pytest.mark.slow
# What is tested is the daemon's delivery beside its schedule, the same on either database:
# SQLite only, to keep the suite's time.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_tarpit_smtp_server_delays_mail_not_crawls(
    tmp_path: Path, site: FixtureSite, database: Database, daemons: list[DaemonProcess]
) -> None:
    port = free_port()
    recipients = {name: f"{name}@example.org" for name in ("a", "b", "c")}
    listing = site.listing_url(REFERENCE_TOPIC)
    topics = [
        topic_toml(name, listing, every="2s", alert_to=[address])
        for name, address in recipients.items()
    ]
    config = tmp_path / "topicwatch.toml"
    text = config_toml(
        database.url, *topics, smtp=MailServer("127.0.0.1", port, Handler())
    ).replace('retry_backoff = "2s"', 'retry_backoff = "2s"\ndispatch_time_limit = "5s"')
    config.write_text(text)
    tarpit = Tarpit(port)
    try:
        daemon = start(daemons, config, tmp_path)
        # Each digest waits the SMTP timeout (10 s) for a greeting that never comes.
        wait_for(
            lambda: (
                "did not answer within 10 seconds" in daemon.log()
                or "no answer within 10 seconds" in daemon.log()
            ),
            120,
            "a delivery to time out",
            daemon,
        )
        before = {name: len(database.finished(name)) for name in recipients}
        # Crawls keep their schedule (every 2 s) while deliveries hang. A re-check in a warm
        # crawl process takes well under a second, two at a time: three runs of each topic in
        # 30 s leave a wide margin. With deliveries inside the crawl jobs, each topic ran about
        # once per delivery, each delivery waiting 10 s per digest (30 s for three).
        time.sleep(30)
        during = {name: len(database.finished(name)) - before[name] for name in recipients}
        assert all(count >= 3 for count in during.values()), (during, daemon.tail())
        assert "Alert delivery stopped after 5s" in daemon.log()
    finally:
        tarpit.close()
    with mail_server(port=port) as smtp:
        for address in recipients.values():
            wait_for(lambda r=address: smtp.to(r), 180, f"the digest to {address}", daemon)
        assert daemon.stop() == 0, daemon.tail()
    for name, address in recipients.items():
        subjects = [str(mail.message["Subject"]) for mail in smtp.to(address)]
        assert subjects == [f"[topicwatch] {name}: 6 new"], subjects
    assert "Traceback" not in daemon.log()


def _json_lines(log: str, logger: str, start: str = "", **fields: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``logger`` whose message starts with ``start`` and that hold
    ``fields``."""
    found = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if (
            record.get("logger") == logger
            and str(record.get("message", "")).startswith(start)
            and all(record.get(key) == value for key, value in fields.items())
        ):
            found.append(record)
    return found


@pytest.fixture
def sentry() -> Iterator[SentryServer]:
    server = SentryServer()
    yield server
    server.close()


@pytest.mark.slow
def test_sentry_gets_errors_from_daemon_and_children_and_a_check_in_per_run(
    tmp_path: Path,
    site: FixtureSite,
    sqlite_url: str,
    daemons: list[DaemonProcess],
    sentry: SentryServer,
) -> None:
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    broken_url = f"{site.base_url}/topic/{LSI_TOPIC}"
    site.set_fault(site.listing_path(LSI_TOPIC), "status", code=500)
    config = tmp_path / "topicwatch.toml"
    config.write_text(
        config_toml(
            sqlite_url,
            topic_toml("good", site.listing_url(REFERENCE_TOPIC), every="1h"),
            topic_toml("broken", broken_url, every="1s"),
            retry_times=1,
        )
    )
    daemon = start(daemons, config, tmp_path, env={"SENTRY_DSN": sentry.dsn})
    try:
        wait_for(
            lambda: len(database.finished("broken")) >= 3 and database.finished("good"),
            120,
            "three failed runs of the broken topic",
            daemon,
        )
        wait_for(
            lambda: "ERROR topicwatch.health failing topic=broken failures=3" in daemon.log(),
            30,
            "the escalation",
            daemon,
        )
        assert daemon.stop() == 0, daemon.tail()
    finally:
        database.close()
    # A crawl process that crashes (here: its topic is not in the database) is a bug of
    # topicwatch's: that goes to Sentry, with the process's tags.
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("TOPICWATCH_", "SENTRY_"))
    }
    environment.update(
        SENTRY_DSN=sentry.dsn, TOPICWATCH_DATABASE_URL=sqlite_url, PYTHONPATH=str(ROOT)
    )
    crashed = subprocess.run(
        [sys.executable, "-m", "crawler", "--topic", "missing", "--run-id", "999"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == 1, crashed.stderr

    events = sentry.items("event")
    from_daemon = [e for e in events if e.get("tags", {}).get("component") == "daemon"]
    [escalation] = [e for e in from_daemon if "failures=3" in e["logentry"]["formatted"]]
    assert escalation["tags"]["topic"] == "broken"
    assert escalation["tags"]["url"] == broken_url
    assert escalation["release"].startswith("topicwatch@")

    # A site that fails is not: its fetches are WARNING lines, and only the daemon's
    # escalation of the failing topic (above) is an event.
    from_children = [e for e in events if e.get("tags", {}).get("component") == "crawler"]
    assert [(e["tags"]["topic"], e["tags"]["run"]) for e in from_children] == [
        ("missing", "999")
    ], [e.get("logentry") for e in events]
    assert "crawl run 999 of topic missing crashed" in json.dumps(from_children[0]["logentry"])
    assert "exception" in from_children[0]

    check_ins = sentry.items("check_in")
    for topic, final in (("good", "ok"), ("broken", "error")):
        mine = [c for c in check_ins if c["monitor_slug"] == topic]
        assert mine, check_ins
        assert mine[0]["status"] == "in_progress"
        assert mine[0]["monitor_config"]["schedule"]["type"] == "interval"
        closing = [c for c in mine if c["check_in_id"] == mine[0]["check_in_id"]]
        assert [c["status"] for c in closing] == ["in_progress", final]


def outcome(run_id: int, status: str, **extra: Any) -> RunOutcome:
    counts = {"articles_seen": extra.pop("articles", 0), "errors": extra.pop("errors", 0)}
    moment = datetime(2026, 11, 26, 10, 15, tzinfo=UTC)
    return RunOutcome(
        topic="alpha",
        run_id=run_id,
        status=status,
        started_at=moment,
        finished_at=moment + timedelta(seconds=6.4),
        counts=counts,
        **extra,
    )


def test_run_results_tell_the_health_of_a_topic() -> None:
    """Summary lines, and warnings for what looks like a broken site rather than no news."""
    spec = TopicSpec(name="alpha", title="Alpha", sources=("http://127.0.0.1:9/topic/a",))
    daemon = Daemon(
        Config(path=Path("tw.toml"), topics=(spec,)), log_format="text", log_level="INFO"
    )
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("text", "INFO", stream=stream)
    try:
        page = "http://127.0.0.1:9/a/1"
        empty_body = {"url": page, "reason": "the page has no article text (empty body)"}
        daemon.report(spec, outcome(1, "ok", articles=5, stats={"topicwatch/links_listed": 5}))
        daemon.report(spec, outcome(2, "ok", articles=2, stats={"topicwatch/links_listed": 0}))
        daemon.report(
            spec,
            outcome(
                3,
                "partial",
                articles=5,
                errors=1,
                stats={"topicwatch/links_listed": 5, "topicwatch/empty_body": 1},
                failures=(empty_body,),
            ),
        )
        for run_id in (4, 5, 6):
            daemon.report(spec, outcome(run_id, "failed", message="listing: HTTP 500"))
        daemon.report(spec, outcome(7, "ok", articles=5, stats={"topicwatch/links_listed": 5}))
        daemon.report(spec, outcome(8, "timeout", message="killed after 600 s"))
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "INFO topicwatch.run topic=alpha run=1 status=ok pages=0 articles=5 new=0 updated=0 "
        "removed=0 unchanged=0 errors=0 duration=6.4s",
        "INFO topicwatch.run topic=alpha run=2 status=ok pages=0 articles=2 new=0 updated=0 "
        "removed=0 unchanged=0 errors=0 duration=6.4s",
        "WARNING topicwatch.health empty_listing topic=alpha url=http://127.0.0.1:9/topic/a "
        "previous=5 run=2",
        "INFO topicwatch.run topic=alpha run=3 status=partial pages=0 articles=5 new=0 "
        "updated=0 removed=0 unchanged=0 errors=1 duration=6.4s",
        f"WARNING topicwatch.health empty_bodies topic=alpha count=1 url={page} run=3",
        *(
            f"WARNING topicwatch.run topic=alpha run={run_id} status=failed pages=0 articles=0 "
            'new=0 updated=0 removed=0 unchanged=0 errors=0 duration=6.4s message="listing: '
            'HTTP 500"'
            for run_id in (4, 5, 6)
        ),
        "ERROR topicwatch.health failing topic=alpha failures=3 status=failed run=6 "
        'url=http://127.0.0.1:9/topic/a message="listing: HTTP 500"',
        "INFO topicwatch.run topic=alpha run=7 status=ok pages=0 articles=5 new=0 updated=0 "
        "removed=0 unchanged=0 errors=0 duration=6.4s",
        "WARNING topicwatch.run topic=alpha run=8 status=timeout pages=0 articles=0 new=0 "
        'updated=0 removed=0 unchanged=0 errors=0 duration=6.4s message="killed after 600 s"',
    ]


def test_first_runs_after_a_start_follow_the_history() -> None:
    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    every = TopicSpec(name="a", title="a", sources=("http://x/",), every=900.0)
    cron = TopicSpec(name="b", title="b", sources=("http://x/",), every=None, cron="*/15 * * * *")
    # never run, or overdue: soon (after the stagger)
    assert first_run_time(every, None, now, stagger=2.0) == now + timedelta(seconds=2)
    assert first_run_time(every, now - timedelta(hours=1), now) == now
    assert first_run_time(cron, now - timedelta(minutes=20), now) == now
    # ran recently: one interval after the last start, or the next cron time after it
    assert first_run_time(every, now - timedelta(minutes=5), now) == now + timedelta(minutes=10)
    later = now + timedelta(minutes=5)
    assert first_run_time(cron, later - timedelta(minutes=4), later) == now + timedelta(minutes=15)
    assert next_due(every, None) is None


# -- the supervisor of a crawl process ----------------------------------------------------


def fake_child(code: str) -> Callable[[str, str], list[str]]:
    """A stand-in for ``python -m crawler.worker`` that says it is ready, takes one run, then
    runs ``code`` (with ``run_id`` defined, and ``done(status)`` to answer the run)."""
    prelude = (
        "import json, os, sys\n"
        "def done(status, error=None):\n"
        "    message = {'event': 'done', 'run': run_id, 'status': status, 'error': error}\n"
        "    print(json.dumps(message), flush=True)\n"
        "print(json.dumps({'event': 'ready', 'pid': os.getpid()}), flush=True)\n"
        "run_id = json.loads(sys.stdin.readline())['run']\n"
    )

    def command(log_format: str, log_level: str) -> list[str]:
        return [sys.executable, "-c", prelude + code]

    return command


FAKE_CHILDREN = {
    "crash": (
        "import sys; sys.exit(3)",
        "failed",
        "the crawl process exited with code 3",
    ),
    "killed by a signal": (
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        "failed",
        "the crawl process was killed by signal SIGKILL",
    ),
    "exit without recording": (
        "pass",
        "failed",
        "the crawl process exited without recording the run's result",
    ),
    "answer without recording": (
        "done(None, 'the database failed: disk full')",
        "failed",
        "the database failed: disk full",
    ),
    "hang past the limit": ("import time; time.sleep(60)", "timeout", "killed after 1 s"),
    "ignore SIGTERM and hang": (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
        "timeout",
        "killed after 1 s",
    ),
}


@pytest.mark.parametrize(
    ("code", "status", "message"), list(FAKE_CHILDREN.values()), ids=list(FAKE_CHILDREN)
)
def test_the_parent_records_what_a_child_could_not(
    session_factory: sessionmaker[Session], code: str, status: str, message: str
) -> None:
    spec = TopicSpec(name="alpha", title="Alpha", sources=("http://127.0.0.1:9/",))
    sync_topics(session_factory, [spec])
    result = asyncio.run(
        run_crawl(
            "sqlite://unused",
            session_factory,
            "alpha",
            timeout=1.0,
            command=fake_child(code),
            kill_after=1.0,
        )
    )
    assert (result.status, result.message) == (status, message)
    assert not result.succeeded
    record = get_run(session_factory, result.run_id)
    assert (record.status, record.message) == (status, message)
    assert record.finished_at is not None


def test_a_child_that_finished_its_run_is_taken_at_its_word(
    session_factory: sessionmaker[Session], db_url: str
) -> None:
    spec = TopicSpec(name="alpha", title="Alpha", sources=("http://127.0.0.1:9/",))
    sync_topics(session_factory, [spec])
    finish = f"""
from storage.db import make_engine, session_factory
from storage.runs import finish_run
engine = make_engine({db_url!r})
finish_run(
    session_factory(engine), run_id, status="partial",
    counts={{"articles_seen": 4, "articles_new": 1, "pages_fetched": 5, "errors": 1}},
    errors=[{{"url": "http://127.0.0.1:9/a", "reason": "HTTP 503"}}], stats={{}},
)
engine.dispose()
done("partial")
"""
    result = asyncio.run(
        run_crawl(db_url, session_factory, "alpha", timeout=60, command=fake_child(finish))
    )
    assert result.status == "partial"
    assert result.succeeded
    assert result.exit_code == 0
    assert result.summary().startswith(
        f"topicwatch.run topic=alpha run={result.run_id} status=partial pages=5 articles=4 new=1 "
        "updated=0 removed=0 unchanged=0 errors=1 duration="
    )


def test_a_stop_request_ends_the_child(session_factory: sessionmaker[Session]) -> None:
    spec = TopicSpec(name="alpha", title="Alpha", sources=("http://127.0.0.1:9/",))
    sync_topics(session_factory, [spec])

    async def stop_soon() -> RunOutcome:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        return await run_crawl(
            "sqlite://unused",
            session_factory,
            "alpha",
            timeout=60,
            stop=stop,
            command=fake_child("import time; time.sleep(60)"),
            kill_after=1.0,
        )

    result = asyncio.run(stop_soon())
    assert (result.status, result.message) == ("failed", "stopped at shutdown")


@pytest.mark.slow
def test_killed_after_a_crawl_every_change_is_mailed_once_after_the_restart(
    tmp_path: Path, site: FixtureSite, database: Database, daemons: list[DaemonProcess]
) -> None:
    port = free_port()  # nothing listens there yet: the SMTP server is down
    recipients = ["desk@example.org", "editor@example.org"]
    topic = topic_toml(
        "konflik",
        site.listing_url(REFERENCE_TOPIC),
        every="1h",
        title="Konflik Rusia Vs Ukraina",
        alert_to=recipients,
    )
    config = tmp_path / "topicwatch.toml"
    down = MailServer("127.0.0.1", port, Handler())  # its address, with no server behind it
    config.write_text(config_toml(database.url, topic, smtp=down))

    def failed_attempts() -> int:
        with read_session(database.sessions) as session:
            query = select(func.count()).select_from(Alert).where(Alert.attempts > 0)
            return session.scalar(query) or 0

    daemon = start(daemons, config, tmp_path)
    wait_for(lambda: database.finished("konflik", "ok"), 90, "the first run", daemon)
    wait_for(lambda: failed_attempts() == 12, 60, "a failed delivery of 12 alerts", daemon)
    daemon.kill()  # SIGKILL: no shutdown, no flush

    with mail_server(port=port) as smtp:
        restarted = start(daemons, config, tmp_path)
        for recipient in recipients:
            wait_for(lambda r=recipient: smtp.to(r), 60, f"the digest to {recipient}", restarted)
        # A few more dispatch ticks (every 2 s) must not send anything again.
        time.sleep(6)
        assert restarted.stop() == 0
    for recipient in recipients:
        [mail] = smtp.to(recipient)
        assert mail.message["Subject"] == "[topicwatch] Konflik Rusia Vs Ukraina: 6 new"
    with read_session(database.sessions) as session:
        statuses = session.scalars(select(Alert.status)).all()
    assert sorted(statuses) == ["sent"] * 12
    # The restart did not crawl again: the topic ran an hour's interval ago at most.
    assert len(database.runs("konflik")) == 1


@pytest.mark.slow
def test_one_daemon_per_database_and_status_names_it(
    tmp_path: Path,
    database: Database,
    daemons: list[DaemonProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "topicwatch.toml"
    topic = topic_toml("a", "http://127.0.0.1:9/topic", every="1h").replace(
        "jitter = 0", 'jitter = "20m"'
    )
    config.write_text(config_toml(database.url, topic))
    first = start(daemons, config, tmp_path)
    [summary] = wait_for(lambda: first.summaries("a"), 60, "the first run of a", first)
    next_run = summary.group(0).split(" next=")[1].split()[0]
    holder = wait_for(
        lambda: (found := recorded_daemon(database.sessions)) and found.next_runs and found,
        30,
        "the daemon's next runs in its row",
        first,
    )
    since = holder.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (holder.pid, holder.host) == (first.popen.pid, socket.gethostname())

    second = start(daemons, config, tmp_path)
    assert second.popen.wait(timeout=60) == 1
    [refusal] = [line for line in second.log().splitlines() if " ERROR " in line]
    assert refusal.split(" ", 1)[1] == (
        "ERROR scheduler.daemon Refusing to start: another topicwatch daemon serves the "
        f"database at {safe_url(database.url)}: pid {first.popen.pid} on host "
        f"{socket.gethostname()}, since {since}; stop it first (one daemon per database, or "
        "every topic would be crawled twice)"
    )
    assert first.popen.poll() is None
    assert len(database.runs("a")) == 1  # the second one touched nothing

    assert main(["--config", str(config), "status", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    # NEXT RUN is the daemon's own, jitter and all: the one its run line named
    assert entry["next_run"] == next_run
    assert main(["--config", str(config), "status"]) == 0
    daemon_line = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(
        rf"Daemon: running, pid {first.popen.pid} on host {re.escape(socket.gethostname())}, "
        rf"since {since} \(\d+s ago\)",
        daemon_line,
    )

    assert first.stop() == 0
    assert main(["--config", str(config), "status"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"Daemon: not running on this database (start it with `topicwatch --config {config} run`)"
    )
