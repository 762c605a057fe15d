"""Recording what a crawl saw of its articles: versions, changes and their alert rows.

:func:`record_outcomes` loads what the decision needs (each article's current version, the
fingerprints already alerted on, the topics that have announced it, the site templates among
the blocks it compares), lets :func:`storage.changes.decide` decide, and writes the rows the
plan names, all in one transaction: a change is written together with its alert rows, or not
at all.

Concurrent writers are safe: on SQLite every write transaction starts with ``BEGIN
IMMEDIATE``; on PostgreSQL the article row is locked (``SELECT … FOR UPDATE``) before its
versions are read or written, articles are created with ``INSERT … ON CONFLICT``, and a
transaction that lost a deadlock or a unique-key race is retried
(:func:`storage.db.write_transaction`).
"""

from __future__ import annotations

import functools
import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from storage.changes import (
    Audience,
    Failed,
    Gone,
    LaterPage,
    NotModified,
    Outcome,
    PageRead,
    Previous,
    decide,
)
from storage.db import aware_now, chunks, upsert_for, write_transaction
from storage.listings import stated_moment
from storage.live import UPDATE_ALERT_KINDS, LiveState, ShapedChange, shape
from storage.models import (
    Alert,
    Article,
    ArticlePage,
    ArticleVersion,
    Change,
    Topic,
    TopicArticle,
)
from storage.templates import learn, site_of, templates_among
from storage.topics import TopicCache

logger = logging.getLogger(__name__)


NO_TEMPLATES: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ChangeRecord:
    """A change that was recorded: what happened to which article, for which topic."""

    id: int
    kind: str
    url: str
    title: str
    topic: str
    fields: tuple[str, ...]
    from_version: int | None
    to_version: int | None
    alerted: bool


@dataclass
class _Stored:
    """An article as one recording transaction reads and changes it."""

    id: int
    url: str
    status: str
    current_version: int
    etag: str | None
    last_modified: str | None
    raw_sha256: str | None
    age_from: datetime
    live: str | None = None
    live_since: datetime | None = None
    live_until: datetime | None = None
    checks: str = ""
    fingerprint: str = ""
    field_hashes: dict[str, str] = field(default_factory=dict)
    title: str = ""
    announced_by: set[int] = field(default_factory=set)
    inactive: set[int] = field(default_factory=set)  # of announced_by, those not configured
    alerted_fingerprints: frozenset[str] = frozenset()
    blocks: tuple[str, ...] | None = None  # of the current version
    # Per topic, when the article's recent alerting changes were detected (the alert cap).
    alerts_at: dict[int, list[datetime]] = field(default_factory=dict)


@dataclass
class _Writes:
    """The rows one recording transaction adds, written together at its end."""

    versions: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    # Per change: its topic's name, the title and the recipients of its alert rows.
    records: list[tuple[str, str, list[str]]] = field(default_factory=list)
    # Indexes of held changes that the change queued right after them reports.
    reported_by_next: list[int] = field(default_factory=list)
    # Articles whose later pages are replaced by ``pages`` (multi-page articles' rows).
    pages_of: set[int] = field(default_factory=set)
    pages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Statements:
    """:func:`record_outcomes`'s statements for a database of one kind, built once per process.

    Core statements with expanding ``IN`` parameters and lists of parameter sets
    ("executemany"), run on the session's connection: the ORM's bulk paths and a statement
    built afresh for every batch cost the crawl process more than the database spends on it.
    """

    create_articles: Any
    lock_articles: Any
    link_articles: Any
    current_versions: Any
    current_titles: Any
    announcements: Any
    alerted_fingerprints: Any
    recent_alerts: Any
    insert_versions: Any
    insert_changes: Any
    insert_alerts: Any
    report_changes: Any
    update_articles: Any
    delete_pages: Any
    insert_pages: Any


def _of_current_versions(query: Select[Any], ids: Any) -> Select[Any]:
    """``query`` of ``article_versions`` limited to the current version of each article whose
    id is in ``ids``; both tables filtered, so neither is read beyond the batch's rows."""
    versions, articles = ArticleVersion.__table__, Article.__table__
    return query.join(
        articles,
        and_(
            articles.c.id == versions.c.article_id,
            articles.c.current_version == versions.c.version,
        ),
    ).where(versions.c.article_id.in_(ids), articles.c.id.in_(ids))


