"""What the crawler, the scheduler and the command line read from and write to the database.

Every function takes a ``sessionmaker`` (see :func:`storage.db.session_factory`) and does its
work in one transaction: a change is written together with its alert rows, or not at all.

An article is one row per canonical URL, shared by every topic that lists it. Its content
is classified once (:func:`storage.classify.classify`); the resulting change is recorded for
the observing topic and for every other active topic that has already announced the article,
each with alert rows for its own recipients. A topic hears of an article first through a
``new`` change, also when another topic read the article before it did.

Concurrent writers are safe: on SQLite every write transaction starts with ``BEGIN
IMMEDIATE``; on PostgreSQL the article row is locked (``SELECT … FOR UPDATE``) before its
versions are read or written, articles are created with ``INSERT … ON CONFLICT``, and a
transaction that lost a deadlock or a unique-key race is retried.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, defer, sessionmaker

from storage.classify import (
    Decision,
    Gone,
    NotModified,
    Observed,
    Page,
    Previous,
    classify,
)
from storage.db import read_session
from storage.models import (
    RUN_STATUSES,
    Alert,
    Article,
    ArticleVersion,
    Base,
    Change,
    CrawlRun,
    Topic,
    TopicArticle,
)
from storage.spec import TopicSpec

logger = logging.getLogger(__name__)

T = TypeVar("T")

COUNTERS = (
    "pages_fetched",
    "articles_seen",
    "articles_new",
    "articles_updated",
    "articles_removed",
    "articles_restored",
    "articles_unchanged",
    "articles_not_modified",
    "errors",
)
FAILED_RUN_STATUSES = ("failed", "timeout", "refused")
GOOD_RUN_STATUSES = ("ok", "partial")
MAX_STORED_FAILURES = 1000
# Keeps IN (...) lists under SQLite's and psycopg's parameter limits.
CHUNK = 500
# PostgreSQL's deadlock_detected and serialization_failure: the transaction may be retried.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
WRITE_ATTEMPTS = 4


class UnknownTopic(LookupError):
    """No topic of that name is in the database."""


class UnknownArticle(LookupError):
    """No article with that URL is in the database."""


class UnknownRun(LookupError):
    """No crawl run with that id is in the database."""


@dataclass(frozen=True)
class Observation:
    """One article page as a crawl read it. ``url`` is the canonical URL."""

    url: str
    title: str
    body: str
    lead: str
    authors: tuple[str, ...]
    published: str | None
    modified: str | None
    fingerprint: str
    field_hashes: dict[str, str]
    etag: str | None = None
    last_modified: str | None = None
    raw_sha256: str | None = None
    raw_html: bytes | None = None


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


@dataclass(frozen=True)
class ChangeEntry(ChangeRecord):
    """A recorded change as listed later, with when and in which run it was detected."""

    detected_at: datetime
    crawl_run_id: int | None


@dataclass(frozen=True)
class KnownArticle:
    """What a crawl needs to re-check an article: its validators and state."""

    url: str
    status: str
    etag: str | None
    last_modified: str | None
    raw_sha256: str | None
    current_version: int


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


@dataclass(frozen=True)
class RunRecord:
    """One crawl run: its outcome, counters (see :data:`COUNTERS`) and failures."""

    id: int
    topic_id: int
    topic: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: dict[str, int]
    failures: tuple[dict[str, str], ...]
    stats: dict[str, Any]
    message: str | None

    @property
    def duration(self) -> timedelta | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


@dataclass(frozen=True)
class TopicStatus:
    """How an active topic is doing, for ``topicwatch status`` and the scheduler."""

    topic_id: int
    name: str
    title: str
    last_run: RunRecord | None
    consecutive_failures: int
    last_ok_at: datetime | None


@dataclass
class _Topics:
    """Topic names and definitions read during one transaction."""

    session: Session
    cache: dict[int, tuple[Topic, TopicSpec]] = field(default_factory=dict)

    def get(self, topic_id: int) -> tuple[Topic, TopicSpec]:
        if topic_id not in self.cache:
            topic = self.session.get(Topic, topic_id)
            if topic is None:
                raise UnknownTopic(f"No topic with the id {topic_id} is in the database.")
            self.cache[topic_id] = (topic, TopicSpec.from_json(topic.definition))
        return self.cache[topic_id]


# -- helpers -------------------------------------------------------------------------------


def _now(now: datetime | None = None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(
            f"The time {now.isoformat()} has no time zone; pass an aware datetime "
            "(e.g. datetime.now(UTC))."
        )
    return now


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert(session: Session, model: type[Base]) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that understands ON CONFLICT, for the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def _write(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run ``work`` in one write transaction, retrying a lost race or deadlock."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with factory.begin() as session:
                return work(session)
        except IntegrityError:
            # A concurrent writer inserted the same key first; the retry sees its row.
            if attempt >= 2:
                raise
            logger.debug("Retrying a write that lost a race for a unique key")
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES:
                raise
            if attempt == WRITE_ATTEMPTS:
                raise
            logger.debug("Retrying a write after %s (attempt %d)", exc.orig, attempt)
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _json_safe(value: Any) -> Any:
    """``value`` with everything JSON cannot hold (datetimes, sets, …) turned into text."""

    def default(item: Any) -> Any:
        if isinstance(item, datetime):
            return item.isoformat()
        if isinstance(item, set | frozenset | tuple):
            return sorted(item, key=str)
        return str(item)

    return json.loads(json.dumps(value, default=default))


# -- topics ---------------------------------------------------------------------------------


def sync_topics(
    session_factory: sessionmaker[Session],
    specs: Iterable[TopicSpec],
    *,
    now: datetime | None = None,
) -> None:
    """Make the topics table match ``specs``: insert or update each by name, and mark the
    topics that are no longer configured inactive (their history stays)."""
    wanted: dict[str, TopicSpec] = {}
    for spec in specs:
        if spec.name in wanted:
            raise ValueError(f"The topic name {spec.name!r} is used twice.")
        wanted[spec.name] = spec
    moment = _now(now)

    def work(session: Session) -> None:
        existing = {topic.name: topic for topic in session.scalars(select(Topic))}
        for name, spec in wanted.items():
            definition = spec.to_json()
            topic = existing.get(name)
            if topic is None:
                session.add(
                    Topic(
                        name=name,
                        definition=definition,
                        active=True,
                        created_at=moment,
                        updated_at=moment,
                    )
                )
            elif topic.definition != definition or not topic.active:
                topic.definition = definition
                topic.active = True
                topic.updated_at = moment
        for name, topic in existing.items():
            if name not in wanted and topic.active:
                topic.active = False
                topic.updated_at = moment

    _write(session_factory, work)


def load_topic(session_factory: sessionmaker[Session], name: str) -> tuple[int, TopicSpec]:
    """The id and definition of the topic called ``name``."""
    with read_session(session_factory) as session:
        topic = session.scalars(select(Topic).where(Topic.name == name)).one_or_none()
        if topic is None:
            names = session.scalars(
                select(Topic.name).where(Topic.active.is_(True)).order_by(Topic.name)
            ).all()
            raise UnknownTopic(
                f"No topic named {name!r} in the database; known topics: "
                f"{', '.join(names) or '(none)'}"
            )
        return topic.id, TopicSpec.from_json(topic.definition)


# -- crawl runs ---------------------------------------------------------------------------------


def start_run(
    session_factory: sessionmaker[Session], topic_id: int, now: datetime | None = None
) -> int:
    """Record that a crawl run of the topic starts; its id."""
    moment = _now(now)

    def work(session: Session) -> int:
        run = CrawlRun(
            topic_id=topic_id,
            started_at=moment,
            status="running",
            error_details={},
            stats={},
        )
        session.add(run)
        session.flush()
        return run.id

    return _write(session_factory, work)


def finish_run(
    session_factory: sessionmaker[Session],
    run_id: int,
    *,
    status: str,
    counts: Mapping[str, int],
    errors: list[dict[str, str]],
    stats: dict[str, Any],
    message: str | None = None,
    now: datetime | None = None,
) -> None:
    """Record how a crawl run ended.

    ``counts`` are the run's counters by column name (see :data:`COUNTERS`); ``errors``
    the failures, each ``{"url": …, "reason": …}``. Without an ``errors`` count, the
    number of failures is stored.
    """
    if status not in RUN_STATUSES or status == "running":
        raise ValueError(
            f"A crawl run cannot finish with the status {status!r}; expected one of "
            f"{', '.join(s for s in RUN_STATUSES if s != 'running')}."
        )
    unknown = sorted(set(counts) - set(COUNTERS))
    if unknown:
        raise ValueError(
            f"Unknown crawl run counters {', '.join(unknown)}; expected some of "
            f"{', '.join(COUNTERS)}."
        )
    values: dict[str, Any] = {name: int(counts.get(name, 0)) for name in COUNTERS}
    if "errors" not in counts:
        values["errors"] = len(errors)
    details: dict[str, Any] = {"failures": _json_safe(errors[:MAX_STORED_FAILURES])}
    if len(errors) > MAX_STORED_FAILURES:
        details["omitted"] = len(errors) - MAX_STORED_FAILURES
    values.update(
        status=status,
        finished_at=_now(now),
        error_details=details,
        stats=_json_safe(stats),
        message=message,
    )

    def work(session: Session) -> None:
        run = session.get(CrawlRun, run_id)
        if run is None:
            raise UnknownRun(f"No crawl run with the id {run_id} is in the database.")
        for key, value in values.items():
            setattr(run, key, value)

    _write(session_factory, work)


def mark_unfinished_runs(
    session_factory: sessionmaker[Session],
    status: str,
    message: str,
    *,
    run_id: int | None = None,
    topic_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Give the runs still marked ``running`` (all, one topic's, or the run ``run_id``)
    a final ``status`` and ``message``; how many there were.

    A run that has already finished is left as it is, so a supervisor that gave up on a
    child can call this without overwriting what the child managed to record.
    """
    if status not in RUN_STATUSES or status == "running":
        raise ValueError(f"A crawl run cannot be marked {status!r}.")
    statement = (
        update(CrawlRun)
        .where(CrawlRun.status == "running")
        .values(status=status, message=message, finished_at=_now(now))
    )
    if run_id is not None:
        statement = statement.where(CrawlRun.id == run_id)
    if topic_id is not None:
        statement = statement.where(CrawlRun.topic_id == topic_id)

    def work(session: Session) -> int:
        result = session.execute(statement, execution_options={"synchronize_session": False})
        return int(getattr(result, "rowcount", 0))

    return _write(session_factory, work)


