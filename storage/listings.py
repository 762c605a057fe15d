"""What a crawl learns from a topic's listing pages, and which articles it re-checks.

A listing page's URLs are upserted as articles (shared by every topic that lists them) and
linked to the topic; an article off the listing is re-checked for a while, by its age.
"""

from __future__ import annotations

import email.utils
import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker

from storage.changes import LaterPage
from storage.db import aware_now, chunks, read_session, upsert_for, write_transaction
from storage.models import Article, ArticlePage, Change, TopicArticle

RECHECK_ALWAYS = timedelta(hours=1)
RECHECK_RECENT = timedelta(days=1)
RECHECK_RECENT_EVERY = timedelta(hours=1)
RECHECK_OLDER_EVERY = timedelta(hours=6)


@dataclass(frozen=True)
class KnownArticle:
    """What a crawl needs to re-check an article: its validators and state, and the later
    pages its current version was read from (a multi-page article's), with theirs."""

    url: str
    status: str
    etag: str | None
    last_modified: str | None
    raw_sha256: str | None
    current_version: int
    pages: tuple[LaterPage, ...] = ()


# A time a page states without a zone is read as the latest it can mean: in the
# westernmost zone (UTC-12), at the end of its day when it is a date alone.
_LATEST_OFFSET = timedelta(hours=12)


def stated_moment(text: str | None) -> datetime | None:
    """The moment a page's stated publication time means (ISO 8601, as extraction mostly
    leaves it, or an e-mail style date), at its latest where it leaves its zone or time of
    day open; None when it is neither.

    An article's age for re-checks (``age_from``) starts there when that is earlier than
    when it was first seen: a backlog found when a topic is added is not news of the last
    hour."""
    if not text:
        return None
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    try:
        if moment.tzinfo is None or moment.utcoffset() is None:
            if len(text) <= len("2025-10-03"):
                moment += timedelta(days=1)
            return moment.replace(tzinfo=UTC) + _LATEST_OFFSET
        return moment.astimezone(UTC)
    except OverflowError:  # at the very ends of the calendar: no real publication time
        return None


@dataclass(frozen=True)
class ListedArticles:
    """What :func:`note_listing` found of a listing page's URLs."""

    announced: set[str]  # the URLs the topic already announced with a "new" change
    known: dict[str, KnownArticle]  # what is stored of each URL (all of them are, after it)


@functools.cache
def _listing_statements(dialect: str) -> tuple[Any, Any, Any]:
    """:func:`note_listing`'s statements for a database of this kind: the upsert of the
    listed articles (returning what is stored of them), the upsert of the topic's links to
    them, and the query for those the topic has announced."""
    table, links = Article.__table__, TopicArticle.__table__
    insert_article = upsert_for(dialect, Article)
    upsert = insert_article.on_conflict_do_update(
        index_elements=[table.c.url],
        set_={"last_seen_on_listing": insert_article.excluded.last_seen_on_listing},
    ).returning(
        table.c.id,
        table.c.url,
        table.c.status,
        table.c.etag,
        table.c.last_modified,
        table.c.raw_sha256,
        table.c.current_version,
    )
    insert_link = upsert_for(dialect, TopicArticle)
    link = insert_link.on_conflict_do_update(
        index_elements=[links.c.topic_id, links.c.article_id],
        set_={"last_listed": insert_link.excluded.last_listed},
    )
    changes = Change.__table__
    announced_in = (
        select(changes.c.article_id)
        .distinct()
        .where(
            changes.c.article_id.in_(bindparam("ids", expanding=True)),
            changes.c.topic_id == bindparam("topic_id"),
        )
    )
    return upsert, link, announced_in


def note_listing(
    session_factory: sessionmaker[Session],
    topic_id: int,
    urls: Sequence[str],
    now: datetime | None = None,
) -> ListedArticles:
    """Record that the topic's listing shows these canonical URLs now.

    Returns the URLs this topic already knows (it has announced them with a ``new``
    change), so a crawl can stop following pagination at a page with nothing new, and what
    is stored of each URL (as :func:`known_state` would, read in the same transaction).
    """
    unique = sorted(set(urls))  # one lock order for every writer: no deadlocks
    if not unique:
        return ListedArticles(set(), {})
    moment = aware_now(now)

    def work(session: Session) -> ListedArticles:
        upsert, link, announced_in = _listing_statements(session.get_bind().dialect.name)
        # Core statements with a list of parameter sets ("executemany"), built once per
        # process: the ORM's bulk path and a fresh statement each time cost several times
        # what the database itself spends on a listing page.
        connection = session.connection()
        rows = connection.execute(
            upsert,
            [
                {
                    "url": url,
                    "first_seen": moment,
                    "age_from": moment,
                    "last_seen_on_listing": moment,
                    "status": "live",
                    "current_version": 0,
                }
                for url in unique
            ],
        ).all()
        ids = {row.url: row.id for row in rows}
        pages = _later_pages(session, [row.id for row in rows if row.current_version > 0])
        state = {row.url: _known(row, pages.get(row.id, ())) for row in rows}
        article_ids = sorted(ids.values())
        connection.execute(
            link,
            [
                {"topic_id": topic_id, "article_id": i, "since": moment, "last_listed": moment}
                for i in article_ids
            ],
        )
        announced: set[int] = set()
        for chunk_ids in chunks(article_ids):
            announced.update(
                connection.scalars(announced_in, {"topic_id": topic_id, "ids": list(chunk_ids)})
            )
        return ListedArticles({url for url, i in ids.items() if i in announced}, state)

    return write_transaction(session_factory, work)


