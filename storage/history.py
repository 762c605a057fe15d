"""Reading back what was recorded: changes, an article's history, a stored page."""

from __future__ import annotations

import difflib
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, defer, sessionmaker

from storage.db import read_session
from storage.models import Article, ArticleVersion, Change, Topic, TopicArticle
from storage.recording import ChangeRecord


class UnknownArticle(LookupError):
    """No article with that URL is in the database."""


@dataclass(frozen=True)
class ChangeEntry(ChangeRecord):
    """A recorded change as listed later, with when and in which run it was detected.

    ``held``: its alert was held back by alert shaping (:mod:`storage.live`), for a later
    summary; ``folded``: the held updates a summary or ended change reports; ``live``: the
    article is live coverage now."""

    detected_at: datetime
    crawl_run_id: int | None
    held: bool = False
    folded: int = 0
    live: bool = False


@dataclass(frozen=True)
class VersionRecord:
    """One stored version of an article."""

    version: int
    fingerprint: str
    field_hashes: dict[str, str]
    title: str
    lead: str
    authors: tuple[str, ...]
    published: str | None
    modified: str | None
    body: str
    fetched_at: datetime
    has_raw_html: bool
    # When the retention policy removed the version's lead and body (None: they are kept).
    text_pruned_at: datetime | None = None


@dataclass(frozen=True)
class ArticleHistory:
    """An article with all its versions and changes (oldest first)."""

    url: str
    status: str
    first_seen: datetime
    last_seen_on_listing: datetime | None
    last_checked: datetime | None
    current_version: int
    topics: tuple[str, ...]
    versions: tuple[VersionRecord, ...]
    changes: tuple[ChangeEntry, ...]
    # Live coverage (storage.live): how it was recognised while live, since and until when.
    live: str | None = None
    live_since: datetime | None = None
    live_until: datetime | None = None


def change_query() -> Any:
    """Changes with their article's URL, topic's name, shown version's title and the
    article's live state: (Change, url, topic, title, live) rows."""
    shown = ArticleVersion.version == func.coalesce(Change.to_version, Change.from_version)
    return (
        select(Change, Article.url, Topic.name, ArticleVersion.title, Article.live)
        .join(Article, Article.id == Change.article_id)
        .join(Topic, Topic.id == Change.topic_id)
        .outerjoin(ArticleVersion, and_(ArticleVersion.article_id == Change.article_id, shown))
    )


def _entry(
    change: Change, url: str, topic: str, title: str | None, live: str | None
) -> ChangeEntry:
    return ChangeEntry(
        id=change.id,
        kind=change.kind,
        url=url,
        title=title or "",
        topic=topic,
        fields=tuple(change.fields or ()),
        from_version=change.from_version,
        to_version=change.to_version,
        alerted=change.alerted,
        detected_at=change.detected_at,
        crawl_run_id=change.crawl_run_id,
        held=change.held,
        folded=change.folded,
        live=live is not None,
    )


def list_changes(
    session_factory: sessionmaker[Session],
    *,
    topic: str | None = None,
    since: datetime | None = None,
    kind: str | None = None,
    limit: int = 50,
) -> list[ChangeEntry]:
    """Recorded changes, newest first, optionally of one topic, kind, or since a time."""
    query = change_query()
    if topic is not None:
        query = query.where(Topic.name == topic)
    if since is not None:
        query = query.where(Change.detected_at >= since)
    if kind is not None:
        query = query.where(Change.kind == kind)
    query = query.order_by(Change.detected_at.desc(), Change.id.desc()).limit(limit)
    with read_session(session_factory) as session:
        return [_entry(*row) for row in session.execute(query)]


def article_history(session_factory: sessionmaker[Session], url: str) -> ArticleHistory:
    """The article at ``url`` with all its versions and changes."""
    with read_session(session_factory) as session:
        article = session.scalars(select(Article).where(Article.url == url)).one_or_none()
        if article is None:
            raise UnknownArticle(f"No article with the URL {url!r} is in the database.")
        topics = session.scalars(
            select(Topic.name)
            .join(TopicArticle, TopicArticle.topic_id == Topic.id)
            .where(TopicArticle.article_id == article.id)
            .order_by(Topic.name)
        ).all()
        versions = session.execute(
            select(ArticleVersion, ArticleVersion.raw_html.is_not(None))
            .options(defer(ArticleVersion.raw_html))
            .where(ArticleVersion.article_id == article.id)
            .order_by(ArticleVersion.version)
        ).all()
        changes = session.execute(
            change_query()
            .where(Change.article_id == article.id)
            .order_by(Change.detected_at, Change.id)
        ).all()
        return ArticleHistory(
            url=article.url,
            status=article.status,
            first_seen=article.first_seen,
            last_seen_on_listing=article.last_seen_on_listing,
            last_checked=article.last_checked,
            current_version=article.current_version,
            topics=tuple(topics),
            versions=tuple(
                VersionRecord(
                    version=v.version,
                    fingerprint=v.fingerprint,
                    field_hashes=dict(v.field_hashes),
                    title=v.title,
                    lead=v.lead,
                    authors=tuple(v.authors),
                    published=v.published,
                    modified=v.modified,
                    body=v.body,
                    fetched_at=v.fetched_at,
                    has_raw_html=bool(has_raw),
                    text_pruned_at=v.text_pruned_at,
                )
                for v, has_raw in versions
            ),
            changes=tuple(_entry(*row) for row in changes),
            live=article.live,
            live_since=article.live_since,
            live_until=article.live_until,
        )


def similar_urls(session_factory: sessionmaker[Session], url: str, *, limit: int = 3) -> list[str]:
    """The stored article URLs closest to ``url`` (on the same host), best first."""
    host = urlsplit(url).hostname or ""
    query = select(Article.url)
    if host:
        query = query.where(Article.url.contains(host, autoescape=True))
    with read_session(session_factory) as session:
        urls = list(session.scalars(query))
    return difflib.get_close_matches(url, urls, n=limit, cutoff=0.6)


def raw_html(session_factory: sessionmaker[Session], url: str, version: int) -> bytes | None:
    """The response body stored with a version of an article, when it was kept."""
    with read_session(session_factory) as session:
        data = session.scalar(
            select(ArticleVersion.raw_html)
            .join(Article, Article.id == ArticleVersion.article_id)
            .where(Article.url == url, ArticleVersion.version == version)
        )
    return None if data is None else zlib.decompress(data)
