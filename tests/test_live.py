"""Live coverage and alert shaping: recognising live pages, and what their updates alert.

The recognition of a page is pure (:mod:`crawler.live`); the shaping is recorded, so it is
tested on SQLite and PostgreSQL with :func:`storage.recording.record_outcomes` and
:func:`storage.live.release` at chosen times.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from record_one import observation
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.digest import render_text
from alerts.dispatcher import change_items
from crawler.extraction.parsing import parse
from crawler.live import LiveSignal, live_signal
from storage.changes import NotModified, PageRead
from storage.db import read_session, upgrade
from storage.live import release
from storage.models import Alert, Article, Change
from storage.recording import record_outcomes
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
URL = "https://news.example.org/live/2026/11/26/serangan-rudal"
OTHER = "https://news.example.org/internasional/2026/11/26/perundingan"


# -- recognising a live page ---------------------------------------------------------------


def page(head: str = "", body: str = "<p>Satu.</p><p>Dua.</p>", title: str = "Judul") -> str:
    return f"<html><head>{head}</head><body><h1>{title}</h1><article>{body}</article></body></html>"


def ld(data: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


LIVE_BLOG = {
    "@context": "https://schema.org",
    "@type": "LiveBlogPosting",
    "headline": "Serangan rudal",
    "coverageStartTime": "2026-11-26T08:00:00+07:00",
    "liveBlogUpdate": [{"@type": "BlogPosting", "headline": "09:10 Sirene berbunyi"}],
}


@pytest.mark.parametrize(
    ("html", "title", "expected"),
    [
        (page(ld(LIVE_BLOG)), "Judul", LiveSignal("markup")),
        (page(ld({"@graph": [{"@type": "WebPage"}, LIVE_BLOG]})), "Judul", LiveSignal("markup")),
        (
            page(ld({**LIVE_BLOG, "coverageEndTime": "2026-11-26T10:00:00+07:00"})),
            "Judul",
            LiveSignal("markup", ended=True),
        ),
        (
            page(ld({**LIVE_BLOG, "coverageEndTime": "2026-11-27T10:00:00+07:00"})),
            "Judul",
            LiveSignal("markup"),
        ),
        (page(), "LIVE UPDATE Serangan rudal ke Kyiv", LiveSignal("marker")),
        (page(), "Live: Serangan rudal ke Kyiv", LiveSignal("marker")),
        (page(), "Live updates – rudal ke Kyiv", LiveSignal("marker")),
        (page(body='<div class="live-blog"><p>09:10 a</p><p>09:05 b</p></div>'), "J", "marker"),
        # A "live" ticker in the navigation, with no paragraphs, is not the article.
        (page(body='<ul class="live-updates"><li>a</li></ul><p>x</p><p>y</p>'), "J", None),
        (page(ld({"@type": "NewsArticle", "headline": "x"})), "Liverpool menang 2-1", None),
        (page(), "Delivery drones: live and well", None),
    ],
    ids=[
        "liveblogposting",
        "in-graph",
        "coverage-ended",
        "coverage-ends-later",
        "title-LIVE",
        "title-live-colon",
        "title-live-updates",
        "live-blog-container",
        "ticker-in-navigation",
        "news-article",
        "live-inside-a-word",
    ],
)
def test_a_page_is_recognised_as_live_by_its_markup_or_markers(
    html: str, title: str, expected: LiveSignal | str | None
) -> None:
    tree = parse(html, "https://news.example.org/a")
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    found = live_signal(tree, title, now=now)
    if isinstance(expected, str):
        assert found == LiveSignal("marker")
    else:
        assert found == expected


# -- shaping, recorded -----------------------------------------------------------------------


def topic(**options: object) -> TopicSpec:
    return TopicSpec(
        name="ukraina",
        title="Ukraina",
        sources=("https://news.example.org/topic/ukraina",),
        alert_to=("desk@example.org",),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def sessions(session_factory: sessionmaker[Session], db_url: str) -> sessionmaker[Session]:
    return session_factory


def setup(sessions: sessionmaker[Session], spec: TopicSpec) -> int:
    sync_topics(sessions, [spec])
    return load_topic(sessions, spec.name)[0]


def entries(count: int) -> str:
    return "\n\n".join(
        f"Pembaruan {n}: pasukan bergerak ke sektor {n}." for n in range(count, 0, -1)
    )


def read(url: str, count: int, **live: object) -> PageRead:
    return replace(observation(url, "Serangan rudal", entries(count)), **live)  # type: ignore[arg-type]


def record(
    sessions: sessionmaker[Session], topic_id: int, outcome: PageRead | NotModified, at: datetime
) -> None:
    record_outcomes(sessions, topic_id=topic_id, run_id=None, outcomes=[outcome], now=at)


def changes(sessions: sessionmaker[Session], url: str = URL) -> list[tuple[str, bool, int]]:
    """(kind, held, alert rows) of the article's changes, oldest first."""
    with read_session(sessions) as session:
        rows = session.execute(
            select(Change.kind, Change.held, Change.id)
            .join(Article, Article.id == Change.article_id)
            .where(Article.url == url)
            .order_by(Change.id)
        ).all()
        counts = {
            change_id: len(
                session.scalars(select(Alert.id).where(Alert.change_id == change_id)).all()
            )
            for _, _, change_id in rows
        }
    return [(kind, held, counts[change_id]) for kind, held, change_id in rows]