@functools.cache
def _statements(dialect: str) -> _Statements:
    articles, versions, changes = Article.__table__, ArticleVersion.__table__, Change.__table__
    ids: Any = bindparam("ids", expanding=True)
    return _Statements(
        create_articles=upsert_for(dialect, Article).on_conflict_do_nothing(
            index_elements=[articles.c.url]
        ),
        lock_articles=select(
            articles.c.id,
            articles.c.url,
            articles.c.status,
            articles.c.current_version,
            articles.c.etag,
            articles.c.last_modified,
            articles.c.raw_sha256,
            articles.c.age_from,
            articles.c.live,
            articles.c.live_since,
            articles.c.live_until,
            articles.c.checks,
        )
        .where(articles.c.url.in_(bindparam("urls", expanding=True)))
        .order_by(articles.c.url)
        .with_for_update(),
        link_articles=upsert_for(dialect, TopicArticle).on_conflict_do_nothing(
            index_elements=[TopicArticle.__table__.c.topic_id, TopicArticle.__table__.c.article_id]
        ),
        current_versions=_of_current_versions(
            select(
                versions.c.article_id,
                versions.c.fingerprint,
                versions.c.field_hashes,
                versions.c.title,
                versions.c.blocks,
            ),
            ids,
        ),
        current_titles=_of_current_versions(select(versions.c.article_id, versions.c.title), ids),
        announcements=select(changes.c.article_id, changes.c.topic_id, Topic.__table__.c.active)
        .distinct()
        .join(Topic.__table__, Topic.__table__.c.id == changes.c.topic_id)
        .where(changes.c.article_id.in_(ids)),
        alerted_fingerprints=select(versions.c.article_id, versions.c.fingerprint)
        .distinct()
        .join(
            changes,
            and_(
                changes.c.article_id == versions.c.article_id,
                changes.c.to_version == versions.c.version,
            ),
        )
        .where(versions.c.article_id.in_(ids), changes.c.alerted.is_(True)),
        recent_alerts=select(changes.c.article_id, changes.c.topic_id, changes.c.detected_at).where(
            changes.c.article_id.in_(ids),
            changes.c.detected_at > bindparam("since"),
            changes.c.held.is_(False),
            changes.c.alerted.is_(True),
            changes.c.kind.in_(UPDATE_ALERT_KINDS),
        ),
        insert_versions=insert(ArticleVersion),
        insert_changes=insert(Change).returning(Change.id, sort_by_parameter_order=True),
        insert_alerts=insert(Alert),
        report_changes=update(Change)
        .where(Change.id == bindparam("change_id"))
        .values(summary_id=bindparam("summary")),
        update_articles=update(Article).where(Article.id == bindparam("article_id")),
        delete_pages=delete(ArticlePage).where(ArticlePage.article_id.in_(ids)),
        insert_pages=insert(ArticlePage),
    )


def _segments(outcomes: Sequence[Outcome]) -> Iterator[Sequence[Outcome]]:
    """``outcomes`` cut, in order, into runs in which no URL appears twice."""
    start = 0
    seen: set[str] = set()
    for index, outcome in enumerate(outcomes):
        if outcome.url in seen:
            yield outcomes[start:index]
            start, seen = index, set()
        seen.add(outcome.url)
    if start < len(outcomes):
        yield outcomes[start:]


def _load_stored(
    connection: Connection,
    statements: _Statements,
    outcomes: Sequence[Outcome],
    topic_id: int,
    now: datetime,
) -> dict[str, _Stored]:
    """Everything :func:`storage.changes.decide` needs of the articles the outcomes name,
    by URL (those a 304 or a 404 names without being stored are left out)."""
    stored = _create_and_lock(connection, statements, outcomes, topic_id, now)
    by_id = {article.id: article for article in stored.values()}
    read = {stored[o.url].id for o in outcomes if isinstance(o, PageRead) and o.url in stored}
    _read_current_versions(connection, statements, by_id, read)
    _read_announcements(connection, statements, by_id)
    # The fingerprints already alerted on matter only for content that differs from the
    # current version (A -> B -> A).
    edited = {
        stored[o.url].id
        for o in outcomes
        if isinstance(o, PageRead)
        and o.url in stored
        and stored[o.url].current_version > 0
        and stored[o.url].fingerprint != o.fingerprint
    }
    _read_alerted_fingerprints(connection, statements, by_id, sorted(edited))
    return stored


