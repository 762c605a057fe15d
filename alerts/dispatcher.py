"""Delivery of the ``alerts`` outbox: pending rows become digest emails.

The repository writes one alert row per change and recipient, in the same transaction as the
change. :func:`dispatch` (run after every crawl and on a timer by the daemon, and by
``topicwatch alerts send``) groups the rows that are due into one digest per recipient and
topic, sends each digest, and records the outcome:

- accepted by the server: the rows become ``sent``, with ``sent_at`` and the digest's
  ``message_id``;
- unreachable, or refused for now (a 4xx reply, a refused login): ``attempts`` goes up,
  ``last_error`` says why, and the rows are due again after an exponential backoff; after
  ``max_attempts`` they are ``failed`` and an ERROR is logged (which Sentry's logging
  integration reports);
- refused for good (a 5xx reply to the recipient or to the message): the rows are ``failed``
  at once, with the server's reply, since the same message would be refused again.

**Channels.** A recipient that is a channel key (``notify:…``, see :mod:`alerts.channels`)
gets, instead of an email, one short plain-text message per batch through Apprise, from the
same rows: claimed, retried with backoff and failed after ``max_attempts`` the same way.
Rows are grouped per recipient, so a channel that is down holds back only its own rows,
never the email or another channel's.

**Size.** A digest larger than ``max_digest_bytes`` goes out as several emails, each a digest
of consecutive changes (oldest first) with a Message-ID of its own; a WARNING says so. Each
part is claimed under a token of its own before the first is sent, so that a part whose
fate is unknown is sent again exactly as it was.

**Order.** A recipient's alerts for a topic go out in the order they were written: a row
waits while an older row of the same recipient and topic is pending but not yet due (its
retry is waiting out a backoff, or another dispatcher is sending it). A digest held back by
an outage therefore never arrives after a newer one; when it is due again, the newer changes
go with it or right after it.

**Message-IDs** are derived from the installation's random token (written into the database
by ``topicwatch db upgrade``), the recipient, the topic and the digest's alert ids with
the times they were written: the same digest sent again has the same Message-ID, and digests
of different databases (a second installation, a database restored from a backup whose alert
ids are handed out again) have different ones.

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

import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Result,
    and_,
    case,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, defer, sessionmaker

from alerts.channels import (
    CHANNEL_PREFIX,
    Channel,
    ChannelError,
    channel_message,
    is_channel,
    send_to_channel,
)
from alerts.channels import limits as channel_limits
from alerts.digest import (
    KINDS,
    MAX_DIGEST_BYTES,
    ChangeKind,
    DigestItem,
    Part,
    build_digest,
    message_id_for,
    message_size,
    split_digest,
)
from alerts.health import HealthItem, build_health_email, health_text
from alerts.smtp import DeliveryError, SmtpSettings, send
from storage.db import chunks, read_session, write_transaction
from storage.models import (
    Alert,
    Article,
    ArticleVersion,
    Change,
    CrawlRun,
    HealthEvent,
    Installation,
    Topic,
)
from storage.spec import TopicSpec

__all__ = [
    "AlertView",
    "DispatchReport",
    "Requeued",
    "change_items",
    "dispatch",
    "installation_token",
    "list_alerts",
    "requeue_failed",
]

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
    health: bool = False  # rows of health events (storage.health), not of changes


@dataclass(frozen=True)
class _Row:
    """One claimed alert and the change it reports."""

    alert_id: int
    created_at: datetime
    item: DigestItem


@dataclass(frozen=True)
class _Digest:
    """What every part of one group's digest shares."""

    group: _Group
    installation: str
    topic_name: str
    topic_title: str
    sender: str
    domain: str
    date: datetime

    def build(self, rows: Sequence[_Row], part: Part | None) -> EmailMessage:
        return build_digest(
            topic_title=self.topic_title,
            topic_name=self.topic_name,
            recipient=self.group.recipient,
            sender=self.sender,
            items=[row.item for row in rows],
            digest_key=self.key(rows),
            domain=self.domain,
            date=self.date,
            part=part,
        )

    def key(self, rows: Sequence[_Row]) -> str:
        """What the Message-ID is made of: see the module's documentation."""
        alerts = ",".join(
            f"{row.alert_id}@{row.created_at.isoformat()}"
            for row in sorted(rows, key=lambda r: r.alert_id)
        )
        return f"{self.installation}|{self.group.recipient}|{self.group.topic_id}|{alerts}"