def article(sessions: sessionmaker[Session], url: str = URL) -> Article:
    with sessions(expire_on_commit=False) as session:
        found = session.scalars(select(Article).where(Article.url == url)).one()
        session.expunge(found)
        return found


def test_a_live_blog_alerts_when_new_then_summaries_per_period_then_ended(
    sessions: sessionmaker[Session],
) -> None:
    topic_id = setup(sessions, topic(live_summary_every=3600.0, live_ends_after=7200.0))
    record(sessions, topic_id, read(URL, 1, live="markup"), T0)
    assert article(sessions).live == "markup"
    for n in range(2, 6):  # an entry every 10 minutes
        record(sessions, topic_id, read(URL, n, live="markup"), T0 + timedelta(minutes=10 * n))
    assert changes(sessions) == [("new", False, 1)] + [("updated", True, 0)] * 4
    # Every version is recorded.
    assert article(sessions).current_version == 5
    # Within the period since the last alert (the new one) there is no summary.
    assert release(sessions, now=T0 + timedelta(minutes=59)) == []
    (summary,) = release(sessions, now=T0 + timedelta(minutes=61))
    assert (summary.kind, summary.folded, summary.alerts) == ("summary", 4, 1)
    assert release(sessions, now=T0 + timedelta(minutes=62)) == []

    # The digest item says how many updates since when, with the combined diff v1 -> v5.
    with read_session(sessions) as session:
        change = session.get_one(Change, summary.change_id)
        assert (change.from_version, change.to_version) == (1, 5)
        (item,) = change_items(session, [(change, URL)])
    text = render_text("Ukraina", "ukraina", "desk@example.org", [item])
    assert "1 summary" in text
    assert "4 updates since 2026-11-26 09:20 UTC" in text
    assert "{+Pembaruan 5:" in " ".join(text.split())

    # Another entry, then the markup says the coverage ended: one ended alert with it.
    record(sessions, topic_id, read(URL, 6, live="markup"), T0 + timedelta(minutes=70))
    record(
        sessions,
        topic_id,
        read(URL, 6, live="markup", live_ended=True),
        T0 + timedelta(minutes=75),
    )
    (ended,) = release(sessions, now=T0 + timedelta(minutes=76))
    assert (ended.kind, ended.folded, ended.alerts) == ("ended", 1, 1)
    stored = article(sessions)
    assert stored.live is None
    assert stored.live_until == T0 + timedelta(minutes=75)
    assert release(sessions, now=T0 + timedelta(hours=5)) == []
    assert [kind for kind, _, alerts in changes(sessions) if alerts] == ["new", "summary", "ended"]


