"""The job queue's side of the database: where runs ran, and what the queue holds.

With ``[executor] kind = "queue"`` crawl runs are jobs of Procrastinate, whose tables
(``procrastinate_*``) live in topicwatch's PostgreSQL database, installed by revision 0009.
This module reads them for ``topicwatch status`` and the scheduler, and keeps the
``crawl_runs`` columns that say where a run ran (``host``, ``worker``, ``job_id``). It reads
the queue's tables with plain SQL and never writes them: jobs are deferred, taken, finished
and retried only through Procrastinate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from storage.db import aware_now, read_session, write_transaction
from storage.models import CrawlRun
from storage.runs import mark_unfinished_runs

# The queue's own tables, types and functions: not topicwatch's models.
QUEUE_PREFIX = "procrastinate_"
CRAWL_TASK = "topicwatch.crawl"


def is_topicwatch_object(name: str | None, type_: str, _parent: object = None) -> bool:
    """Alembic's ``include_name``: the queue's tables are not compared with the models."""
    return not (type_ == "table" and name is not None and name.startswith(QUEUE_PREFIX))


@dataclass(frozen=True)
class QueueWorker:
    """A worker the queue knows: its id, and when it last said it was alive."""

    id: int
    last_heartbeat: datetime


@dataclass(frozen=True)
class QueueJob:
    """A crawl job waiting or running."""

    id: int
    status: str
    topic: str
    due_at: str | None
    worker_id: int | None
    attempts: int
    scheduled_at: datetime | None


@dataclass(frozen=True)
class QueueOverview:
    """What ``topicwatch status`` shows of the queue."""

    counts: dict[str, int]  # jobs by status (todo, doing, failed, ...)
    jobs: tuple[QueueJob, ...]  # the crawl jobs waiting or running
    workers: tuple[QueueWorker, ...]


def record_run_place(
    session_factory: sessionmaker[Session],
    run_id: int,
    *,
    host: str,
    worker: str,
    job_id: int | None,
) -> None:
    """Note where run ``run_id`` runs: the machine, the supervising process, the job."""

    def work(session: Session) -> None:
        session.execute(
            update(CrawlRun)
            .where(CrawlRun.id == run_id)
            .values(host=host, worker=worker, job_id=job_id),
            execution_options={"synchronize_session": False},
        )

    write_transaction(session_factory, work)


def running_job_runs(
    session_factory: sessionmaker[Session], job_id: int
) -> list[tuple[int, str | None, str | None]]:
    """The runs of job ``job_id`` still marked running, with their host and worker."""
    with read_session(session_factory) as session:
        rows = session.execute(
            select(CrawlRun.id, CrawlRun.host, CrawlRun.worker).where(
                CrawlRun.job_id == job_id, CrawlRun.status == "running"
            )
        ).all()
    return [(int(row[0]), row[1], row[2]) for row in rows]


def close_job_runs(
    session_factory: sessionmaker[Session], job_id: int, message: str, run_ids: list[int]
) -> list[int]:
    """Mark the runs ``run_ids`` of job ``job_id``, if still ``running``, as failed with
    ``message`` (their worker died: what they recorded until then is counted); the ids of
    those closed. Only the runs seen before the job was queued again are named, so that a
    run of its next attempt is never closed by mistake."""
    closed = []
    for run_id in run_ids:
        if mark_unfinished_runs(session_factory, "failed", message, run_id=run_id):
            closed.append(run_id)
    return closed


def last_deferred(session_factory: sessionmaker[Session]) -> dict[str, datetime]:
    """Per topic, the latest slot (``due_at``) a crawl job still in the queue was deferred
    for: a scheduler taking over counts it as run, so that no slot is deferred twice."""
    with read_session(session_factory) as session:
        rows = session.execute(
            text(
                "SELECT args->>'topic', max(args->>'due_at') FROM procrastinate_jobs "
                "WHERE task_name = :task AND args->>'due_at' IS NOT NULL GROUP BY 1"
            ),
            {"task": CRAWL_TASK},
        ).all()
    return {topic: aware_now(datetime.fromisoformat(due)) for topic, due in rows if topic and due}


def queue_overview(session_factory: sessionmaker[Session]) -> QueueOverview:
    """The queue's jobs by status, the crawl jobs waiting or running, and the workers."""
    with read_session(session_factory) as session:
        counts = {
            str(status): int(count)
            for status, count in session.execute(
                text("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1")
            )
        }
        jobs = tuple(
            QueueJob(
                id=int(row[0]),
                status=str(row[1]),
                topic=str(row[2] or ""),
                due_at=row[3],
                worker_id=row[4],
                attempts=int(row[5]),
                scheduled_at=row[6],
            )
            for row in session.execute(
                text(
                    "SELECT id, status::text, args->>'topic', args->>'due_at', worker_id, "
                    "attempts, scheduled_at FROM procrastinate_jobs "
                    "WHERE task_name = :task AND status IN ('todo', 'doing') ORDER BY id"
                ),
                {"task": CRAWL_TASK},
            )
        )
        workers = tuple(
            QueueWorker(int(row[0]), row[1])
            for row in session.execute(
                text("SELECT id, last_heartbeat FROM procrastinate_workers ORDER BY id")
            )
        )
    return QueueOverview(counts, jobs, workers)


@dataclass(frozen=True)
class RunPlace:
    """A host and worker that ran crawl runs lately: how many, and the last start."""

    host: str
    worker: str
    runs: int
    last_started: datetime


def recent_places(session_factory: sessionmaker[Session], since: datetime) -> list[RunPlace]:
    """The hosts and workers that started crawl runs since ``since``, latest first."""
    with read_session(session_factory) as session:
        rows = session.execute(
            select(CrawlRun.host, CrawlRun.worker, func.count(), func.max(CrawlRun.started_at))
            .where(CrawlRun.started_at >= since, CrawlRun.host.is_not(None))
            .group_by(CrawlRun.host, CrawlRun.worker)
            .order_by(func.max(CrawlRun.started_at).desc())
        ).all()
    return [RunPlace(str(host), str(worker or "?"), int(n), last) for host, worker, n, last in rows]
