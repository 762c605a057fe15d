"""Retention of version texts on SQLite and PostgreSQL: exactly what the policy keeps."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from record_one import observation
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.digest import render_text
from alerts.dispatcher import change_items
from scheduler.cli import _render_history
from storage.db import read_session
from storage.history import article_history
from storage.models import Alert, ArticleVersion, Change
from storage.recording import record_outcomes
from storage.retention import StoredVersion, prune, texts_kept
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

DAY0 = datetime(2026, 10, 1, tzinfo=UTC)
URL = "https://news.example.org/internasional/2026/10/01/gencatan-senjata"
SECOND = "https://news.example.org/internasional/2026/10/01/lain"


def at(day: int, hour: int) -> datetime:
    return DAY0 + timedelta(days=day, hours=hour)


def test_the_policy_keeps_first_current_last_of_each_day_recent_and_protected() -> None:
    versions = [
        StoredVersion(1, at(0, 10)),
        StoredVersion(2, at(0, 12)),
        StoredVersion(3, at(1, 9)),
        StoredVersion(4, at(1, 15)),
        StoredVersion(5, at(1, 23)),
        StoredVersion(6, at(2, 8)),
        StoredVersion(7, at(25, 8)),
        StoredVersion(8, at(29, 8)),
    ]
    now = at(30, 0)
    kept = texts_kept(versions, current=8, text_for=10 * 86400, now=now)
    assert kept == {1, 2, 5, 6, 7, 8}
    assert texts_kept(versions, current=8, text_for=10 * 86400, now=now, protected={3}) == {
        1,
        2,
        3,
        5,
        6,
        7,
        8,
    }
    # The current version is kept even when it is not the newest number of its day.
    assert 4 in texts_kept(versions, current=4, text_for=10 * 86400, now=now)
    assert texts_kept(versions, current=8, text_for=None, now=now) == set(range(1, 9))


def topic(name: str, **options: object) -> TopicSpec:
    return TopicSpec(
        name=name,
        title=name,
        sources=(f"https://news.example.org/topic/{name}",),
        alert_to=("desk@example.org",),
        alert_cap=0,
        live_after=0,
        **options,  # type: ignore[arg-type]
    )


def record_history(sessions: sessionmaker[Session], topic_id: int, url: str) -> None:
    """Versions 1-8 at the times of the pure test above, v7 and v8 with raw HTML."""
    times = [at(0, 10), at(0, 12), at(1, 9), at(1, 15), at(1, 23), at(2, 8), at(25, 8), at(29, 8)]
    for number, moment in enumerate(times, start=1):
        page = observation(url, "Gencatan senjata", f"Versi {number}: " + "kata " * 200)
        if number >= 7:
            page = replace(page, raw_html=f"<html>{number}</html>".encode() * 50)
        record_outcomes(sessions, topic_id=topic_id, run_id=None, outcomes=[page], now=moment)


def texts(sessions: sessionmaker[Session], url: str = URL) -> dict[int, tuple[bool, bool]]:
    """Per version: (text kept, raw HTML kept)."""
    history = article_history(sessions, url)
    return {v.version: (v.text_pruned_at is None, v.has_raw_html) for v in history.versions}


@pytest.fixture
def sessions(session_factory: sessionmaker[Session], db_url: str) -> sessionmaker[Session]:
    return session_factory


def test_prune_keeps_exactly_what_the_policy_says_and_reports_the_space(
    sessions: sessionmaker[Session],
) -> None:
    sync_topics(
        sessions,
        [
            topic("ukraina", keep_text_for=10 * 86400.0, keep_raw_html_for=3 * 86400.0),
            topic("forever", keep_text_for=0.0, keep_raw_html_for=0.0),
        ],
    )
    ukraina = load_topic(sessions, "ukraina")[0]
    forever = load_topic(sessions, "forever")[0]
    record_history(sessions, ukraina, URL)
    record_history(sessions, forever, SECOND)  # listed by a topic that keeps everything
    # Every alert was sent, but the one of the change v2 -> v3, which is still pending.
    with sessions.begin() as session:
        session.execute(update(Alert).values(status="sent"))
        pending = session.scalars(
            select(Change.id).where(Change.from_version == 2, Change.to_version == 3)
        ).all()
        session.execute(update(Alert).where(Alert.change_id.in_(pending)).values(status="pending"))
        sizes = {
            version: len(body.encode()) + len(lead.encode()) + len(json.dumps(blocks))
            for version, body, lead, blocks in session.execute(
                select(
                    ArticleVersion.version,
                    ArticleVersion.body,
                    ArticleVersion.lead,
                    ArticleVersion.blocks,
                )
                .join(Change, Change.article_id == ArticleVersion.article_id)
                .where(Change.id.in_(pending))
            )
        }
    now = at(30, 0)
    dry = prune(sessions, now=now, dry_run=True)
    assert (dry.texts, dry.raw_html, dry.articles) == (1, 1, 1)
    assert texts(sessions)[4] == (True, False)  # nothing changed by the dry run
    report = prune(sessions, now=now)
    assert (report.texts, report.raw_html, report.articles) == (1, 1, 1)
    assert report.text_bytes == dry.text_bytes == sizes[4]
    assert report.raw_html_bytes == len(zlib.compress(b"<html>7</html>" * 50))
    assert report.per_topic == {"ukraina": 1}
    assert texts(sessions) == {
        1: (True, False),
        2: (True, False),
        3: (True, False),  # an unsent alert reports it
        4: (False, False),  # the only one the policy lets go
        5: (True, False),
        6: (True, False),
        7: (True, False),  # recent: text kept, raw HTML older than 3 days removed
        8: (True, True),
    }
    assert all(kept for kept, _ in texts(sessions, SECOND).values())
    assert prune(sessions, now=now).texts == 0  # nothing more to do

    # Once the alert is sent, v3 goes too; the current version never does.
    with sessions.begin() as session:
        session.execute(update(Alert).values(status="sent"))
    assert prune(sessions, now=at(60, 0)).texts == 1
    assert {v for v, (kept, _) in texts(sessions).items() if kept} == {1, 2, 5, 6, 7, 8}
    assert prune(sessions, now=at(400, 0)).texts == 0
    assert texts(sessions)[8][0]


def test_a_diff_of_a_pruned_version_says_its_text_is_gone(
    sessions: sessionmaker[Session],
) -> None:
    sync_topics(sessions, [topic("ukraina", keep_text_for=86400.0)])
    topic_id = load_topic(sessions, "ukraina")[0]
    record_history(sessions, topic_id, URL)
    with sessions.begin() as session:
        session.execute(update(Alert).values(status="sent"))
    prune(sessions, now=at(30, 0))
    history = article_history(sessions, URL)
    shown = _render_history(history, 3, 4)
    assert "  v4  2026-10-02T15:00:00Z" in shown
    assert "[text pruned]" in shown
    assert "the text of v3 is gone: the retention policy removed its lead and body" in shown
    assert "Versi" not in shown.split("diff v3 → v4:")[1]
    # A digest of a change from a pruned version says so rather than show a false diff.
    with read_session(sessions) as session:
        change = session.scalars(select(Change).where(Change.to_version == 4)).one()
        (item,) = change_items(session, [(change, URL)])
    text = render_text("Ukraina", "ukraina", "desk@example.org", [item])
    assert "The earlier version's text is gone" in text
    assert "{+Versi 4" not in text


def test_an_update_held_for_a_summary_keeps_its_versions(
    sessions: sessionmaker[Session],
) -> None:
    sync_topics(sessions, [topic("ukraina", keep_text_for=86400.0)])
    topic_id = load_topic(sessions, "ukraina")[0]
    record_history(sessions, topic_id, URL)
    with sessions.begin() as session:
        session.execute(update(Alert).values(status="sent"))
        session.execute(
            update(Change).where(Change.from_version == 3, Change.to_version == 4).values(held=True)
        )
    prune(sessions, now=at(30, 0))
    kept = {v for v, (text, _) in texts(sessions).items() if text}
    assert kept == set(range(1, 9))  # without the held update, 3 and 4 would go
