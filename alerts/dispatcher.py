"""Delivery of the ``alerts`` outbox: pending rows become digest emails.

The repository writes one alert row per change and recipient, in the same transaction as the
change. :func:`dispatch` (run after every crawl and on a timer by the daemon, and by
``topicwatch alerts send``) groups the rows that are due into one digest per recipient and
topic, sends each digest, and records the outcome:

- accepted by the server: the rows become ``sent``, with ``sent_at`` and the digest's
  ``message_id``;
- refused or unreachable: ``attempts`` goes up, ``last_error`` says why, and the rows are
  due again after an exponential backoff; after ``max_attempts`` they are ``failed`` and an
  ERROR is logged (which Sentry's logging integration reports).

**Claims.** Two dispatchers may run at once (the daemon's timer and the command line). Before
sending, a dispatcher claims a digest's rows in one short committed transaction: an UPDATE
that, only where a row is still pending and due, sets ``message_id`` to a claim token of its
own and moves ``next_attempt_at`` a lease time ahead. A row is claimed by at most one
dispatcher (PostgreSQL re-checks the WHERE clause after waiting for a concurrent update;
SQLite runs writers one at a time), and a claimed row is not due for anyone else until the
lease ends. The claim needs no status of its own: a row whose claim was never settled simply
becomes due again when its lease runs out.

**At least once.** Marking rows ``sent`` happens in its own transaction after the server
accepted the message. If the process dies between the two (or the database is unreachable
at that moment), or if the connection breaks while the server is confirming the message, the
digest may have been delivered without being recorded as such; its rows are sent again later.
So that such a repeat is recognisable as the same email, the rows keep their identity: a
dead claim leaves its token, and an ambiguous failure leaves the digest's Message-ID, in
``message_id``; rows sharing one are grouped into the same digest again, whose key (its
sorted alert ids) and therefore Message-ID are unchanged, and mail systems that discard
duplicate Message-IDs show it once. Rows whose attempt failed for certain (nothing was
delivered) drop their identity and join the recipient's next digest. Nothing is lost: a row
leaves ``pending`` only for ``sent`` or, after ``max_attempts``, ``failed``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, Result, and_, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, defer, sessionmaker

from alerts.digest import KINDS, ChangeKind, DigestItem, build_digest, message_id_for
from alerts.smtp import DeliveryError, SmtpSettings, send
from storage.db import read_session
from storage.models import Alert, Article, ArticleVersion, Change, CrawlRun, Topic
from storage.spec import TopicSpec

__all__ = ["AlertView", "DispatchReport", "Requeued", "dispatch", "list_alerts", "requeue_failed"]

logger = logging.getLogger(__name__)

MAX_BACKOFF = 6 * 3600.0
MIN_LEASE = 300.0
# A send talks to the server in up to ~8 steps, each bounded by the SMTP timeout.
LEASE_TIMEOUTS = 10
CLAIM_PREFIX = "claim:"
VIEW_STATUSES = ("pending", "sending", "sent", "failed")


@dataclass
class DispatchReport:
    """What one :func:`dispatch` call did.

    ``deferred_alerts`` are due rows that stay pending: SMTP is not configured, or the
    attempt failed and will be retried.
    """

    sent_messages: int = 0
    sent_alerts: int = 0
    failed_alerts: int = 0
    deferred_alerts: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AlertView:
    """One alert row as ``topicwatch alerts`` lists it.

    ``status`` is ``sending`` for a pending row that a dispatcher has claimed and is sending.
    """

    id: int
    status: str
    recipient: str
    topic: str
    kind: str
    url: str
    title: str
    detected_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None
    message_id: str | None


@dataclass(frozen=True)
class _Group:
    recipient: str
    topic_id: int
    previous: str | None  # message_id the rows share: a dead claim or an ambiguous attempt


def dispatch(
    session_factory: sessionmaker[Session],
    smtp: SmtpSettings | None,
    *,
    now: datetime | None = None,
    max_attempts: int = 8,
    backoff: float = 60.0,
    domain: str | None = None,
    time_limit: float | None = None,
) -> DispatchReport:
    """Send every due pending alert, one digest per recipient and topic.

    ``time_limit`` (seconds) bounds the call: no digest is begun after it, and the alerts of
    those not begun stay pending and due, for the next call.

    ``smtp`` None (not configured) leaves the rows pending and logs a WARNING. ``backoff`` is
    the delay after the first failed attempt, doubled after each further one (at most
    6 hours). ``domain`` is the right-hand side of Message-IDs (default: the sender's
    domain). See the module's documentation for how rows are claimed and what is retried.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}.")
    if backoff <= 0:
        raise ValueError(f"The alert retry backoff must be positive, not {backoff}.")
    moment = datetime.now(UTC) if now is None else now
    report = DispatchReport()
    groups = _due_groups(session_factory, moment)
    if not groups:
        return report
    if smtp is None:
        count = sum(groups.values())
        report.deferred_alerts = count
        logger.warning(
            "SMTP is not configured: %d alert(s) stay pending; add an [smtp] section to the "
            "configuration to send them",
            count,
        )
        return report
    lease = timedelta(seconds=max(MIN_LEASE, LEASE_TIMEOUTS * smtp.timeout))
    message_domain = domain or smtp.sender_address.domain or "localhost"
    message_id_for("", message_domain)  # an invalid domain fails here, before any claim
    started = time.monotonic()
    for number, group in enumerate(groups):
        if time_limit is not None and time.monotonic() - started >= time_limit:
            left = sum(list(groups.values())[number:])
            report.deferred_alerts += left
            logger.warning(
                "Alert delivery stopped after %gs with %d alert(s) not yet tried; they wait "
                "for the next delivery",
                time_limit,
                left,
            )
            break
        _deliver(
            session_factory,
            smtp,
            group,
            now=moment,
            lease=lease,
            max_attempts=max_attempts,
            backoff=backoff,
            domain=message_domain,
            report=report,
        )
    return report


