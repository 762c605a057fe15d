"""Reading the database for the web view and ``/metrics``: pages of changes and runs, one
article with its versions, and the counts a Prometheus scrape asks for.

Every query reads a page of rows through an index (the tests check the plans with EXPLAIN on
SQLite and PostgreSQL): lists are paged by keyset ("older than this row"), never by OFFSET,
so the thousandth page costs what the first does, with 100,000 articles or more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, func, not_, select, text
from sqlalchemy.orm import Session, defer, sessionmaker

from storage.db import read_session
from storage.health import GOOD_RUN_STATUSES
from storage.history import VersionRecord, change_query
from storage.models import (
    Alert,
    Article,
    ArticleVersion,
    Change,
    CrawlRun,
    Topic,
    TopicArticle,
)
from storage.runs import RunRecord, TopicStatus, _run_record, topic_status

T = TypeVar("T")

PAGE_SIZE = 50


class UnknownArticleId(LookupError):
    """No article with that id is in the database."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first; ``older`` is the cursor of the next page (None at
    the end)."""

    items: list[T]
    older: int | None


@dataclass(frozen=True)
class TopicOverview:
    """A topic's row on the topics page."""

    status: TopicStatus
    articles: int


@dataclass(frozen=True)
class ChangeRow:
    """A change as the lists show it: what happened to which article, and when."""

    id: int
    kind: str
    topic: str
    article_id: int
    url: str
    title: str
    fields: tuple[str, ...]
    from_version: int | None
    to_version: int | None
    detected_at: datetime
    alerted: bool
    # Alert shaping (storage.live): held for a summary; the updates a summary folds in;
    # how the article is recognised as live coverage now (None: it is not live).
    held: bool = False
    folded: int = 0
    live: str | None = None


@dataclass(frozen=True)
class VersionSummary:
    """A version in an article's list: its number, when it was read, its title."""

    version: int
    fetched_at: datetime
    title: str
    text_pruned_at: datetime | None = None  # the retention policy removed its lead and body


@dataclass(frozen=True)
class ArticleView:
    """An article, the list of its versions and changes, and two of its versions in full."""

    id: int
    url: str
    status: str
    first_seen: datetime
    last_checked: datetime | None
    current_version: int
    topics: tuple[str, ...]
    versions: tuple[VersionSummary, ...]
    changes: tuple[ChangeRow, ...]
    old: VersionRecord | None
    new: VersionRecord | None
    # Live coverage (storage.live): how it is recognised and since when, or when it ended.
    live: str | None = None
    live_since: datetime | None = None
    live_until: datetime | None = None


@dataclass(frozen=True)
class RunTally:
    """What a finished run adds to the metrics."""

    id: int
    topic: str
    status: str
    pages: int
    changes: dict[str, int]
    seconds: float | None


def ping(session_factory: sessionmaker[Session]) -> None:
    """Raises the database's error unless it answers a query."""
    with read_session(session_factory) as session:
        session.execute(text("SELECT 1")).one()


def topics_overview(session_factory: sessionmaker[Session]) -> list[TopicOverview]:
    """Each active topic's status (see :func:`storage.runs.topic_status`) and how many
    articles it tracks."""
    statuses = topic_status(session_factory)
    with read_session(session_factory) as session:
        return [
            TopicOverview(
                status,
                int(
                    session.scalar(
                        select(func.count())
                        .select_from(TopicArticle)
                        .where(TopicArticle.topic_id == status.topic_id)
                    )
                    or 0
                ),
            )
            for status in statuses
        ]


def topic_id(session_factory: sessionmaker[Session], name: str) -> int | None:
    """The id of the topic called ``name``; None when there is none."""
    with read_session(session_factory) as session:
        return session.scalar(select(Topic.id).where(Topic.name == name))


