"""The alert outbox end to end: rows written by the repository, digests through aiosmtpd.

Every test runs on SQLite and on PostgreSQL (the ``session_factory`` fixture).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mailserver import PASSWORD, USER, MailServer, free_port, mail_server
from record_one import observation, record_gone, record_page
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from alerts.digest import MAX_DIGEST_BYTES
from alerts.dispatcher import DispatchReport, Requeued, dispatch, list_alerts, requeue_failed
from alerts.smtp import SmtpSettings
from storage.changes import PageRead
from storage.db import make_engine, upgrade
from storage.db import session_factory as make_session_factory
from storage.recording import record_outcomes
from storage.runs import finish_run, start_run
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SENDER = "topicwatch <alerts@example.org>"
DESK = "desk@example.org"
EDITOR = "editor@example.org"
SITE = "https://news.example/internasional"

EDITED_OLD = "Sumbernya adalah pejabat AS yang terlibat langsung."
EDITED_NEW = "Sumbernya adalah mantan pejabat AS yang terlibat langsung."

Factory = sessionmaker[Session]


def make_topic(
    factory: Factory,
    *,
    title: str = "Konflik Rusia Vs Ukraina",
    recipients: tuple[str, ...] = (DESK, EDITOR),
) -> int:
    spec = TopicSpec(
        name="konflik-rusia-ukraina",
        title=title,
        sources=("https://news.example/topic/konflik",),
        alert_to=recipients,
        alert_on=("new", "updated", "removed"),
    )
    sync_topics(factory, [spec], now=T0)
    topic_id, _ = load_topic(factory, spec.name)
    return topic_id


def record(factory: Factory, topic_id: int, obs: PageRead, now: datetime) -> None:
    run_id = start_run(factory, topic_id, now=now)
    record_page(factory, topic_id=topic_id, run_id=run_id, observation=obs, now=now)
    finish(factory, run_id, now)


def finish(factory: Factory, run_id: int, now: datetime) -> None:
    finish_run(factory, run_id, status="ok", counts={}, errors=[], stats={}, now=now)


def smtp_for(
    server: MailServer | None = None, *, port: int | None = None, **extra: object
) -> SmtpSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port if server else port,
        "security": "none",
        "sender": SENDER,
        "timeout": 10.0,
    }
    values.update(extra)
    return SmtpSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[MailServer]:
    with mail_server() as running:
        yield running


def statuses(factory: Factory) -> list[str]:
    return sorted(view.status for view in list_alerts(factory, None, 100, now=T0))


def test_digest_of_two_new_and_one_updated_reaches_each_recipient_once(
    session_factory: Factory, server: MailServer
) -> None:
    topic_id = make_topic(session_factory)
    edited = f"{SITE}/2026/01/04/pembicaraan-rahasia"
    record(
        session_factory,
        topic_id,
        observation(edited, "Pembicaraan Rahasia AS-Rusia", EDITED_OLD),
        T0 - timedelta(days=1),
    )
    first = dispatch(session_factory, smtp_for(server), now=T0 - timedelta(days=1))
    assert (first.sent_messages, first.sent_alerts) == (2, 2)

    record(
        session_factory,
        topic_id,
        observation(
            f"{SITE}/2026/01/05/sistem-pertahanan",
            "Ukraina Terima Sistem Pertahanan Udara",
            "Badan artikel.",
            lead="Kyiv menyebut sistem itu melindungi jaringan listrik.",
        ),
        T0,
    )
    record(
        session_factory,
        topic_id,
        observation(f"{SITE}/2026/01/05/harga-gandum", "Harga Gandum Naik", "Badan artikel kedua."),
        T0,
    )
    record(
        session_factory,
        topic_id,
        observation(edited, "Pembicaraan Rahasia AS dan Rusia", EDITED_NEW),
        T0,
    )

    report = dispatch(session_factory, smtp_for(server), now=T0 + timedelta(seconds=1))

    assert report == DispatchReport(
        sent_messages=2, sent_alerts=6, failed_alerts=0, deferred_alerts=0, errors=[]
    )
    assert len(server.received) == 4
    for recipient in (DESK, EDITOR):
        [received] = server.to(recipient)[1:]
        assert received.rcpt_tos == [recipient]
        message = received.message
        assert message["Subject"] == "[topicwatch] Konflik Rusia Vs Ukraina: 2 new, 1 updated"
        assert message["To"] == recipient
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        for part in (text, html):
            assert "Ukraina Terima Sistem Pertahanan Udara" in part
            assert "Harga Gandum Naik" in part
            assert f"{SITE}/2026/01/05/sistem-pertahanan" in part
            assert f"{SITE}/2026/01/05/harga-gandum" in part
            assert "Kyiv menyebut sistem itu melindungi jaringan listrik." in part
        assert "Sumbernya adalah {+mantan+} pejabat AS yang terlibat langsung." in text
        assert "[-AS-Rusia-]{+AS dan Rusia+}" in text
        assert ">mantan</ins> pejabat AS" in html

    sent = list_alerts(session_factory, "sent", 100)
    assert len(sent) == 8
    latest = [view for view in sent if view.sent_at == T0 + timedelta(seconds=1)]
    assert len(latest) == 6
    by_recipient = {view.recipient: view.message_id for view in latest}
    for recipient in (DESK, EDITOR):
        assert by_recipient[recipient] == server.to(recipient)[1].message["Message-ID"]
    assert all(view.attempts == 1 and view.last_error is None for view in sent)

    again = dispatch(session_factory, smtp_for(server), now=T0 + timedelta(hours=1))
    assert again == DispatchReport()
    assert len(server.received) == 4


def test_smtp_down_keeps_rows_pending_then_delivers_once(session_factory: Factory) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)
    record(session_factory, topic_id, observation(f"{SITE}/b", "Artikel B", "Isi B."), T0)
    port = free_port()
    smtp = smtp_for(port=port)

    down = dispatch(session_factory, smtp, now=T0, backoff=60.0)

    assert (down.sent_messages, down.deferred_alerts, down.failed_alerts) == (0, 2, 0)
    [error] = down.errors
    assert f"127.0.0.1:{port}" in error
    pending = list_alerts(session_factory, "pending", 10, now=T0)
    assert len(pending) == 2
    for view in pending:
        assert view.attempts == 1
        assert view.last_error == error
        assert view.next_attempt_at == T0 + timedelta(seconds=60)
        assert view.message_id is None
        assert view.sent_at is None

    with mail_server(port=port) as server:
        early = dispatch(session_factory, smtp, now=T0 + timedelta(seconds=30))
        assert early == DispatchReport()
        assert server.received == []

        later = dispatch(session_factory, smtp, now=T0 + timedelta(minutes=2))
        assert (later.sent_messages, later.sent_alerts, later.deferred_alerts) == (1, 2, 0)
        [received] = server.received
        assert received.message["Subject"] == "[topicwatch] Konflik Rusia Vs Ukraina: 2 new"

        assert dispatch(session_factory, smtp, now=T0 + timedelta(days=1)) == DispatchReport()
        assert len(server.received) == 1

    sent = list_alerts(session_factory, "sent", 10)
    assert [v.attempts for v in sent] == [2, 2]
    assert {v.message_id for v in sent} == {received.message["Message-ID"]}


def test_backoff_doubles_and_gives_up_after_max_attempts(
    session_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)
    smtp = smtp_for(port=free_port())

    dispatch(session_factory, smtp, now=T0, max_attempts=3, backoff=10.0)
    [view] = list_alerts(session_factory, None, 10, now=T0)
    assert view.next_attempt_at == T0 + timedelta(seconds=10)

    second = T0 + timedelta(seconds=10)
    dispatch(session_factory, smtp, now=second, max_attempts=3, backoff=10.0)
    [view] = list_alerts(session_factory, None, 10, now=second)
    assert (view.status, view.attempts) == ("pending", 2)
    assert view.next_attempt_at == second + timedelta(seconds=20)

    caplog.set_level(logging.WARNING, logger="alerts.dispatcher")
    third = second + timedelta(seconds=20)
    report = dispatch(session_factory, smtp, now=third, max_attempts=3, backoff=10.0)

    assert (report.failed_alerts, report.deferred_alerts) == (1, 0)
    [view] = list_alerts(session_factory, "failed", 10)
    assert view.attempts == 3
    assert "connection refused" in (view.last_error or "")
    errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and r.name == "alerts.dispatcher"
    ]
    assert len(errors) == 1
    assert (
        "Giving up on 1 alert(s) for desk@example.org (topic konflik-rusia-ukraina)"
        in errors[0].getMessage()
    )

    assert dispatch(session_factory, smtp, now=third + timedelta(days=1)) == DispatchReport()
    assert statuses(session_factory) == ["failed"]


def test_failed_alerts_are_queued_again_and_sent_once_the_server_is_back(
    session_factory: Factory, server: MailServer
) -> None:
    topic_id = make_topic(session_factory)
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)
    record(session_factory, topic_id, observation(f"{SITE}/b", "Artikel B", "Isi B."), T0)
    down = smtp_for(port=free_port())
    report = dispatch(session_factory, down, now=T0, max_attempts=1)
    assert (report.failed_alerts, report.sent_alerts) == (4, 0)
    failed = list_alerts(session_factory, "failed", 10)
    desk = sorted(v.id for v in failed if v.recipient == DESK)
    editor = sorted(v.id for v in failed if v.recipient == EDITOR)

    # By id: the desk's two; an id that is not there and one that is not failed are named.
    later = T0 + timedelta(hours=1)
    done = requeue_failed(session_factory, [*desk, 999_999], now=later)
    assert (done.queued, done.left) == (2, {999_999: "missing"})
    again = requeue_failed(session_factory, desk, now=later)
    assert (again.queued, again.left) == (0, {desk[0]: "pending", desk[1]: "pending"})
    views = {v.id: v for v in list_alerts(session_factory, None, 10, now=later)}
    assert [(views[i].status, views[i].attempts, views[i].next_attempt_at) for i in desk] == [
        ("pending", 0, later)
    ] * 2
    assert {views[i].status for i in editor} == {"failed"}
    assert "connection refused" in (views[desk[0]].last_error or "")

    # By topic: the rest.
    with pytest.raises(ValueError, match="No topic named 'nope' is in the database"):
        requeue_failed(session_factory, topic="nope")
    with pytest.raises(ValueError, match="not both"):
        requeue_failed(session_factory, desk, topic="konflik-rusia-ukraina")
    assert requeue_failed(session_factory, topic="konflik-rusia-ukraina", now=later).queued == 2
    assert requeue_failed(session_factory, now=later) == Requeued(queued=0)

    report = dispatch(session_factory, smtp_for(server), now=later, max_attempts=1)
    assert (report.sent_messages, report.sent_alerts, report.failed_alerts) == (2, 4, 0)
    assert len(server.to(DESK)) == 1
    assert len(server.to(EDITOR)) == 1
    assert statuses(session_factory) == ["sent"] * 4


def test_without_smtp_rows_stay_pending_with_one_warning(
    session_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    topic_id = make_topic(session_factory)
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)
    record(session_factory, topic_id, observation(f"{SITE}/b", "Artikel B", "Isi B."), T0)
    caplog.set_level(logging.WARNING, logger="alerts.dispatcher")

    report = dispatch(session_factory, None, now=T0)

    assert report == DispatchReport(deferred_alerts=4)
    warnings = [r for r in caplog.records if r.name == "alerts.dispatcher"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "SMTP is not configured" in warnings[0].getMessage()
    assert statuses(session_factory) == ["pending"] * 4
    assert all(v.attempts == 0 for v in list_alerts(session_factory, "pending", 10))


def test_topic_without_recipients_sends_nothing(
    session_factory: Factory, server: MailServer
) -> None:
    topic_id = make_topic(session_factory, recipients=())
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)

    assert dispatch(session_factory, smtp_for(server), now=T0) == DispatchReport()
    assert server.received == []


def test_line_breaks_in_titles_cannot_add_headers_or_recipients(
    session_factory: Factory, server: MailServer
) -> None:
    topic_id = make_topic(
        session_factory, title="Konflik\r\nBcc: victim@example.org", recipients=(DESK,)
    )
    record(
        session_factory,
        topic_id,
        observation(f"{SITE}/a", "Breaking\r\nBcc: victim@example.org\r\n\r\nbody", "Isi."),
        T0,
    )

    report = dispatch(session_factory, smtp_for(server), now=T0)

    assert report.sent_messages == 1
    [received] = server.received
    assert received.rcpt_tos == [DESK]
    message = received.message
    assert message["Bcc"] is None
    assert message["Subject"] == "[topicwatch] Konflik Bcc: victim@example.org: 1 new"
    assert "\n" not in message["Subject"]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "* Breaking Bcc: victim@example.org body" in text


def test_script_in_a_title_is_escaped_in_html(session_factory: Factory, server: MailServer) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    record(
        session_factory,
        topic_id,
        observation(f"{SITE}/a", '<script>alert("x")</script> Judul', "Isi <b>tebal</b>."),
        T0,
    )

    dispatch(session_factory, smtp_for(server), now=T0)

    [received] = server.received
    html = received.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Judul" in html
    text = received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert '<script>alert("x")</script> Judul' in text


def test_removed_article_is_reported_with_its_last_title(
    session_factory: Factory, server: MailServer
) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    url = f"{SITE}/video"
    record(session_factory, topic_id, observation(url, "Video: Serangan Drone", "Isi."), T0)
    dispatch(session_factory, smtp_for(server), now=T0)
    run_id = start_run(session_factory, topic_id, now=T0 + timedelta(hours=1))
    record_gone(
        session_factory, topic_id=topic_id, run_id=run_id, url=url, now=T0 + timedelta(hours=1)
    )
    finish(session_factory, run_id, T0 + timedelta(hours=1))

    dispatch(session_factory, smtp_for(server), now=T0 + timedelta(hours=1))

    received = server.received[-1].message
    assert received["Subject"] == "[topicwatch] Konflik Rusia Vs Ukraina: 1 removed"
    text = received.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "* Video: Serangan Drone" in text
    assert url in text


def test_rejected_login_is_recorded_clearly(session_factory: Factory, tmp_path: Path) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)

    with mail_server(tls_dir=tmp_path, mode="starttls") as server:
        wrong = smtp_for(
            server, security="starttls", ca_file=server.ca_file, username=USER, password="wrong"
        )
        report = dispatch(session_factory, wrong, now=T0)
        assert server.received == []

        [view] = list_alerts(session_factory, "pending", 10, now=T0)
        assert view.last_error is not None
        assert (
            f"The SMTP server 127.0.0.1:{server.port} rejected the login of user '{USER}': 535"
            in view.last_error
        )
        assert report.errors == [view.last_error]

        right = smtp_for(
            server, security="starttls", ca_file=server.ca_file, username=USER, password=PASSWORD
        )
        dispatch(session_factory, right, now=T0 + timedelta(minutes=5))
        [received] = server.received
        assert received.tls
        assert received.authenticated


def test_concurrent_dispatchers_send_each_digest_once(
    session_factory: Factory, server: MailServer
) -> None:
    topic_id = make_topic(
        session_factory, recipients=tuple(f"reader{i}@example.org" for i in range(6))
    )
    for n in range(3):
        record(
            session_factory, topic_id, observation(f"{SITE}/{n}", f"Artikel {n}", f"Isi {n}."), T0
        )
    reports: list[DispatchReport] = []
    failures: list[BaseException] = []
    start = threading.Barrier(3, timeout=30)

    def run() -> None:
        try:
            start.wait()
            reports.append(dispatch(session_factory, smtp_for(server), now=T0))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()

    assert failures == []
    assert sum(r.sent_messages for r in reports) == 6
    assert sum(r.sent_alerts for r in reports) == 18
    assert len(server.received) == 6
    assert sorted(r.rcpt_tos[0] for r in server.received) == [
        f"reader{i}@example.org" for i in range(6)
    ]
    assert statuses(session_factory) == ["sent"] * 18


def test_an_unconfirmed_delivery_is_retried_with_the_same_message_id(
    session_factory: Factory, server: MailServer
) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)
    # The server stores the message but answers only after the client gave up waiting.
    server.handler.reply_delay = 3.0

    first = dispatch(session_factory, smtp_for(server, timeout=1.0), now=T0)

    assert first.sent_messages == 0
    assert "may or may not have accepted it" in first.errors[0]
    [view] = list_alerts(session_factory, "pending", 10, now=T0)
    assert view.attempts == 1
    assert view.message_id == server.received[0].message["Message-ID"]

    record(
        session_factory,
        topic_id,
        observation(f"{SITE}/b", "Artikel B", "Isi B."),
        T0 + timedelta(seconds=30),
    )
    server.handler.reply_delay = 0.0
    second = dispatch(session_factory, smtp_for(server), now=T0 + timedelta(minutes=5))

    # The retried digest keeps its Message-ID; the newer change goes in a digest of its own.
    assert second.sent_messages == 2
    ids = [r.message["Message-ID"] for r in server.received]
    assert len(ids) == 3
    assert ids[0] == ids[1] != ids[2]
    assert [r.message["Subject"] for r in server.received[1:]] == [
        "[topicwatch] Konflik Rusia Vs Ukraina: 1 new",
        "[topicwatch] Konflik Rusia Vs Ukraina: 1 new",
    ]
    assert statuses(session_factory) == ["sent", "sent"]


def test_list_alerts_filters_by_status(session_factory: Factory) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)

    [view] = list_alerts(session_factory, "pending", 10)
    assert (view.recipient, view.topic, view.kind, view.url, view.title) == (
        DESK,
        "konflik-rusia-ukraina",
        "new",
        f"{SITE}/a",
        "Artikel A",
    )
    assert list_alerts(session_factory, "sent", 10) == []
    with pytest.raises(ValueError, match="Unknown alert status 'done'"):
        list_alerts(session_factory, "done", 10)


def test_changes_of_a_run_still_going_wait_for_its_end(
    session_factory: Factory, server: MailServer
) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    run_id = start_run(session_factory, topic_id, now=T0)
    for n in range(2):
        obs = observation(f"{SITE}/berita-{n}", f"Berita {n}", "Isi berita.")
        record_page(session_factory, topic_id=topic_id, run_id=run_id, observation=obs, now=T0)
        report = dispatch(session_factory, smtp_for(server), now=T0)
        assert report.sent_messages == 0  # half a run's changes never go out on their own
    finish(session_factory, run_id, T0)
    report = dispatch(session_factory, smtp_for(server), now=T0)
    assert (report.sent_messages, report.sent_alerts) == (1, 2)
    assert server.received[-1].message["Subject"].endswith(": 2 new")


# -- Message-IDs across databases ---------------------------------------------------------------


@pytest.fixture
def second_db_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """Another empty database of the same kind as ``db_url`` (a second installation)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second' / 'topicwatch.db'}"
        return
    server = db_url.rsplit("/", 1)[0]
    name = f"topicwatch_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"{server}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def four_new_articles(factory: Factory) -> None:
    topic_id = make_topic(factory, recipients=(DESK,))
    run_id = start_run(factory, topic_id, now=T0)
    record_outcomes(
        factory,
        topic_id=topic_id,
        run_id=run_id,
        outcomes=[observation(f"{SITE}/{n}", f"Artikel {n}", f"Isi {n}.") for n in range(4)],
        now=T0,
    )
    finish(factory, run_id, T0)