def dispatch(
    session_factory: sessionmaker[Session],
    smtp: SmtpSettings | None,
    *,
    now: datetime | None = None,
    max_attempts: int = 8,
    backoff: float = 60.0,
    domain: str | None = None,
    time_limit: float | None = None,
    max_digest_bytes: int = MAX_DIGEST_BYTES,
    channels: Mapping[str, Channel] | None = None,
) -> DispatchReport:
    """Send every due pending alert, one digest per recipient and topic.

    A recipient that is a channel (:mod:`alerts.channels`) is sent a short plain-text
    message through Apprise, found by its key in ``channels``; it needs no SMTP, and is
    claimed, retried and given up on like an email. A channel whose key is no longer
    configured counts a failed attempt.

    ``time_limit`` (seconds) bounds the call: no digest is begun after it, and the alerts of
    those not begun stay pending and due, for the next call.

    ``smtp`` None (not configured) leaves the rows pending and logs a WARNING. ``backoff`` is
    the delay after the first failed attempt, doubled after each further one (at most
    6 hours). ``domain`` is the right-hand side of Message-IDs (default: the sender's
    domain). A digest larger than ``max_digest_bytes`` is sent as several emails. See the
    module's documentation for how rows are claimed and what is retried.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}.")
    if backoff <= 0:
        raise ValueError(f"The alert retry backoff must be positive, not {backoff}.")
    if max_digest_bytes <= 0:
        raise ValueError(f"The digest size cap must be positive, not {max_digest_bytes}.")
    moment = datetime.now(UTC) if now is None else now
    report = DispatchReport()
    groups = _due_groups(session_factory, moment)
    if not groups:
        return report
    if smtp is None:
        mail = {group: count for group, count in groups.items() if not is_channel(group.recipient)}
        if mail:
            count = sum(mail.values())
            report.deferred_alerts = count
            logger.warning(
                "SMTP is not configured: %d alert(s) stay pending; add an [smtp] section to "
                "the configuration to send them",
                count,
            )
            groups = {group: n for group, n in groups.items() if group not in mail}
        if not groups:
            return report
        lease = timedelta(seconds=MIN_LEASE)
        message_domain = domain or "localhost"
    else:
        lease = timedelta(seconds=max(MIN_LEASE, LEASE_TIMEOUTS * smtp.timeout))
        message_domain = domain or smtp.sender_address.domain or "localhost"
        message_id_for("", message_domain)  # an invalid domain fails here, before any claim
    installation = _installation_token(session_factory)
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
        if group.health:
            _deliver_health(
                session_factory,
                smtp,
                (channels or {}).get(group.recipient),
                group,
                now=moment,
                lease=lease,
                max_attempts=max_attempts,
                backoff=backoff,
                domain=message_domain,
                installation=installation,
                report=report,
            )
            continue
        if is_channel(group.recipient):
            _deliver_to_channel(
                session_factory,
                (channels or {}).get(group.recipient),
                group,
                now=moment,
                lease=lease,
                max_attempts=max_attempts,
                backoff=backoff,
                installation=installation,
                report=report,
            )
            continue
        assert smtp is not None  # mail groups are dropped above without SMTP
        _deliver(
            session_factory,
            smtp,
            group,
            now=moment,
            lease=lease,
            max_attempts=max_attempts,
            backoff=backoff,
            domain=message_domain,
            installation=installation,
            max_digest_bytes=max_digest_bytes,
            report=report,
        )
    return report


def installation_token(session_factory: sessionmaker[Session]) -> str:
    """The installation's random token (see :func:`_installation_token`)."""
    return _installation_token(session_factory)