def _site_templates(
    session: Session, outcomes: Sequence[Outcome], stored: dict[str, _Stored]
) -> dict[str, frozenset[str]]:
    """Learn from the pages of articles read for the first time (the blocks of their leads,
    bodies and pages), then find the site templates among the blocks of the leads and bodies
    that differ from their current version's."""
    first_reads: list[tuple[str, tuple[str, ...]]] = []
    compared: dict[str, set[str]] = {}
    for outcome in outcomes:
        article = stored.get(outcome.url)
        if not isinstance(outcome, PageRead) or article is None or not outcome.blocks:
            continue
        if article.current_version == 0:
            first_reads.append((site_of(outcome.url), outcome.blocks + outcome.page_blocks))
        elif article.blocks is not None and any(
            outcome.field_hashes.get(name) != article.field_hashes.get(name)
            for name in ("lead", "body")
        ):
            blocks = compared.setdefault(site_of(outcome.url), set())
            blocks.update(article.blocks, outcome.blocks)
    learn(session, first_reads)
    return templates_among(session, compared) if compared else {}


def _create_and_lock(
    connection: Connection,
    statements: _Statements,
    outcomes: Sequence[Outcome],
    topic_id: int,
    now: datetime,
) -> dict[str, _Stored]:
    """Create the articles of the pages that are new (linked to the topic), lock every
    article the outcomes name (in URL order, so concurrent writers never deadlock), and read
    their rows. A failure leaves its article alone."""
    page_urls = sorted({o.url for o in outcomes if isinstance(o, PageRead)})
    if page_urls:
        connection.execute(
            statements.create_articles,
            [
                {
                    "url": url,
                    "first_seen": now,
                    "age_from": now,
                    "status": "live",
                    "current_version": 0,
                }
                for url in page_urls
            ],
        )
    stored: dict[str, _Stored] = {}
    for chunk in chunks(sorted({o.url for o in outcomes if not isinstance(o, Failed)})):
        rows = connection.execute(statements.lock_articles, {"urls": list(chunk)})
        for row in rows:
            stored[row.url] = _Stored(*row)
    linked = sorted(stored[url].id for url in page_urls if url in stored)
    if linked:
        connection.execute(
            statements.link_articles,
            [
                {"topic_id": topic_id, "article_id": i, "since": now, "last_listed": None}
                for i in linked
            ],
        )
    return stored


def _read_current_versions(
    connection: Connection, statements: _Statements, by_id: dict[int, _Stored], read: set[int]
) -> None:
    """Read the title of each article's current version, and for the articles whose page
    was ``read`` (ids) also its fingerprint, field hashes and block hashes, which only a
    page read is compared with. (A 304 leaves the stored version alone, and reading its
    block hashes, stored after the body, costs SQLite the body's overflow pages.)"""
    versioned = [i for i, article in by_id.items() if article.current_version > 0]
    compared = sorted(i for i in versioned if i in read)
    for chunk_ids in chunks(compared):
        current = connection.execute(statements.current_versions, {"ids": list(chunk_ids)})
        for article_id, fingerprint, field_hashes, title, blocks in current.all():
            article = by_id[article_id]
            article.fingerprint = fingerprint
            article.field_hashes = dict(field_hashes)
            article.title = title
            article.blocks = None if blocks is None else tuple(blocks)
    for chunk_ids in chunks(sorted(i for i in versioned if i not in read)):
        titles = connection.execute(statements.current_titles, {"ids": list(chunk_ids)})
        for article_id, title in titles.all():
            by_id[article_id].title = title


