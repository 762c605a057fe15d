"""Retention: how long the text of each version of an article is kept.

Every version keeps for good what change detection needs: its fingerprint and field hashes
(content that returns to an earlier version, A -> B -> A, is still recognised), its title,
authors and dates. Its **text** (lead, body and paragraph hashes) is kept by the policy of
the topics that list the article (the most generous one when there are several):

- every version's text for ``keep_text_for`` (0: for good);
- after that, the text of the first version, of the current one and of the last version of
  each day (UTC);
- never the text of a version that an unsent alert reports (a pending alert row's change,
  or an update held back for a summary not yet written): its digest needs it.

The raw HTML of versions (kept only with ``crawl.store_raw_html``) has its own, shorter
policy, ``keep_raw_html_for`` (0: for good), which applies to every version.

:func:`prune` applies the policies in short transactions (a few hundred articles each), so
that the daemon can run it beside the crawls; it reports what it removed and the bytes that
frees inside the database (on SQLite the file keeps its size and reuses the space; ``VACUUM``
gives it back to the file system). With ``dry_run`` it only counts.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Text,
    cast,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from storage.db import aware_now, chunks, read_session, write_transaction
from storage.models import Alert, Article, ArticleVersion, Change, Topic, TopicArticle
from storage.spec import TopicSpec

logger = logging.getLogger(__name__)

ARTICLES_PER_TRANSACTION = 200


@dataclass(frozen=True)
class Policy:
    """How long texts and raw HTML are kept (seconds; None: for good)."""

    text_for: float | None
    raw_html_for: float | None

    @classmethod
    def of(cls, spec: TopicSpec) -> Policy:
        return cls(spec.keep_text_for or None, spec.keep_raw_html_for or None)

    @classmethod
    def most_generous(cls, policies: Iterable[Policy]) -> Policy:
        """The policy that keeps whatever one of ``policies`` keeps (none: keep all)."""
        listed = list(policies)
        if not listed:
            return cls(None, None)

        def longest(values: list[float | None]) -> float | None:
            return None if any(v is None for v in values) else max(v for v in values if v)

        return cls(longest([p.text_for for p in listed]), longest([p.raw_html_for for p in listed]))


@dataclass(frozen=True)
class StoredVersion:
    """What the policy looks at of one version."""

    version: int
    fetched_at: datetime


def texts_kept(
    versions: Collection[StoredVersion],
    *,
    current: int,
    text_for: float | None,
    now: datetime,
    protected: Collection[int] = (),
) -> set[int]:
    """The numbers of the versions whose text the policy keeps: see the module's
    documentation. ``protected`` are versions an unsent alert reports."""
    numbers = {v.version for v in versions}
    if text_for is None or not versions:
        return numbers
    cutoff = now - timedelta(seconds=text_for)
    kept = {v.version for v in versions if v.fetched_at >= cutoff}
    kept |= {min(numbers), current} & numbers
    kept |= set(protected) & numbers
    last_of_day: dict[date, tuple[datetime, int]] = {}
    for v in versions:
        day = v.fetched_at.date()
        if day not in last_of_day or (v.fetched_at, v.version) > last_of_day[day]:
            last_of_day[day] = (v.fetched_at, v.version)
    kept |= {number for _, number in last_of_day.values()}
    return kept


@dataclass
class PruneReport:
    """What :func:`prune` removed (or, with ``dry_run``, would remove)."""

    dry_run: bool = False
    articles: int = 0  # articles whose versions lost text or raw HTML
    texts: int = 0  # versions whose lead and body were removed
    raw_html: int = 0  # versions whose raw HTML was removed
    text_bytes: int = 0
    raw_html_bytes: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)  # texts removed, by topic

    @property
    def bytes_freed(self) -> int:
        return self.text_bytes + self.raw_html_bytes

    def add(self, other: PruneReport) -> None:
        self.articles += other.articles
        self.texts += other.texts
        self.raw_html += other.raw_html
        self.text_bytes += other.text_bytes
        self.raw_html_bytes += other.raw_html_bytes
        for name, count in other.per_topic.items():
            self.per_topic[name] = self.per_topic.get(name, 0) + count


def prune(
    session_factory: sessionmaker[Session],
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch: int = ARTICLES_PER_TRANSACTION,
) -> PruneReport:
    """Apply every topic's retention policy to the versions of its articles."""
    moment = aware_now(now)
    report = PruneReport(dry_run=dry_run)
    with read_session(session_factory) as session:
        policies = _policies(session)
        shortest_text = min((p.text_for for p in policies.values() if p.text_for), default=None)
        shortest_raw = min(
            (p.raw_html_for for p in policies.values() if p.raw_html_for), default=None
        )
        if shortest_text is None and shortest_raw is None:
            return report
        candidates = _candidates(session, moment, shortest_text, shortest_raw)
    for chunk_ids in chunks(candidates, batch):
        work = functools.partial(
            _prune_articles, ids=list(chunk_ids), policies=policies, now=moment, dry_run=dry_run
        )
        if dry_run:
            with read_session(session_factory) as session:
                report.add(work(session))
        else:
            report.add(write_transaction(session_factory, work))
    if report.texts or report.raw_html:
        logger.info(
            "Retention%s: %d version text(s) and %d raw page(s) of %d article(s) removed, "
            "%d bytes freed",
            " (dry run)" if dry_run else "",
            report.texts,
            report.raw_html,
            report.articles,
            report.bytes_freed,
        )
    return report