def _installation_token(session_factory: sessionmaker[Session]) -> str:
    """The installation's random token, part of every Message-ID.

    The migration that creates its table writes it; should the row be gone, a new one is
    made (by one dispatcher: the row's key is fixed, a concurrent second insert fails and
    its retry reads the first one's).
    """
    with read_session(session_factory) as session:
        token = session.scalar(select(Installation.token).where(Installation.id == 1))
    if token is not None:
        return token

    def create(session: Session) -> str:
        existing = session.scalar(select(Installation.token).where(Installation.id == 1))
        if existing is not None:
            return existing
        made = secrets.token_hex(16)
        session.add(Installation(id=1, token=made))
        session.flush()
        logger.warning("The database had no installation token; made a new one")
        return made

    return write_transaction(session_factory, create)


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
    # A health alert (storage.health) has no change: its kind is "health:broken" or
    # "health:recovered", its title the reason, and no URL.
    query = (
        select(
            Alert,
            Change.kind,
            Change.detected_at,
            Article.url,
            Topic.name,
            ArticleVersion.title,
            HealthEvent,
        )
        .outerjoin(Change, Change.id == Alert.change_id)
        .outerjoin(Article, Article.id == Change.article_id)
        .join(Topic, Topic.id == Alert.topic_id)
        .outerjoin(ArticleVersion, and_(ArticleVersion.article_id == Change.article_id, shown))
        .outerjoin(HealthEvent, HealthEvent.id == Alert.health_event_id)
    )
    if status == "sending":
        query = query.where(_claimed(moment))
    elif status is not None:
        query = query.where(Alert.status == status)
    query = query.order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit)
    with read_session(session_factory) as session:
        views = []
        for (
            alert,
            change_kind,
            change_at,
            change_url,
            topic,
            change_title,
            event,
        ) in session.execute(query):
            if event is None:
                kind, detected_at, url, title = change_kind, change_at, change_url, change_title
            else:
                kind, detected_at = f"health:{event.kind}", event.created_at
                url, title = "", event.reason
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
    # Nor before an older alert of the same recipient and topic that is waiting for its
    # retry or being sent: digests arrive in the order of their changes.
    # (The first waiting row of each recipient and topic is found once, not once per row.)
    older = aliased(Alert)
    waiting = (
        select(older.recipient, older.topic_id, func.min(older.id).label("first_id"))
        .where(
            older.status == "pending",
            older.next_attempt_at > now,
            func.coalesce(older.change_id, 0).not_in(running),
        )
        .group_by(older.recipient, older.topic_id)
        .subquery("waiting")
    )
    waiting_before = exists().where(
        waiting.c.recipient == Alert.recipient,
        waiting.c.topic_id == Alert.topic_id,
        waiting.c.first_id < Alert.id,
    )
    return and_(
        Alert.status == "pending",
        Alert.next_attempt_at <= now,
        func.coalesce(Alert.change_id, 0).not_in(running),
        ~waiting_before,
    )


def _claimed(now: datetime) -> ColumnElement[bool]:
    return and_(
        Alert.status == "pending",
        Alert.message_id.startswith(CLAIM_PREFIX),
        Alert.next_attempt_at > now,
    )


def _due_groups(session_factory: sessionmaker[Session], now: datetime) -> dict[_Group, int]:
    """Each (recipient, topic, shared identity) with due rows, and how many rows it has;
    a recipient's groups for a topic oldest first."""
    health = case((Alert.health_event_id.is_(None), 0), else_=1)
    query = (
        select(
            Alert.recipient,
            Alert.topic_id,
            Alert.message_id,
            health,
            func.count(),
            func.min(Alert.id),
        )
        .where(_due(now))
        .group_by(Alert.recipient, Alert.topic_id, Alert.message_id, health)
        .order_by(Alert.topic_id, Alert.recipient, func.min(Alert.id))
    )
    with read_session(session_factory) as session:
        rows = session.execute(query).all()
    return {
        _Group(recipient, topic_id, previous, bool(of_health)): count
        for recipient, topic_id, previous, of_health, count, _ in rows
    }


