"""The ``topicwatch`` command: help for everything, one-line errors, and the commands at work
against a real fixture site, real databases (SQLite and PostgreSQL), a real crawl child and a
real SMTP server."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixture_site import REFERENCE_TOPIC, SEED_ARTICLE_ID, FixtureSite
from mailserver import MailServer, free_port, mail_server

from crawler.observability import package_version
from scheduler.cli import build_parser, main
from storage.db import make_engine, safe_url, session_factory
from storage.runs import topic_status

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands install a stderr log handler; the next test must not write to a stale one."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    """stderr without log lines (those start with a UTC time stamp)."""
    return [line for line in err.splitlines() if not re.match(r"\d{4}-\d\d-\d\dT", line)]


# -- help and usage ------------------------------------------------------------------------


def _subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*prefix, name), sub, helps.get(name)
                yield from _subcommands(sub, (*prefix, name))


COMMANDS = [" ".join(path) for path, _, _ in _subcommands(build_parser())]


def test_the_commands_are_all_there() -> None:
    assert set(COMMANDS) == {
        "run",
        "worker",
        "crawl",
        "status",
        "db",
        "db upgrade",
        "db prune",
        "alerts",
        "alerts send",
        "alerts retry",
        "test-email",
        "test-notify",
        "feed",
        "web",
        "topics",
        "changes",
        "show",
        "init",
    }


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    found = {" ".join(path): (sub, text) for path, sub, text in _subcommands(build_parser())}
    sub, text = found[command]
    assert text, f"`topicwatch {command}` has no one-line help in the command list"
    assert sub.description, f"`topicwatch {command}` has no description"
    for action in sub._actions:
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            assert action.help, f"`topicwatch {command}` option {action.dest} has no help"
    code, out, _ = run(capsys, *command.split(), "--help")
    assert code == 0
    assert sub.description.split("\n")[0] in " ".join(out.split())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"topicwatch {package_version()}\n", "")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "frobnicate")
    assert code == 2
    assert "invalid choice: 'frobnicate'" in err
    code, _, err = run(capsys, "changes", "--since", "fortnight")
    assert code == 2
    assert 'expected a duration like "1d" or "6h"' in err
    code, _, _ = run(capsys)
    assert code == 2


# -- errors are one line -----------------------------------------------------------------


def write_config(path: Path, database_url: str, body: str = "") -> Path:
    path.write_text(f'[database]\nurl = "{database_url}"\n{body}', encoding="utf-8")
    return path


def test_a_missing_config_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOPICWATCH_CONFIG", raising=False)
    code, out, err = run(capsys, "status")
    assert (code, out) == (1, "")
    assert err == (
        "topicwatch: error: topicwatch.toml: no such configuration file; write one with "
        "`topicwatch init topicwatch.toml` or name another with --config or "
        "TOPICWATCH_CONFIG\n"
    )


def test_a_bad_config_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "tw.toml"
    config.write_text('[[topic]]\nname = "a"\nsources = ["https://x.org/"]\nevery = "soon"\n')
    code, _, err = run(capsys, "--config", str(config), "topics")
    assert code == 1
    assert err == (
        f"topicwatch: error: {config}: topic[0].every: expected a duration like "
        '"15m" or "2h", got "soon"\n'
    )


def empty_database(url: str) -> None:
    """Make the database exist, without a schema (a SQLite file is created)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()