def _policies(session: Session) -> dict[int, Policy]:
    """Each topic's policy, by id (a definition that cannot be read keeps everything)."""
    policies: dict[int, Policy] = {}
    for topic_id, definition in session.execute(select(Topic.id, Topic.definition)):
        try:
            policies[topic_id] = Policy.of(TopicSpec.from_json(definition))
        except (TypeError, ValueError, KeyError):
            logger.warning("Topic id %d has a definition that cannot be read: kept whole", topic_id)
            policies[topic_id] = Policy(None, None)
    return policies


def _candidates(
    session: Session, now: datetime, text_for: float | None, raw_for: float | None
) -> list[int]:
    """The articles with a version that some policy may prune (the shortest windows)."""
    conditions: list[ColumnElement[bool]] = []
    if text_for is not None:
        conditions.append(
            (ArticleVersion.fetched_at < now - timedelta(seconds=text_for))
            & ArticleVersion.text_pruned_at.is_(None)
            & (ArticleVersion.version != Article.current_version)
        )
    if raw_for is not None:
        conditions.append(
            (ArticleVersion.fetched_at < now - timedelta(seconds=raw_for))
            & ArticleVersion.raw_html.is_not(None)
        )
    return sorted(
        session.scalars(
            select(ArticleVersion.article_id)
            .join(Article, Article.id == ArticleVersion.article_id)
            .where(or_(*conditions))
            .distinct()
        )
    )