def _known(article: Any, pages: tuple[LaterPage, ...] = ()) -> KnownArticle:
    """What the crawl needs of a stored article (an :class:`Article`, or a row with the same
    columns)."""
    return KnownArticle(
        url=article.url,
        status=article.status,
        etag=article.etag,
        last_modified=article.last_modified,
        raw_sha256=article.raw_sha256,
        current_version=article.current_version,
        pages=pages,
    )


@functools.cache
def _later_pages_statement() -> Any:
    pages = ArticlePage.__table__
    return (
        select(
            pages.c.article_id,
            pages.c.url,
            pages.c.etag,
            pages.c.last_modified,
            pages.c.raw_sha256,
        )
        .where(pages.c.article_id.in_(bindparam("ids", expanding=True)))
        .order_by(pages.c.article_id, pages.c.position)
    )


def _later_pages(session: Session, article_ids: Sequence[int]) -> dict[int, tuple[LaterPage, ...]]:
    """The later pages of these articles (multi-page ones; most have none), in order."""
    found: dict[int, list[LaterPage]] = {}
    if not article_ids:
        return {}
    connection = session.connection()
    statement = _later_pages_statement()
    for chunk_ids in chunks(sorted(article_ids)):
        rows = connection.execute(statement, {"ids": list(chunk_ids)}).all()
        for article_id, url, etag, last_modified, raw_sha256 in rows:
            found.setdefault(article_id, []).append(
                LaterPage(url, etag=etag, last_modified=last_modified, raw_sha256=raw_sha256)
            )
    return {article_id: tuple(pages) for article_id, pages in found.items()}


def known_state(
    session_factory: sessionmaker[Session], urls: Sequence[str]
) -> dict[str, KnownArticle]:
    """What is stored about these URLs (those not in the database are left out)."""
    unique = sorted(set(urls))
    found: dict[str, KnownArticle] = {}
    with read_session(session_factory) as session:
        articles = [
            article
            for chunk in chunks(unique)
            for article in session.scalars(select(Article).where(Article.url.in_(chunk)))
        ]
        pages = _later_pages(session, [a.id for a in articles if a.current_version > 0])
        for article in articles:
            found[article.url] = _known(article, pages.get(article.id, ()))
    return found


def recheck_candidates(
    session_factory: sessionmaker[Session],
    topic_id: int,
    now: datetime,
    recheck_for: float,
    exclude: Collection[str],
) -> list[KnownArticle]:
    """The topic's articles that are off its listing now but due for a re-check (newest
    first).

    By the article's age since it was first seen: under an hour, every run, unless its page
    states that it was published over an hour ago (``age_from``: news of the last hour is
    what editors still change; a backlog found when a topic is added is not); under a day,
    when last checked over an hour ago; under ``recheck_for`` seconds, when last checked over
    six hours ago; older, never. ``exclude`` are the URLs the run reads anyway.
    """
    window_start = now - timedelta(seconds=recheck_for)

    def stale(age: timedelta) -> Any:
        return or_(Article.last_checked.is_(None), Article.last_checked < now - age)

    listed = exists().where(
        TopicArticle.topic_id == topic_id, TopicArticle.article_id == Article.id
    )
    # The columns a re-check needs, as plain rows: loading every due article as an ORM
    # object costs a re-check of many articles more than the query does.
    query = (
        select(
            Article.id,
            Article.url,
            Article.status,
            Article.etag,
            Article.last_modified,
            Article.raw_sha256,
            Article.current_version,
        )
        .where(
            Article.first_seen >= window_start,
            or_(
                Article.age_from >= now - RECHECK_ALWAYS,
                and_(Article.first_seen >= now - RECHECK_RECENT, stale(RECHECK_RECENT_EVERY)),
                stale(RECHECK_OLDER_EVERY),
            ),
            listed,
        )
        .order_by(Article.first_seen.desc(), Article.id.desc())
    )
    excluded = set(exclude)
    with read_session(session_factory) as session:
        rows = session.connection().execute(query).all()
        due = [article for article in rows if article.url not in excluded]
        pages = _later_pages(session, [a.id for a in due if a.current_version > 0])
        return [_known(article, pages.get(article.id, ())) for article in due]
