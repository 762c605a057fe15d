"""Alerts to chat channels through Apprise, from the same outbox as email.

Real parts on 127.0.0.1: Apprise's ``json://`` and ``form://`` services post to a local HTTP
server that records what it got; aiosmtpd takes the email. Each outbox test runs on SQLite and
on PostgreSQL (the ``session_factory`` fixture).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from channel_server import ChannelServer, channel_server
from mailserver import MailServer, free_port, mail_server
from record_one import observation, record_page
from sqlalchemy.orm import Session, sessionmaker

from alerts.channels import Channel, ChannelError, channel_message, send_to_channel
from alerts.digest import DigestItem
from alerts.dispatcher import DispatchReport, dispatch, list_alerts
from alerts.smtp import SmtpSettings
from scheduler.cli import main
from scheduler.config import ConfigError, parse_config
from storage.changes import PageRead
from storage.runs import finish_run, start_run
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
DESK = "desk@example.org"
SITE = "https://news.example/internasional"
OLD = "Sumbernya adalah pejabat AS yang terlibat langsung."
NEW = "Sumbernya adalah mantan pejabat AS yang terlibat langsung."
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202e]")

Factory = sessionmaker[Session]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests (under Apprise) would send 127.0.0.1 through a proxy named by the environment.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def hooks() -> Iterator[ChannelServer]:
    with channel_server() as running:
        yield running


@pytest.fixture
def server() -> Iterator[MailServer]:
    with mail_server() as running:
        yield running


def make_topic(factory: Factory, channels: list[Channel], emails: tuple[str, ...] = ()) -> int:
    spec = TopicSpec(
        name="konflik",
        title="Konflik Rusia Vs Ukraina",
        sources=("https://news.example/topic/konflik",),
        alert_to=emails,
        notify=tuple(channel.key for channel in channels),
    )
    sync_topics(factory, [spec], now=T0)
    return load_topic(factory, spec.name)[0]


def record(factory: Factory, topic_id: int, obs: PageRead, now: datetime) -> None:
    run_id = start_run(factory, topic_id, now=now)
    record_page(factory, topic_id=topic_id, run_id=run_id, observation=obs, now=now)
    finish_run(factory, run_id, status="ok", counts={}, errors=[], stats={}, now=now)


def smtp_for(server: MailServer) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        security="none",
        sender="topicwatch <alerts@example.org>",
        timeout=10.0,
    )


def by_key(*channels: Channel) -> dict[str, Channel]:
    return {channel.key: channel for channel in channels}


def test_a_channel_gets_a_short_plain_summary_once_beside_the_email(
    session_factory: Factory, hooks: ChannelServer, server: MailServer
) -> None:
    slack = Channel(url=hooks.url("json", "slack"))
    topic_id = make_topic(session_factory, [slack], (DESK,))
    edited = f"{SITE}/2026/01/04/pembicaraan-rahasia"
    record(session_factory, topic_id, observation(edited, "Pembicaraan Rahasia", OLD), T0)
    channels = by_key(slack)
    first = dispatch(session_factory, smtp_for(server), now=T0, channels=channels)
    assert first.sent_messages == 2  # the email and the channel message
    record(session_factory, topic_id, observation(edited, "Pembicaraan Rahasia", NEW), T0)
    later = T0 + timedelta(minutes=1)
    second = dispatch(session_factory, smtp_for(server), now=later, channels=channels)
    assert second.sent_messages == 2
    assert second.errors == []

    got = hooks.at("slack")
    assert len(got) == 2
    assert "application/json" in got[0].content_type
    new, updated = (received.json() for received in got)
    assert new["title"] == "Konflik Rusia Vs Ukraina: 1 new"
    assert new["message"] == f"NEW: Pembicaraan Rahasia\n{edited}"
    assert updated["title"] == "Konflik Rusia Vs Ukraina: 1 updated"
    assert updated["message"].splitlines() == [
        "UPDATED: Pembicaraan Rahasia (changed: body)",
        edited,
        "body: Sumbernya adalah {+mantan+} pejabat AS yang terlibat langsung.",
    ]
    assert len(server.received) == 2
    # Nothing is sent twice.
    again = dispatch(session_factory, smtp_for(server), now=later + timedelta(days=1))
    assert again.sent_messages == 0
    assert len(hooks.at("slack")) == 2
    sent = list_alerts(session_factory, "sent", now=later)
    assert {view.recipient for view in sent} == {DESK, slack.key}
    assert all(view.message_id for view in sent)


def test_a_500_is_retried_with_backoff_and_delivered_once(
    session_factory: Factory, hooks: ChannelServer
) -> None:
    hook = Channel(url=hooks.url("form", "hook"))
    hooks.answers["hook"] = [500, 200]
    topic_id = make_topic(session_factory, [hook])
    record(session_factory, topic_id, observation(f"{SITE}/a", "Satu", OLD), T0)
    channels = by_key(hook)

    down = dispatch(session_factory, None, now=T0, backoff=30.0, channels=channels)
    assert (down.sent_messages, down.deferred_alerts) == (0, 1)
    (pending,) = list_alerts(session_factory, "pending", now=T0)
    assert pending.attempts == 1
    assert pending.last_error is not None
    assert pending.last_error.startswith(f"The channel {hook.key} did not take the message")
    assert pending.next_attempt_at == T0 + timedelta(seconds=30)
    # Not due yet: nothing is tried.
    early = dispatch(session_factory, None, now=T0 + timedelta(seconds=10), channels=channels)
    assert early.sent_messages == 0
    assert len(hooks.at("hook")) == 1

    up = dispatch(session_factory, None, now=T0 + timedelta(seconds=31), channels=channels)
    assert up.sent_messages == 1
    assert (
        dispatch(session_factory, None, now=T0 + timedelta(days=1), channels=channels)
        == DispatchReport()
    )
    attempts = hooks.at("hook")
    assert len(attempts) == 2
    assert attempts[1].form()["title"] == "Konflik Rusia Vs Ukraina: 1 new"
    assert attempts[1].form()["message"] == f"NEW: Satu\n{SITE}/a"


def test_one_channel_down_never_holds_back_the_email_or_another_channel(
    session_factory: Factory,
    hooks: ChannelServer,
    server: MailServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    working = Channel(url=hooks.url("json", "working"))
    dead = Channel(url=f"json://127.0.0.1:{free_port()}/dead")
    topic_id = make_topic(session_factory, [dead, working], (DESK,))
    channels = by_key(working, dead)
    for number in range(2):
        when = T0 + timedelta(minutes=number)
        record(
            session_factory, topic_id, observation(f"{SITE}/{number}", f"Judul {number}", OLD), when
        )
        report = dispatch(
            session_factory,
            smtp_for(server),
            now=when,
            max_attempts=2,
            backoff=1.0,
            channels=channels,
        )
        assert report.sent_messages == 2
    assert len(hooks.at("working")) == 2
    assert len(server.received) == 2
    with caplog.at_level(logging.ERROR, logger="alerts.dispatcher"):
        dispatch(
            session_factory,
            smtp_for(server),
            now=T0 + timedelta(hours=1),
            max_attempts=2,
            channels=channels,
        )
    failed = list_alerts(session_factory, "failed", now=T0 + timedelta(hours=1))
    assert {view.recipient for view in failed} == {dead.key}
    assert {view.attempts for view in failed} == {2}
    assert any(
        record.levelno == logging.ERROR and dead.key in record.getMessage()
        for record in caplog.records
    )


def test_a_channel_url_from_the_environment_never_reaches_the_database(
    session_factory: Factory, hooks: ChannelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = Channel(env="TOPICWATCH_TEST_HOOK")
    topic_id = make_topic(session_factory, [secret])
    record(session_factory, topic_id, observation(f"{SITE}/a", "Satu", OLD), T0)
    channels = by_key(secret)
    unset = dispatch(session_factory, None, now=T0, backoff=1.0, channels=channels)
    assert unset.errors == [
        "The environment variable TOPICWATCH_TEST_HOOK (a notify_env) is not set"
    ]
    monkeypatch.setenv("TOPICWATCH_TEST_HOOK", hooks.url("json", "secret-token"))
    later = T0 + timedelta(minutes=1)
    assert dispatch(session_factory, None, now=later, channels=channels).sent_messages == 1
    assert len(hooks.at("secret-token")) == 1
    (view,) = list_alerts(session_factory, "sent", now=later)
    assert view.recipient == "notify:$TOPICWATCH_TEST_HOOK"
    assert "secret-token" not in repr(view)


def test_a_channel_no_longer_configured_is_retried_then_failed(
    session_factory: Factory, hooks: ChannelServer
) -> None:
    gone = Channel(url=hooks.url("json", "gone"))
    topic_id = make_topic(session_factory, [gone])
    record(session_factory, topic_id, observation(f"{SITE}/a", "Satu", OLD), T0)
    report = dispatch(session_factory, None, now=T0, max_attempts=1, channels={})
    assert report.failed_alerts == 1
    assert "no longer in the configuration" in report.errors[0]
    assert hooks.received == []


def test_scraped_markup_and_control_characters_are_sent_as_plain_text(
    session_factory: Factory, hooks: ChannelServer
) -> None:
    hook = Channel(url=hooks.url("json", "hook"))
    topic_id = make_topic(session_factory, [hook])
    title = "<b>Bold</b> <script>alert(1)</script>\x1b[31m red\u202e\r\nInjected: header"
    record(session_factory, topic_id, observation(f"{SITE}/x", title, OLD), T0)
    assert dispatch(session_factory, None, now=T0, channels=by_key(hook)).sent_messages == 1
    (got,) = hooks.at("hook")
    message = got.json()["message"]
    first = message.splitlines()[0]
    assert first == "NEW: <b>Bold</b> <script>alert(1)</script> [31m red Injected: header"
    assert not CONTROL.search(message)
    assert not CONTROL.search(got.json()["title"])


def item(number: int, body: str = "") -> DigestItem:
    return DigestItem(
        kind="updated",
        url=f"{SITE}/{number}",
        title=f"Judul {number}",
        detected_at=T0,
        published=None,
        lead="",
        body=body or NEW * 20,
        fields=("body",),
        old_body=OLD * 20,
    )


def test_a_message_fits_the_channel_and_counts_what_did_not_fit() -> None:
    items = [item(number) for number in range(30)]
    title, body = channel_message("Topik", items, body_limit=1000, title_limit=0)
    assert title == "Topik: 30 updated"
    assert len(title) + 2 + len(body) <= 1000
    assert body.startswith("UPDATED: Judul 0 (changed: body)\n")
    assert re.search(r"… and \d+ more changes$", body)
    _, roomy = channel_message("Topik", items[:2], body_limit=32768, title_limit=250)
    assert roomy.count("body: ") == 2


def test_config_channels_per_topic_from_the_environment_and_by_default(tmp_path: Path) -> None:
    text = """