def _read_announcements(
    connection: Connection, statements: _Statements, by_id: dict[int, _Stored]
) -> None:
    """Read which topics have announced each article, and which of them are inactive."""
    for chunk_ids in chunks(sorted(by_id)):
        announced = connection.execute(statements.announcements, {"ids": list(chunk_ids)})
        for article_id, other, active in announced:
            by_id[article_id].announced_by.add(other)
            if not active:
                by_id[article_id].inactive.add(other)


def _read_alerted_fingerprints(
    connection: Connection,
    statements: _Statements,
    by_id: dict[int, _Stored],
    article_ids: list[int],
) -> None:
    """Read the fingerprints of the versions of these articles that were alerted on."""
    alerted: dict[int, set[str]] = {}
    for chunk_ids in chunks(article_ids):
        pairs = connection.execute(statements.alerted_fingerprints, {"ids": list(chunk_ids)})
        for article_id, fingerprint in pairs:
            alerted.setdefault(article_id, set()).add(fingerprint)
    for article_id, fingerprints in alerted.items():
        by_id[article_id].alerted_fingerprints = frozenset(fingerprints)


def _read_recent_alerts(
    connection: Connection,
    statements: _Statements,
    topics: TopicCache,
    *,
    stored: dict[str, _Stored],
    outcomes: Sequence[Outcome],
    topic_id: int,
    now: datetime,
) -> None:
    """Read when the alerts of updates of the articles whose content differs were sent, per
    topic, as far back as the longest alert cap period of the topics that hear of them."""
    edited = [
        stored[o.url]
        for o in outcomes
        if isinstance(o, PageRead)
        and o.url in stored
        and stored[o.url].current_version > 0
        and stored[o.url].fingerprint != o.fingerprint
    ]
    if not edited:
        return
    hearing = {topic_id}.union(*(article.announced_by for article in edited))
    longest = max(topics.get(topic)[1].alert_cap_period for topic in hearing)
    since = now - timedelta(seconds=longest)
    by_id = {article.id: article for article in edited}
    for chunk_ids in chunks(sorted(by_id)):
        parameters = {"ids": list(chunk_ids), "since": since}
        rows = connection.execute(statements.recent_alerts, parameters)
        for article_id, told, detected_at in rows:
            by_id[article_id].alerts_at.setdefault(told, []).append(detected_at)


def _apply(
    writes: _Writes,
    topics: TopicCache,
    *,
    topic_id: int,
    run_id: int | None,
    article: _Stored,
    outcome: PageRead | NotModified | Gone,
    now: datetime,
    templates: frozenset[str] = frozenset(),
) -> int | None:
    """Take what ``outcome`` says of the stored article, queue the rows its plan names; the
    index of the observing topic's change, if any. ``templates``: its site's template
    blocks among those compared."""
    if isinstance(outcome, PageRead):
        article.etag = outcome.etag
        article.last_modified = outcome.last_modified
        article.raw_sha256 = outcome.raw_sha256
        stated = stated_moment(outcome.published)
        if stated is not None and stated < article.age_from:
            article.age_from = stated
        _queue_pages(writes, article.id, outcome.pages)
    elif isinstance(outcome, NotModified):
        if outcome.etag is not None:
            article.etag = outcome.etag
        if outcome.last_modified is not None:
            article.last_modified = outcome.last_modified
        if outcome.pages:
            _queue_pages(writes, article.id, outcome.pages)
    previous = None
    if article.current_version > 0:
        previous = Previous(
            status=article.status,
            current_fingerprint=article.fingerprint,
            current_field_hashes=dict(article.field_hashes),
            alerted_fingerprints=article.alerted_fingerprints,
            current_version=article.current_version,
            current_blocks=article.blocks,
        )
    audience = Audience(topic_id, run_id, article.announced_by, article.inactive)
    plan = decide(previous, outcome, audience, templates)
    if plan.decision.new_version:
        assert isinstance(outcome, PageRead)
        article.fingerprint = outcome.fingerprint
        article.field_hashes = dict(outcome.field_hashes)
        article.title = outcome.title
        article.blocks = outcome.blocks or None
        writes.versions.append(
            {
                "article_id": article.id,
                "version": plan.current_version,
                "fingerprint": outcome.fingerprint,
                "field_hashes": dict(outcome.field_hashes),
                "title": outcome.title,
                "lead": outcome.lead,
                "authors": list(outcome.authors),
                "published": outcome.published,
                "modified": outcome.modified,
                "body": outcome.body,
                "blocks": list(outcome.blocks) if outcome.blocks else None,
                "fetched_at": now,
                "raw_html": None if outcome.raw_html is None else zlib.compress(outcome.raw_html),
            }
        )
    article.status = plan.status
    article.current_version = plan.current_version
    shaped, state = shape(
        plan,
        outcome,
        LiveState(article.live, article.live_since, article.live_until, article.checks),
        observing=topic_id,
        spec_of=lambda topic: topics.get(topic)[1],
        alerts_at=article.alerts_at,
        now=now,
    )
    article.live, article.live_since, article.live_until, article.checks = (
        state.live,
        state.since,
        state.until,
        state.checks,
    )
    own: int | None = None
    for item in shaped:
        index = _queue_change(writes, topics, article=article, shaped=item, now=now)
        article.announced_by.add(item.change.topic_id)
        if item.change.alert and not item.held and item.change.kind in UPDATE_ALERT_KINDS:
            article.alerts_at.setdefault(item.change.topic_id, []).append(now)
        if item.change.topic_id == topic_id and own is None:
            own = index
    return own


