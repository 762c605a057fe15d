"""Recording a crawl's outcomes in batches gives exactly what recording them one by one gives.

The crawl's storage pipeline writes many outcomes per transaction (``record_outcomes``). The
same random histories of pages, 304s and removals, seen by two topics, are recorded one
outcome per transaction into a reference SQLite database and in batches of random sizes
(which repeat URLs within a batch) into the database under test, on SQLite and PostgreSQL;
the returned changes and every row written must be the same.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from storage.changes import Gone, NotModified, Outcome, PageRead
from storage.db import make_engine, session_factory, upgrade
from storage.models import Alert, Article, ArticleVersion, Change
from storage.recording import ChangeRecord, record_outcomes
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
URLS = [f"https://news.example.org/nasional/{7300000 + i}/berita-{i}" for i in range(4)]
CONTENTS = ("A", "B", "C")


def page(url: str, content: str) -> PageRead:
    hashes = {
        "title": hashlib.sha256(f"title {content}".encode()).hexdigest(),
        "body": hashlib.sha256(f"body {url} {content}".encode()).hexdigest(),
    }
    return PageRead(
        url=url,
        title=f"Judul {content}",
        body=f"Isi {content}",
        lead="",
        authors=("Penulis",),
        published=None,
        modified=None,
        fingerprint=hashlib.sha256("".join(sorted(hashes.values())).encode()).hexdigest(),
        field_hashes=hashes,
        etag=f'"{content}"',
    )


def history(seed: int, length: int = 300) -> list[tuple[int, Outcome]]:
    """(topic index, outcome) pairs: mostly pages, some 304s, removals and unknown URLs."""
    rng = random.Random(seed)
    steps: list[tuple[int, Outcome]] = []
    topic = 0
    for _ in range(length):
        if rng.random() < 0.1:  # the other topic's crawl
            topic = 1 - topic
        url = rng.choice(URLS)
        roll = rng.random()
        outcome: Outcome
        if roll < 0.6:
            outcome = page(url, rng.choice(CONTENTS))
        elif roll < 0.8:
            outcome = NotModified(url, etag=rng.choice((None, '"new"')))
        elif roll < 0.95:
            outcome = Gone(url)
        else:
            outcome = NotModified(url + "-unknown")
        steps.append((topic, outcome))
    return steps


def batches(steps: list[tuple[int, Outcome]], seed: int) -> list[tuple[int, list[Outcome]]]:
    """Consecutive outcomes of one topic, cut into batches of 1 to 20."""
    rng = random.Random(seed)
    result: list[tuple[int, list[Outcome]]] = []
    for topic, outcome in steps:
        if result and result[-1][0] == topic and len(result[-1][1]) < rng.randint(1, 20):
            result[-1][1].append(outcome)
        else:
            result.append((topic, [outcome]))
    return result


def open_database(url: str) -> tuple[Any, sessionmaker[Session], list[int]]:
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    specs = [
        TopicSpec(
            name=name,
            title=name.title(),
            sources=(f"https://news.example.org/topic/{name}",),
            alert_to=(f"{name}@example.org",),
            alert_on=("new", "updated", "removed"),
        )
        for name in ("first", "second")
    ]
    sync_topics(sessions, specs)
    return engine, sessions, [load_topic(sessions, s.name)[0] for s in specs]


def summary(change: ChangeRecord | None) -> tuple[Any, ...] | None:
    if change is None:
        return None
    return (
        change.kind,
        change.url,
        change.title,
        change.topic,
        change.fields,
        change.from_version,
        change.to_version,
        change.alerted,
    )


def rows(sessions: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    with sessions() as session:
        urls: dict[int, str] = dict(session.execute(select(Article.id, Article.url)).all())
        return {
            "articles": sorted(
                (a.url, a.status, a.current_version, a.etag, a.last_checked)
                for a in session.scalars(select(Article))
            ),
            "versions": sorted(
                (urls[v.article_id], v.version, v.fingerprint, v.title, v.fetched_at)
                for v in session.scalars(select(ArticleVersion))
            ),
            "changes": sorted(
                (
                    urls[c.article_id],
                    c.topic_id,
                    c.kind,
                    c.from_version,
                    c.to_version,
                    tuple(c.fields),
                    c.alerted,
                    c.crawl_run_id,
                    c.detected_at,
                )
                for c in session.scalars(select(Change))
            ),
            "alerts": sorted(
                (urls[c.article_id], c.kind, a.recipient, a.status)
                for a, c in session.execute(select(Alert, Change).join(Change))
            ),
        }


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_batches_record_what_single_outcomes_record(seed: int, db_url: str, tmp_path: Path) -> None:
    reference, reference_sessions, reference_topics = open_database(
        f"sqlite:///{tmp_path / 'reference.db'}"
    )
    subject, subject_sessions, subject_topics = open_database(db_url)
    try:
        for n, (topic, outcomes) in enumerate(batches(history(seed), seed)):
            now = START + timedelta(minutes=n)
            one_by_one = [
                change
                for outcome in outcomes
                for change in record_outcomes(
                    reference_sessions,
                    topic_id=reference_topics[topic],
                    run_id=None,
                    outcomes=[outcome],
                    now=now,
                )
            ]
            batched = record_outcomes(
                subject_sessions,
                topic_id=subject_topics[topic],
                run_id=None,
                outcomes=outcomes,
                now=now,
            )
            assert [summary(c) for c in batched] == [summary(c) for c in one_by_one]
        assert rows(subject_sessions) == rows(reference_sessions)
    finally:
        reference.dispose()
        subject.dispose()


def test_a_failing_batch_writes_nothing(db_url: str) -> None:
    # The last alert row breaks a constraint after the articles, their versions and the
    # changes of the whole batch were written: none of them may remain.
    engine, sessions, _ = open_database(db_url)
    too_long = "x" * 330 + "@example.org"
    spec = TopicSpec(
        name="third",
        title="Third",
        sources=("https://news.example.org/topic/third",),
        alert_to=("ok@example.org", too_long),
    )
    try:
        sync_topics(sessions, [spec])
        topic, _ = load_topic(sessions, "third")
        outcomes: list[Outcome] = [page(url, "A") for url in URLS[:3]]
        with pytest.raises(DBAPIError, match=r"recipient|320"):
            record_outcomes(sessions, topic_id=topic, run_id=None, outcomes=outcomes)
        assert rows(sessions) == {"articles": [], "versions": [], "changes": [], "alerts": []}
    finally:
        engine.dispose()
