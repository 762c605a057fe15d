"""Secrets stay secret: not in reprs, error messages, listings, log lines, Sentry events, nor
in the environment of crawl processes.

The Sentry and environment tests run the daemon as a real process, with known passwords,
against a capturing Sentry endpoint, real PostgreSQL and a real crawl child.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from mailserver import free_port
from sentry_server import SentryServer
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from test_daemon import DaemonProcess

from alerts.smtp import SmtpSettings
from scheduler.cli import main
from scheduler.config import load_config
from scheduler.pool import worker_command
from scheduler.runner import CrawlRunner
from storage.credentials import mask_credentials
from storage.db import make_engine, normalise_url, safe_url, session_factory, upgrade

ROOT = Path(__file__).resolve().parent.parent
SMTP_PASSWORD = "smtp-Pa55-7f3e1c"
DB_PASSWORD = "db-Pa55-a91b2d"
SOURCE_PASSWORD = "src-Pa55-44c0de"
T = TypeVar("T")


def write_config(path: Path, database_url: str, *topics: str, smtp_port: int = 2525) -> Path:
    path.write_text(
        f"""
[database]
url = "{database_url}"

[alerts]
dispatch_every = "1s"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
username = "alerts"
password_env = "TOPICWATCH_SMTP_PASSWORD"
sender = "topicwatch <alerts@example.org>"
timeout = "5s"
"""
        + "\n".join(topics),
        encoding="utf-8",
    )
    return path


def topic(name: str, source: str, every: str = "1h") -> str:
    return f'[[topic]]\nname = "{name}"\nsources = ["{source}"]\nevery = "{every}"\njitter = 0\n'


# -- reprs, messages and listings --------------------------------------------------------------


def test_settings_objects_never_show_a_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://topicwatch:{DB_PASSWORD}@db.example.org/topicwatch"
    config = load_config(
        write_config(tmp_path / "topicwatch.toml", url),
        env={"TOPICWATCH_SMTP_PASSWORD": SMTP_PASSWORD},
    )
    smtp = config.smtp_settings()
    assert smtp is not None
    assert smtp.password == SMTP_PASSWORD
    shown = [
        repr(config),
        str(config),
        repr(config.database),
        repr(config.smtp),
        repr(smtp),
        str(smtp),
        repr(SmtpSettings("smtp.example.org", username="u", password=SMTP_PASSWORD)),
        " ".join(worker_command("text", "INFO")),  # the URL goes in the environment
    ]
    for text_shown in shown:
        assert SMTP_PASSWORD not in text_shown
        assert DB_PASSWORD not in text_shown
    assert "topicwatch:***@db.example.org" in repr(config.database)


@pytest.mark.parametrize(
    "url",
    [
        f"postgressql://alice:{DB_PASSWORD}@127.0.0.1/topicwatch",  # misspelled
        f"mysql://alice:{DB_PASSWORD}@127.0.0.1/topicwatch",  # unsupported
        f"postgresql+asyncpg://alice:{DB_PASSWORD}@127.0.0.1/topicwatch",  # another driver
        f"postgresql://alice:{DB_PASSWORD}@127.0.0.1:notaport/topicwatch",  # unparsable
    ],
)
def test_a_bad_database_url_is_refused_without_its_password(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "topicwatch.toml", url)
    env_url = url.replace("alice", "bob")
    assert main(["--config", str(config), "topics"]) == 1
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOPICWATCH_DATABASE_URL", env_url)
        assert main(["--config", str(config), "topics"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2, errors
    assert "database.url: expected a SQLite or PostgreSQL URL" in errors[0]
    assert "alice:***@" in errors[0]
    assert "TOPICWATCH_DATABASE_URL: expected" in errors[1]
    assert "bob:***@" in errors[1]
    assert DB_PASSWORD not in "\n".join(errors)
    for given in (url, env_url):
        with pytest.raises(ValueError, match=r"alice:\*\*\*@|bob:\*\*\*@") as refused:
            make_engine(given)
        assert DB_PASSWORD not in str(refused.value)


def test_a_password_with_unencoded_at_and_slash_is_masked_whole() -> None:
    url = f"postgresql://alice:{DB_PASSWORD}/x@y@127.0.0.1/topicwatch"
    assert safe_url(url) == "postgresql://alice:***@127.0.0.1/topicwatch"


def test_topics_shows_source_urls_with_the_password_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"https://reader:{SOURCE_PASSWORD}@intranet.example.org/news"
    config = write_config(
        tmp_path / "topicwatch.toml", "sqlite:///data/topicwatch.db", topic("intranet", source)
    )
    assert main(["--config", str(config), "topics"]) == 0
    assert main(["--config", str(config), "topics", "--json"]) == 0
    out = capsys.readouterr().out
    assert SOURCE_PASSWORD not in out
    table, listing = out.split("\n[", 1)
    assert "https://reader:***@intranet.example.org/news" in table
    [entry] = json.loads("[" + listing)
    assert entry["sources"] == ["https://reader:***@intranet.example.org/news"]


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://alice:pw@h/db", "postgresql://alice:***@h/db"),
        ("see http://u:p@a@h:8/x: HTTP 500", "see http://u:***@h:8/x: HTTP 500"),
        ("host=h password=secret dbname=d", "host=h password=*** dbname=d"),
        ("https://medium.com/@someone", "https://medium.com/@someone"),
        ("http://h:8080/users/@bob?x=1", "http://h:8080/users/@bob?x=1"),
        ("postgresql://alice@h/db", "postgresql://alice@h/db"),
        ("mailto:desk@example.org", "mailto:desk@example.org"),
    ],
)
def test_credentials_are_masked_and_nothing_else(given: str, shown: str) -> None:
    assert mask_credentials(given) == shown


# -- log lines ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_hostile_title_makes_a_short_line_with_its_controls_escaped(
    fmt: str, tmp_path: Path
) -> None:
    """A change line, as the crawl run writes it, of a page whose title is 100,000
    characters with bidirectional overrides, a terminal escape and a forged line break."""
    from crawler.observability import configure_logging
    from crawler.run_in_progress import RunInProgress
    from storage.changes import PageRead
    from storage.recording import ChangeRecord
    from storage.runs import start_run
    from storage.spec import TopicSpec
    from storage.topics import load_topic, sync_topics

    url = f"sqlite:///{tmp_path / 'topicwatch.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    sync_topics(sessions, [TopicSpec(name="alpha", title="Alpha", sources=("http://x/",))])
    topic_id, _spec = load_topic(sessions, "alpha")
    run_id = start_run(sessions, topic_id)
    engine.dispose()

    log = tmp_path / "log.txt"
    hostile = (
        "Real \u202eheadline\u202c \u2066x\u2069 \x1b[31mred\x1b[0m\x85"
        "\n2026-01-01T00:00:00Z ERROR topicwatch.run forged " + "A" * 100_000
    )
    with log.open("w", encoding="utf-8") as stream:
        configure_logging(fmt, "INFO", stream=stream)
        run = RunInProgress(url, "alpha", run_id)
        try:
            outcome = PageRead(url="http://x/a", fingerprint="f")
            record = ChangeRecord(1, "new", "http://x/a", hostile, "alpha", (), None, 1, True)
            run._note(outcome, record)
            run.fail("http://x/" + "b" * 100_000 + "\u202e", "HTTP 500 \u2067\x1b")
        finally:
            run.close()
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2, [line[:200] for line in lines]
    for line in lines:
        assert len(line) < 3000
        for raw in ("\u202e", "\u202c", "\u2066", "\u2067", "\u2069", "\x1b", "\x85"):
            assert raw not in line
    change = lines[0]
    assert "Real \\u202eheadline" in change
    assert "\u2026" in change  # the ellipsis of a cut value
    if fmt == "json":
        fields = json.loads(change)
        assert fields["kind"] == "new"
        assert fields["title"].startswith("Real \u202eheadline\u202c \u2066x\u2069 \x1b[31m")
        assert len(fields["title"]) <= 1000
    else:
        assert ' topicwatch.change kind=new topic=alpha url=http://x/a title="Real ' in change


# -- Sentry and the crawl processes' environment -------------------------------------------------


def wait_for(check: Callable[[], T], timeout: float, what: str, log: Path) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"Waited {timeout:g} s for {what}; the log ends with:\n{tail}")
        time.sleep(0.2)


class Daemon(DaemonProcess):
    """The daemon with the SMTP password, and any ``env``, in its environment."""

    def __init__(self, config: Path, log: Path, env: dict[str, str]) -> None:
        super().__init__(config, log, {**env, "TOPICWATCH_SMTP_PASSWORD": SMTP_PASSWORD})

    def children(self) -> list[int]:
        """The daemon's child processes that are crawl processes."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.popen.pid and b"crawler.worker" in command:
                found.append(int(entry.name))
        return found


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.popen.poll() is None:
            daemon.popen.kill()
            daemon.popen.wait(timeout=30)