def _queue_pages(writes: _Writes, article_id: int, pages: Sequence[LaterPage]) -> None:
    """Queue the article's later pages, which replace those stored (page 2 is position 2)."""
    writes.pages_of.add(article_id)
    writes.pages.extend(
        {
            "article_id": article_id,
            "position": position,
            "url": page.url,
            "etag": page.etag,
            "last_modified": page.last_modified,
            "raw_sha256": page.raw_sha256,
        }
        for position, page in enumerate(pages, start=2)
    )


def _write_pages(connection: Connection, statements: _Statements, writes: _Writes) -> None:
    """Replace the later pages of the articles read in full (one statement each way)."""
    for chunk_ids in chunks(sorted(writes.pages_of)):
        connection.execute(statements.delete_pages, {"ids": list(chunk_ids)})
    if writes.pages:
        connection.execute(statements.insert_pages, writes.pages)


def _queue_change(
    writes: _Writes, topics: TopicCache, *, article: _Stored, shaped: ShapedChange, now: datetime
) -> int:
    """Queue a change (and, through :func:`_write_changes`, its alert rows unless its alert
    is held back); its index."""
    change = shaped.change
    topic = topics.get(change.topic_id)[0]
    writes.changes.append(
        {
            "kind": change.kind,
            "article_id": article.id,
            "topic_id": change.topic_id,
            "from_version": change.from_version,
            "to_version": change.to_version,
            "fields": list(change.fields),
            "detected_at": now,
            "crawl_run_id": change.crawl_run_id,
            "alerted": change.alert,
            "held": shaped.held,
            "summary_id": None,
            "folded": 0,
            "folded_since": None,
        }
    )
    if shaped.reported_by_next:
        writes.reported_by_next.append(len(writes.changes) - 1)
    wanted = change.alert and not shaped.held
    recipients = topics.recipients(change.topic_id, change.kind) if wanted else []
    writes.records.append((topic.name, article.title, recipients))
    logger.debug("Recording %s change of %s for topic %s", change.kind, article.url, topic.name)
    return len(writes.changes) - 1


