"""Where a scheduled crawl run happens: the executor between the scheduler and the crawl.

APScheduler decides *when* a topic runs; an executor decides *where*:

- :class:`LocalExecutor` (``[executor] kind = "local"``, the default): in a warm crawl process
  of the daemon's own machine (:class:`scheduler.runner.CrawlRunner`); the daemon waits for
  the run's end and reports it.
- :class:`scheduler.queue.QueueExecutor` (``kind = "queue"``): a job in the PostgreSQL job
  queue; a ``topicwatch worker`` on any machine runs it in one of its crawl processes and
  reports it. The daemon does not wait.

Both only need :class:`Executor`'s two methods, so another engine could take the queue's
place. Either way the run's row says where it ran: :class:`PlacedRunner` records the host
and the supervising process in ``crawl_runs`` as soon as a crawl process takes the run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from scheduler.pool import CrawlProcess
from scheduler.runner import CrawlRunner, RunOutcome, monitor_config
from storage.db import DATABASE_ERRORS, describe_error
from storage.jobs import queue_overview, recent_places, record_run_place
from storage.spec import TopicSpec

logger = logging.getLogger(__name__)


class Executor(Protocol):
    """Runs the scheduled crawl runs of a daemon."""

    async def crawl(
        self, spec: TopicSpec, *, due: datetime, timeout: float, stop: asyncio.Event
    ) -> RunOutcome | None:
        """Run (or hand off) one scheduled run of ``spec``, due at ``due``; how it ended when
        it ran here, None when it was handed to someone else who reports it."""
        ...

    async def close(self) -> None:
        """Let go of what the executor holds (processes, connections)."""
        ...


class PlacedRunner(CrawlRunner):
    """A :class:`CrawlRunner` that records in each run's row where it runs: this host, the
    supervising process (``worker``), and the queue job that asked for it, if any."""

    def __init__(self, *args: Any, worker: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host = socket.gethostname()
        self.worker = worker
        self.jobs: dict[str, int] = {}  # topic -> the queue job whose run is under way

    async def _record_process(self, topic: str, run_id: int, process: CrawlProcess) -> None:
        await super()._record_process(topic, run_id, process)
        try:
            await self._database(
                record_run_place,
                self.sessions,
                run_id,
                host=self.host,
                worker=self.worker,
                job_id=self.jobs.get(topic),
            )
        except DATABASE_ERRORS as exc:
            logger.warning(
                "Crawl run %d of topic %s: cannot record its host in the database: %s",
                run_id,
                topic,
                describe_error(exc),
            )


def daemon_worker_name() -> str:
    return f"daemon {os.getpid()}"


class LocalExecutor:
    """Runs each crawl in a warm crawl process of this machine and waits for its end."""

    def __init__(self, runner: CrawlRunner) -> None:
        self.runner = runner

    async def crawl(
        self, spec: TopicSpec, *, due: datetime, timeout: float, stop: asyncio.Event
    ) -> RunOutcome | None:
        return await self.runner.run(
            spec.name,
            timeout=timeout,
            stop=stop,
            monitor=monitor_config(spec, timeout),
            due_at=due,
        )

    async def close(self) -> None:
        await self.runner.close()


RECENT_WORKERS = timedelta(hours=1)


def queue_lines(sessions: sessionmaker[Session], now: datetime) -> list[str]:
    """What ``topicwatch status`` says of the job queue: jobs waiting and running, the
    workers alive, and the hosts and workers that ran crawls in the last hour."""
    overview = queue_overview(sessions)
    waiting = [job for job in overview.jobs if job.status == "todo"]
    running = [job for job in overview.jobs if job.status == "doing"]
    lines = [
        f"Queue: {len(waiting)} crawl job(s) waiting, {len(running)} running"
        + "".join(
            f", {count} {status}"
            for status, count in sorted(overview.counts.items())
            if status not in ("todo", "doing")
        )
    ]
    lines += [
        f"  running: topic {job.topic} (job {job.id}, worker {job.worker_id}, "
        f"attempt {job.attempts + 1})"
        for job in running
    ]
    alive = ", ".join(
        f"{worker.id} (heartbeat {max(0, int((now - worker.last_heartbeat).total_seconds()))}s ago)"
        for worker in overview.workers
    )
    lines.append(f"Workers: {len(overview.workers)} registered" + (f": {alive}" if alive else ""))
    for place in recent_places(sessions, now - RECENT_WORKERS):
        lines.append(
            f"  seen in the last hour: {place.worker} on {place.host}, {place.runs} run(s), "
            f"last started {place.last_started.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
        )
    return lines
