"""Live coverage end to end: the daemon as a real process, the fixture site's live pages
(one with LiveBlogPosting markup, one without any live markup) gaining an entry at every
request, and digests received by the aiosmtpd server.

The daemon records every version; the people of the topic get, about each live page, one
alert when it is new or went live, summaries at most once per ``live_summary_every``, and one
alert when it ended; a normal article edited once in the same run is alerted at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixture_site import FixtureSite
from mailserver import mail_server
from sqlalchemy import func, select
from test_daemon import DaemonProcess, Database, config_toml, start, topic_toml, wait_for

from storage.db import read_session, upgrade
from storage.models import Alert, Article, ArticleVersion, Change

pytestmark = pytest.mark.slow

DESK = "desk@example.org"
TOPIC = "serangan"


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    upgrade(db_url)
    db = Database(db_url)
    yield db
    db.close()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


def kinds(database: Database, url: str) -> list[tuple[str, bool, int]]:
    """(kind, held, alert rows) of the article's changes, oldest first."""
    with read_session(database.sessions) as session:
        rows = session.execute(
            select(Change.kind, Change.held, func.count(Alert.id))
            .join(Article, Article.id == Change.article_id)
            .outerjoin(Alert, Alert.change_id == Change.id)
            .where(Article.url == url)
            .group_by(Change.id, Change.kind, Change.held)
            .order_by(Change.id)
        ).all()
    return [(kind, held, alerts) for kind, held, alerts in rows]


def versions(database: Database, url: str) -> int:
    with read_session(database.sessions) as session:
        return session.scalar(select(Article.current_version).where(Article.url == url)) or 0


def test_live_pages_alert_when_live_then_in_summaries_then_ended_and_edits_alert_at_once(
    tmp_path: Path, database: Database, daemons: list[DaemonProcess]
) -> None:
    with FixtureSite() as site, mail_server() as smtp:
        site.add_topic(TOPIC, "Serangan rudal")
        blog = site.add_article("Serangan rudal ke Kyiv", topics=[TOPIC], words=120).id
        plain = site.add_article("Situasi terkini di Kharkiv", topics=[TOPIC], words=120).id
        normal = site.add_article("Perundingan damai di Jenewa", topics=[TOPIC], words=120).id
        site.set_live(blog, "markup")
        site.set_live(plain, "plain")
        urls = {name: site.article_url(i) for name, i in (("blog", blog), ("plain", plain))}
        normal_url = site.article_url(normal)
        config = tmp_path / "topicwatch.toml"
        config.write_text(
            config_toml(
                database.url,
                topic_toml(
                    TOPIC,
                    site.listing_url(TOPIC),
                    title="Serangan rudal",
                    every="1s",
                    alert_to=[DESK],
                    live_after=2,
                    live_window=3,
                    live_summary_every="4s",
                    live_ends_after="3s",
                    keep_text_for="2s",
                ),
                smtp=smtp,
            )
            .replace('dispatch_every = "2s"', 'dispatch_every = "1s"')
            .replace("[database]\n", '[database]\nprune_every = "1s"\n')
        )
        daemon = start(daemons, config, tmp_path)
        # The page with markup is live from its first read; the other goes live after
        # changing at more than 2 of its last 3 checks.
        wait_for(
            lambda: ("live", False, 1) in kinds(database, urls["plain"]),
            90,
            "the plain live page to go live",
            daemon,
        )
        site.edit_body(normal, insert_sentence="Delegasi Ukraina tiba di Jenewa.")
        wait_for(
            lambda: any(
                normal_url in mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                and "updated" in str(mail.message["Subject"])
                for mail in smtp.to(DESK)
            ),
            60,
            "the edit of the normal article to be mailed",
            daemon,
        )
        wait_for(
            lambda: all(
                any(k == "summary" and alerts for k, _, alerts in kinds(database, url))
                for url in urls.values()
            ),
            60,
            "a summary of each live page",
            daemon,
        )
        site.end_live(blog)
        site.end_live(plain)
        wait_for(
            lambda: all(kinds(database, url)[-1][0] == "ended" for url in urls.values()),
            60,
            "the ended alert of each live page",
            daemon,
        )
        wait_for(
            lambda: _pending(database) == 0,
            30,
            "every alert to be sent",
            daemon,
        )
        assert daemon.stop() == 0

    mails = smtp.to(DESK)
    subjects = [str(m.message["Subject"]) for m in mails]
    texts = [m.message.get_body(("plain",)).get_content() for m in mails]  # type: ignore[union-attr]
    for name, url in urls.items():
        history = kinds(database, url)
        # Every version is recorded: one change per version, the updates all held.
        updates = [h for h in history if h[0] == "updated"]
        assert versions(database, url) == 1 + len(updates) >= 5, (name, history)
        # Once live (the markup page from its first read, the other from its live alert),
        # no update alerts by itself.
        went_live = 0 if name == "blog" else history.index(("live", False, 1))
        live_updates = [h for h in history[went_live:] if h[0] == "updated"]
        assert live_updates, (name, history)
        assert all(held and not alerts for _, held, alerts in live_updates), (name, history)
        alerted = [kind for kind, _, alerts in history[went_live:] if alerts]
        assert alerted[-1] == "ended", (name, history)
        assert alerted.count("ended") == 1
        assert "summary" in alerted
        # Fewer alerts than versions.
        assert len(alerted) < len(live_updates) + 1, (name, history)
        mentioned = [t for t in texts if url in t]
        assert len(mentioned) == len([h for h in history if h[2]]), (name, subjects)
    assert kinds(database, urls["blog"])[0] == ("new", False, 1)
    blog_first = next(t for t in texts if urls["blog"] in t)
    assert "Live coverage" in blog_first
    assert kinds(database, normal_url) == [("new", False, 1), ("updated", False, 1)]
    assert any(re.search(r"\d+ updates? since", t) for t in texts)
    assert any("went live" in s for s in subjects), subjects
    assert any("ended" in s for s in subjects), subjects
    # The daemon pruned the texts of old versions meanwhile (keep_text_for is 2 s), never the
    # current one's, nor one an unsent alert reported: every digest above has its diff.
    assert re.search(r"INFO topicwatch\.retention texts=[1-9]", daemon.log())
    with read_session(database.sessions) as session:
        for url in urls.values():
            rows = session.execute(
                select(ArticleVersion.version, ArticleVersion.text_pruned_at, ArticleVersion.body)
                .join(Article, Article.id == ArticleVersion.article_id)
                .where(Article.url == url)
                .order_by(ArticleVersion.version)
            ).all()
            assert rows[-1].text_pruned_at is None
            assert rows[-1].body
            assert rows[0].text_pruned_at is None
            assert any(row.text_pruned_at is not None for row in rows), url
    assert not any("text is gone" in t for t in texts)
    assert "Traceback" not in daemon.log()


def _pending(database: Database) -> int:
    with read_session(database.sessions) as session:
        return session.scalar(select(func.count(Alert.id)).where(Alert.status == "pending")) or 0