def _change_rows(session: Session, query: Any) -> list[ChangeRow]:
    return [
        ChangeRow(
            id=change.id,
            kind=change.kind,
            topic=topic,
            article_id=change.article_id,
            url=url,
            title=title or "",
            fields=tuple(change.fields or ()),
            from_version=change.from_version,
            to_version=change.to_version,
            detected_at=change.detected_at,
            alerted=change.alerted,
            held=change.held,
            folded=change.folded,
            live=live,
        )
        for change, url, topic, title, live in session.execute(query)
    ]


def recent_changes(
    session_factory: sessionmaker[Session],
    *,
    topic: int | None = None,
    kinds: Sequence[str] = (),
    older_than: int | None = None,
    limit: int = PAGE_SIZE,
) -> Page[ChangeRow]:
    """A page of changes, newest first: of one topic (by id) or all, of some kinds or all,
    detected before the change ``older_than``."""
    with read_session(session_factory) as session:
        query = change_query()
        if topic is not None:
            query = query.where(Change.topic_id == topic)
        if kinds:
            query = query.where(Change.kind.in_(kinds))
        if older_than is not None:
            moment = session.scalar(select(Change.detected_at).where(Change.id == older_than))
            if moment is not None:
                query = query.where(
                    Change.detected_at <= moment,
                    not_(and_(Change.detected_at == moment, Change.id >= older_than)),
                )
        query = query.order_by(Change.detected_at.desc(), Change.id.desc()).limit(limit + 1)
        rows = _change_rows(session, query)
    return Page(rows[:limit], rows[limit - 1].id if len(rows) > limit else None)


def recent_runs(
    session_factory: sessionmaker[Session],
    *,
    topic: int | None = None,
    older_than: int | None = None,
    limit: int = PAGE_SIZE,
) -> Page[RunRecord]:
    """A page of crawl runs, newest first: of one topic (by id) or all, started before the
    run ``older_than``."""
    with read_session(session_factory) as session:
        query = select(CrawlRun, Topic.name).join(Topic, Topic.id == CrawlRun.topic_id)
        if topic is None:
            if older_than is not None:
                query = query.where(CrawlRun.id < older_than)
            query = query.order_by(CrawlRun.id.desc())
        else:
            query = query.where(CrawlRun.topic_id == topic)
            if older_than is not None:
                moment = session.scalar(
                    select(CrawlRun.started_at).where(CrawlRun.id == older_than)
                )
                if moment is not None:
                    query = query.where(
                        CrawlRun.started_at <= moment,
                        not_(and_(CrawlRun.started_at == moment, CrawlRun.id >= older_than)),
                    )
            query = query.order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc())
        rows = [_run_record(run, name) for run, name in session.execute(query.limit(limit + 1))]
    return Page(rows[:limit], rows[limit - 1].id if len(rows) > limit else None)


def _version_record(version: ArticleVersion) -> VersionRecord:
    return VersionRecord(
        version=version.version,
        fingerprint=version.fingerprint,
        field_hashes=dict(version.field_hashes),
        title=version.title,
        lead=version.lead,
        authors=tuple(version.authors),
        published=version.published,
        modified=version.modified,
        body=version.body,
        fetched_at=version.fetched_at,
        has_raw_html=False,
        text_pruned_at=version.text_pruned_at,
    )


