"""Topic health: whether a topic's crawl works, told once when it breaks and once when it
recovers.

When a crawl run is closed (:mod:`storage.runs`: by its process, by the runner, or when a
restarted daemon gives up on it) :func:`evaluate` looks at the run and the topic's recent
runs, in the same transaction, and finds at most one problem:

- ``failing``: the topic's last ``health_failures`` runs (its definition) all failed (timeout,
  refusal, a bot wall, …); the reason is the last run's, in plain words;
- ``empty_listing``: a run that succeeded but found no article on the listing, where the
  topic's recent good runs found at least :data:`MANY_ARTICLES`;
- ``no_body``: most article pages read in the run had no article text, or an update cut it
  to a small part of what it was (a site redesign that the profile's selectors no longer
  match, so that only the lead and bylines are left).

The topic's state (``topic_health``) changes from ok to broken on a problem and back on a
good run without one; each change writes a ``health_events`` row and one alert row per
health recipient (``health_to``, default the topic's recipients and channels), delivered
from the alerts outbox like the alerts of changes. No change of state, no alert: a fourth
failed run after three says nothing, and the state is in the database, so a restart or
another process never repeats an alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from storage.models import (
    Alert,
    ArticleVersion,
    Change,
    CrawlRun,
    HealthEvent,
    Topic,
    TopicHealth,
)
from storage.spec import TopicSpec

logger = logging.getLogger(__name__)

FAILED_RUN_STATUSES = ("failed", "timeout", "refused")
GOOD_RUN_STATUSES = ("ok", "partial")
# A listing that used to yield this many articles and now yields none is broken.
MANY_ARTICLES = 5
# Good runs looked at for what a listing used to yield.
RECENT_RUNS = 5
# Fewer article pages without text than this never say a profile is broken.
NO_BODY_AT_LEAST = 3
EMPTY_BODY_MARK = "(empty body)"
# An update that leaves less than half of a text of at least this many characters.
SHRUNK_FROM = 300
SHRINK_FACTOR = 2
# The run's stat of article pages without article text (crawler.run).
EMPTY_BODY_STAT = "topicwatch/empty_body"
PROBLEMS = {
    "failing": "crawl runs fail",
    "empty_listing": "the listing yields no articles",
    "no_body": "article pages yield no text",
}


@dataclass(frozen=True)
class Health:
    """A topic's health as ``topicwatch status`` shows it."""

    state: str  # ok or broken
    problem: str | None
    reason: str | None
    since: datetime | None


HEALTHY = Health("ok", None, None, None)


def run_reason(run: CrawlRun) -> str:
    """Why the run failed, in plain words: its message, else its first failure's reason."""
    if run.message:
        return run.message
    failures = (run.error_details or {}).get("failures") or []
    if failures:
        return str(failures[0].get("reason", "")) or run.status
    return f"the run ended as {run.status}"


def _problem(session: Session, run: CrawlRun, spec: TopicSpec) -> tuple[str, str] | None:
    if run.status in FAILED_RUN_STATUSES:
        recent = session.scalars(
            select(CrawlRun.status)
            .where(
                CrawlRun.topic_id == run.topic_id,
                CrawlRun.status != "running",
                CrawlRun.started_at <= run.started_at,
            )
            .order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc())
            .limit(spec.health_failures)
        ).all()
        if len(recent) >= spec.health_failures and all(
            status in FAILED_RUN_STATUSES for status in recent
        ):
            return "failing", (
                f"{len(recent)} crawl runs in a row failed; the last: {run_reason(run)}"
            )
        return None
    failures = (run.error_details or {}).get("failures") or []
    marked = sum(1 for item in failures if EMPTY_BODY_MARK in str(item.get("reason", "")))
    empty = int((run.stats or {}).get(EMPTY_BODY_STAT, marked))
    read = run.articles_new + run.articles_updated + run.articles_unchanged + run.articles_restored
    lost = empty + _shrunk_bodies(session, run.id)
    if lost >= NO_BODY_AT_LEAST and 2 * lost > read + empty:
        return "no_body", (
            f"{lost} of {read + empty} article pages read had no article text, or a small "
            "part of what they had before; the site may have changed its layout, so that the "
            "profile no longer finds the body"
        )
    if run.articles_seen == 0:
        before = session.scalars(
            select(CrawlRun.articles_seen)
            .where(
                CrawlRun.topic_id == run.topic_id,
                CrawlRun.id != run.id,
                CrawlRun.status.in_(GOOD_RUN_STATUSES),
                CrawlRun.started_at <= run.started_at,
            )
            .order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc())
            .limit(RECENT_RUNS)
        ).all()
        usual = max(before, default=0)
        if usual >= MANY_ARTICLES:
            return "empty_listing", (
                f"the listing yielded no articles, where recent runs found up to {usual}"
            )
    return None