def list_alerts(
    session_factory: sessionmaker[Session],
    status: str | None = None,
    limit: int = 50,
    *,
    now: datetime | None = None,
) -> list[AlertView]:
    """Alert rows, newest first; ``status`` one of pending, sending, sent, failed (or None).

    ``pending`` includes rows being sent right now; ``sending`` lists only those.
    """
    if status is not None and status not in VIEW_STATUSES:
        raise ValueError(
            f"Unknown alert status {status!r}; expected one of {', '.join(VIEW_STATUSES)}."
        )
    moment = datetime.now(UTC) if now is None else now
    shown = ArticleVersion.version == func.coalesce(Change.to_version, Change.from_version)
    query = (
        select(
            Alert, Change.kind, Change.detected_at, Article.url, Topic.name, ArticleVersion.title
        )
        .join(Change, Change.id == Alert.change_id)
        .join(Article, Article.id == Change.article_id)
        .join(Topic, Topic.id == Alert.topic_id)
        .outerjoin(ArticleVersion, and_(ArticleVersion.article_id == Change.article_id, shown))
    )
    if status == "sending":
        query = query.where(_claimed(moment))
    elif status is not None:
        query = query.where(Alert.status == status)
    query = query.order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit)
    with read_session(session_factory) as session:
        views = []
        for alert, kind, detected_at, url, topic, title in session.execute(query):
            claimed = (
                alert.status == "pending"
                and (alert.message_id or "").startswith(CLAIM_PREFIX)
                and alert.next_attempt_at > moment
            )
            views.append(
                AlertView(
                    id=alert.id,
                    status="sending" if claimed else alert.status,
                    recipient=alert.recipient,
                    topic=topic,
                    kind=kind,
                    url=url,
                    title=title or "",
                    detected_at=detected_at,
                    attempts=alert.attempts,
                    next_attempt_at=alert.next_attempt_at,
                    last_error=alert.last_error,
                    sent_at=alert.sent_at,
                    message_id=None if claimed else alert.message_id,
                )
            )
        return views


