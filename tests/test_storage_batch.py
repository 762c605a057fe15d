"""Recording a crawl's outcomes in batches gives exactly what recording them one by one gives.

A crawl run writes many outcomes per transaction (``record_outcomes``). The same random
histories of pages, 304s and removals, seen by two topics, are recorded one
outcome per transaction into a reference SQLite database and in batches of random sizes
(which repeat URLs within a batch) into the database under test, on SQLite and PostgreSQL;
the returned changes and every row written must be the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from crawler.run_in_progress import RunInProgress
from storage.changes import Gone, NotModified, Outcome, PageRead
from storage.db import make_engine, session_factory, upgrade
from storage.models import Alert, Article, ArticleVersion, Change
from storage.recording import ChangeRecord, record_outcomes
from storage.runs import start_run
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


def test_an_outcome_that_cannot_be_recorded_fails_the_run_and_nothing_else(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The topic alerts on removals only, to an address too long for an alert row: the batch
    # of two new articles and one removal fails as a whole, and is recorded again one by
    # one. The new articles are written; the removal is a failure of the run.
    engine, sessions, _ = open_database(db_url)
    too_long = "x" * 330 + "@example.org"
    spec = TopicSpec(
        name="third",
        title="Third",
        sources=("https://news.example.org/topic/third",),
        alert_to=(too_long,),
        alert_on=("removed",),
    )
    try:
        sync_topics(sessions, [spec])
        topic, _ = load_topic(sessions, "third")
        record_outcomes(sessions, topic_id=topic, run_id=None, outcomes=[page(URLS[2], "A")])
        run = RunInProgress(db_url, "third", start_run(sessions, topic))

        async def crawl() -> None:
            for outcome in (page(URLS[0], "A"), Gone(URLS[2]), page(URLS[1], "A")):
                await run.record(outcome)
            await run.drain()

        try:
            asyncio.run(crawl())
        finally:
            run.close()
        assert "A batch of 3 outcomes could not be recorded; recording them one by one" in (
            caplog.text
        )
        [failure] = run.failures
        assert failure["url"] == URLS[2]
        assert failure["reason"].startswith("could not be recorded in the database: ")
        assert re.search(r"recipient|320", failure["reason"]), failure
        assert run.counts["articles_seen"] == 3
        assert run.counts["articles_new"] == 2
        assert run.counts["failures"] == 1
        assert "articles_removed" not in run.counts
        after = rows(sessions)
        assert sorted(a[:2] for a in after["articles"]) == [
            (URLS[0], "live"),
            (URLS[1], "live"),
            (URLS[2], "live"),
        ]
        assert [c[2] for c in after["changes"]] == ["new"] * 3
        assert after["alerts"] == []
    finally:
        engine.dispose()
