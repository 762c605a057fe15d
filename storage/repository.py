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

import email.utils
import functools
import json
import logging
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
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


# A time a page states without a zone is read as the latest it can mean: in the
# westernmost zone (UTC-12), at the end of its day when it is a date alone.
_LATEST_OFFSET = timedelta(hours=12)


def _stated_moment(text: str | None) -> datetime | None:
    """The moment a page's stated publication time means (ISO 8601, as extraction mostly
    leaves it, or an e-mail style date), at its latest where it leaves its zone or time of
    day open; None when it is neither."""
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


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert(session: Session, model: type[Base]) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that understands ON CONFLICT, for the session's database."""
    return _insert_for(session.get_bind().dialect.name, model)


def _insert_for(dialect: str, model: type[Base]) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that understands ON CONFLICT, for a database of this kind."""
    if dialect == "postgresql":
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


@dataclass(frozen=True)
class Listing:
    """What :func:`note_listing` found of a listing page's URLs."""

    announced: set[str]  # the URLs the topic already announced with a "new" change
    known: dict[str, KnownArticle]  # what is stored of each URL (all of them are, after it)


@functools.cache
def _listing_statements(dialect: str) -> tuple[Any, Any, Any]:
    """:func:`note_listing`'s statements for a database of this kind: the upsert of the
    listed articles (returning what is stored of them), the upsert of the topic's links to
    them, and the query for those the topic has announced."""
    table, links = Article.__table__, TopicArticle.__table__
    insert_article = _insert_for(dialect, Article)
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
    insert_link = _insert_for(dialect, TopicArticle)
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
) -> Listing:
    """Record that the topic's listing shows these canonical URLs now.

    Returns the URLs this topic already knows (it has announced them with a ``new``
    change), so a crawl can stop following pagination at a page with nothing new, and what
    is stored of each URL (as :func:`known_state` would, read in the same transaction).
    """
    unique = sorted(set(urls))  # one lock order for every writer: no deadlocks
    if not unique:
        return Listing(set(), {})
    moment = _now(now)

    def work(session: Session) -> Listing:
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
        state = {
            row.url: KnownArticle(
                url=row.url,
                status=row.status,
                etag=row.etag,
                last_modified=row.last_modified,
                raw_sha256=row.raw_sha256,
                current_version=row.current_version,
            )
            for row in rows
        }
        article_ids = sorted(ids.values())
        connection.execute(
            link,
            [
                {"topic_id": topic_id, "article_id": i, "since": moment, "last_listed": moment}
                for i in article_ids
            ],
        )
        announced: set[int] = set()
        for chunk_ids in _chunks(article_ids):
            announced.update(
                connection.scalars(announced_in, {"topic_id": topic_id, "ids": list(chunk_ids)})
            )
        return Listing({url for url, i in ids.items() if i in announced}, state)

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
    query = (
        select(Article)
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
        return [
            _known(article) for article in session.scalars(query) if article.url not in excluded
        ]


# -- observations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageNotModified:
    """A crawl got 304 Not Modified for ``url``, or the very bytes it got last time."""

    url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class PageGone:
    """``url`` answered 404 / 410, or redirected to the home or topic page."""

    url: str


Outcome = Observation | PageNotModified | PageGone


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
    fingerprint: str = ""
    field_hashes: dict[str, str] = field(default_factory=dict)
    title: str = ""
    announced: set[int] = field(default_factory=set)
    known_fingerprints: frozenset[str] = frozenset()


@dataclass
class _Writes:
    """The rows one recording transaction adds, written together at its end."""

    versions: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    # Per change: its topic's name, the title and whether it alerts, for the ChangeRecord.
    records: list[tuple[str, str, list[str]]] = field(default_factory=list)


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
    session: Session, outcomes: Sequence[Outcome], topic_id: int, now: datetime
) -> dict[str, _Stored]:
    """Create the articles of the pages that are new, lock every article the outcomes name
    (in URL order, so concurrent writers never deadlock), and read what is stored of them."""
    page_urls = sorted({o.url for o in outcomes if isinstance(o, Observation)})
    if page_urls:
        session.execute(
            _insert(session, Article).on_conflict_do_nothing(index_elements=[Article.url]),
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
    for chunk in _chunks(sorted({o.url for o in outcomes})):
        rows = session.execute(
            select(
                Article.id,
                Article.url,
                Article.status,
                Article.current_version,
                Article.etag,
                Article.last_modified,
                Article.raw_sha256,
                Article.age_from,
            )
            .where(Article.url.in_(chunk))
            .order_by(Article.url)
            .with_for_update()
        )
        for row in rows:
            stored[row.url] = _Stored(*row)
    by_id = {article.id: article for article in stored.values()}
    linked = sorted(stored[url].id for url in page_urls if url in stored)
    if linked:
        session.execute(
            _insert(session, TopicArticle).on_conflict_do_nothing(
                index_elements=[TopicArticle.topic_id, TopicArticle.article_id]
            ),
            [
                {"topic_id": topic_id, "article_id": i, "since": now, "last_listed": None}
                for i in linked
            ],
        )
    versioned = sorted(i for i, article in by_id.items() if article.current_version > 0)
    for chunk_ids in _chunks(versioned):
        current = session.execute(
            select(
                ArticleVersion.article_id,
                ArticleVersion.fingerprint,
                ArticleVersion.field_hashes,
                ArticleVersion.title,
            )
            .join(
                Article,
                and_(
                    Article.id == ArticleVersion.article_id,
                    Article.current_version == ArticleVersion.version,
                ),
            )
            # Both sides filtered, so neither is read beyond the batch's rows.
            .where(ArticleVersion.article_id.in_(chunk_ids), Article.id.in_(chunk_ids))
        )
        for article_id, fingerprint, field_hashes, title in current:
            article = by_id[article_id]
            article.fingerprint = fingerprint
            article.field_hashes = dict(field_hashes)
            article.title = title
    for chunk_ids in _chunks(sorted(by_id)):
        announced = session.execute(
            select(Change.article_id, Change.topic_id)
            .distinct()
            .where(Change.article_id.in_(chunk_ids))
        )
        for article_id, other in announced:
            by_id[article_id].announced.add(other)
    # The fingerprints already alerted on matter only for content that differs from the
    # current version (A -> B -> A).
    edited = sorted(
        {
            stored[o.url].id
            for o in outcomes
            if isinstance(o, Observation)
            and o.url in stored
            and stored[o.url].current_version > 0
            and stored[o.url].fingerprint != o.fingerprint
        }
    )
    alerted: dict[int, set[str]] = {}
    for chunk_ids in _chunks(edited):
        pairs = session.execute(
            select(ArticleVersion.article_id, ArticleVersion.fingerprint)
            .distinct()
            .join(
                Change,
                and_(
                    Change.article_id == ArticleVersion.article_id,
                    Change.to_version == ArticleVersion.version,
                ),
            )
            .where(ArticleVersion.article_id.in_(chunk_ids), Change.alerted.is_(True))
        )
        for article_id, fingerprint in pairs:
            alerted.setdefault(article_id, set()).add(fingerprint)
    for article_id, fingerprints in alerted.items():
        by_id[article_id].known_fingerprints = frozenset(fingerprints)
    return stored


def _add_change(
    writes: _Writes,
    topics: _Topics,
    *,
    topic_id: int,
    run_id: int | None,
    article: _Stored,
    kind: str,
    fields: tuple[str, ...],
    from_version: int | None,
    to_version: int | None,
    alert: bool,
    title: str,
    now: datetime,
) -> int:
    """Queue a change (and, through :func:`_write_changes`, its alert rows); its index."""
    topic, spec = topics.get(topic_id)
    writes.changes.append(
        {
            "kind": kind,
            "article_id": article.id,
            "topic_id": topic_id,
            "from_version": from_version,
            "to_version": to_version,
            "fields": list(fields),
            "detected_at": now,
            # The run belongs to the observing topic only.
            "crawl_run_id": run_id,
            "alerted": alert,
        }
    )
    recipients = list(dict.fromkeys(spec.alerts_for(kind))) if alert else []
    writes.records.append((topic.name, title, recipients))
    logger.debug("Recording %s change of %s for topic %s", kind, article.url, topic.name)
    return len(writes.changes) - 1


def _decide(
    writes: _Writes,
    topics: _Topics,
    *,
    topic_id: int,
    run_id: int | None,
    article: _Stored,
    outcome: Outcome,
    now: datetime,
) -> int | None:
    """Classify one outcome against the stored article and queue what it records; the index
    of the observing topic's change, if any."""
    observed: Observed
    if isinstance(outcome, Observation):
        article.etag = outcome.etag
        article.last_modified = outcome.last_modified
        article.raw_sha256 = outcome.raw_sha256
        stated = _stated_moment(outcome.published)
        if stated is not None and stated < article.age_from:
            article.age_from = stated
        observed = Page(outcome.fingerprint, dict(outcome.field_hashes))
    elif isinstance(outcome, PageNotModified):
        if outcome.etag is not None:
            article.etag = outcome.etag
        if outcome.last_modified is not None:
            article.last_modified = outcome.last_modified
        observed = NotModified()
    else:
        observed = Gone()
    previous = None
    if article.current_version > 0:
        previous = Previous(
            status=article.status,
            current_fingerprint=article.fingerprint,
            current_field_hashes=dict(article.field_hashes),
            known_fingerprints=article.known_fingerprints,
        )
    decision: Decision = classify(previous, observed)
    if decision.kind == "none":
        return None
    before = article.current_version
    title = article.title
    if decision.new_version:
        assert isinstance(outcome, Observation)
        article.current_version = before + 1
        article.fingerprint = outcome.fingerprint
        article.field_hashes = dict(outcome.field_hashes)
        article.title = title = outcome.title
        writes.versions.append(
            {
                "article_id": article.id,
                "version": article.current_version,
                "fingerprint": outcome.fingerprint,
                "field_hashes": dict(outcome.field_hashes),
                "title": outcome.title,
                "lead": outcome.lead,
                "authors": list(outcome.authors),
                "published": outcome.published,
                "modified": outcome.modified,
                "body": outcome.body,
                "fetched_at": now,
                "raw_html": None if outcome.raw_html is None else zlib.compress(outcome.raw_html),
            }
        )
    if decision.kind == "removed":
        article.status = "removed"
    elif decision.kind in ("new", "restored"):
        article.status = "live"

    announced = set(article.announced)
    own: int | None = None
    if decision.kind in ("updated", "removed", "restored"):
        to_version = None if decision.kind == "removed" else article.current_version
        for other in sorted(announced | {topic_id}):
            if other != topic_id and not topics.get(other)[0].active:
                continue
            if other == topic_id and other not in announced:
                continue  # this topic hears of the article through "new" below
            index = _add_change(
                writes,
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
                own = index
    if topic_id not in announced and article.status == "live":
        own = _add_change(
            writes,
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
        article.announced.add(topic_id)
    return own


def _write_changes(session: Session, writes: _Writes, now: datetime) -> list[int]:
    """Insert the queued versions, changes and alert rows; the ids of the changes."""
    if writes.versions:
        session.execute(insert(ArticleVersion), writes.versions)
    if not writes.changes:
        return []
    ids = list(
        session.scalars(
            insert(Change).returning(Change.id, sort_by_parameter_order=True), writes.changes
        )
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
        session.execute(insert(Alert), alert_rows)
    return ids


def _record(
    session: Session,
    topics: _Topics,
    *,
    topic_id: int,
    run_id: int | None,
    outcomes: Sequence[Outcome],
    now: datetime,
) -> list[ChangeRecord | None]:
    """Record ``outcomes`` (no URL twice) in the session's transaction."""
    stored = _load_stored(session, outcomes, topic_id, now)
    writes = _Writes()
    indexes: list[int | None] = []
    for outcome in outcomes:
        article = stored.get(outcome.url)
        if article is None:
            # Only a page read creates an article; a 304 or a 404 of an unknown URL is noise.
            logger.debug("Ignoring %s for %s, which is not in the database", outcome, outcome.url)
            indexes.append(None)
            continue
        indexes.append(
            _decide(
                writes,
                topics,
                topic_id=topic_id,
                run_id=run_id,
                article=article,
                outcome=outcome,
                now=now,
            )
        )
    ids = _write_changes(session, writes, now)
    if stored:
        session.execute(
            update(Article),
            [
                {
                    "id": article.id,
                    "last_checked": now,
                    "etag": article.etag,
                    "last_modified": article.last_modified,
                    "raw_sha256": article.raw_sha256,
                    "age_from": article.age_from,
                    "status": article.status,
                    "current_version": article.current_version,
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
                alerted=change["alerted"],
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

    The same as :func:`record_page`, :func:`record_not_modified` and :func:`record_gone`
    called in turn for each outcome, but all or nothing, and with a few statements for the
    whole batch rather than several per outcome.
    """
    moment = _now(now)
    if not outcomes:
        return []

    def work(session: Session) -> list[ChangeRecord | None]:
        topics = _Topics(session)
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

    return _write(session_factory, work)


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
    (change,) = record_outcomes(
        session_factory, topic_id=topic_id, run_id=run_id, outcomes=[observation], now=now
    )
    return change


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
    outcome = PageNotModified(url=url, etag=etag, last_modified=last_modified)
    (change,) = record_outcomes(
        session_factory, topic_id=topic_id, run_id=run_id, outcomes=[outcome], now=now
    )
    return change


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
    (change,) = record_outcomes(
        session_factory, topic_id=topic_id, run_id=run_id, outcomes=[PageGone(url)], now=now
    )
    return change


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
