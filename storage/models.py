"""The database schema, as SQLAlchemy 2 typed models.

The schema is created and upgraded only through the Alembic migrations in
``storage/migrations``; these classes are what the migrations are checked against.

Every timestamp is a timezone-aware UTC ``datetime`` in Python (see :class:`UTCDateTime`).
The indexes are chosen for a database of a few hundred thousand articles: recording an
observation, choosing the articles to re-check and listing recent changes each read a
handful of rows through an index, never the whole table.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.spec import RECORDED_KINDS

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ARTICLE_STATUSES = ("live", "removed")
RUN_STATUSES = ("running", "ok", "partial", "failed", "timeout", "refused")
ALERT_STATUSES = ("pending", "sent", "failed")
# How an article was recognised as live coverage (storage.live).
LIVE_SIGNALS = ("markup", "marker", "changes")
HEALTH_STATES = ("ok", "broken")
HEALTH_EVENT_KINDS = ("broken", "recovered")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# How many bound timestamps a UTCDateTime processor remembers.
_REMEMBERED = 64


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC on every backend and always read back timezone-aware (UTC).

    SQLite has no time zones: the value is stored as naive UTC text. PostgreSQL stores a
    ``timestamptz``; whatever the session's time zone, the value comes back in UTC. A naive
    ``datetime`` is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"The timestamp {value.isoformat()} has no time zone; topicwatch stores "
                "timezone-aware datetimes only (use datetime.now(UTC))."
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """The processing of :meth:`process_bind_param` and of the dialect's own type, with
        the last few values remembered: a recording transaction binds the same moment to
        every row it writes, and on SQLite each costs a conversion to UTC and a text
        rendering. Equal aware datetimes are the same instant, so their stored form is the
        same; a naive one is never remembered (it is refused)."""
        process = super().bind_processor(dialect)
        if process is None:
            return None
        known: dict[datetime, Any] = {}

        def remembered(value: datetime | None) -> Any:
            if value is None:
                return None
            try:
                return known[value]
            except KeyError:
                pass
            result = process(value)
            if len(known) >= _REMEMBERED:
                known.clear()
            known[value] = result
            return result

        return remembered

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    definition: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (
        CheckConstraint(_one_of("status", ARTICLE_STATUSES), name="status"),
        # Re-checks look at recently first-seen articles only.
        Index("ix_articles_first_seen", "first_seen"),
        CheckConstraint(f"live IS NULL OR {_one_of('live', LIVE_SIGNALS)}", name="live"),
        # The live articles, which alert shaping looks at on its timer.
        Index("ix_articles_live", "live"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    first_seen: Mapped[datetime]
    # Whether the article is young enough to be re-checked on every run counts from here:
    # when it was first seen, or the publication time its page states when that is earlier.
    age_from: Mapped[datetime]
    last_seen_on_listing: Mapped[datetime | None]
    last_checked: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="live")
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    # 0 while the article has been listed but not yet read.
    current_version: Mapped[int] = mapped_column(default=0)
    # SHA-256 of the last response body, so a byte-identical page skips extraction.
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    # Live coverage (storage.live): how it was recognised while it is live (None: not live),
    # since when, and when it ended (or when its page said it ended, until that is alerted).
    live: Mapped[str | None] = mapped_column(String(16))
    live_since: Mapped[datetime | None]
    live_until: Mapped[datetime | None]
    # The last checks of the article, oldest first: "1" where it had changed, "0" where not.
    checks: Mapped[str] = mapped_column(String(32), default="")

    versions: Mapped[list[ArticleVersion]] = relationship(
        back_populates="article", order_by="ArticleVersion.version"
    )


class ArticlePage(Base):
    """A later page of a multi-page article (page 2 on, or the view of the whole article):
    one row per page the current version was read from beyond the article's own URL, with
    the page's validators, so a re-check asks for every page conditionally. The article's
    own URL keeps its validators in ``articles``; a one-page article has no rows here."""

    __tablename__ = "article_pages"
    __table_args__ = (UniqueConstraint("article_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    position: Mapped[int]  # 2, 3, … in reading order
    url: Mapped[str] = mapped_column(String(2000))
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    raw_sha256: Mapped[str | None] = mapped_column(String(64))


class TopicArticle(Base):
    __tablename__ = "topic_articles"
    __table_args__ = (UniqueConstraint("topic_id", "article_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    since: Mapped[datetime]
    last_listed: Mapped[datetime | None]


class ArticleVersion(Base):
    __tablename__ = "article_versions"
    __table_args__ = (
        UniqueConstraint("article_id", "version"),
        Index("ix_article_versions_article_fingerprint", "article_id", "fingerprint"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    version: Mapped[int]
    fingerprint: Mapped[str] = mapped_column(String(64))
    field_hashes: Mapped[dict[str, Any]]
    title: Mapped[str] = mapped_column(Text, default="")
    lead: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[str]] = mapped_column(JSON, default=list)
    published: Mapped[str | None] = mapped_column(String(64))
    modified: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    # One short hash per paragraph of the body (storage.templates); None in versions stored
    # before site templates were learned.
    blocks: Mapped[list[str] | None] = mapped_column(JSON)
    fetched_at: Mapped[datetime]
    # zlib-compressed response body, kept only when the topic asks for it.
    raw_html: Mapped[bytes | None] = mapped_column(LargeBinary)
    # When the retention policy removed the version's text (lead, body and block hashes);
    # its fingerprint, field hashes, title, authors and dates are kept for good.
    text_pruned_at: Mapped[datetime | None]

    article: Mapped[Article] = relationship(back_populates="versions")


class CrawlRun(Base):
    __tablename__ = "crawl_runs"
    __table_args__ = (
        CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),
        Index("ix_crawl_runs_topic_started", "topic_id", "started_at"),
        # Finding runs left 'running' by a crash.
        Index("ix_crawl_runs_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
    pages_fetched: Mapped[int] = mapped_column(default=0)
    articles_seen: Mapped[int] = mapped_column(default=0)
    articles_new: Mapped[int] = mapped_column(default=0)
    articles_updated: Mapped[int] = mapped_column(default=0)
    articles_removed: Mapped[int] = mapped_column(default=0)
    articles_restored: Mapped[int] = mapped_column(default=0)
    articles_unchanged: Mapped[int] = mapped_column(default=0)
    articles_not_modified: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    error_details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(Text)
    # When the schedule wanted the run to start (None: started by hand); the start's lag.
    due_at: Mapped[datetime | None]
    # The crawl process, so that a restarted daemon can find one still living and stop it:
    # its pid and what tells that pid's process from a later one (boot and start time).
    process_id: Mapped[int | None]
    process_start: Mapped[str | None] = mapped_column(String(64))
    # Where the run ran: the machine's host name and the process that supervised it (the
    # daemon, or a queue worker as "worker <pid>"), and the queue job that asked for it.
    host: Mapped[str | None] = mapped_column(String(255))
    worker: Mapped[str | None] = mapped_column(String(255))
    job_id: Mapped[int | None] = mapped_column(BigInteger, index=True)


class Change(Base):
    __tablename__ = "changes"
    __table_args__ = (
        CheckConstraint(_one_of("kind", RECORDED_KINDS), name="kind"),
        Index("ix_changes_detected_at", "detected_at"),
        # "Has this topic announced this article?" and an article's changes.
        Index("ix_changes_article_topic", "article_id", "topic_id"),
        # A topic's recent changes.
        Index("ix_changes_topic_detected", "topic_id", "detected_at"),
        # The held changes not yet reported by a summary (storage.live).
        Index("ix_changes_held_summary", "held", "summary_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    detected_at: Mapped[datetime]
    crawl_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("crawl_runs.id", ondelete="SET NULL"), index=True
    )
    # False when the content returned to a version already alerted on (A -> B -> A).
    alerted: Mapped[bool] = mapped_column(default=True)
    # Alert shaping (storage.live): an update of a live article, or one beyond the topic's
    # alert cap, is recorded without alert rows (held); a later summary, live or ended
    # change reports it (summary_id). Such a change folds ``folded`` updates detected since
    # ``folded_since``.
    held: Mapped[bool] = mapped_column(default=False)
    summary_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="SET NULL"))
    folded: Mapped[int] = mapped_column(default=0)
    folded_since: Mapped[datetime | None]


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("change_id", "recipient"),
        UniqueConstraint("health_event_id", "recipient"),
        CheckConstraint(_one_of("status", ALERT_STATUSES), name="status"),
        # A row reports a change or a health event (storage.health), never both.
        CheckConstraint("(change_id IS NULL) <> (health_event_id IS NULL)", name="reports_one"),
        # RFC 5321 caps a forward path at 256 octets; 320 leaves room for a display name.
        CheckConstraint("length(recipient) BETWEEN 1 AND 320", name="recipient_length"),
        Index("ix_alerts_status_next", "status", "next_attempt_at"),
        Index("ix_alerts_topic_status", "topic_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"))
    health_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("health_events.id", ondelete="CASCADE")
    )
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]


class TopicHealth(Base):
    """Whether a topic's crawl works (see :mod:`storage.health`): one row per topic whose
    health was evaluated; a topic without one is healthy."""

    __tablename__ = "topic_health"
    __table_args__ = (CheckConstraint(_one_of("state", HEALTH_STATES), name="state"),)

    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    state: Mapped[str] = mapped_column(String(16))
    # failing, empty_listing or no_body while broken; None while ok.
    problem: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    since: Mapped[datetime]


class HealthEvent(Base):
    """A topic broke or recovered; its alerts are rows of ``alerts``."""

    __tablename__ = "health_events"
    __table_args__ = (CheckConstraint(_one_of("kind", HEALTH_EVENT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    problem: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    crawl_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("crawl_runs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]


class Site(Base):
    """A site whose articles topicwatch reads: its host, and how many of its articles have
    been read (each once, when its first version was stored). See :mod:`storage.templates`."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(300), unique=True)
    pages: Mapped[int] = mapped_column(default=0)