def _run_record(run: CrawlRun, topic_name: str) -> RunRecord:
    details = run.error_details or {}
    return RunRecord(
        id=run.id,
        topic_id=run.topic_id,
        topic=topic_name,
        started_at=run.started_at,
        finished_at=run.finished_at,
        status=run.status,
        counts={name: getattr(run, name) for name in COUNTERS},
        failures=tuple(details.get("failures", ())),
        stats=dict(run.stats or {}),
        message=run.message,
    )


def get_run(session_factory: sessionmaker[Session], run_id: int) -> RunRecord:
    """The crawl run ``run_id``."""
    with read_session(session_factory) as session:
        row = session.execute(
            select(CrawlRun, Topic.name)
            .join(Topic, Topic.id == CrawlRun.topic_id)
            .where(CrawlRun.id == run_id)
        ).one_or_none()
        if row is None:
            raise UnknownRun(f"No crawl run with the id {run_id} is in the database.")
        return _run_record(row[0], row[1])


def topic_status(session_factory: sessionmaker[Session]) -> list[TopicStatus]:
    """Per active topic (by name): its last run, consecutive failures, last good run."""
    result: list[TopicStatus] = []
    with read_session(session_factory) as session:
        topics = session.scalars(
            select(Topic).where(Topic.active.is_(True)).order_by(Topic.name)
        ).all()
        for topic in topics:
            spec = TopicSpec.from_json(topic.definition)
            last = session.scalars(
                select(CrawlRun)
                .where(CrawlRun.topic_id == topic.id)
                .order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc())
                .limit(1)
            ).one_or_none()
            last_good = session.execute(
                select(CrawlRun.started_at, CrawlRun.finished_at)
                .where(
                    CrawlRun.topic_id == topic.id,
                    CrawlRun.status.in_(GOOD_RUN_STATUSES),
                )
                .order_by(CrawlRun.started_at.desc())
                .limit(1)
            ).one_or_none()
            failures = select(func.count()).where(
                CrawlRun.topic_id == topic.id, CrawlRun.status.in_(FAILED_RUN_STATUSES)
            )
            if last_good is not None:
                failures = failures.where(CrawlRun.started_at > last_good[0])
            result.append(
                TopicStatus(
                    topic_id=topic.id,
                    name=topic.name,
                    title=spec.title,
                    last_run=None if last is None else _run_record(last, topic.name),
                    consecutive_failures=int(session.scalar(failures) or 0),
                    last_ok_at=None if last_good is None else last_good[1],
                )
            )
    return result