def article_view(
    session_factory: sessionmaker[Session],
    article_id: int,
    *,
    old: int | None = None,
    new: int | None = None,
) -> ArticleView:
    """The article ``article_id`` with versions ``old`` and ``new`` in full (default: the
    latest, and the one before ``new``; ``old`` is always earlier than ``new``, or None)."""
    with read_session(session_factory) as session:
        article = session.get(Article, article_id)
        if article is None:
            raise UnknownArticleId(f"No article with the id {article_id} is in the database.")
        topics = session.scalars(
            select(Topic.name)
            .join(TopicArticle, TopicArticle.topic_id == Topic.id)
            .where(TopicArticle.article_id == article_id)
            .order_by(Topic.name)
        ).all()
        versions = tuple(
            VersionSummary(number, fetched_at, title, pruned)
            for number, fetched_at, title, pruned in session.execute(
                select(
                    ArticleVersion.version,
                    ArticleVersion.fetched_at,
                    ArticleVersion.title,
                    ArticleVersion.text_pruned_at,
                )
                .where(ArticleVersion.article_id == article_id)
                .order_by(ArticleVersion.version)
            )
        )
        numbers = [v.version for v in versions]
        if new is None or new not in numbers:
            new = numbers[-1] if numbers else None
        if old is None or old not in numbers or (new is not None and old >= new):
            earlier = [n for n in numbers if new is not None and n < new]
            old = earlier[-1] if earlier else None
        wanted = {n for n in (old, new) if n is not None}
        full = {
            v.version: _version_record(v)
            for v in session.scalars(
                select(ArticleVersion)
                .options(defer(ArticleVersion.raw_html))
                .where(
                    ArticleVersion.article_id == article_id,
                    ArticleVersion.version.in_(wanted),
                )
            )
        }
        changes = _change_rows(
            session,
            change_query()
            .where(Change.article_id == article_id)
            .order_by(Change.detected_at.desc(), Change.id.desc()),
        )
        return ArticleView(
            id=article.id,
            url=article.url,
            status=article.status,
            first_seen=article.first_seen,
            last_checked=article.last_checked,
            current_version=article.current_version,
            topics=tuple(topics),
            versions=versions,
            changes=tuple(changes),
            old=None if old is None else full.get(old),
            new=None if new is None else full.get(new),
            live=article.live,
            live_since=article.live_since,
            live_until=article.live_until,
        )


# -- metrics ----------------------------------------------------------------------------------


def finished_runs(
    session_factory: sessionmaker[Session], from_id: int
) -> tuple[list[RunTally], int]:
    """The finished runs whose id is at least ``from_id``, and the id from which the next
    call needs to read (every run below it has finished)."""
    with read_session(session_factory) as session:
        rows = session.execute(
            select(
                CrawlRun.id,
                CrawlRun.status,
                CrawlRun.started_at,
                CrawlRun.finished_at,
                CrawlRun.pages_fetched,
                CrawlRun.articles_new,
                CrawlRun.articles_updated,
                CrawlRun.articles_removed,
                CrawlRun.articles_restored,
                Topic.name,
            )
            .join(Topic, Topic.id == CrawlRun.topic_id)
            .where(CrawlRun.id >= from_id)
            .order_by(CrawlRun.id)
        ).all()
    tallies: list[RunTally] = []
    running: list[int] = []
    for run_id, status, started, finished, pages, new, updated, removed, restored, name in rows:
        if status == "running":
            running.append(run_id)
            continue
        seconds = None
        if finished is not None:
            seconds = max(0.0, (finished - started).total_seconds())
        changes = {"new": new, "updated": updated, "removed": removed, "restored": restored}
        tallies.append(RunTally(run_id, name, status, pages, changes, seconds))
    if running:
        return tallies, min(running)
    return tallies, (rows[-1][0] + 1) if rows else from_id


def alert_counts(session_factory: sessionmaker[Session]) -> dict[str, int]:
    """How many alerts are pending and how many failed."""
    with read_session(session_factory) as session:
        return {
            status: int(
                session.scalar(
                    select(func.count()).select_from(Alert).where(Alert.status == status)
                )
                or 0
            )
            for status in ("pending", "failed")
        }


def last_successes(session_factory: sessionmaker[Session]) -> dict[str, datetime]:
    """Per active topic, when its last good run (ok or partial) finished."""
    out: dict[str, datetime] = {}
    with read_session(session_factory) as session:
        topics = session.execute(select(Topic.id, Topic.name).where(Topic.active.is_(True)))
        for topic, name in topics.all():
            finished = session.scalar(
                select(CrawlRun.finished_at)
                .where(CrawlRun.topic_id == topic, CrawlRun.status.in_(GOOD_RUN_STATUSES))
                .order_by(CrawlRun.started_at.desc())
                .limit(1)
            )
            if finished is not None:
                out[name] = finished
    return out