def _shrunk_bodies(session: Session, run_id: int) -> int:
    """How many of the run's updates cut an article's text to a small part of what it was:
    what a profile that no longer finds the body reads (the lead and bylines, say)."""
    old, new = aliased(ArticleVersion), aliased(ArticleVersion)
    rows = session.execute(
        select(func.length(old.body), func.length(new.body))
        .select_from(Change)
        .join(old, and_(old.article_id == Change.article_id, old.version == Change.from_version))
        .join(new, and_(new.article_id == Change.article_id, new.version == Change.to_version))
        .where(Change.crawl_run_id == run_id, Change.kind == "updated")
    ).all()
    return sum(
        1
        for before, after in rows
        if (before or 0) >= SHRUNK_FROM and SHRINK_FACTOR * (after or 0) < (before or 0)
    )


def _recovered(session: Session, run: CrawlRun, problem: str | None) -> bool:
    """Whether a good run without a problem shows that the topic's problem is gone: a
    listing that yields articles again; article pages with their whole text again (a run
    that read nothing, or only what was stored while broken, does not tell)."""
    if run.status not in GOOD_RUN_STATUSES:
        return False
    if problem == "empty_listing":
        return run.articles_seen > 0
    if problem == "no_body":
        read = session.scalar(
            select(func.count())
            .select_from(Change)
            .join(
                ArticleVersion,
                and_(
                    ArticleVersion.article_id == Change.article_id,
                    ArticleVersion.version == Change.to_version,
                ),
            )
            .where(
                Change.crawl_run_id == run.id,
                Change.kind.in_(("new", "updated", "restored")),
                func.length(ArticleVersion.body) >= SHRUNK_FROM,
            )
        )
        return bool(read)
    return True


def evaluate(session: Session, run: CrawlRun, now: datetime) -> str | None:
    """Evaluate the topic's health after its run ``run`` was closed (in the caller's
    transaction); "broken" or "recovered" when the state changed and its alerts were queued."""
    if run.status == "running":
        return None
    topic = session.get(Topic, run.topic_id)
    if topic is None:
        return None
    try:
        spec = TopicSpec.from_json(topic.definition)
    except (TypeError, ValueError, KeyError) as exc:
        # Never at the cost of the run's own record, which is in the same transaction.
        logger.error(
            "The health of topic %s was not evaluated: its stored definition cannot be read (%s)",
            topic.name,
            exc,
        )
        return None
    found = _problem(session, run, spec)
    health = session.get(TopicHealth, run.topic_id, with_for_update=True)
    if health is None:
        health = TopicHealth(topic_id=run.topic_id, state="ok", since=now)
        session.add(health)
    if found is not None and health.state == "ok":
        health.state, health.since = "broken", now
        health.problem, health.reason = found
        _queue(session, run, spec, kind="broken", problem=found[0], reason=found[1], now=now)
        return "broken"
    if found is not None:
        health.problem, health.reason = found  # the latest words, without another alert
        return None
    if health.state == "broken" and _recovered(session, run, health.problem):
        problem = health.problem or "failing"
        reason = f"the crawl works again ({PROBLEMS.get(problem, problem)} no longer)"
        health.state, health.since, health.problem, health.reason = "ok", now, None, None
        _queue(session, run, spec, kind="recovered", problem=problem, reason=reason, now=now)
        return "recovered"
    return None


def _queue(
    session: Session,
    run: CrawlRun,
    spec: TopicSpec,
    *,
    kind: str,
    problem: str,
    reason: str,
    now: datetime,
) -> None:
    event = HealthEvent(
        topic_id=run.topic_id,
        kind=kind,
        problem=problem,
        reason=reason,
        crawl_run_id=run.id,
        created_at=now,
    )
    session.add(event)
    session.flush()
    for recipient in dict.fromkeys(spec.health_recipients()):
        session.add(
            Alert(
                health_event_id=event.id,
                topic_id=run.topic_id,
                recipient=recipient,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    session.flush()


def topic_health(session: Session, topic_id: int) -> Health:
    """The topic's health; ok when never evaluated."""
    row = session.get(TopicHealth, topic_id)
    if row is None:
        return HEALTHY
    return Health(row.state, row.problem, row.reason, row.since)
