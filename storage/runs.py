"""Crawl runs: their bookkeeping (started, finished, given up on), and how each topic is
doing, for ``topicwatch status`` and the scheduler."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from storage.db import aware_now, read_session, write_transaction
from storage.health import (
    FAILED_RUN_STATUSES,
    GOOD_RUN_STATUSES,
    HEALTHY,
    Health,
    evaluate,
    topic_health,
)
from storage.models import RUN_STATUSES, Change, CrawlRun, Topic
from storage.spec import TopicSpec

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
MAX_STORED_FAILURES = 1000
# The counter of a run that tells how many changes of each kind it recorded.
CHANGE_COUNTERS = {
    "new": "articles_new",
    "updated": "articles_updated",
    "removed": "articles_removed",
    "restored": "articles_restored",
}


class UnknownRun(LookupError):
    """No crawl run with that id is in the database."""


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
    due_at: datetime | None = None

    @property
    def duration(self) -> timedelta | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    @property
    def lag(self) -> timedelta | None:
        """How much later than its schedule wanted the run started; None when started by hand."""
        return None if self.due_at is None else max(timedelta(0), self.started_at - self.due_at)


@dataclass(frozen=True)
class UnfinishedRun:
    """A run still marked ``running``, and the crawl process recorded for it, if any."""

    id: int
    topic: str
    process_id: int | None
    process_start: str | None


@dataclass(frozen=True)
class TopicStatus:
    """How an active topic is doing, for ``topicwatch status`` and the scheduler."""

    topic_id: int
    name: str
    title: str
    last_run: RunRecord | None
    consecutive_failures: int
    last_ok_at: datetime | None
    health: Health = HEALTHY


def _json_safe(value: Any) -> Any:
    """``value`` with everything JSON cannot hold (datetimes, sets, …) turned into text."""

    def default(item: Any) -> Any:
        if isinstance(item, datetime):
            return item.isoformat()
        if isinstance(item, set | frozenset | tuple):
            return sorted(item, key=str)
        return str(item)

    return json.loads(json.dumps(value, default=default))


def start_run(
    session_factory: sessionmaker[Session],
    topic_id: int,
    now: datetime | None = None,
    *,
    due_at: datetime | None = None,
) -> int:
    """Record that a crawl run of the topic starts (due by its schedule at ``due_at``); its id."""
    moment = aware_now(now)
    due = None if due_at is None else aware_now(due_at)

    def work(session: Session) -> int:
        run = CrawlRun(
            topic_id=topic_id,
            started_at=moment,
            due_at=due,
            status="running",
            error_details={},
            stats={},
        )
        session.add(run)
        session.flush()
        return run.id

    return write_transaction(session_factory, work)


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
        finished_at=aware_now(now),
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
        session.flush()
        evaluate(session, run, values["finished_at"])

    write_transaction(session_factory, work)


def record_run_process(
    session_factory: sessionmaker[Session], run_id: int, process_id: int, process_start: str | None
) -> None:
    """Record the crawl process of run ``run_id``: its pid and what tells it from a later
    process with the same pid (see :func:`unfinished_runs`)."""

    def work(session: Session) -> None:
        session.execute(
            update(CrawlRun)
            .where(CrawlRun.id == run_id)
            .values(process_id=process_id, process_start=process_start),
            execution_options={"synchronize_session": False},
        )

    write_transaction(session_factory, work)


def unfinished_runs(session_factory: sessionmaker[Session]) -> list[UnfinishedRun]:
    """The runs still marked ``running``, with the crawl process recorded for each."""
    with read_session(session_factory) as session:
        rows = session.execute(
            select(CrawlRun.id, Topic.name, CrawlRun.process_id, CrawlRun.process_start)
            .join(Topic, Topic.id == CrawlRun.topic_id)
            .where(CrawlRun.status == "running")
            .order_by(CrawlRun.id)
        ).all()
    return [UnfinishedRun(*row) for row in rows]


def _recorded_changes(session: Session, run_id: int) -> dict[str, int]:
    """The run's counters of changes, counted from the changes it recorded."""
    rows = session.execute(
        select(Change.kind, func.count()).where(Change.crawl_run_id == run_id).group_by(Change.kind)
    ).all()
    return {CHANGE_COUNTERS[kind]: int(count) for kind, count in rows if kind in CHANGE_COUNTERS}


def close_run(
    session_factory: sessionmaker[Session],
    run_id: int,
    *,
    status: str,
    message: str,
    override: bool = False,
    now: datetime | None = None,
) -> RunRecord:
    """Close a run its crawl process did not (or not rightly) finish; the run as it is then.

    A run still ``running`` gets ``status`` and ``message``, and the counts of the changes it
    recorded: a process killed mid-way did record changes (and their alerts), only not its
    counters. A run its process finished is left as it is, unless ``override``: then the
    closer's status wins and ``message`` goes before the process's own, counters kept.
    """
    if status not in RUN_STATUSES or status == "running":
        raise ValueError(f"A crawl run cannot be closed as {status!r}.")
    moment = aware_now(now)

    def work(session: Session) -> None:
        run = session.get(CrawlRun, run_id)
        if run is None:
            raise UnknownRun(f"No crawl run with the id {run_id} is in the database.")
        if run.status == "running":
            for name, count in _recorded_changes(session, run_id).items():
                setattr(run, name, count)
            run.message = message
        elif override:
            run.message = message if run.message is None else f"{message}; {run.message}"
        else:
            return
        run.status = status
        run.finished_at = moment
        session.flush()
        evaluate(session, run, moment)

    write_transaction(session_factory, work)
    return get_run(session_factory, run_id)


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
    a final ``status`` and ``message``, and the counts of the changes each recorded; how many
    there were.

    A run that has already finished is left as it is, so a supervisor that gave up on a
    child can call this without overwriting what the child managed to record.
    """
    if status not in RUN_STATUSES or status == "running":
        raise ValueError(f"A crawl run cannot be marked {status!r}.")
    query = select(CrawlRun).where(CrawlRun.status == "running")
    if run_id is not None:
        query = query.where(CrawlRun.id == run_id)
    if topic_id is not None:
        query = query.where(CrawlRun.topic_id == topic_id)
    moment = aware_now(now)

    def work(session: Session) -> int:
        runs = session.scalars(query.with_for_update()).all()
        for run in runs:
            for name, count in _recorded_changes(session, run.id).items():
                setattr(run, name, count)
            run.status, run.message, run.finished_at = status, message, moment
            session.flush()
            evaluate(session, run, moment)
        return len(runs)

    return write_transaction(session_factory, work)


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
        due_at=run.due_at,
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
                    health=topic_health(session, topic.id),
                )
            )
    return result