@dataclass(frozen=True)
class Requeued:
    """What :func:`requeue_failed` did: how many alerts it queued again, and the alerts asked
    for by id that it left alone, with their status (``missing`` for an id that is not
    there)."""

    queued: int
    left: dict[int, str] = field(default_factory=dict)


def requeue_failed(
    session_factory: sessionmaker[Session],
    ids: Collection[int] = (),
    *,
    topic: str | None = None,
    now: datetime | None = None,
) -> Requeued:
    """Put ``failed`` alerts back in the queue, once the cause is fixed: ``pending``, due at
    once, with their attempts counted from zero. With ``ids``, those alerts; else every
    failed alert, or those of ``topic``. An alert keeps its last error until it is tried again,
    and its Message-ID if a delivery of it may have reached the recipient.

    Raises ValueError for a topic that is not in the database, or for both ``ids`` and
    ``topic``.
    """
    if ids and topic is not None:
        raise ValueError("Give alert ids or a topic, not both.")
    moment = datetime.now(UTC) if now is None else now
    wanted = sorted(set(ids))
    with session_factory.begin() as session:
        query = update(Alert).where(Alert.status == "failed")
        left: dict[int, str] = {}
        if wanted:
            query = query.where(Alert.id.in_(wanted))
            rows = session.execute(select(Alert.id, Alert.status).where(Alert.id.in_(wanted)))
            statuses: dict[int, str] = dict(rows.all())
            left = {
                alert_id: statuses.get(alert_id, "missing")
                for alert_id in wanted
                if statuses.get(alert_id) != "failed"
            }
        if topic is not None:
            topic_id = session.scalar(select(Topic.id).where(Topic.name == topic))
            if topic_id is None:
                raise ValueError(f"No topic named {topic!r} is in the database.")
            query = query.where(Alert.topic_id == topic_id)
        queued = _rowcount(
            session.execute(
                query.values(
                    status="pending", attempts=0, next_attempt_at=moment
                ).execution_options(synchronize_session=False)
            )
        )
    if queued:
        logger.info("Queued %d failed alert(s) again", queued)
    return Requeued(queued=queued, left=left)


# --- selecting and claiming ------------------------------------------------------------------


def _due(now: datetime) -> ColumnElement[bool]:
    # A run's changes go out together: none of them while the run that found them is still
    # going (its digest would be split in two).
    running = (
        select(Change.id)
        .join(CrawlRun, CrawlRun.id == Change.crawl_run_id)
        .where(CrawlRun.status == "running")
    )
    return and_(
        Alert.status == "pending",
        Alert.next_attempt_at <= now,
        Alert.change_id.not_in(running),
    )


def _claimed(now: datetime) -> ColumnElement[bool]:
    return and_(
        Alert.status == "pending",
        Alert.message_id.startswith(CLAIM_PREFIX),
        Alert.next_attempt_at > now,
    )


def _due_groups(session_factory: sessionmaker[Session], now: datetime) -> dict[_Group, int]:
    """Each (recipient, topic, shared identity) with due rows, and how many rows it has."""
    query = (
        select(Alert.recipient, Alert.topic_id, Alert.message_id, func.count())
        .where(_due(now))
        .group_by(Alert.recipient, Alert.topic_id, Alert.message_id)
    )
    with read_session(session_factory) as session:
        rows = session.execute(query).all()
    groups = {
        _Group(recipient, topic_id, previous): count
        for recipient, topic_id, previous, count in rows
    }
    # Retries of an earlier digest first, so that their Message-IDs go out as they were.
    return dict(
        sorted(
            groups.items(),
            key=lambda g: (
                g[0].topic_id,
                g[0].recipient,
                g[0].previous is None,
                g[0].previous or "",
            ),
        )
    )


