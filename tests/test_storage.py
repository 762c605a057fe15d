"""The storage layer on SQLite and PostgreSQL: schema, recording observations, runs, reads."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from record_one import record_gone, record_not_modified, record_page
from sqlalchemy import Engine, column, func, insert, select, table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from storage.changes import LaterPage, NotModified, PageRead, with_rules
from storage.db import (
    DatabaseUnavailable,
    SchemaOutdated,
    check_schema,
    connect_check,
    head_revision,
    make_engine,
    schema_status,
    upgrade,
)
from storage.db import session_factory as sessions_on
from storage.history import UnknownArticle, article_history, list_changes, raw_html
from storage.jobs import is_topicwatch_object
from storage.listings import known_state, note_listing, recheck_candidates
from storage.models import (
    Alert,
    Article,
    ArticlePage,
    ArticleVersion,
    Base,
    Change,
    CrawlRun,
    Topic,
    UTCDateTime,
)
from storage.recording import ChangeRecord, record_outcomes
from storage.runs import (
    UnknownRun,
    finish_run,
    get_run,
    mark_unfinished_runs,
    start_run,
    topic_status,
)
from storage.spec import TopicSpec
from storage.topics import UnknownTopic, load_topic, sync_topics

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
URL = "https://news.example.org/internasional/7300001/rusia-ukraina"


def spec(name: str = "ukraina", alert_to: tuple[str, ...] = ("desk@example.org",)) -> TopicSpec:
    return TopicSpec(
        name=name,
        title=name.title(),
        sources=(f"https://news.example.org/topic/{name}",),
        alert_to=alert_to,
        alert_on=("new", "updated", "removed"),
    )


def observation(url: str = URL, title: str = "Judul A", body: str = "Isi A", **kw: Any) -> PageRead:
    published = kw.pop("published", "2026-11-26T09:00:00+07:00")
    fields = {
        "title": title,
        "lead": kw.pop("lead", ""),
        "body": body,
        "authors": "|".join(kw.pop("authors", ("Penulis",))),
        "dates": "2026-11-26T09:00:00+07:00",
    }
    hashes = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in fields.items()}
    digest = hashlib.sha256("".join(hashes[k] for k in sorted(hashes)).encode()).hexdigest()
    return PageRead(
        url=url,
        title=title,
        body=body,
        lead=fields["lead"],
        authors=tuple(fields["authors"].split("|")),
        published=published,
        modified=None,
        fingerprint=digest,
        field_hashes=hashes,
        **kw,
    )


def add_topic(factory: sessionmaker[Session], *specs: TopicSpec) -> list[int]:
    sync_topics(factory, specs or (spec(),))
    return [load_topic(factory, s.name)[0] for s in specs or (spec(),)]


def count(factory: sessionmaker[Session], model: type[Base]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def alerts(factory: sessionmaker[Session], change_id: int) -> list[Alert]:
    with factory() as session:
        return list(
            session.scalars(
                select(Alert).where(Alert.change_id == change_id).order_by(Alert.recipient)
            )
        )


def article(factory: sessionmaker[Session], url: str = URL) -> Article:
    with factory() as session:
        return session.scalars(select(Article).where(Article.url == url)).one()


# -- schema ------------------------------------------------------------------------------------


def test_migrations_create_exactly_the_models_schema(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": is_topicwatch_object}
        )
        assert compare_metadata(context, Base.metadata) == []
    assert schema_status(engine) == (head_revision(), head_revision())
    check_schema(engine)


def test_check_schema_refuses_an_empty_database(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert schema_status(engine) == (None, head_revision())
        with pytest.raises(SchemaOutdated) as raised:
            check_schema(engine)
    finally:
        engine.dispose()
    message = str(raised.value)
    assert message.endswith(
        ' is empty (it has no topicwatch schema yet); run "topicwatch db upgrade" to create '
        "the schema."
    )
    assert "None" not in message


def test_timestamps_come_back_as_utc(session_factory: sessionmaker[Session]) -> None:
    jakarta = timezone(timedelta(hours=7))
    (topic_id,) = add_topic(session_factory)
    run_id = start_run(session_factory, topic_id, now=datetime(2026, 11, 26, 17, 0, tzinfo=jakarta))
    started = get_run(session_factory, run_id).started_at
    assert started == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert started.tzinfo is UTC
    with pytest.raises(ValueError, match="has no time zone"):
        start_run(session_factory, topic_id, now=datetime(2026, 11, 26, 10, 0))


# -- recording observations ----------------------------------------------------------------------


def test_new_unchanged_updated(session_factory: sessionmaker[Session]) -> None:
    (topic_id,) = add_topic(session_factory, spec(alert_to=("a@example.org", "b@example.org")))
    run_id = start_run(session_factory, topic_id, now=NOW)

    new = record_page(
        session_factory, topic_id=topic_id, run_id=run_id, observation=observation(), now=NOW
    )
    assert new == ChangeRecord(
        id=new.id if new else 0,
        kind="new",
        url=URL,
        title="Judul A",
        topic="ukraina",
        fields=(),
        from_version=None,
        to_version=1,
        alerted=True,
    )
    assert new is not None
    rows = alerts(session_factory, new.id)
    assert [(a.recipient, a.status, a.attempts, a.next_attempt_at) for a in rows] == [
        ("a@example.org", "pending", 0, NOW),
        ("b@example.org", "pending", 0, NOW),
    ]

    later = NOW + timedelta(minutes=15)
    same = observation(etag='"v1"', last_modified="Wed, 26 Nov 2026 03:00:00 GMT")
    assert (
        record_page(session_factory, topic_id=topic_id, run_id=run_id, observation=same, now=later)
        is None
    )
    stored = article(session_factory)
    assert (stored.last_checked, stored.etag, stored.current_version) == (later, '"v1"', 1)

    edited = observation(title="Judul A (diperbarui)", body="Isi A, diperbarui")
    updated = record_page(
        session_factory, topic_id=topic_id, run_id=run_id, observation=edited, now=later
    )
    assert updated is not None
    assert (updated.kind, updated.fields, updated.from_version, updated.to_version) == (
        "updated",
        ("body", "title"),
        1,
        2,
    )
    assert updated.title == "Judul A (diperbarui)"
    assert len(alerts(session_factory, updated.id)) == 2
    assert count(session_factory, ArticleVersion) == 2
    with session_factory() as session:
        change = session.get(Change, updated.id)
        assert change is not None
        assert change.crawl_run_id == run_id


def test_not_modified_moves_last_checked_only(session_factory: sessionmaker[Session]) -> None:
    (topic_id,) = add_topic(session_factory)
    record_page(session_factory, topic_id=topic_id, run_id=None, observation=observation(), now=NOW)
    later = NOW + timedelta(hours=1)
    result = record_not_modified(
        session_factory, topic_id=topic_id, run_id=None, url=URL, now=later, etag='"v2"'
    )
    assert result is None
    stored = article(session_factory)
    assert (stored.last_checked, stored.etag, stored.current_version) == (later, '"v2"', 1)
    assert (
        record_not_modified(session_factory, topic_id=topic_id, run_id=None, url=URL + "-unknown")
        is None
    )
    assert count(session_factory, Article) == 1


def test_the_later_pages_of_an_article_are_kept_with_their_validators(
    session_factory: sessionmaker[Session],
) -> None:
    (topic_id,) = add_topic(session_factory)
    page_2, page_3 = LaterPage(URL + "/2", etag='"p2"'), LaterPage(URL + "/3", raw_sha256="c3")
    split = observation(etag='"p1"', pages=(page_2, page_3))
    record_page(session_factory, topic_id=topic_id, run_id=None, observation=split, now=NOW)

    def stored_pages() -> tuple[LaterPage, ...]:
        known = known_state(session_factory, [URL])[URL]
        listed = note_listing(session_factory, topic_id, [URL], NOW).known[URL]
        later = NOW + timedelta(hours=7)  # due again
        due = recheck_candidates(session_factory, topic_id, later, 86400.0, exclude=())
        assert [k.pages for k in due] == [known.pages] == [listed.pages]
        return known.pages

    assert stored_pages() == (page_2, page_3)
    # Not modified: the validators the later pages answered with replace the stored ones.
    page_2_now = replace(page_2, etag='"p2b"')
    outcome = NotModified(URL, pages=(page_2_now, page_3))
    assert record_outcomes(
        session_factory, topic_id=topic_id, run_id=None, outcomes=[outcome], now=NOW
    )
    assert stored_pages() == (page_2_now, page_3)
    # A 304 of every page keeps them.
    record_not_modified(session_factory, topic_id=topic_id, run_id=None, url=URL, now=NOW)
    assert stored_pages() == (page_2_now, page_3)
    # Read again, now on one page: the later pages are gone with the content they held.
    record_page(session_factory, topic_id=topic_id, run_id=None, observation=observation(), now=NOW)
    assert stored_pages() == ()
    assert count(session_factory, ArticlePage) == 0


def test_a_b_a_is_recorded_but_alerted_once(session_factory: sessionmaker[Session]) -> None:
    (topic_id,) = add_topic(session_factory)
    a, b = observation(title="Headline A"), observation(title="Headline B")
    kinds = []
    for step, obs in enumerate((a, b, a, b)):
        change = record_page(
            session_factory,
            topic_id=topic_id,
            run_id=None,
            observation=obs,
            now=NOW + timedelta(minutes=step),
        )
        assert change is not None
        kinds.append(
            (
                change.kind,
                change.to_version,
                change.alerted,
                len(alerts(session_factory, change.id)),
            )
        )
    assert kinds == [
        ("new", 1, True, 1),
        ("updated", 2, True, 1),
        ("updated", 3, False, 0),
        ("updated", 4, False, 0),
    ]
    assert count(session_factory, Alert) == 2


def test_a_page_read_by_new_rules_is_a_silent_new_baseline(
    session_factory: sessionmaker[Session],
) -> None:
    """A release that reads the lead differently stores the page as the article's new
    version, without a change or an alert; the next edit is compared with that version."""
    (topic_id,) = add_topic(session_factory)
    old = observation(lead="Deskripsi meta")
    record_page(session_factory, topic_id=topic_id, run_id=None, observation=old, now=NOW)
    reread = observation(lead="Ringkasan yang terlihat")
    marked = {**reread.field_hashes, "lead": with_rules(reread.field_hashes["lead"], 2)}
    reread = dataclasses.replace(reread, fingerprint="f" * 64, field_hashes=marked)
    later = NOW + timedelta(hours=1)
    assert (
        record_page(session_factory, topic_id=topic_id, run_id=None, observation=reread, now=later)
        is None
    )
    assert article(session_factory).current_version == 2
    assert count(session_factory, Change) == 1  # the article's "new"
    assert count(session_factory, Alert) == 1
    edited = dataclasses.replace(reread, fingerprint="e" * 64, field_hashes={**marked, "body": "x"})
    change = record_page(
        session_factory, topic_id=topic_id, run_id=None, observation=edited, now=later
    )
    assert change is not None
    assert (change.kind, change.fields, change.from_version, change.to_version) == (
        "updated",
        ("body",),
        2,
        3,
    )


def test_removed_and_restored(session_factory: sessionmaker[Session]) -> None:
    (topic_id,) = add_topic(session_factory, spec(alert_to=("desk@example.org",)))
    record_page(session_factory, topic_id=topic_id, run_id=None, observation=observation(), now=NOW)

    removed = record_gone(session_factory, topic_id=topic_id, run_id=None, url=URL, now=NOW)
    assert removed is not None
    assert (removed.kind, removed.from_version, removed.to_version, removed.title) == (
        "removed",
        1,
        None,
        "Judul A",
    )
    assert len(alerts(session_factory, removed.id)) == 1
    assert article(session_factory).status == "removed"
    assert record_gone(session_factory, topic_id=topic_id, run_id=None, url=URL) is None

    back = record_page(
        session_factory, topic_id=topic_id, run_id=None, observation=observation(), now=NOW
    )
    assert back is not None
    assert (back.kind, back.from_version, back.to_version) == ("restored", 1, 1)
    # "restored" alerts go to whoever hears of removals.
    assert [a.recipient for a in alerts(session_factory, back.id)] == ["desk@example.org"]
    assert count(session_factory, ArticleVersion) == 1
    assert article(session_factory).status == "live"

    record_gone(session_factory, topic_id=topic_id, run_id=None, url=URL)
    edited = observation(body="Isi A, setelah dipulihkan")
    back_edited = record_page(session_factory, topic_id=topic_id, run_id=None, observation=edited)
    assert back_edited is not None
    assert (back_edited.kind, back_edited.fields, back_edited.to_version) == (
        "restored",
        ("body",),
        2,
    )

    assert record_gone(session_factory, topic_id=topic_id, run_id=None, url=URL + "x") is None
    assert count(session_factory, Article) == 1


def test_a_change_and_its_alerts_are_one_transaction(
    session_factory: sessionmaker[Session],
) -> None:
    # The second recipient is too long for the alerts table; it fails after the article, its
    # version and the change were written: none of them may remain.
    too_long = "x" * 330 + "@example.org"
    (topic_id,) = add_topic(session_factory, spec(alert_to=("ok@example.org", too_long)))
    with pytest.raises(DBAPIError, match=r"recipient|320"):
        record_page(session_factory, topic_id=topic_id, run_id=None, observation=observation())
    for model in (Article, ArticleVersion, Change, Alert):
        assert count(session_factory, model) == 0, model.__name__


def test_an_article_shared_by_two_topics(session_factory: sessionmaker[Session]) -> None:
    first, second = spec("first", ("one@example.org",)), spec("second", ("two@example.org",))
    first_id, second_id = add_topic(session_factory, first, second)

    new_first = record_page(
        session_factory, topic_id=first_id, run_id=None, observation=observation()
    )
    # The second topic reads the same content: new to it, but no second version.
    new_second = record_page(
        session_factory, topic_id=second_id, run_id=None, observation=observation()
    )
    assert new_first is not None
    assert new_second is not None
    assert (new_second.kind, new_second.topic, new_second.to_version) == ("new", "second", 1)
    assert [a.recipient for a in alerts(session_factory, new_second.id)] == ["two@example.org"]
    assert count(session_factory, ArticleVersion) == 1

    # An edit seen by the first topic is recorded for both, each with its recipients.
    edited = observation(body="Isi A, diperbarui")
    updated = record_page(session_factory, topic_id=first_id, run_id=None, observation=edited)
    assert updated is not None
    assert updated.topic == "first"
    changes = list_changes(session_factory, kind="updated", limit=10)
    assert sorted((c.topic, c.to_version) for c in changes) == [("first", 2), ("second", 2)]
    by_topic = {c.topic: c for c in changes}
    assert [a.recipient for a in alerts(session_factory, by_topic["second"].id)] == [
        "two@example.org"
    ]
    # ... so the second topic's own crawl finds nothing more to say.
    assert record_page(session_factory, topic_id=second_id, run_id=None, observation=edited) is None


def test_concurrent_recording_of_one_url(session_factory: sessionmaker[Session]) -> None:
    topic_ids = add_topic(session_factory, spec("first"), spec("second"))
    barrier = threading.Barrier(len(topic_ids), timeout=30)
    results: dict[int, ChangeRecord | None] = {}
    failures: list[BaseException] = []

    def crawl(topic_id: int) -> None:
        try:
            barrier.wait()
            note_listing(session_factory, topic_id, [URL, URL + "-2"], NOW)
            results[topic_id] = record_page(
                session_factory, topic_id=topic_id, run_id=None, observation=observation(), now=NOW
            )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=crawl, args=(t,)) for t in topic_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert count(session_factory, Article) == 2
    assert count(session_factory, ArticleVersion) == 1
    assert sorted((r.kind, r.topic, r.to_version) for r in results.values() if r) == [
        ("new", "first", 1),
        ("new", "second", 1),
    ]


def test_raw_html_is_kept_when_given(session_factory: sessionmaker[Session]) -> None:
    (topic_id,) = add_topic(session_factory)
    page = b"<html><body><p>Isi A</p></body></html>" * 50
    record_page(
        session_factory,
        topic_id=topic_id,
        run_id=None,
        observation=observation(raw_html=page, raw_sha256=hashlib.sha256(page).hexdigest()),
    )
    assert raw_html(session_factory, URL, 1) == page
    assert raw_html(session_factory, URL, 2) is None
    assert known_state(session_factory, [URL])[URL].raw_sha256 == hashlib.sha256(page).hexdigest()


# -- listings and re-checks ----------------------------------------------------------------------


def test_note_listing_reports_what_the_topic_knows(session_factory: sessionmaker[Session]) -> None:
    first_id, second_id = add_topic(session_factory, spec("first"), spec("second"))
    urls = [f"https://news.example.org/a/{i}" for i in range(3)]
    assert note_listing(session_factory, first_id, urls, NOW).announced == set()
    record_page(session_factory, topic_id=first_id, run_id=None, observation=observation(urls[0]))
    later = NOW + timedelta(minutes=15)
    assert note_listing(session_factory, first_id, urls, later).announced == {urls[0]}
    # Known to the database is not known to another topic: it must still read it.
    assert note_listing(session_factory, second_id, urls, later).announced == set()
    state = note_listing(session_factory, first_id, urls, later).known
    assert sorted(state) == urls
    assert (state[urls[0]].current_version, state[urls[0]].status) == (1, "live")
    assert state[urls[1]].current_version == 0

    stored = article(session_factory, urls[1])
    assert (stored.first_seen, stored.last_seen_on_listing, stored.current_version) == (
        NOW,
        later,
        0,
    )
    state = known_state(session_factory, [*urls, "https://news.example.org/nope"])
    assert sorted(state) == urls
    assert (state[urls[0]].current_version, state[urls[1]].current_version) == (1, 0)


def test_recheck_candidates_follow_the_age_table(session_factory: sessionmaker[Session]) -> None:
    topic_id, other_id = add_topic(session_factory, spec("first"), spec("other"))
    week = 7 * 86400.0
    # name: (age since first seen, time since last checked or None); the pages state no
    # publication time.
    cases = {
        "fresh-just-checked": (timedelta(minutes=30), timedelta(0)),
        "hours-checked-recently": (timedelta(hours=5), timedelta(minutes=30)),
        "hours-checked-long-ago": (timedelta(hours=5), timedelta(hours=2)),
        "days-checked-recently": (timedelta(days=3), timedelta(hours=5)),
        "days-checked-long-ago": (timedelta(days=3), timedelta(hours=7)),
        "days-never-read": (timedelta(days=3), None),
        "too-old": (timedelta(days=8), timedelta(days=7, hours=23)),
        "still-listed": (timedelta(minutes=5), timedelta(0)),
    }
    for name, (age, since_checked) in cases.items():
        url = f"https://news.example.org/a/{name}"
        note_listing(session_factory, topic_id, [url], NOW - age)
        if since_checked is not None:
            record_page(
                session_factory,
                topic_id=topic_id,
                run_id=None,
                observation=observation(url, published=None),
                now=NOW - since_checked,
            )
    note_listing(session_factory, other_id, ["https://news.example.org/a/elsewhere"], NOW)

    due = recheck_candidates(
        session_factory, topic_id, NOW, week, exclude={"https://news.example.org/a/still-listed"}
    )
    assert [k.url.rsplit("/", 1)[1] for k in due] == [
        "fresh-just-checked",
        "hours-checked-long-ago",
        "days-never-read",
        "days-checked-long-ago",
    ]
    # With recheck_for of an hour, only the last hour's articles are ever re-checked.
    due_hour = recheck_candidates(session_factory, topic_id, NOW, 3600.0, exclude=())
    assert [k.url.rsplit("/", 1)[1] for k in due_hour] == ["still-listed", "fresh-just-checked"]
    assert (due[1].current_version, due[2].current_version) == (1, 0)


def test_an_article_whose_page_dates_it_over_an_hour_back_is_not_rechecked_every_run(
    session_factory: sessionmaker[Session],
) -> None:
    (topic_id,) = add_topic(session_factory, spec("first"))
    seen, checked = NOW - timedelta(minutes=40), NOW - timedelta(minutes=30)
    # name: what the page states as its publication time. Each was first seen 40 minutes
    # ago and checked 30 minutes ago: by that alone, every one is under an hour old and due.
    cases = {
        "stated-days-ago": "2026-11-23T08:00:00+07:00",
        "stated-days-ago-mail-style": "Mon, 23 Nov 2026 08:00:00 +0700",
        "stated-date-alone": "2026-11-23",  # at its latest: 2026-11-24 12:00 UTC
        "stated-without-zone": "2026-11-26T09:00:00",  # at its latest: 21:00 UTC, later
        "stated-in-the-future": "2026-11-26T16:00:00+02:00",  # a wrong zone, most likely
        "stated-minutes-ago": "2026-11-26T16:55:00+07:00",  # 09:55 UTC, after first seen
        "stated-in-words": "kemarin sore",
        "stated-at-the-end-of-time": "9999-12-31",
        "stated-at-the-start-of-time": "0001-01-01T00:00:00+14:00",
        "states-nothing": None,
    }
    for name, published in cases.items():
        url = f"https://news.example.org/a/{name}"
        note_listing(session_factory, topic_id, [url], seen)
        record_page(
            session_factory,
            topic_id=topic_id,
            run_id=None,
            observation=observation(url, published=published),
            now=checked,
        )
    week = 7 * 86400.0
    due = recheck_candidates(session_factory, topic_id, NOW, week, exclude=())
    young = ["stated-at-the-end-of-time", "stated-at-the-start-of-time", "stated-in-the-future"]
    young += ["stated-in-words", "stated-minutes-ago", "stated-without-zone", "states-nothing"]
    assert sorted(k.url.rsplit("/", 1)[1] for k in due) == young
    # The others are re-checked as any article first seen that day: hourly.
    later = recheck_candidates(session_factory, topic_id, NOW + timedelta(hours=1), week, ())
    assert len(later) == len(cases)
    # A later reading that states a later time does not make an article younger again.
    old = "https://news.example.org/a/stated-days-ago"
    record_page(
        session_factory,
        topic_id=topic_id,
        run_id=None,
        observation=observation(old, body="Isi B", published="2026-11-26T16:59:00+07:00"),
        now=NOW,
    )
    again = recheck_candidates(session_factory, topic_id, NOW + timedelta(minutes=10), week, ())
    assert old not in {k.url for k in again}
    assert len(again) == len(young)


def test_upgrading_a_database_counts_stored_articles_from_their_first_sighting(
    db_url: str,
) -> None:
    upgrade(db_url, "0001")
    engine = make_engine(db_url)
    try:
        articles = table(
            "articles",
            column("url"),
            column("first_seen", UTCDateTime()),
            column("status"),
            column("current_version"),
        )
        with engine.begin() as connection:
            connection.execute(
                insert(articles),
                {"url": URL, "first_seen": NOW, "status": "live", "current_version": 0},
            )
        upgrade(db_url)
        stored = article(sessions_on(engine), URL)
        assert (stored.first_seen, stored.age_from) == (NOW, NOW)
    finally:
        engine.dispose()


# -- runs and topics -----------------------------------------------------------------------------


def test_finish_run_stores_counts_failures_and_stats(
    session_factory: sessionmaker[Session],
) -> None:
    (topic_id,) = add_topic(session_factory)
    run_id = start_run(session_factory, topic_id, now=NOW)
    assert get_run(session_factory, run_id).status == "running"
    counts = {"pages_fetched": 3, "articles_seen": 41, "articles_new": 2, "articles_updated": 1}
    failures = [{"url": "https://news.example.org/a/1", "reason": "HTTP 503"}]
    stats = {"downloader/response_count": 44, "start_time": NOW, "finish_reason": "finished"}
    finish_run(
        session_factory,
        run_id,
        status="partial",
        counts=counts,
        errors=failures,
        stats=stats,
        message="1 page failed",
        now=NOW + timedelta(seconds=6.4),
    )
    run = get_run(session_factory, run_id)
    assert run.status == "partial"
    assert run.counts == {
        "pages_fetched": 3,
        "articles_seen": 41,
        "articles_new": 2,
        "articles_updated": 1,
        "articles_removed": 0,
        "articles_restored": 0,
        "articles_unchanged": 0,
        "articles_not_modified": 0,
        "errors": 1,
    }
    assert run.failures == tuple(failures)
    assert run.stats["start_time"] == NOW.isoformat()
    assert run.duration == timedelta(seconds=6.4)
    assert run.message == "1 page failed"
    with session_factory() as session:
        row = session.get(CrawlRun, run_id)
        assert row is not None
        assert row.error_details == {"failures": failures}

    with pytest.raises(ValueError, match="Unknown crawl run counters articles_typo"):
        finish_run(
            session_factory, run_id, status="ok", counts={"articles_typo": 1}, errors=[], stats={}
        )
    with pytest.raises(UnknownRun, match="No crawl run with the id 999"):
        finish_run(session_factory, 999, status="ok", counts={}, errors=[], stats={})


def test_mark_unfinished_runs(session_factory: sessionmaker[Session]) -> None:
    (topic_id,) = add_topic(session_factory)
    done, killed, crashed = (start_run(session_factory, topic_id, now=NOW) for _ in range(3))
    finish_run(session_factory, done, status="ok", counts={}, errors=[], stats={})
    assert (
        mark_unfinished_runs(session_factory, "timeout", "killed after 600 s", run_id=killed) == 1
    )
    assert mark_unfinished_runs(session_factory, "timeout", "again", run_id=done) == 0
    assert mark_unfinished_runs(session_factory, "failed", "the daemon stopped") == 1
    assert [get_run(session_factory, r).status for r in (done, killed, crashed)] == [
        "ok",
        "timeout",
        "failed",
    ]
    assert get_run(session_factory, killed).message == "killed after 600 s"


def test_topic_status_counts_consecutive_failures(session_factory: sessionmaker[Session]) -> None:
    first_id, _ = add_topic(session_factory, spec("first"), spec("second"))
    outcomes = ["failed", "ok", "timeout", "refused"]
    for minute, status in enumerate(outcomes):
        run = start_run(session_factory, first_id, now=NOW + timedelta(minutes=minute))
        finish_run(
            session_factory,
            run,
            status=status,
            counts={},
            errors=[],
            stats={},
            now=NOW + timedelta(minutes=minute, seconds=30),
        )
    first, second = topic_status(session_factory)
    assert (first.name, first.title, first.consecutive_failures) == ("first", "First", 2)
    assert first.last_ok_at == NOW + timedelta(minutes=1, seconds=30)
    assert first.last_run is not None
    assert first.last_run.status == "refused"
    assert (second.name, second.last_run, second.consecutive_failures, second.last_ok_at) == (
        "second",
        None,
        0,
        None,
    )


def test_sync_topics_and_load_topic(session_factory: sessionmaker[Session]) -> None:
    sync_topics(session_factory, [spec("first"), spec("second")])
    first_id, loaded = load_topic(session_factory, "first")
    assert loaded == spec("first")
    changed = spec("first", alert_to=("new@example.org",))
    sync_topics(session_factory, [changed])
    assert load_topic(session_factory, "first") == (first_id, changed)
    with session_factory() as session:
        active = dict(session.execute(select(Topic.name, Topic.active)).all())
    assert active == {"first": True, "second": False}
    assert [s.name for s in topic_status(session_factory)] == ["first"]
    with pytest.raises(
        UnknownTopic, match="No topic named 'nope' in the database; known topics: first"
    ):
        load_topic(session_factory, "nope")
    with pytest.raises(ValueError, match="The topic name 'first' is used twice"):
        sync_topics(session_factory, [spec("first"), spec("first")])


def test_history_and_changes(session_factory: sessionmaker[Session]) -> None:
    (topic_id,) = add_topic(session_factory)
    record_page(session_factory, topic_id=topic_id, run_id=None, observation=observation(), now=NOW)
    later = NOW + timedelta(hours=1)
    edited = observation(body="Isi A, diperbarui")
    record_page(session_factory, topic_id=topic_id, run_id=None, observation=edited, now=later)
    record_gone(
        session_factory, topic_id=topic_id, run_id=None, url=URL, now=later + timedelta(hours=1)
    )

    history = article_history(session_factory, URL)
    assert (history.status, history.current_version, history.topics) == ("removed", 2, ("ukraina",))
    assert [(v.version, v.body, v.fetched_at) for v in history.versions] == [
        (1, "Isi A", NOW),
        (2, "Isi A, diperbarui", later),
    ]
    assert [c.kind for c in history.changes] == ["new", "updated", "removed"]

    newest = list_changes(session_factory, limit=2)
    assert [(c.kind, c.title) for c in newest] == [("removed", "Judul A"), ("updated", "Judul A")]
    assert [c.kind for c in list_changes(session_factory, since=later, limit=10)] == [
        "removed",
        "updated",
    ]
    assert [c.kind for c in list_changes(session_factory, kind="new", limit=10)] == ["new"]
    assert list_changes(session_factory, topic="other", limit=10) == []
    with pytest.raises(UnknownArticle, match="No article with the URL"):
        article_history(session_factory, URL + "-nope")


# -- engines and connections ---------------------------------------------------------------------


def test_database_unavailable_names_the_url_and_the_reason() -> None:
    engine = make_engine("postgresql+psycopg://postgres:secret@127.0.0.1:1/topicwatch")
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            connect_check(engine)
    finally:
        engine.dispose()
    message = str(raised.value)
    shown = "postgresql+psycopg://postgres:***@127.0.0.1:1/topicwatch"
    assert message.startswith(f"Cannot connect to the database at {shown}: ")
    assert "refused" in message.lower()
    assert "secret" not in message


def test_connect_check_passes(engine: Engine) -> None:
    connect_check(engine)