def test_an_article_that_changes_at_most_checks_goes_live_and_ends_when_quiet(
    sessions: sessionmaker[Session],
) -> None:
    topic_id = setup(
        sessions, topic(live_after=2, live_window=3, alert_cap=0, live_ends_after=1800.0)
    )
    at = T0
    record(sessions, topic_id, read(URL, 1), at)
    for n in range(2, 4):  # two updates in a row: 2 of the last 3 checks, not more than 2
        at += timedelta(minutes=15)
        record(sessions, topic_id, read(URL, n), at)
    assert article(sessions).live is None
    assert changes(sessions) == [("new", False, 1), ("updated", False, 1), ("updated", False, 1)]
    at += timedelta(minutes=15)
    record(sessions, topic_id, read(URL, 4), at)  # 3 of the last 3
    assert article(sessions).live == "changes"
    assert changes(sessions)[-2:] == [("updated", True, 0), ("live", False, 1)]
    at += timedelta(minutes=15)
    record(sessions, topic_id, read(URL, 5), at)
    assert changes(sessions)[-1] == ("updated", True, 0)
    at += timedelta(minutes=15)
    record(sessions, topic_id, NotModified(URL), at)  # checked, not changed
    assert article(sessions).checks.endswith("11110")
    # No update for live_ends_after (30 minutes since the last one): ended, with the update.
    assert release(sessions, now=at) == []
    (ended,) = release(sessions, now=at + timedelta(minutes=16))
    assert (ended.kind, ended.folded) == ("ended", 1)
    assert article(sessions).live is None


def test_the_alert_cap_folds_the_rest_into_one_summary_and_other_articles_alert_at_once(
    sessions: sessionmaker[Session],
) -> None:
    topic_id = setup(sessions, topic(alert_cap=2, alert_cap_period=3600.0, live_after=0))
    record(sessions, topic_id, read(URL, 1), T0)  # new: not counted as an update's alert
    for n in range(2, 6):
        record(sessions, topic_id, read(URL, n), T0 + timedelta(minutes=n))
    assert changes(sessions) == [
        ("new", False, 1),
        ("updated", False, 1),
        ("updated", False, 1),
        ("updated", True, 0),
        ("updated", True, 0),
    ]
    # A normal article edited once in the meantime is alerted at once.
    record(sessions, topic_id, read(OTHER, 1), T0 + timedelta(minutes=6))
    record(sessions, topic_id, read(OTHER, 2), T0 + timedelta(minutes=7))
    assert changes(sessions, OTHER) == [("new", False, 1), ("updated", False, 1)]
    # The held updates go out as one summary once the period since the last alert passed.
    assert release(sessions, now=T0 + timedelta(minutes=62)) == []
    (summary,) = release(sessions, now=T0 + timedelta(minutes=64))
    assert (summary.kind, summary.folded, summary.alerts, summary.url) == ("summary", 2, 1, URL)
    assert article(sessions).live is None


def test_held_updates_of_a_topic_without_update_alerts_are_summarised_without_alerts(
    sessions: sessionmaker[Session],
) -> None:
    topic_id = setup(sessions, replace(topic(), alert_on=("new",)))
    record(sessions, topic_id, read(URL, 1, live="markup"), T0)
    record(sessions, topic_id, read(URL, 2, live="markup"), T0 + timedelta(minutes=5))
    (summary,) = release(sessions, now=T0 + timedelta(hours=2))
    assert summary.alerts == 0  # recorded and reported, but nobody asked for updates


def test_the_migration_keeps_existing_changes_and_goes_back(db_url: str) -> None:
    from alembic import command

    from storage.db import _connect, alembic_config, make_engine

    upgrade(db_url, "0009")
    engine = make_engine(db_url, foreign_keys=False)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO topics (id, name, definition, active, created_at, updated_at) "
                    "VALUES (1, 't', '{}', true, :at, :at)"
                ),
                {"at": T0},
            )
            connection.execute(
                text(
                    "INSERT INTO articles (id, url, first_seen, age_from, status, "
                    "current_version) VALUES (1, :url, :at, :at, 'live', 1)"
                ),
                {"url": URL, "at": T0},
            )
            connection.execute(
                text(
                    "INSERT INTO changes (id, kind, article_id, topic_id, fields, detected_at, "
                    "alerted) VALUES (1, 'updated', 1, 1, '[]', :at, true)"
                ),
                {"at": T0},
            )
        upgrade(db_url)
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT held, summary_id, folded FROM changes WHERE id = 1")
            ).one()
            assert (bool(row.held), row.summary_id, row.folded) == (False, None, 0)
            checks = connection.execute(text("SELECT checks, live FROM articles")).one()
            assert tuple(checks) == ("", None)
        with _connect(engine) as connection:
            config = alembic_config(db_url)
            config.attributes["connection"] = connection
            command.downgrade(config, "0009")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM changes")).scalar() == 1
    finally:
        engine.dispose()