def _claim(
    session_factory: sessionmaker[Session], group: _Group, now: datetime, lease: timedelta
) -> tuple[str, list[int]]:
    """Claim the group's due rows for this dispatcher; the claim token and the ids claimed."""
    token = f"{CLAIM_PREFIX}{uuid.uuid4().hex}"
    same = (
        Alert.message_id.is_(None) if group.previous is None else Alert.message_id == group.previous
    )
    with session_factory.begin() as session:
        session.execute(
            update(Alert)
            .where(
                _due(now),
                Alert.recipient == group.recipient,
                Alert.topic_id == group.topic_id,
                same,
            )
            .values(message_id=token, next_attempt_at=now + lease)
            .execution_options(synchronize_session=False)
        )
    with read_session(session_factory) as session:
        ids = session.scalars(
            select(Alert.id).where(Alert.message_id == token, Alert.status == "pending")
        ).all()
    return token, sorted(ids)


# --- building and sending --------------------------------------------------------------------


def _deliver(
    session_factory: sessionmaker[Session],
    smtp: SmtpSettings,
    group: _Group,
    *,
    now: datetime,
    lease: timedelta,
    max_attempts: int,
    backoff: float,
    domain: str,
    report: DispatchReport,
) -> None:
    token, ids = _claim(session_factory, group, now, lease)
    if not ids:
        logger.debug(
            "Alerts for %s (topic id %d) were claimed by another dispatcher",
            group.recipient,
            group.topic_id,
        )
        return
    digest_key = "alerts:" + ",".join(str(i) for i in ids)
    message_id = message_id_for(digest_key, domain)
    topic_name = f"#{group.topic_id}"
    try:
        topic_name, topic_title, items = _load(session_factory, group.topic_id, token)
        message = build_digest(
            topic_title=topic_title,
            topic_name=topic_name,
            recipient=group.recipient,
            sender=smtp.sender,
            items=items,
            digest_key=digest_key,
            domain=domain,
            date=now,
        )
    except ValueError as exc:
        # An invalid recipient address or unknown change kind: retrying cannot help.
        _settle_failure(
            session_factory,
            token,
            f"Cannot build the digest for {group.recipient}: {exc}",
            now,
            max_attempts=1,
            backoff=backoff,
            keep=None,
            report=report,
            recipient=group.recipient,
            topic=topic_name,
        )
        return
    try:
        reply = send(smtp, message)
    except Exception as exc:
        if isinstance(exc, DeliveryError):
            error, keep = str(exc), message_id if exc.maybe_delivered else None
        else:
            # A fault of our own before anything was transmitted: count it as an attempt, so
            # that it ends in 'failed' rather than being retried for ever.
            logger.exception("Sending the digest %s to %s failed", message_id, group.recipient)
            error, keep = f"Sending the digest failed: {type(exc).__name__}: {exc}", None
        _settle_failure(
            session_factory,
            token,
            error,
            now,
            max_attempts=max_attempts,
            backoff=backoff,
            keep=keep,
            report=report,
            recipient=group.recipient,
            topic=topic_name,
        )
        return
    try:
        with session_factory.begin() as session:
            marked = session.execute(
                update(Alert)
                .where(Alert.message_id == token, Alert.status == "pending")
                .values(
                    status="sent",
                    sent_at=now,
                    message_id=message_id,
                    last_error=None,
                    attempts=Alert.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            count = _rowcount(marked)
    except SQLAlchemyError:
        logger.error(
            "The digest %s to %s (topic %s) was sent, but recording it as sent failed; its "
            "alerts will be sent again (with the same Message-ID) when their claim runs out",
            message_id,
            group.recipient,
            topic_name,
        )
        raise
    if count != len(ids):
        logger.warning(
            "The digest %s for %s (topic %s) was sent, but only %d of its %d alert rows were "
            "still claimed by this dispatcher (the lease ran out); the others may be sent again",
            message_id,
            group.recipient,
            topic_name,
            count,
            len(ids),
        )
    report.sent_messages += 1
    report.sent_alerts += count
    logger.info(
        "Sent the digest %s to %s for topic %s (%d change(s)): %s",
        message_id,
        group.recipient,
        topic_name,
        len(ids),
        reply,
    )


def _rowcount(result: Result[Any]) -> int:
    return result.rowcount if isinstance(result, CursorResult) else -1


def _settle_failure(
    session_factory: sessionmaker[Session],
    token: str,
    error: str,
    now: datetime,
    *,
    max_attempts: int,
    backoff: float,
    keep: str | None,
    report: DispatchReport,
    recipient: str,
    topic: str,
) -> None:
    """Record a failed attempt on the claimed rows: retry later, or give up."""
    failed = deferred = 0
    retry_at = now
    with session_factory.begin() as session:
        rows = session.scalars(
            select(Alert).where(Alert.message_id == token, Alert.status == "pending")
        ).all()
        for alert in rows:
            alert.attempts += 1
            alert.last_error = error
            alert.message_id = keep
            if alert.attempts >= max_attempts:
                alert.status = "failed"
                alert.next_attempt_at = now
                failed += 1
            else:
                delay = min(backoff * 2 ** (alert.attempts - 1), MAX_BACKOFF)
                alert.next_attempt_at = now + timedelta(seconds=delay)
                retry_at = max(retry_at, alert.next_attempt_at)
                deferred += 1
    report.errors.append(error)
    report.failed_alerts += failed
    report.deferred_alerts += deferred
    if failed:
        logger.error(
            "Giving up on %d alert(s) for %s (topic %s) after %d attempt(s): %s",
            failed,
            recipient,
            topic,
            max_attempts,
            error,
        )
    if deferred:
        logger.warning(
            "Could not send %d alert(s) to %s (topic %s); retrying at %s: %s",
            deferred,
            recipient,
            topic,
            retry_at.isoformat(timespec="seconds"),
            error,
        )


def _load(
    session_factory: sessionmaker[Session], topic_id: int, token: str
) -> tuple[str, str, list[DigestItem]]:
    """The topic's name and title, and a digest item for each row claimed with ``token``."""
    with read_session(session_factory) as session:
        topic = session.get_one(Topic, topic_id)
        try:
            title = TopicSpec.from_json(topic.definition).title or topic.name
        except (TypeError, ValueError, KeyError):
            title = topic.name
        rows = session.execute(
            select(Change, Article.url)
            .join(Alert, Alert.change_id == Change.id)
            .join(Article, Article.id == Change.article_id)
            .where(Alert.message_id == token, Alert.status == "pending")
            .order_by(Change.detected_at, Change.id)
        ).all()
        wanted = {
            (change.article_id, version)
            for change, _ in rows
            for version in (change.from_version, change.to_version)
            if version is not None
        }
        versions: dict[tuple[int, int], ArticleVersion] = {}
        if wanted:
            query = (
                select(ArticleVersion)
                .options(defer(ArticleVersion.raw_html))
                .where(
                    ArticleVersion.article_id.in_({a for a, _ in wanted}),
                    ArticleVersion.version.in_({v for _, v in wanted}),
                )
            )
            for version in session.scalars(query):
                versions[(version.article_id, version.version)] = version
        items = [_item(change, url, versions) for change, url in rows]
        return topic.name, title, items


def _item(change: Change, url: str, versions: dict[tuple[int, int], ArticleVersion]) -> DigestItem:
    def version(number: int | None) -> ArticleVersion | None:
        return None if number is None else versions.get((change.article_id, number))

    old = version(change.from_version)
    new = version(change.to_version)
    shown = new if new is not None else old
    return DigestItem(
        kind=_kind(change.kind),
        url=url,
        title=shown.title if shown is not None else "",
        detected_at=change.detected_at,
        published=shown.published if shown is not None else None,
        lead=shown.lead if shown is not None else "",
        body=shown.body if shown is not None else "",
        fields=tuple(change.fields or ()),
        old_title=old.title if old is not None else "",
        old_lead=old.lead if old is not None else "",
        old_body=old.body if old is not None else "",
    )


def _kind(value: str) -> ChangeKind:
    for kind in KINDS:
        if value == kind:
            return kind
    raise ValueError(f"Unknown change kind {value!r} in the changes table.")