def test_an_empty_database_names_the_upgrade_command_with_the_config(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(tmp_path / "tw.toml", db_url)
    empty_database(db_url)
    expected = (
        f"topicwatch: error: The database at {safe_url(db_url)} is empty (it has no "
        f'topicwatch schema yet); run "topicwatch --config {config} db upgrade" to create the '
        "schema.\n"
    )
    assert run(capsys, "--config", str(config), "status") == (1, "", expected)
    # --config after the subcommand, or in the environment: the hint names it all the same
    assert run(capsys, "status", "--config", str(config)) == (1, "", expected)
    monkeypatch.setenv("TOPICWATCH_CONFIG", str(config))
    assert run(capsys, "changes") == (1, "", expected)
    # and the database from the environment too
    monkeypatch.setenv("TOPICWATCH_DATABASE_URL", db_url)
    _code, _, err = run(capsys, "changes")
    assert err == expected.replace(
        '"topicwatch --config', f'"TOPICWATCH_DATABASE_URL={safe_url(db_url)} topicwatch --config'
    )
    # following the hint works
    monkeypatch.delenv("TOPICWATCH_DATABASE_URL")
    assert run(capsys, "--config", str(config), "db", "upgrade")[0] == 0
    assert run(capsys, "changes")[:2] == (0, "No changes.\n")


def test_read_only_commands_never_create_a_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "typo" / "topicwatch.db"
    config = write_config(tmp_path / "tw.toml", f"sqlite:///{missing}")
    hint = (
        f"topicwatch: error: The SQLite database {missing} does not exist (nor does its "
        f'directory {missing.parent}); check [database] url, or run "topicwatch --config '
        f'{config} db upgrade" to create it.\n'
    )
    for command in (["status"], ["changes"], ["alerts"], ["show", "https://x.example/a"]):
        assert run(capsys, "--config", str(config), *command) == (1, "", hint)
    missing.parent.mkdir()
    _code, _, err = run(capsys, "--config", str(config), "status")
    assert err == hint.replace(f" (nor does its directory {missing.parent})", "")
    assert list(missing.parent.iterdir()) == []


def test_config_is_accepted_after_the_subcommand_and_shown_in_its_help(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "tw.toml"
    config.write_text('[[topic]]\nname = "a"\nsources = ["https://x.org/"]\n')
    before = run(capsys, "--config", str(config), "topics")
    assert before[0] == 0
    assert run(capsys, "topics", "--config", str(config)) == before
    # the subcommand's own --config wins over the one before it
    assert run(capsys, "--config", "nowhere.toml", "topics", "--config", str(config)) == before
    for command in COMMANDS:
        _code, out, _ = run(capsys, *command.split(), "--help")
        assert "--config PATH" in out, command


def test_all_errors_of_a_config_file_are_reported_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "tw.toml"
    config.write_text(
        '[crawl]\nretry_tims = 3\ndownload_delay = "slow"\n[loging]\nlevel = "x"\n'
        '[[topic]]\nname = "a"\nsources = ["https://x.org/"]\nevery = "soon"\n'
        '[[topic]]\nname = "b"\nsources = ["ftp://x.org/"]\nalert_to = ["nobody"]\n'
    )
    code, out, err = run(capsys, "--config", str(config), "topics")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"topicwatch: error: {config}: loging: unknown section; did you mean logging? (known: "
        "database, smtp, crawl, alerts, logging, web, executor, topic)",
        f"topicwatch: error: {config}: crawl.retry_tims: unknown key; did you mean "
        "retry_times? (known: user_agent, obey_robots, concurrent_per_domain, download_delay, "
        "autothrottle, download_timeout, download_maxsize, retry_times, store_raw_html, "
        "max_articles_per_run, progress_every, max_pages_per_article, max_concurrent_runs, "
        "run_timeout, shutdown_grace, process_max_runs, process_max_memory)",
        f'topicwatch: error: {config}: crawl.download_delay: expected a duration like "15m" '
        'or "2h", got "slow"',
        f'topicwatch: error: {config}: topic[0].every: expected a duration like "15m" or '
        '"2h", got "soon"',
        f"topicwatch: error: {config}: topic[1].sources[0]: expected an http(s) URL, got "
        '"ftp://x.org/"',
        f"topicwatch: error: {config}: topic[1].alert_to[0]: expected an email address like "
        '"desk@example.org", got "nobody"',
    ]


def test_an_unreachable_database_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/nowhere"
    config = write_config(tmp_path / "tw.toml", url)
    code, _, err = run(capsys, "--config", str(config), "changes")
    assert code == 1
    [line] = error_lines(err)
    assert line.startswith(
        f"topicwatch: error: Cannot connect to the database at postgresql+psycopg://postgres@"
        f"127.0.0.1:{port}/nowhere:"
    )


def test_init_writes_the_example_once(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "etc" / "topicwatch.toml"
    code, out, _ = run(capsys, "init", str(target))
    assert code == 0
    assert out.startswith(f"Wrote {target}.")
    assert target.read_text() == (ROOT / "deploy" / "topicwatch.example.toml").read_text()
    code, out, _ = run(capsys, "--config", str(target), "topics")
    assert code == 0
    assert "konflik-rusia-ukraina" in out
    assert "every 15m" in out
    code, _, err = run(capsys, "init", str(target))
    assert code == 1
    assert err == f"topicwatch: error: {target} already exists; not overwriting it\n"


def test_without_smtp_email_commands_say_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "tw.toml", f"sqlite:///{tmp_path / 'db.sqlite'}")
    code, _, err = run(capsys, "--config", str(config), "test-email", "desk@example.org")
    assert code == 1
    assert err == (f"topicwatch: error: {config} has no [smtp] section; add one to send email\n")


def smtp_section(server: MailServer) -> str:
    return (
        f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"\n'
        'sender = "topicwatch <alerts@example.org>"\ntimeout = "10s"\n'
    )


def test_test_email_proves_the_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with mail_server() as server:
        config = write_config(tmp_path / "tw.toml", "sqlite://", smtp_section(server))
        code, out, err = run(capsys, "--config", str(config), "test-email", "desk@example.org")
        assert (code, error_lines(err)) == (0, [])
        assert out.startswith(f"Sent a test email to desk@example.org through {server.host}:")
        [mail] = server.to("desk@example.org")
        assert mail.message["Subject"] == "[topicwatch] Test email"
    code, _, err = run(capsys, "--config", str(config), "test-email", "desk@example.org")
    assert code == 1
    [line] = error_lines(err)
    assert line.startswith("topicwatch: error: ")
    assert f"{server.host}:{server.port}" in line


# -- the commands at work ----------------------------------------------------------------


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as served:
        yield served


TOPIC = "konflik"


@pytest.fixture
def configured(tmp_path: Path, db_url: str, site: FixtureSite) -> Path:
    body = f"""
[crawl]
download_delay = 0
autothrottle = false
retry_times = 0

[[topic]]
name = "{TOPIC}"
title = "Konflik Rusia Vs Ukraina"
sources = ["{site.listing_url(REFERENCE_TOPIC)}"]
every = "1h"
alert_to = ["desk@example.org"]

[[topic]]
name = "broken"
sources = ["{site.base_url}/topic/does-not-exist"]
cron = "*/30 * * * *"
"""
    return write_config(tmp_path / "tw.toml", db_url, body)


@pytest.mark.slow
def documented_json_fields(command: str) -> set[str]:
    """The fields docs/operations.md lists for ``topicwatch COMMAND --json``."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    section = guide.split(f"`topicwatch {command} --json` prints", 1)[1].split("\n\n`", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))


def test_crawl_status_changes_show_and_alerts(
    capfd: pytest.CaptureFixture[str], configured: Path, db_url: str, site: FixtureSite
) -> None:
    config = str(configured)
    code, out, _ = run(capfd, "--config", config, "db", "upgrade")
    assert code == 0
    assert out.startswith("The database at ")

    code, out, err = run(capfd, "--config", config, "status", "--json")
    assert code == 0
    assert [(e["topic"], e["last_run"], e["overdue"]) for e in json.loads(out)] == [
        (TOPIC, None, True),
        ("broken", None, True),
    ]

    code, out, err = run(capfd, "--config", config, "crawl", TOPIC)
    assert code == 0, err
    summary = out.splitlines()[0]
    assert re.fullmatch(
        rf"topicwatch\.run topic={TOPIC} run=\d+ status=ok pages=\d+ articles=6 new=6 "
        r"updated=0 removed=0 unchanged=0 errors=0 duration=\d+\.\ds",
        summary,
    )
    assert error_lines(err) == [
        f"topicwatch: alerts not sent: {config} has no [smtp] section; 6 alert(s) wait, pending"
    ]
    # each change line says how many alerts it queued (one recipient), none sent yet
    assert (
        len(re.findall(rf"topicwatch\.change kind=new topic={TOPIC} .* alerts=1$", err, re.M)) == 6
    )

    site.edit_body(SEED_ARTICLE_ID, insert_sentence="Kremlin membantah laporan itu.")
    code, out, _ = run(capfd, "--config", config, "crawl", TOPIC)
    assert code == 0
    assert " updated=1 " in out.splitlines()[0]

    code, out, err = run(capfd, "--config", config, "crawl", "broken", "--log-format", "json")
    assert code == 1
    [line] = out.splitlines()  # the summary is JSON too, its duration a number
    summary_json = json.loads(line)
    assert isinstance(summary_json.pop("duration"), float)
    assert summary_json == {
        "logger": "topicwatch.run",
        "topic": "broken",
        "run": summary_json["run"],
        "status": "failed",
        "pages": summary_json["pages"],
        "articles": 0,
        "new": 0,
        "updated": 0,
        "removed": 0,
        "unchanged": 0,
        "errors": 1,
        "message": f"{site.base_url}/topic/does-not-exist: HTTP 404",
    }
    # the child logs in the format the command was given: one JSON object per line
    lines = [line for line in err.splitlines() if not line.startswith("topicwatch: ")]
    records = [json.loads(line) for line in lines]
    [failure] = [r for r in records if r["logger"] == "topicwatch.fetch"]
    assert failure["level"] == "WARNING"
    assert failure["topic"] == "broken"
    assert failure["url"] == f"{site.base_url}/topic/does-not-exist"

    code, out, err = run(capfd, "--config", config, "crawl", "nonesuch")
    assert code == 1
    assert error_lines(err) == [
        f"topicwatch: error: No topic by the name of 'nonesuch' is defined in {config} "
        "(topics: konflik, broken)"
    ]

    # status agrees with the database
    engine = make_engine(db_url)
    try:
        known = {s.name: s for s in topic_status(session_factory(engine))}
    finally:
        engine.dispose()
    code, out, _ = run(capfd, "--config", config, "status", "--json")
    entries = {entry["topic"]: entry for entry in json.loads(out)}
    for name in (TOPIC, "broken"):
        last = known[name].last_run
        assert last is not None
        shown = entries[name]["last_run"]
        assert shown["id"] == last.id
        assert shown["status"] == last.status
        assert shown["articles_seen"] == last.counts["articles_seen"]
        assert shown["articles_updated"] == last.counts["articles_updated"]
        assert entries[name]["consecutive_failures"] == known[name].consecutive_failures
    assert entries["broken"]["consecutive_failures"] == 1
    assert entries[TOPIC]["overdue"] is False
    assert entries[TOPIC]["schedule"] == "every 1h"
    assert entries["broken"]["reason"] == f"{site.base_url}/topic/does-not-exist: HTTP 404"
    assert entries[TOPIC]["reason"] is None
    assert entries["broken"]["health"]["state"] == "ok"  # one failure is not yet broken
    assert entries[TOPIC]["health"]["state"] == "ok"
    code, out, _ = run(capfd, "--config", config, "status", "--wide")
    assert code == 0
    [daemon, blank, header, first, second] = out.splitlines()
    assert daemon == (
        f"Daemon: not running on this database (start it with `topicwatch --config {config} run`)"
    )
    assert blank == ""
    assert header.split()[:4] == ["TOPIC", "SCHEDULE", "LAST", "RUN"]
    assert header.split()[-3:] == ["FAILURES", "HEALTH", "REASON"]
    assert first.split()[0] == TOPIC
    assert first.endswith("  0         ok      -")
    assert second.split()[:5] == ["broken", "cron", "*/30", "*", "*"]
    assert second.endswith(f"  1         ok      {site.base_url}/topic/does-not-exist: HTTP 404")

    code, out, _ = run(capfd, "--config", config, "changes", "--json", "--since", "1h")
    changes = json.loads(out)
    assert all(set(change) == documented_json_fields("changes") for change in changes)
    assert [c["kind"] for c in changes].count("new") == 6
    [updated] = [c for c in changes if c["kind"] == "updated"]
    assert updated["fields"] == ["body"]
    code, out, _ = run(capfd, "--config", config, "changes", "--kind", "updated", "--wide")
    assert code == 0
    [header, row] = out.splitlines()
    assert header.split() == ["DETECTED", "KIND", "TOPIC", "FIELDS", "TITLE", "URL"]
    assert row.endswith(f"{updated['title']}  {updated['url']}")  # the title before the URL
    code, _, err = run(capfd, "--config", config, "changes", "--topic", "nope")
    assert (code, error_lines(err)) == (
        1,
        [
            f"topicwatch: error: No topic by the name of 'nope' is defined in {config} or "
            "known to the database (topics: konflik, broken)"
        ],
    )

    code, out, _ = run(capfd, "--config", config, "show", updated["url"])
    assert code == 0
    assert "diff v1 → v2:" in out
    assert "{+Kremlin membantah laporan itu.+}" in out
    code, _, err = run(capfd, "--config", config, "show", updated["url"], "--from", "7")
    assert code == 1
    assert error_lines(err) == [
        f"topicwatch: error: {updated['url']} has no version 7 (its versions: 1, 2)"
    ]
    code, _, err = run(capfd, "--config", config, "show", site.base_url + "/nope")
    assert code == 1
    assert error_lines(err) == [
        f"topicwatch: error: No article with the URL '{site.base_url}/nope' is in the database."
    ]
    # found by its canonical form, as the crawler spells it
    for spelling in (updated["url"] + "?utm_source=x", updated["url"] + "/"):
        code, out, _ = run(capfd, "--config", config, "show", spelling)
        assert (code, out.splitlines()[0]) == (0, updated["url"])
    # else the closest stored URLs are suggested
    near = updated["url"][:-3]
    code, _, err = run(capfd, "--config", config, "show", near)
    assert (code, error_lines(err)) == (
        1,
        [
            f"topicwatch: error: No article with the URL '{near}' is in the database; did you "
            f"mean {updated['url']}?"
        ],
    )

    code, out, _ = run(capfd, "--config", config, "alerts", "--json")
    pending = json.loads(out)
    assert {a["status"] for a in pending} == {"pending"}
    assert len(pending) == 7  # six new and one updated, for the one recipient
    # the table has the titles, and fits the terminal: cut columns end in an ellipsis
    os.environ["COLUMNS"] = "120"
    try:
        code, out, _ = run(capfd, "--config", config, "alerts")
    finally:
        del os.environ["COLUMNS"]
    [header, *rows] = out.splitlines()
    assert header.split()[-3:] == ["TITLE", "URL", "ERROR"]
    assert len(rows) == 7
    assert max(len(line) for line in out.splitlines()) <= 120
    assert all("…" in row for row in rows)
    [_, *wide_rows] = run(capfd, "--config", config, "alerts", "--wide")[1].splitlines()
    assert pending[0]["title"] in wide_rows[0]
    assert pending[0]["title"][:8] in rows[0]

    # The SMTP server is down and the alerts are given up on at once: failed, then queued
    # again by `alerts retry`, they go out when it is back.
    down = configured.with_name("down.toml")
    down.write_text(
        configured.read_text()
        + "\n[alerts]\nmax_attempts = 1\n"
        + f'[smtp]\nhost = "127.0.0.1"\nport = {free_port()}\nsecurity = "none"\n'
        + 'sender = "topicwatch <alerts@example.org>"\n'
    )
    code, out, err = run(capfd, "--config", str(down), "alerts", "send")
    assert code == 1
    assert out == "topicwatch.alerts emails=0 sent=0 failed=7 deferred=0\n"
    assert "connection refused" in err
    code, out, err = run(capfd, "--config", config, "alerts", "retry", "424242")
    assert (code, out) == (1, "")
    assert error_lines(err) == ["topicwatch: error: no alert 424242 is in the database"]
    code, out, err = run(capfd, "--config", config, "alerts", "retry", "--topic", "nope")
    assert code == 1
    assert error_lines(err) == [
        f"topicwatch: error: No topic by the name of 'nope' is defined in {config} or known "
        "to the database (topics: konflik, broken)"
    ]
    code, out, err = run(capfd, "--config", config, "alerts", "retry")
    assert (code, error_lines(err)) == (0, [])
    assert out.startswith("Queued 7 failed alert(s) again;")
    code, out, _ = run(capfd, "--config", config, "alerts", "retry")
    assert (code, out) == (0, "No failed alerts.\n")

    with mail_server() as server:
        with_smtp = configured.with_name("smtp.toml")
        with_smtp.write_text(configured.read_text() + smtp_section(server))
        code, out, err = run(capfd, "--config", str(with_smtp), "alerts", "send")
        assert code == 0, err
        assert out == "topicwatch.alerts emails=1 sent=7 failed=0 deferred=0\n"
        [mail] = server.to("desk@example.org")
        assert mail.message["Subject"].startswith("[topicwatch] Konflik Rusia Vs Ukraina:")
    code, out, _ = run(capfd, "--config", config, "alerts")
    assert out == "No pending or failed alerts.\n"
    code, out, _ = run(capfd, "--config", config, "alerts", "--status", "sent")
    assert len(out.splitlines()) == 8


def test_the_daemon_refuses_an_outdated_schema_with_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_url: str
) -> None:
    config = write_config(tmp_path / "tw.toml", db_url)
    empty_database(db_url)
    code, _, err = run(capsys, "run", "--config", str(config))
    assert code == 2
    assert re.search(
        r"^\S+Z ERROR scheduler\.daemon Refusing to start: The database at "
        f"{re.escape(safe_url(db_url))} is empty \\(it has no topicwatch schema yet\\); run "
        f'"topicwatch --config {re.escape(str(config))} db upgrade" to create the schema\\.$',
        err,
        re.MULTILINE,
    )