def _octets(session: Session, column: Any) -> ColumnElement[int]:
    """The size in bytes of a text or JSON column's value (0 for NULL)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.coalesce(func.octet_length(cast(column, Text)), 0)
    return func.coalesce(func.length(cast(column, LargeBinary)), 0)


def _protected(session: Session, ids: list[int]) -> dict[int, set[int]]:
    """Per article, the versions an unsent alert reports: the versions of changes with a
    pending alert row, and of updates held for a summary not yet written."""
    pending = select(Alert.change_id).where(Alert.status == "pending", Alert.change_id.is_not(None))
    rows = session.execute(
        select(Change.article_id, Change.from_version, Change.to_version).where(
            Change.article_id.in_(ids),
            or_(
                Change.id.in_(pending),
                Change.held.is_(True) & Change.summary_id.is_(None),
            ),
        )
    )
    protected: dict[int, set[int]] = {}
    for article_id, before, after in rows:
        protected.setdefault(article_id, set()).update(v for v in (before, after) if v)
    return protected


def _prune_articles(
    session: Session,
    *,
    ids: list[int],
    policies: Mapping[int, Policy],
    now: datetime,
    dry_run: bool,
) -> PruneReport:
    """Apply the policies to the versions of the articles ``ids``; what that removed."""
    report = PruneReport(dry_run=dry_run)
    bind = session.get_bind()
    lock = select(Article.id, Article.current_version).where(Article.id.in_(ids))
    if bind.dialect.name == "postgresql" and not report.dry_run:
        lock = lock.with_for_update()
    current = dict(session.execute(lock.order_by(Article.id)).all())
    topics_of: dict[int, list[int]] = {}
    for article_id, topic_id in session.execute(
        select(TopicArticle.article_id, TopicArticle.topic_id).where(
            TopicArticle.article_id.in_(ids)
        )
    ):
        topics_of.setdefault(article_id, []).append(topic_id)
    names = dict(session.execute(select(Topic.id, Topic.name)).all())
    protected = _protected(session, ids)
    versions: dict[int, list[tuple[int, StoredVersion, bool, bool, int, int]]] = {}
    for row in session.execute(
        select(
            ArticleVersion.id,
            ArticleVersion.article_id,
            ArticleVersion.version,
            ArticleVersion.fetched_at,
            ArticleVersion.text_pruned_at.is_(None),
            ArticleVersion.raw_html.is_not(None),
            _octets(session, ArticleVersion.body)
            + _octets(session, ArticleVersion.lead)
            + _octets(session, ArticleVersion.blocks),
            func.coalesce(func.length(ArticleVersion.raw_html), 0),
        ).where(ArticleVersion.article_id.in_(ids))
    ):
        version_id, article_id, number, fetched_at, has_text, has_raw, text_size, raw_size = row
        versions.setdefault(article_id, []).append(
            (
                version_id,
                StoredVersion(number, fetched_at),
                has_text,
                has_raw,
                int(text_size),
                int(raw_size),
            )
        )
    texts: list[int] = []
    raws: list[int] = []
    for article_id, rows in versions.items():
        policy = Policy.most_generous(policies[t] for t in topics_of.get(article_id, ()))
        kept = texts_kept(
            [stored for _, stored, _, _, _, _ in rows],
            current=current.get(article_id, 0),
            text_for=policy.text_for,
            now=now,
            protected=protected.get(article_id, ()),
        )
        raw_cutoff = (
            None if policy.raw_html_for is None else now - timedelta(seconds=policy.raw_html_for)
        )
        touched = False
        for version_id, stored, has_text, has_raw, text_size, raw_size in rows:
            if has_text and stored.version not in kept:
                texts.append(version_id)
                report.texts += 1
                report.text_bytes += text_size
                touched = True
                for topic_id in topics_of.get(article_id, ()):
                    name = names.get(topic_id, f"#{topic_id}")
                    report.per_topic[name] = report.per_topic.get(name, 0) + 1
            if has_raw and raw_cutoff is not None and stored.fetched_at < raw_cutoff:
                raws.append(version_id)
                report.raw_html += 1
                report.raw_html_bytes += raw_size
                touched = True
        report.articles += touched
    if report.dry_run:
        return report
    for chunk_ids in chunks(texts):
        session.execute(
            update(ArticleVersion)
            .where(ArticleVersion.id.in_(chunk_ids))
            .values(body="", lead="", blocks=null(), text_pruned_at=now)
            .execution_options(synchronize_session=False)
        )
    for chunk_ids in chunks(raws):
        session.execute(
            update(ArticleVersion)
            .where(ArticleVersion.id.in_(chunk_ids))
            .values(raw_html=None)
            .execution_options(synchronize_session=False)
        )
    return report