[alerts]
notify = ["json://127.0.0.1/default"]

[[topic]]
name = "own"
sources = ["https://news.example/a"]
notify = ["slack://T000/B000/XXXX"]
notify_env = ["TOPICWATCH_SLACK"]

[[topic]]
name = "inherits"
sources = ["https://news.example/b"]

[[topic]]
name = "none"
sources = ["https://news.example/c"]
notify = []
"""
    config = parse_config(text, tmp_path / "tw.toml", env={"TOPICWATCH_SLACK": "tgram://x/y"})
    own, inherits, none = config.topics
    default = Channel(url="json://127.0.0.1/default")
    slack = Channel(url="slack://T000/B000/XXXX")
    assert own.notify == (slack.key, "notify:$TOPICWATCH_SLACK")
    assert inherits.notify == (default.key,)
    assert none.notify == ()
    assert set(config.channels) == {default.key, slack.key, "notify:$TOPICWATCH_SLACK"}
    assert "XXXX" not in own.to_json()
    assert config.secret_variables() == ("TOPICWATCH_SLACK", "TOPICWATCH_WEB_TOKEN")
    assert own.alerts_for("new") == own.notify

    with pytest.raises(ConfigError, match="Apprise does not know this nosuch://… URL") as caught:
        parse_config(
            '[alerts]\nnotify = ["nosuch://host/secret-token"]\n', tmp_path / "tw.toml", env={}
        )
    assert "secret-token" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"topic\[0\]\.notify\[0\]: expected an Apprise URL"):
        parse_config(
            '[[topic]]\nname = "a"\nsources = ["https://n.example/"]\nnotify = ["desk"]\n',
            tmp_path / "tw.toml",
            env={},
        )


def test_send_to_channel_names_a_url_apprise_does_not_know() -> None:
    with pytest.raises(ChannelError, match="Apprise does not understand") as caught:
        send_to_channel("nosuchservice://secret", "notify:x", "t", "b")
    assert caught.value.permanent
    assert "secret" not in str(caught.value)


def test_test_notify_sends_to_a_url_and_to_the_configured_channels(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, hooks: ChannelServer
) -> None:
    hooks.answers["broken"] = [500]
    config = tmp_path / "tw.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n'
        f'[alerts]\nnotify = ["{hooks.url("json", "configured")}"]\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "test-notify", hooks.url("form", "given")]) == 0
    assert main(["--config", str(config), "test-notify"]) == 0
    assert main(["--config", str(config), "test-notify", hooks.url("json", "broken")]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "Sent a test message to the URL form://…"
    assert "did not take the message" in err
    (given,) = hooks.at("given")
    assert given.form()["title"] == "topicwatch test message"
    assert len(hooks.at("configured")) == 1