def test_two_databases_give_the_same_alerts_different_message_ids(
    session_factory: Factory, second_db_url: str, server: MailServer
) -> None:
    upgrade(second_db_url)
    second_engine = make_engine(second_db_url)
    try:
        second = make_session_factory(second_engine)
        for factory in (session_factory, second):
            four_new_articles(factory)
            assert sorted(v.id for v in list_alerts(factory, "pending", 10)) == [1, 2, 3, 4]
            assert dispatch(factory, smtp_for(server), now=T0).sent_messages == 1
        first_sent, second_sent = (list_alerts(f, "sent", 10) for f in (session_factory, second))
    finally:
        second_engine.dispose()

    first, again = server.received
    assert first.message["Subject"] == again.message["Subject"]  # the same digest, twice
    assert first.message["Message-ID"] != again.message["Message-ID"]
    assert {v.message_id for v in first_sent} == {first.message["Message-ID"]}
    assert {v.message_id for v in second_sent} == {again.message["Message-ID"]}


def test_a_database_restored_from_a_backup_gives_new_digests_new_message_ids(
    sqlite_url: str, tmp_path: Path, server: MailServer
) -> None:
    upgrade(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    backup = tmp_path / "backup.db"

    engine = make_engine(sqlite_url)
    try:
        factory = make_session_factory(engine)
        topic_id = make_topic(factory, recipients=(DESK,))
        with sqlite3.connect(path) as source, sqlite3.connect(backup) as copy:
            source.backup(copy)
        record(factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)
        dispatch(factory, smtp_for(server), now=T0)
    finally:
        engine.dispose()

    # The backup is restored: alert id 1 is handed out again, for another change.
    with sqlite3.connect(backup) as source, sqlite3.connect(path) as restored:
        source.backup(restored)
    engine = make_engine(sqlite_url)
    try:
        factory = make_session_factory(engine)
        later = T0 + timedelta(hours=1)
        record(factory, topic_id, observation(f"{SITE}/b", "Artikel B", "Isi B."), later)
        [view] = list_alerts(factory, "pending", 10, now=later)
        assert view.id == 1
        dispatch(factory, smtp_for(server), now=later)
    finally:
        engine.dispose()

    before, after = (r.message["Message-ID"] for r in server.received)
    assert before != after


# -- permanent and temporary refusals ---------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "reply"),
    [
        ("rcpt", "554 5.7.1 <desk@example.org>: Recipient address rejected: Access denied"),
        ("data", "554 5.6.0 Message rejected as spam"),
    ],
)
def test_a_permanent_refusal_fails_the_alerts_at_once_with_the_reply(
    session_factory: Factory,
    server: MailServer,
    caplog: pytest.LogCaptureFixture,
    step: str,
    reply: str,
) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)
    record(session_factory, topic_id, observation(f"{SITE}/b", "Artikel B", "Isi B."), T0)
    setattr(server.handler, f"{step}_reply", reply)
    caplog.set_level(logging.WARNING, logger="alerts.dispatcher")

    report = dispatch(session_factory, smtp_for(server), now=T0, max_attempts=8)

    assert (report.sent_messages, report.failed_alerts, report.deferred_alerts) == (0, 2, 0)
    assert server.received == []
    failed = list_alerts(session_factory, "failed", 10)
    assert len(failed) == 2
    for view in failed:
        assert view.attempts == 1
        assert reply in (view.last_error or "")
        assert f"127.0.0.1:{server.port}" in (view.last_error or "")
    [line] = [r.getMessage() for r in caplog.records if r.name == "alerts.dispatcher"]
    assert line.startswith(
        "Giving up on 2 alert(s) for desk@example.org (topic konflik-rusia-ukraina) without "
        "retrying: "
    )
    assert reply in line
    assert "\n" not in line