# -- listings and re-checks ---------------------------------------------------------------------


def note_listed(
    session_factory: sessionmaker[Session],
    topic_id: int,
    urls: Sequence[str],
    now: datetime | None = None,
) -> set[str]:
    """Record that the topic's listing shows these canonical URLs now.

    Returns the URLs this topic already knows (it has announced them with a ``new``
    change), so a crawl can stop following pagination at a page with nothing new.
    """
    unique = sorted(set(urls))  # one lock order for every writer: no deadlocks
    if not unique:
        return set()
    moment = _now(now)

    def work(session: Session) -> set[str]:
        ids: dict[str, int] = {}
        for chunk in _chunks(unique):
            insert = _insert(session, Article).values(
                [
                    {
                        "url": url,
                        "first_seen": moment,
                        "last_seen_on_listing": moment,
                        "status": "live",
                        "current_version": 0,
                    }
                    for url in chunk
                ]
            )
            upsert = insert.on_conflict_do_update(
                index_elements=[Article.url],
                set_={"last_seen_on_listing": insert.excluded.last_seen_on_listing},
            ).returning(Article.id, Article.url)
            ids.update((url, article_id) for article_id, url in session.execute(upsert))
        article_ids = sorted(ids.values())
        known: set[int] = set()
        for chunk_ids in _chunks(article_ids):
            insert_link = _insert(session, TopicArticle).values(
                [
                    {"topic_id": topic_id, "article_id": i, "since": moment, "last_listed": moment}
                    for i in chunk_ids
                ]
            )
            session.execute(
                insert_link.on_conflict_do_update(
                    index_elements=[TopicArticle.topic_id, TopicArticle.article_id],
                    set_={"last_listed": insert_link.excluded.last_listed},
                )
            )
            known.update(
                session.scalars(
                    select(Change.article_id)
                    .distinct()
                    .where(Change.article_id.in_(chunk_ids), Change.topic_id == topic_id)
                )
            )
        return {url for url, article_id in ids.items() if article_id in known}

    return _write(session_factory, work)