class SiteBlock(Base):
    """A block of text (a paragraph's hash) seen on a site's articles: on how many, and the
    site's article count when it was first seen. See :mod:`storage.templates`."""

    __tablename__ = "site_blocks"
    # Tens of rows are added or counted per article read for the first time: the primary
    # key is the table's only B-tree (on SQLite the rows are stored in it, WITHOUT ROWID).
    # Forgetting a site's rarely seen blocks finds them by the key's site_id.
    __table_args__ = ({"sqlite_with_rowid": False},)

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    block: Mapped[str] = mapped_column(String(16), primary_key=True)
    pages: Mapped[int]
    first_seen: Mapped[int]


class Installation(Base):
    """This installation's identity: one row, written by the migration that made the table.

    Its random ``token`` goes into every digest's Message-ID, so that two databases (two
    installations, or a fresh one beside an old one) never give two different digests the
    same Message-ID although their alert ids are the same. Copying the database elsewhere
    keeps it: the installation stays the same one.
    """

    __tablename__ = "installation"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(64))


class DaemonRow(Base):
    """The daemon that serves this database, while one does: one row (see
    :mod:`storage.daemons`), written when the daemon has the database's daemon lock, with
    each topic's next run as the daemon's scheduler has it."""

    __tablename__ = "daemon"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    # {"topic": "2026-11-26T10:30:12Z", …}: when the scheduler runs each topic next.
    next_runs: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime]