@pytest.mark.parametrize("step", ["rcpt", "data"])
def test_a_temporary_refusal_is_retried_with_backoff(
    session_factory: Factory, server: MailServer, step: str
) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)
    setattr(server.handler, f"{step}_reply", "451 4.3.0 Try again later")

    report = dispatch(session_factory, smtp_for(server), now=T0, backoff=60.0)

    assert (report.sent_messages, report.failed_alerts, report.deferred_alerts) == (0, 0, 1)
    [view] = list_alerts(session_factory, "pending", 10, now=T0)
    assert (view.attempts, view.next_attempt_at) == (1, T0 + timedelta(seconds=60))
    assert "451 4.3.0 Try again later" in (view.last_error or "")

    setattr(server.handler, f"{step}_reply", None)
    later = dispatch(session_factory, smtp_for(server), now=T0 + timedelta(minutes=1))
    assert (later.sent_messages, later.sent_alerts) == (1, 1)
    assert statuses(session_factory) == ["sent"]


# -- the size of a digest ---------------------------------------------------------------------


def many_new_articles(factory: Factory, topic_id: int, count: int, now: datetime) -> set[str]:
    lead = "Pemerintah menyatakan situasi di perbatasan terkendali, kata juru bicara. " * 5
    urls = {f"{SITE}/2026/01/05/berita-{n:05d}" for n in range(count)}
    run_id = start_run(factory, topic_id, now=now)
    record_outcomes(
        factory,
        topic_id=topic_id,
        run_id=run_id,
        outcomes=[
            observation(url, f"Berita nomor {n}", f"Isi berita {n}.", lead=lead)
            for n, url in enumerate(sorted(urls))
        ],
        now=now,
    )
    finish(factory, run_id, now)
    return urls