class HangingSite:
    """A web site whose every page waits until released (at most 60 s), then is empty."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.requested = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requested.set()
                outer.release.wait(60)
                body = b"<html><body><p>nothing</p></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/topic"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.mark.slow
def test_a_crawl_process_gets_only_the_environment_it_needs(
    tmp_path: Path, sqlite_url: str, daemons: list[Daemon]
) -> None:
    upgrade(sqlite_url)
    site = HangingSite()
    try:
        config = write_config(tmp_path / "topicwatch.toml", sqlite_url, topic("alpha", site.url))
        daemon = Daemon(
            config,
            tmp_path / "daemon.log",
            {
                "UNRELATED_SECRET": "unrelated-7d1",
                "SENTRY_ENVIRONMENT": "test",
                "LC_ALL": "C.UTF-8",
            },
        )
        daemons.append(daemon)
        wait_for(lambda: site.requested.wait(0.1), 60, "the crawl's first request", daemon.log_path)
        [child] = daemon.children()
        environ = dict(
            item.split(b"=", 1)
            for item in Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            if b"=" in item
        )
        site.release.set()
        wait_for(
            lambda: "topicwatch.run topic=alpha" in daemon.log(), 60, "the run", daemon.log_path
        )
        daemon.stop()
    finally:
        site.close()
    names = {name.decode() for name in environ}
    assert "TOPICWATCH_SMTP_PASSWORD" not in names
    assert SMTP_PASSWORD.encode() not in b"".join(environ.values())
    assert "UNRELATED_SECRET" not in names
    assert environ[b"TOPICWATCH_DATABASE_URL"] == sqlite_url.encode()
    assert environ[b"SENTRY_ENVIRONMENT"] == b"test"
    assert environ[b"LC_ALL"] == b"C.UTF-8"
    assert {"PATH", "PYTHONPATH"} <= names


def test_the_variable_of_the_smtp_password_is_withheld_whatever_its_name() -> None:
    runner = CrawlRunner(
        "sqlite://",
        session_factory(create_engine("sqlite://")),
        env={"PATH": "/usr/bin", "PGSMTP_PASSWORD": SMTP_PASSWORD, "PGPASSWORD": "db"},
        withheld=("PGSMTP_PASSWORD",),
    )
    env = runner.child_env()
    assert env["PGPASSWORD"] == "db"
    assert "PGSMTP_PASSWORD" not in env


@pytest.mark.slow
@pytest.mark.postgres
def test_sentry_gets_no_password_when_alerts_and_the_database_fail(
    tmp_path: Path, postgres_url: str, daemons: list[Daemon]
) -> None:
    """With the SMTP server down and the database gone while the daemon runs, errors reach
    Sentry, and neither the SMTP nor the database password is anywhere in what is sent."""
    parsed = normalise_url(postgres_url)
    database = parsed.database
    assert database is not None
    url = parsed.set(password=DB_PASSWORD).render_as_string(hide_password=False)
    upgrade(url)  # trust authentication: the password is accepted and ignored
    admin = create_engine(
        parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    gone = f"{database}_gone_{uuid.uuid4().hex[:6]}"
    sentry = SentryServer()
    renamed = False
    try:
        config = write_config(
            tmp_path / "topicwatch.toml",
            url,
            topic("alpha", f"http://127.0.0.1:{free_port()}/topic", every="2s"),
            smtp_port=free_port(),  # nothing listens: the SMTP server is down
        )
        daemon = Daemon(config, tmp_path / "daemon.log", {"SENTRY_DSN": sentry.dsn})
        daemons.append(daemon)
        wait_for(lambda: "topicwatch.run topic=alpha" in daemon.log(), 60, "a run", daemon.log_path)
        # The database goes away under the running daemon: its connections are ended, and
        # new ones find no database by that name.
        for _ in range(50):
            with admin.connect() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": database},
                )
                try:
                    connection.execute(text(f'ALTER DATABASE "{database}" RENAME TO "{gone}"'))
                except Exception:
                    time.sleep(0.1)
                    continue
                renamed = True
                break
        assert renamed, "the database could not be taken away"

        def failed_dispatches() -> list[dict[str, Any]]:
            return [
                event
                for event in sentry.items("event")
                if "Sending alerts failed" in json.dumps(event.get("logentry", {}))
            ]

        wait_for(failed_dispatches, 60, "a 'Sending alerts failed' event", daemon.log_path)
        time.sleep(3)  # a failed run or two as well
        daemon.stop()
    finally:
        if renamed:
            with admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{gone}" RENAME TO "{database}"'))
        admin.dispose()
        sentry.close()

    [event, *_] = failed_dispatches()
    assert "the database failed" in event["logentry"]["formatted"], event
    assert "Sending alerts failed: the database failed:" in daemon.log()
    assert len(sentry.bodies) >= 2
    sent = b"\n".join(sentry.bodies)
    leaked = [password for password in (SMTP_PASSWORD, DB_PASSWORD) if password.encode() in sent]
    assert leaked == []