def _known(article: Article) -> KnownArticle:
    return KnownArticle(
        url=article.url,
        status=article.status,
        etag=article.etag,
        last_modified=article.last_modified,
        raw_sha256=article.raw_sha256,
        current_version=article.current_version,
    )


def known_state(
    session_factory: sessionmaker[Session], urls: Sequence[str]
) -> dict[str, KnownArticle]:
    """What is stored about these URLs (those not in the database are left out)."""
    unique = sorted(set(urls))
    found: dict[str, KnownArticle] = {}
    with read_session(session_factory) as session:
        for chunk in _chunks(unique):
            for article in session.scalars(select(Article).where(Article.url.in_(chunk))):
                found[article.url] = _known(article)
    return found


RECHECK_ALWAYS = timedelta(hours=1)
RECHECK_RECENT = timedelta(days=1)
RECHECK_RECENT_EVERY = timedelta(hours=1)
RECHECK_OLDER_EVERY = timedelta(hours=6)


def recheck_candidates(
    session_factory: sessionmaker[Session],
    topic_id: int,
    now: datetime,
    recheck_for: float,
    exclude: Collection[str],
) -> list[KnownArticle]:
    """The topic's articles that are off its listing now but due for a re-check (newest
    first).

    By the article's age (since first seen): under an hour, every run; under a day, when
    last checked over an hour ago; under ``recheck_for`` seconds, when last checked over
    six hours ago; older, never. ``exclude`` are the URLs the run reads anyway.
    """
    window_start = now - timedelta(seconds=recheck_for)

    def stale(age: timedelta) -> Any:
        return or_(Article.last_checked.is_(None), Article.last_checked < now - age)

    listed = exists().where(
        TopicArticle.topic_id == topic_id, TopicArticle.article_id == Article.id
    )
    query = (
        select(Article)
        .where(
            Article.first_seen >= window_start,
            or_(
                Article.first_seen >= now - RECHECK_ALWAYS,
                and_(Article.first_seen >= now - RECHECK_RECENT, stale(RECHECK_RECENT_EVERY)),
                stale(RECHECK_OLDER_EVERY),
            ),
            listed,
        )
        .order_by(Article.first_seen.desc(), Article.id.desc())
    )
    excluded = set(exclude)
    with read_session(session_factory) as session:
        return [
            _known(article) for article in session.scalars(query) if article.url not in excluded
        ]


# -- observations -------------------------------------------------------------------------------


@dataclass
class _State:
    previous: Previous | None
    current: ArticleVersion | None


def _lock_article(session: Session, url: str) -> Article | None:
    return session.scalars(
        select(Article).where(Article.url == url).with_for_update()
    ).one_or_none()