def _claim(
    session_factory: sessionmaker[Session], group: _Group, now: datetime, lease: timedelta
) -> tuple[str, list[int]]:
    """Claim the group's due rows for this dispatcher; the claim token and the ids claimed.

    The due rows are found first and claimed by id, in one transaction: an UPDATE whose
    WHERE holds :func:`_due` would see, on SQLite, the rows it has just claimed as waiting
    ones and stop after the first. The claim re-checks that each row is still pending, due
    and unclaimed, so two dispatchers never claim one row."""
    token = f"{CLAIM_PREFIX}{uuid.uuid4().hex}"
    same = (
        Alert.message_id.is_(None) if group.previous is None else Alert.message_id == group.previous
    )
    of_health = (
        Alert.health_event_id.is_not(None) if group.health else Alert.health_event_id.is_(None)
    )
    with session_factory.begin() as session:
        due = session.scalars(
            select(Alert.id).where(
                _due(now),
                Alert.recipient == group.recipient,
                Alert.topic_id == group.topic_id,
                same,
                of_health,
            )
        ).all()
        for chunk_ids in chunks(sorted(due)):
            session.execute(
                update(Alert)
                .where(
                    Alert.id.in_(chunk_ids),
                    Alert.status == "pending",
                    Alert.next_attempt_at <= now,
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
    installation: str,
    max_digest_bytes: int,
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
    topic_name = f"#{group.topic_id}"
    outcome = _Outcome(session_factory, group.recipient, now, max_attempts, backoff, report)
    try:
        topic_name, topic_title, rows = _load(session_factory, group.topic_id, token)
        digest = _Digest(group, installation, topic_name, topic_title, smtp.sender, domain, now)
        parts = split_digest(rows, max_digest_bytes, digest.build, lambda row: row.item)
    except ValueError as exc:
        # An invalid recipient address or unknown change kind: retrying cannot help.
        outcome.topic = topic_name
        outcome.failed(
            token, f"Cannot build the digest for {group.recipient}: {exc}", keep=None, final=True
        )
        return
    outcome.topic = topic_name
    tokens = [token]
    if len(parts) > 1:
        logger.warning(
            "The digest for %s (topic %s) has %d changes, more than fit in one email of at "
            "most %d bytes ([alerts] max_digest_bytes); sending it as %d emails",
            group.recipient,
            topic_name,
            len(rows),
            max_digest_bytes,
            len(parts),
        )
        tokens = _claim_parts(
            session_factory, token, [rows for rows, _ in parts], now + lease * len(parts)
        )
    for index, ((part_rows, message), part_token) in enumerate(zip(parts, tokens, strict=True)):
        size = message_size(message)
        if size > max_digest_bytes:
            logger.warning(
                "A change for %s (topic %s) makes an email of %d bytes on its own, more than "
                "[alerts] max_digest_bytes (%d); sending it as it is",
                group.recipient,
                topic_name,
                size,
                max_digest_bytes,
            )
        if not _send_part(smtp, message, part_token, len(part_rows), outcome):
            # Later parts wait for this one, so that they never arrive before it.
            report.deferred_alerts += _release(session_factory, tokens[index + 1 :], now)
            return


def _deliver_to_channel(
    session_factory: sessionmaker[Session],
    channel: Channel | None,
    group: _Group,
    *,
    now: datetime,
    lease: timedelta,
    max_attempts: int,
    backoff: float,
    installation: str,
    report: DispatchReport,
) -> None:
    """Send the group's due rows to a channel as one message (trimmed to the service's
    limit), and record the outcome as for an email."""
    token, ids = _claim(session_factory, group, now, lease)
    if not ids:
        return
    outcome = _Outcome(session_factory, group.recipient, now, max_attempts, backoff, report)
    try:
        topic_name, topic_title, rows = _load(session_factory, group.topic_id, token)
    except ValueError as exc:
        outcome.topic = f"#{group.topic_id}"
        outcome.failed(
            token, f"Cannot build the message for {group.recipient}: {exc}", keep=None, final=True
        )
        return
    outcome.topic = topic_name
    digest = _Digest(group, installation, topic_name, topic_title, "", "", now)
    key = hashlib.sha256(digest.key(rows).encode("utf-8")).hexdigest()[:32]

    def message(url: str) -> tuple[str, str]:
        body_limit, title_limit = channel_limits(url, group.recipient)
        return channel_message(
            topic_title, [row.item for row in rows], body_limit=body_limit, title_limit=title_limit
        )

    _send_to_channel(
        channel, group.recipient, message, token=token, key=key, claimed=len(ids), outcome=outcome
    )


def _send_to_channel(
    channel: Channel | None,
    recipient: str,
    message: Callable[[str], tuple[str, str]],
    *,
    token: str,
    key: str,
    claimed: int,
    outcome: _Outcome,
) -> None:
    """Send the title and text ``message`` makes for the channel's URL, and record the
    outcome of the rows claimed with ``token`` (sent under ``key``)."""
    if channel is None:
        error = (
            f"The channel {recipient} is no longer in the configuration (notify, notify_env, "
            "health_to or alerts.notify)"
        )
        outcome.failed(token, error, keep=None, final=False)
        return
    try:
        url = channel.resolve()
        title, body = message(url)
        send_to_channel(url, recipient, title, body)
    except ChannelError as exc:
        outcome.failed(token, str(exc), keep=None, final=exc.permanent)
        return
    except Exception as exc:
        logger.exception("Sending to the channel %s failed", recipient)
        error = f"Sending to the channel failed: {type(exc).__name__}: {exc}"
        outcome.failed(token, error, keep=None, final=False)
        return
    outcome.sent(token, f"{CHANNEL_PREFIX}{key}", claimed, "sent")


def _deliver_health(
    session_factory: sessionmaker[Session],
    smtp: SmtpSettings | None,
    channel: Channel | None,
    group: _Group,
    *,
    now: datetime,
    lease: timedelta,
    max_attempts: int,
    backoff: float,
    domain: str,
    installation: str,
    report: DispatchReport,
) -> None:
    """Send the group's due health alerts (a topic broke or recovered) as one plain-text
    message, by email or to a channel, and record the outcome as for a digest."""
    token, ids = _claim(session_factory, group, now, lease)
    if not ids:
        return
    outcome = _Outcome(session_factory, group.recipient, now, max_attempts, backoff, report)
    with read_session(session_factory) as session:
        topic = session.get_one(Topic, group.topic_id)
        topic_name, topic_title = topic.name, _title(topic)
        rows = [
            (HealthItem(event.kind, event.reason, event.created_at), alert_id, created_at)
            for event, alert_id, created_at in session.execute(
                select(HealthEvent, Alert.id, Alert.created_at)
                .join(Alert, Alert.health_event_id == HealthEvent.id)
                .where(Alert.message_id == token, Alert.status == "pending")
                .order_by(HealthEvent.created_at, HealthEvent.id)
            )
        ]
    outcome.topic = topic_name
    items = [item for item, _, _ in rows]
    if not items:
        return
    title, body = health_text(topic_title, topic_name, items)
    alerts = ",".join(
        f"{alert_id}@{at.isoformat()}" for _, alert_id, at in sorted(rows, key=lambda r: r[1])
    )
    key = f"{installation}|{group.recipient}|{group.topic_id}|health|{alerts}"
    if not is_channel(group.recipient):
        if smtp is None:  # mail groups are dropped before without SMTP
            return
        try:
            message = build_health_email(
                title=title,
                body=body,
                topic_name=topic_name,
                recipient=group.recipient,
                sender=smtp.sender,
                key=key,
                domain=domain,
                date=now,
            )
        except ValueError as exc:
            error = f"Cannot build the health alert for {group.recipient}: {exc}"
            outcome.failed(token, error, keep=None, final=True)
            return
        _send_part(smtp, message, token, len(ids), outcome)
        return
    digest_key = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    _send_to_channel(
        channel,
        group.recipient,
        lambda _: (title, body),
        token=token,
        key=digest_key,
        claimed=len(ids),
        outcome=outcome,
    )


def _claim_parts(
    session_factory: sessionmaker[Session],
    token: str,
    parts: list[Sequence[_Row]],
    lease_end: datetime,
) -> list[str]:
    """Give each part of a split digest a claim token of its own (the first keeps ``token``),
    so that a part whose fate is unknown is grouped again as it was; one lease covers all."""
    tokens = [token] + [f"{CLAIM_PREFIX}{uuid.uuid4().hex}" for _ in parts[1:]]
    with session_factory.begin() as session:
        for part_token, rows in zip(tokens[1:], parts[1:], strict=True):
            for ids in chunks([row.alert_id for row in rows]):
                session.execute(
                    update(Alert)
                    .where(Alert.id.in_(ids), Alert.message_id == token, Alert.status == "pending")
                    .values(message_id=part_token)
                    .execution_options(synchronize_session=False)
                )
        session.execute(
            update(Alert)
            .where(Alert.message_id.in_(tokens), Alert.status == "pending")
            .values(next_attempt_at=lease_end)
            .execution_options(synchronize_session=False)
        )
    return tokens


def _release(session_factory: sessionmaker[Session], tokens: list[str], now: datetime) -> int:
    """Give up the claims on parts that were not tried: due again, with no attempt counted.
    How many rows were released."""
    if not tokens:
        return 0
    with session_factory.begin() as session:
        released = session.execute(
            update(Alert)
            .where(Alert.message_id.in_(tokens), Alert.status == "pending")
            .values(message_id=None, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(released)


def _send_part(
    smtp: SmtpSettings, message: EmailMessage, token: str, claimed: int, outcome: _Outcome
) -> bool:
    """Send one digest email of the rows claimed with ``token``; True when it was accepted."""
    message_id = str(message["Message-ID"])
    try:
        reply = send(smtp, message)
    except DeliveryError as exc:
        keep = message_id if exc.maybe_delivered else None
        outcome.failed(token, str(exc), keep=keep, final=exc.permanent)
        return False
    except Exception as exc:
        # A fault of our own before anything was transmitted: count it as an attempt, so
        # that it ends in 'failed' rather than being retried for ever.
        logger.exception("Sending the digest %s to %s failed", message_id, outcome.recipient)
        error = f"Sending the digest failed: {type(exc).__name__}: {exc}"
        outcome.failed(token, error, keep=None, final=False)
        return False
    outcome.sent(token, message_id, claimed, reply)
    return True


@dataclass
class _Outcome:
    """Records what became of the parts of one recipient's digest for one topic."""

    session_factory: sessionmaker[Session]
    recipient: str
    now: datetime
    max_attempts: int
    backoff: float
    report: DispatchReport
    topic: str = ""

    def sent(self, token: str, message_id: str, claimed: int, reply: str) -> None:
        try:
            with self.session_factory.begin() as session:
                marked = session.execute(
                    update(Alert)
                    .where(Alert.message_id == token, Alert.status == "pending")
                    .values(
                        status="sent",
                        sent_at=self.now,
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
                self.recipient,
                self.topic,
            )
            raise
        if count != claimed:
            logger.warning(
                "The digest %s for %s (topic %s) was sent, but only %d of its %d alert rows "
                "were still claimed by this dispatcher (the lease ran out); the others may be "
                "sent again",
                message_id,
                self.recipient,
                self.topic,
                count,
                claimed,
            )
        self.report.sent_messages += 1
        self.report.sent_alerts += count
        logger.info(
            "Sent the digest %s to %s for topic %s (%d change(s)): %s",
            message_id,
            self.recipient,
            self.topic,
            claimed,
            reply,
        )

    def failed(self, token: str, error: str, *, keep: str | None, final: bool) -> None:
        """Record a failed attempt on the rows claimed with ``token``: retry them later, or
        give up (at once when ``final``: the same attempt can never succeed)."""
        failed = deferred = 0
        retry_at = self.now
        with self.session_factory.begin() as session:
            rows = session.scalars(
                select(Alert).where(Alert.message_id == token, Alert.status == "pending")
            ).all()
            for alert in rows:
                alert.attempts += 1
                alert.last_error = error
                alert.message_id = keep
                if final or alert.attempts >= self.max_attempts:
                    alert.status = "failed"
                    alert.next_attempt_at = self.now
                    failed += 1
                else:
                    delay = min(self.backoff * 2 ** (alert.attempts - 1), MAX_BACKOFF)
                    alert.next_attempt_at = self.now + timedelta(seconds=delay)
                    retry_at = max(retry_at, alert.next_attempt_at)
                    deferred += 1
        self.report.errors.append(error)
        self.report.failed_alerts += failed
        self.report.deferred_alerts += deferred
        if failed and final:
            logger.error(
                "Giving up on %d alert(s) for %s (topic %s) without retrying: %s",
                failed,
                self.recipient,
                self.topic,
                error,
            )
        elif failed:
            logger.error(
                "Giving up on %d alert(s) for %s (topic %s) after %d attempt(s): %s",
                failed,
                self.recipient,
                self.topic,
                self.max_attempts,
                error,
            )
        if deferred:
            logger.warning(
                "Could not send %d alert(s) to %s (topic %s); retrying at %s: %s",
                deferred,
                self.recipient,
                self.topic,
                retry_at.isoformat(timespec="seconds"),
                error,
            )


def _rowcount(result: Result[Any]) -> int:
    return result.rowcount if isinstance(result, CursorResult) else -1


def _load(
    session_factory: sessionmaker[Session], topic_id: int, token: str
) -> tuple[str, str, list[_Row]]:
    """The topic's name and title, and each row claimed with ``token`` with its digest item,
    oldest change first."""
    with read_session(session_factory) as session:
        topic = session.get_one(Topic, topic_id)
        title = _title(topic)
        rows = session.execute(
            select(Change, Article.url, Alert.id, Alert.created_at)
            .join(Alert, Alert.change_id == Change.id)
            .join(Article, Article.id == Change.article_id)
            .where(Alert.message_id == token, Alert.status == "pending")
            .order_by(Change.detected_at, Change.id)
        ).all()
        items = change_items(session, [(change, url) for change, url, _, _ in rows])
        claimed = [
            _Row(alert_id, created_at, item)
            for (_, _, alert_id, created_at), item in zip(rows, items, strict=True)
        ]
        return topic.name, title, claimed


def _title(topic: Topic) -> str:
    """The topic's title, or its name where its stored definition cannot be read."""
    try:
        return TopicSpec.from_json(topic.definition).title or topic.name
    except (TypeError, ValueError, KeyError):
        return topic.name


def change_items(session: Session, changes: Sequence[tuple[Change, str]]) -> list[DigestItem]:
    """Each change (with its article's URL) as a digest item, with the versions it joins."""
    wanted = {
        (change.article_id, version)
        for change, _ in changes
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
    article_ids = sorted({change.article_id for change, _ in changes})
    live: set[int] = set()
    for chunk_ids in chunks(article_ids):
        live.update(
            session.scalars(
                select(Article.id).where(Article.id.in_(chunk_ids), Article.live.is_not(None))
            )
        )
    return [_item(change, url, versions, change.article_id in live) for change, url in changes]


def _item(
    change: Change, url: str, versions: dict[tuple[int, int], ArticleVersion], live: bool
) -> DigestItem:
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
        live=live,
        folded=change.folded,
        folded_since=change.folded_since,
        text_gone=old is not None and old.text_pruned_at is not None,
    )


def _kind(value: str) -> ChangeKind:
    for kind in KINDS:
        if value == kind:
            return kind
    raise ValueError(f"Unknown change kind {value!r} in the changes table.")