def _write_changes(
    connection: Connection, statements: _Statements, writes: _Writes, now: datetime
) -> list[int]:
    """Insert the queued versions, changes and alert rows; the ids of the changes."""
    if writes.versions:
        connection.execute(statements.insert_versions, writes.versions)
    if not writes.changes:
        return []
    ids = list(connection.execute(statements.insert_changes, writes.changes).scalars())
    if writes.reported_by_next:
        connection.execute(
            statements.report_changes,
            [
                {"change_id": ids[index], "summary": ids[index + 1]}
                for index in writes.reported_by_next
            ],
        )
    alert_rows = [
        {
            "change_id": change_id,
            "topic_id": change["topic_id"],
            "recipient": recipient,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for change_id, change, (_, _, recipients) in zip(
            ids, writes.changes, writes.records, strict=True
        )
        for recipient in recipients
    ]
    if alert_rows:
        connection.execute(statements.insert_alerts, alert_rows)
    return ids


def _record(
    session: Session,
    topics: TopicCache,
    *,
    topic_id: int,
    run_id: int | None,
    outcomes: Sequence[Outcome],
    now: datetime,
) -> list[ChangeRecord | None]:
    """Record ``outcomes`` (no URL twice) in the session's transaction."""
    connection = session.connection()
    statements = _statements(connection.dialect.name)
    stored = _load_stored(connection, statements, outcomes, topic_id, now)
    _read_recent_alerts(
        connection,
        statements,
        topics,
        stored=stored,
        outcomes=outcomes,
        topic_id=topic_id,
        now=now,
    )
    templates = _site_templates(session, outcomes, stored)
    writes = _Writes()
    indexes: list[int | None] = []
    for outcome in outcomes:
        article = stored.get(outcome.url)
        if isinstance(outcome, Failed):
            indexes.append(None)  # a failure changes nothing of the article
            continue
        if article is None:
            # Only a page read creates an article; a 304 or a 404 of an unknown URL is noise.
            logger.debug("Ignoring %s for %s, which is not in the database", outcome, outcome.url)
            indexes.append(None)
            continue
        indexes.append(
            _apply(
                writes,
                topics,
                topic_id=topic_id,
                run_id=run_id,
                article=article,
                outcome=outcome,
                now=now,
                templates=templates.get(site_of(outcome.url), NO_TEMPLATES)
                if templates
                else NO_TEMPLATES,
            )
        )
    ids = _write_changes(connection, statements, writes, now)
    _write_pages(connection, statements, writes)
    if stored:
        connection.execute(
            statements.update_articles,
            [
                {
                    "article_id": article.id,
                    "last_checked": now,
                    "etag": article.etag,
                    "last_modified": article.last_modified,
                    "raw_sha256": article.raw_sha256,
                    "age_from": article.age_from,
                    "status": article.status,
                    "current_version": article.current_version,
                    "live": article.live,
                    "live_since": article.live_since,
                    "live_until": article.live_until,
                    "checks": article.checks,
                }
                for article in stored.values()
            ],
        )
    urls = {article.id: article.url for article in stored.values()}
    results: list[ChangeRecord | None] = []
    for index in indexes:
        if index is None:
            results.append(None)
            continue
        change = writes.changes[index]
        topic_name, title, _ = writes.records[index]
        results.append(
            ChangeRecord(
                id=ids[index],
                kind=change["kind"],
                url=urls[change["article_id"]],
                title=title,
                topic=topic_name,
                fields=tuple(change["fields"]),
                from_version=change["from_version"],
                to_version=change["to_version"],
                alerted=change["alerted"] and not change["held"],
            )
        )
    return results


def record_outcomes(
    session_factory: sessionmaker[Session],
    *,
    topic_id: int,
    run_id: int | None,
    outcomes: Sequence[Outcome],
    now: datetime | None = None,
) -> list[ChangeRecord | None]:
    """Record what a crawl of the topic found, in one transaction; per outcome, the topic's
    change (or None).

    A page read of a new URL creates its article (version 1, ``new``); different content a
    new version (``updated``, or ``restored`` after a removal); the same content, a 304 or a
    404 only move ``last_checked`` and the stored validators, unless they change the
    article's status (see :func:`storage.changes.classify`). A 304 or a 404 of a URL not in
    the database, and a failure, are ignored. The outcomes are recorded in turn, all or
    nothing, with a few statements for the whole batch rather than several per outcome.
    """
    moment = aware_now(now)
    if not outcomes:
        return []

    def work(session: Session) -> list[ChangeRecord | None]:
        topics = TopicCache(session)
        results: list[ChangeRecord | None] = []
        for segment in _segments(outcomes):
            results.extend(
                _record(
                    session,
                    topics,
                    topic_id=topic_id,
                    run_id=run_id,
                    outcomes=segment,
                    now=moment,
                )
            )
        return results

    return write_transaction(session_factory, work)