def links_in(message_text: str) -> list[str]:
    return [line.strip() for line in message_text.splitlines() if line.strip().startswith(SITE)]


def test_a_digest_over_the_size_cap_is_split_and_loses_no_change(
    session_factory: Factory, server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    urls = many_new_articles(session_factory, topic_id, 2000, T0)
    caplog.set_level(logging.WARNING, logger="alerts.dispatcher")

    report = dispatch(session_factory, smtp_for(server), now=T0)

    received = server.received
    assert len(received) >= 2
    assert (report.sent_messages, report.sent_alerts) == (len(received), 2000)
    assert all(len(r.raw) <= MAX_DIGEST_BYTES for r in received)
    seen: list[str] = []
    for number, email in enumerate(received, 1):
        message = email.message
        assert message["Subject"].endswith(f" (part {number} of {len(received)})")
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        seen += links_in(text)
    assert seen == sorted(urls)  # each change in exactly one email, oldest first
    assert len({r.message["Message-ID"] for r in received}) == len(received)
    sent = list_alerts(session_factory, "sent", 3000)
    by_url = {view.url: view.message_id for view in sent}
    for email in received:
        text = email.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert {by_url[url] for url in links_in(text)} == {email.message["Message-ID"]}
    [line] = [r.getMessage() for r in caplog.records if r.name == "alerts.dispatcher"]
    assert (
        f"has 2000 changes, more than fit in one email of at most {MAX_DIGEST_BYTES} bytes "
        f"([alerts] max_digest_bytes); sending it as {len(received)} emails" in line
    )


def test_parts_after_a_failed_one_wait_for_it_and_keep_their_order(
    session_factory: Factory, server: MailServer
) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    many_new_articles(session_factory, topic_id, 60, T0)
    cap = 32 * 1024
    server.handler.data_reply = "451 4.3.0 Try again later"

    first = dispatch(session_factory, smtp_for(server), now=T0, max_digest_bytes=cap)

    assert first.sent_messages == 0
    pending = list_alerts(session_factory, "pending", 100, now=T0)
    assert len(pending) == 60
    tried = [v for v in pending if v.attempts == 1]
    assert 0 < len(tried) < 60  # only the first part was tried; the others wait for it
    assert max(v.id for v in tried) < min(v.id for v in pending if v.attempts == 0)

    server.handler.data_reply = None
    early = dispatch(session_factory, smtp_for(server), now=T0 + timedelta(seconds=30))
    assert early == DispatchReport()  # nothing overtakes the part waiting for its retry

    later = dispatch(
        session_factory, smtp_for(server), now=T0 + timedelta(minutes=1), max_digest_bytes=cap
    )
    assert later.sent_alerts == 60
    assert all(len(r.raw) <= cap for r in server.received)
    seen = [
        url
        for r in server.received
        for url in links_in(r.message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    ]
    assert len(seen) == 60
    assert seen == sorted(seen)
    assert statuses(session_factory) == ["sent"] * 60


# -- order ------------------------------------------------------------------------------------


def test_a_digest_held_by_an_outage_never_arrives_after_a_newer_one(
    session_factory: Factory,
) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)
    port = free_port()
    down = dispatch(session_factory, smtp_for(port=port), now=T0, backoff=60.0)
    assert down.deferred_alerts == 1

    newer = T0 + timedelta(seconds=10)
    record(session_factory, topic_id, observation(f"{SITE}/b", "Artikel B", "Isi B."), newer)
    with mail_server(port=port) as server:
        # The server is back, but A's retry is not due yet: B waits for it.
        held = dispatch(session_factory, smtp_for(server), now=newer + timedelta(seconds=10))
        assert held == DispatchReport()
        assert server.received == []

        due = dispatch(session_factory, smtp_for(server), now=T0 + timedelta(seconds=60))
        assert due.sent_alerts == 2
        text = "".join(
            r.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            for r in server.received
        )
    assert text.index(f"{SITE}/a") < text.index(f"{SITE}/b")
    assert statuses(session_factory) == ["sent", "sent"]


def test_a_database_that_lost_its_installation_token_gets_a_new_one(
    session_factory: Factory, server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    topic_id = make_topic(session_factory, recipients=(DESK,))
    record(session_factory, topic_id, observation(f"{SITE}/a", "Artikel A", "Isi A."), T0)
    with session_factory.begin() as session:
        session.execute(text("DELETE FROM installation"))
    caplog.set_level(logging.WARNING, logger="alerts.dispatcher")

    assert dispatch(session_factory, smtp_for(server), now=T0).sent_messages == 1

    with session_factory() as session:
        [token] = session.execute(text("SELECT token FROM installation")).scalars().all()
    assert len(token) == 32
    assert "made a new one" in caplog.text
