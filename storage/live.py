"""Live coverage and alert shaping: every version is recorded, only the alerting is shaped.

An article is **live coverage** when its page says so (JSON-LD ``LiveBlogPosting``, or the
usual live markers: :mod:`crawler.live`), or, without either, when it changed in more than
``live_after`` of its last ``live_window`` checks (the topic's settings; the article keeps the
outcome of its last checks in ``articles.checks``). For a live article a topic's people get:

- one ``live`` alert when it goes live (for an article first seen live, its ``new`` alert,
  which says it is live);
- at most one ``summary`` per ``live_summary_every``: "N updates since HH:MM", with the
  combined diff from the last version reported to the newest;
- one ``ended`` alert when no update came for ``live_ends_after``, or when its markup says the
  coverage ended (``coverageEndTime`` passed, or the ``LiveBlogPosting`` markup is gone),
  with the updates not yet summarised.

For any other article, the topic's ``alert_cap`` bounds the alerts of its updates per
``alert_cap_period``; the updates beyond it are folded into one ``summary`` that goes out
with the topic's next digest once the period since the article's last alert has passed.

An update whose alert is held back is recorded as usual, with ``held`` set and no alert rows;
the change that later reports it points to it from ``summary_id`` (``held`` rows without one
are waiting). :func:`shape` decides at recording time (called by :mod:`storage.recording`, in
its transaction); :func:`release` runs on the daemon's alert timer (and before each
delivery) and writes the summaries and ended changes that are due, with their alert rows, in
one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from storage.changes import NotModified, Outcome, PageRead, Plan, PlannedChange
from storage.db import aware_now, chunks, read_session, write_transaction
from storage.models import Alert, Article, Change, Topic
from storage.spec import MAX_LIVE_WINDOW, TopicSpec
from storage.topics import TopicCache

logger = logging.getLogger(__name__)

# Changes that sent an alert about an article's content, counted against the alert cap and
# the summary period.
ALERTING_KINDS = ("new", "updated", "restored", "live", "summary", "ended")
# The alerts about an article's updates, which the alert cap counts.
UPDATE_ALERT_KINDS = ("updated", "live", "summary")


@dataclass(frozen=True)
class LiveState:
    """An article's live coverage as stored: how it was recognised while live (None: not
    live), since when, until when (set while live: its page said it ended), and the outcome
    of its last checks ("1" changed, "0" not, oldest first)."""

    live: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    checks: str = ""


@dataclass(frozen=True)
class ShapedChange:
    """A planned change with whether its alert is held back for a later summary;
    ``reported_by_next``: the change after it (the ``live`` change of the update that made
    the article live) reports it."""

    change: PlannedChange
    held: bool = False
    reported_by_next: bool = False


def shape(
    plan: Plan,
    outcome: Outcome,
    state: LiveState,
    *,
    observing: int,
    spec_of: Callable[[int], TopicSpec],
    alerts_at: Mapping[int, Sequence[datetime]],
    now: datetime,
) -> tuple[list[ShapedChange], LiveState]:
    """Shape the alerts of one recorded outcome; the changes to write and the article's live
    state after it.

    ``observing`` is the topic whose crawl saw the outcome (its settings recognise live
    coverage by frequency); ``alerts_at`` the times of the article's recent alerting changes
    per topic (for the cap).
    """
    kind = plan.decision.kind
    checks = state.checks
    if isinstance(outcome, PageRead | NotModified) and kind != "none":
        checks = (checks + ("1" if kind == "updated" else "0"))[-MAX_LIVE_WINDOW:]
    live, since, until = state.live, state.since, state.until
    went_live = False
    if plan.status == "live":
        signal = outcome.live if isinstance(outcome, PageRead) else None
        ended = isinstance(outcome, PageRead) and outcome.live_ended
        if live is None:
            spec = spec_of(observing)
            recent = checks[-spec.live_window :]
            if signal is not None and not ended:
                live = signal
            elif not ended and spec.live_after > 0 and recent.count("1") > spec.live_after:
                live = "changes"
            if live is not None:
                since, until, went_live = now, None, True
        elif isinstance(outcome, PageRead) and (ended or (live == "markup" and signal is None)):
            # The coverage is over; release() reports it with what is not yet summarised.
            until = until or now
    shaped: list[ShapedChange] = []
    for change in plan.changes:
        if change.kind != "updated" or not change.alert:
            shaped.append(ShapedChange(change))
        elif went_live:
            shaped.append(ShapedChange(change, held=True, reported_by_next=True))
            shaped.append(ShapedChange(replace(change, kind="live")))
        elif live is not None:
            shaped.append(ShapedChange(change, held=True))
        else:
            spec = spec_of(change.topic_id)
            window = now - timedelta(seconds=spec.alert_cap_period)
            recent_alerts = [t for t in alerts_at.get(change.topic_id, ()) if t > window]
            capped = spec.alert_cap > 0 and len(recent_alerts) >= spec.alert_cap
            shaped.append(ShapedChange(change, held=capped))
    return shaped, LiveState(live, since, until, checks)


# --- releasing held alerts ------------------------------------------------------------------


@dataclass(frozen=True)
class Released:
    """A change :func:`release` wrote: a summary or an ended change of one article for one
    topic, folding ``folded`` held updates."""

    change_id: int
    kind: str
    article_id: int
    url: str
    topic: str
    folded: int
    alerts: int


@dataclass
class _Article:
    id: int
    url: str
    live: str | None
    live_since: datetime | None
    live_until: datetime | None
    current_version: int
    held: dict[int, list[Change]] = field(default_factory=dict)  # per topic, oldest first


def release(
    session_factory: sessionmaker[Session], *, now: datetime | None = None
) -> list[Released]:
    """Write the summaries and ended changes that are due, with their alert rows; what was
    written. Safe to run beside another call (the articles are locked, and what is pending
    read again under the lock)."""
    moment = aware_now(now)
    with read_session(session_factory) as session:
        if not _candidates(session):
            return []  # the usual case: no write transaction at all
    return write_transaction(session_factory, lambda session: _release(session, moment))


def _candidates(session: Session) -> list[int]:
    """The live articles and those with held updates not yet reported."""
    return sorted(
        set(session.scalars(select(Article.id).where(Article.live.is_not(None))))
        | set(
            session.scalars(
                select(Change.article_id)
                .where(Change.held.is_(True), Change.summary_id.is_(None))
                .distinct()
            )
        )
    )


def _release(session: Session, now: datetime) -> list[Released]:
    candidates = _candidates(session)
    if not candidates:
        return []
    topics = TopicCache(session)
    released: list[Released] = []
    for chunk_ids in chunks(candidates):
        articles = {
            row.id: _Article(*row)
            for row in session.execute(
                select(
                    Article.id,
                    Article.url,
                    Article.live,
                    Article.live_since,
                    Article.live_until,
                    Article.current_version,
                )
                .where(Article.id.in_(chunk_ids))
                .order_by(Article.id)
                .with_for_update()
            )
        }
        for change in session.scalars(
            select(Change)
            .where(
                Change.article_id.in_(chunk_ids),
                Change.held.is_(True),
                Change.summary_id.is_(None),
            )
            .order_by(Change.id)
        ):
            articles[change.article_id].held.setdefault(change.topic_id, []).append(change)
        last_alert = _last_alerts(session, list(chunk_ids))
        last_update = _last_updates(session, list(chunk_ids))
        for article in articles.values():
            released += _release_article(
                session, topics, article, last_alert=last_alert, last_update=last_update, now=now
            )
    return released


def _last_alerts(session: Session, ids: list[int]) -> dict[tuple[int, int], datetime]:
    """When each (article, topic) last had a change that alerted."""
    rows = session.execute(
        select(Change.article_id, Change.topic_id, func.max(Change.detected_at))
        .where(
            Change.article_id.in_(ids),
            Change.held.is_(False),
            Change.alerted.is_(True),
            Change.kind.in_(ALERTING_KINDS),
        )
        .group_by(Change.article_id, Change.topic_id)
    )
    return {(article, topic): at for article, topic, at in rows}


def _last_updates(session: Session, ids: list[int]) -> dict[int, datetime]:
    """When each article was last updated."""
    rows = session.execute(
        select(Change.article_id, func.max(Change.detected_at))
        .where(Change.article_id.in_(ids), Change.kind == "updated")
        .group_by(Change.article_id)
    )
    return dict(rows.all())


def _announcing(session: Session, article_id: int) -> list[int]:
    return sorted(
        session.scalars(
            select(Change.topic_id)
            .join(Topic, Topic.id == Change.topic_id)
            .where(Change.article_id == article_id, Topic.active.is_(True))
            .distinct()
        )
    )


def _release_article(
    session: Session,
    topics: TopicCache,
    article: _Article,
    *,
    last_alert: Mapping[tuple[int, int], datetime],
    last_update: Mapping[int, datetime],
    now: datetime,
) -> list[Released]:
    released: list[Released] = []
    if article.live is not None:
        announcing = _announcing(session, article.id)
        specs = [topics.get(topic)[1] for topic in announcing]
        quiet_for = max((spec.live_ends_after for spec in specs), default=0.0)
        latest = max(
            (t for t in (last_update.get(article.id), article.live_since) if t is not None),
            default=now,
        )
        quiet = now - latest >= timedelta(seconds=quiet_for)
        if article.live_until is not None or quiet:
            for topic in sorted(set(announcing) | set(article.held)):
                released.append(_report(session, topics, article, topic, kind="ended", now=now))
            session.execute(
                update(Article)
                .where(Article.id == article.id)
                .values(live=None, live_until=article.live_until or now)
            )
            logger.info(
                "Live coverage ended: %s (%s)",
                article.url,
                "its page says so" if article.live_until is not None else "no update",
            )
            return released
    for topic, held in sorted(article.held.items()):
        if not held:
            continue
        spec = topics.get(topic)[1]
        period = spec.live_summary_every if article.live is not None else spec.alert_cap_period
        last = last_alert.get((article.id, topic))
        if last is None or now - last >= timedelta(seconds=period):
            released.append(_report(session, topics, article, topic, kind="summary", now=now))
    return released


def _report(
    session: Session,
    topics: TopicCache,
    article: _Article,
    topic_id: int,
    *,
    kind: str,
    now: datetime,
) -> Released:
    """Write a summary or ended change for the article and topic, folding its held updates,
    with an alert row per recipient."""
    held = article.held.pop(topic_id, [])
    fields = sorted({name for change in held for name in change.fields or ()})
    topic, spec = topics.get(topic_id)
    change_id = session.execute(
        insert(Change).returning(Change.id),
        {
            "kind": kind,
            "article_id": article.id,
            "topic_id": topic_id,
            "from_version": held[0].from_version if held else None,
            "to_version": article.current_version,
            "fields": fields,
            "detected_at": now,
            "crawl_run_id": None,
            "alerted": True,
            "held": False,
            "summary_id": None,
            "folded": len(held),
            "folded_since": held[0].detected_at if held else None,
        },
    ).scalar_one()
    for chunk_ids in chunks([change.id for change in held]):
        session.execute(
            update(Change)
            .where(Change.id.in_(chunk_ids))
            .values(summary_id=change_id)
            .execution_options(synchronize_session=False)
        )
    recipients = list(dict.fromkeys(spec.alerts_for(kind))) if topic.active else []
    if recipients:
        session.execute(
            insert(Alert),
            [
                {
                    "change_id": change_id,
                    "topic_id": topic_id,
                    "recipient": recipient,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for recipient in recipients
            ],
        )
    logger.debug("Recorded %s change of %s for topic %s", kind, article.url, topic.name)
    return Released(
        change_id, kind, article.id, article.url, topic.name, len(held), len(recipients)
    )