def _state(session: Session, article: Article) -> _State:
    if article.current_version == 0:
        return _State(None, None)
    current = session.scalars(
        select(ArticleVersion).where(
            ArticleVersion.article_id == article.id,
            ArticleVersion.version == article.current_version,
        )
    ).one()
    alerted = session.scalars(
        select(ArticleVersion.fingerprint)
        .distinct()
        .join(
            Change,
            and_(
                Change.article_id == ArticleVersion.article_id,
                Change.to_version == ArticleVersion.version,
            ),
        )
        .where(ArticleVersion.article_id == article.id, Change.alerted.is_(True))
    ).all()
    previous = Previous(
        status=article.status,
        current_fingerprint=current.fingerprint,
        current_field_hashes=dict(current.field_hashes),
        known_fingerprints=frozenset(alerted),
    )
    return _State(previous, current)


def _announced_by(session: Session, article_id: int) -> set[int]:
    return set(
        session.scalars(select(Change.topic_id).distinct().where(Change.article_id == article_id))
    )


def _add_change(
    session: Session,
    topics: _Topics,
    *,
    topic_id: int,
    run_id: int | None,
    article: Article,
    kind: str,
    fields: tuple[str, ...],
    from_version: int | None,
    to_version: int | None,
    alert: bool,
    title: str,
    now: datetime,
) -> ChangeRecord:
    topic, spec = topics.get(topic_id)
    change = Change(
        kind=kind,
        article_id=article.id,
        topic_id=topic_id,
        from_version=from_version,
        to_version=to_version,
        fields=list(fields),
        detected_at=now,
        # The run belongs to the observing topic only.
        crawl_run_id=run_id,
        alerted=alert,
    )
    session.add(change)
    session.flush()
    if alert:
        for recipient in dict.fromkeys(spec.alerts_for(kind)):
            session.add(
                Alert(
                    change_id=change.id,
                    topic_id=topic_id,
                    recipient=recipient,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        session.flush()
    logger.debug("Recorded %s change of %s for topic %s", kind, article.url, topic.name)
    return ChangeRecord(
        id=change.id,
        kind=kind,
        url=article.url,
        title=title,
        topic=topic.name,
        fields=fields,
        from_version=from_version,
        to_version=to_version,
        alerted=alert,
    )


def _apply(
    session: Session,
    *,
    topic_id: int,
    run_id: int | None,
    article: Article,
    observed: Observed,
    observation: Observation | None,
    now: datetime,
) -> ChangeRecord | None:
    """Classify ``observed`` against the stored article and record the outcome."""
    state = _state(session, article)
    decision: Decision = classify(state.previous, observed)
    article.last_checked = now
    if decision.kind == "none":
        return None
    before = article.current_version
    title = state.current.title if state.current is not None else ""
    if decision.new_version:
        assert observation is not None
        article.current_version = before + 1
        title = observation.title
        session.add(
            ArticleVersion(
                article_id=article.id,
                version=article.current_version,
                fingerprint=observation.fingerprint,
                field_hashes=dict(observation.field_hashes),
                title=observation.title,
                lead=observation.lead,
                authors=list(observation.authors),
                published=observation.published,
                modified=observation.modified,
                body=observation.body,
                fetched_at=now,
                raw_html=None
                if observation.raw_html is None
                else zlib.compress(observation.raw_html),
            )
        )
    if decision.kind == "removed":
        article.status = "removed"
    elif decision.kind in ("new", "restored"):
        article.status = "live"
    session.flush()

    topics = _Topics(session)
    announced = _announced_by(session, article.id)
    own: ChangeRecord | None = None
    if decision.kind in ("updated", "removed", "restored"):
        to_version = None if decision.kind == "removed" else article.current_version
        for other in sorted(announced | {topic_id}):
            if other != topic_id and not topics.get(other)[0].active:
                continue
            if other == topic_id and other not in announced:
                continue  # this topic hears of the article through "new" below
            record = _add_change(
                session,
                topics,
                topic_id=other,
                run_id=run_id if other == topic_id else None,
                article=article,
                kind=decision.kind,
                fields=decision.fields,
                from_version=before,
                to_version=to_version,
                alert=decision.alert,
                title=title,
                now=now,
            )
            if other == topic_id:
                own = record
    if topic_id not in announced and article.status == "live":
        own = _add_change(
            session,
            topics,
            topic_id=topic_id,
            run_id=run_id,
            article=article,
            kind="new",
            fields=(),
            from_version=None,
            to_version=article.current_version,
            alert=True,
            title=title,
            now=now,
        )
    return own


def _link(session: Session, topic_id: int, article_id: int, now: datetime) -> None:
    insert = _insert(session, TopicArticle).values(
        topic_id=topic_id, article_id=article_id, since=now, last_listed=None
    )
    session.execute(
        insert.on_conflict_do_nothing(
            index_elements=[TopicArticle.topic_id, TopicArticle.article_id]
        )
    )


def record_page(
    session_factory: sessionmaker[Session],
    *,
    topic_id: int,
    run_id: int | None,
    observation: Observation,
    now: datetime | None = None,
) -> ChangeRecord | None:
    """Record an article page read by a crawl of the topic; the topic's change, if any.

    A new article gets version 1 (``new``); different content a new version
    (``updated``, or ``restored`` after a removal); the same content only moves
    ``last_checked`` and the stored validators.
    """
    moment = _now(now)

    def work(session: Session) -> ChangeRecord | None:
        session.execute(
            _insert(session, Article)
            .values(url=observation.url, first_seen=moment, status="live", current_version=0)
            .on_conflict_do_nothing(index_elements=[Article.url])
        )
        article = _lock_article(session, observation.url)
        assert article is not None
        _link(session, topic_id, article.id, moment)
        article.etag = observation.etag
        article.last_modified = observation.last_modified
        article.raw_sha256 = observation.raw_sha256
        return _apply(
            session,
            topic_id=topic_id,
            run_id=run_id,
            article=article,
            observed=Page(observation.fingerprint, dict(observation.field_hashes)),
            observation=observation,
            now=moment,
        )

    return _write(session_factory, work)


def record_not_modified(
    session_factory: sessionmaker[Session],
    *,
    topic_id: int,
    run_id: int | None,
    url: str,
    now: datetime | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> ChangeRecord | None:
    """Record a 304 Not Modified (or a body identical byte for byte) for ``url``.

    Only ``last_checked`` (and any new validators) move, except for an article that was
    removed: it is back (``restored``). Unknown URLs are ignored.
    """
    moment = _now(now)

    def work(session: Session) -> ChangeRecord | None:
        article = _lock_article(session, url)
        if article is None:
            logger.debug("Ignoring 'not modified' for %s, which is not in the database", url)
            return None
        if etag is not None:
            article.etag = etag
        if last_modified is not None:
            article.last_modified = last_modified
        return _apply(
            session,
            topic_id=topic_id,
            run_id=run_id,
            article=article,
            observed=NotModified(),
            observation=None,
            now=moment,
        )

    return _write(session_factory, work)


def record_gone(
    session_factory: sessionmaker[Session],
    *,
    topic_id: int,
    run_id: int | None,
    url: str,
    now: datetime | None = None,
) -> ChangeRecord | None:
    """Record that ``url`` is gone (404, 410, redirect to the home or topic page).

    A live article becomes ``removed``; one already removed, or never read, only gets
    ``last_checked``; unknown URLs are ignored.
    """
    moment = _now(now)

    def work(session: Session) -> ChangeRecord | None:
        article = _lock_article(session, url)
        if article is None:
            return None
        return _apply(
            session,
            topic_id=topic_id,
            run_id=run_id,
            article=article,
            observed=Gone(),
            observation=None,
            now=moment,
        )

    return _write(session_factory, work)


# -- reading ----------------------------------------------------------------------------------


def _change_query() -> Any:
    shown = ArticleVersion.version == func.coalesce(Change.to_version, Change.from_version)
    return (
        select(Change, Article.url, Topic.name, ArticleVersion.title)
        .join(Article, Article.id == Change.article_id)
        .join(Topic, Topic.id == Change.topic_id)
        .outerjoin(ArticleVersion, and_(ArticleVersion.article_id == Change.article_id, shown))
    )


def _entry(change: Change, url: str, topic: str, title: str | None) -> ChangeEntry:
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
    query = _change_query()
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
            _change_query()
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
                )
                for v, has_raw in versions
            ),
            changes=tuple(_entry(*row) for row in changes),
        )


def raw_html(session_factory: sessionmaker[Session], url: str, version: int) -> bytes | None:
    """The response body stored with a version of an article, when it was kept."""
    with read_session(session_factory) as session:
        data = session.scalar(
            select(ArticleVersion.raw_html)
            .join(Article, Article.id == ArticleVersion.article_id)
            .where(Article.url == url, ArticleVersion.version == version)
        )
    return None if data is None else zlib.decompress(data)
