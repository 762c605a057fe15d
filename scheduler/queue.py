"""Crawl runs as jobs of a PostgreSQL job queue (Procrastinate), run by workers on any machine.

With ``[executor] kind = "queue"`` the leader scheduler (:mod:`scheduler.leader`) does not
crawl: at each due time of a topic it *defers* a crawl job (:class:`QueueExecutor`), and
``topicwatch worker`` processes (:class:`CrawlWorker`), on as many machines as wanted, take
jobs and run each in one of their warm crawl processes, exactly as the daemon runs a crawl
on one machine (never in the worker's own process, under ``crawl.run_timeout``).

The rules the queue keeps, cluster-wide:

- **One crawl per topic at a time, at most one waiting**: the job's ``queueing_lock`` is the
  topic, so a slot that falls due while the topic's last job still waits is coalesced (logged
  as ``coalesced``, not queued twice); its ``lock`` is the topic's site (below), which a topic
  never leaves, so two jobs of one topic never run at once.
- **Per-site politeness across machines**: the ``lock`` of a crawl job is the origin
  (host and port) of the topic's first source, so at most one crawl of a site runs at a time
  in the whole cluster, however many workers there are; each crawl keeps its own per-domain
  limits (``crawl.concurrent_per_domain``, ``download_delay``, AutoThrottle). Workers take
  the jobs of other sites meanwhile. Other sites a topic's further sources name are limited
  by the crawl's own settings only.
- **A dead worker's jobs run again**: a worker sends a heartbeat every
  ``executor.heartbeat``; one silent for three heartbeats is taken for dead, and any worker
  closes the runs of its running jobs as failed ("interrupted", naming the host and worker)
  and queues the jobs again. Effects happen once: a change is recorded by comparing with the
  stored version (the retried run finds what the interrupted one recorded, and records no
  change twice), and alert rows are unique per change and recipient.
- **Graceful stop**: on SIGTERM a worker takes no new job, lets running crawls go on for
  ``crawl.shutdown_grace``, then stops them (recorded as stopped, naming the host).

Finished jobs do not pile up: a worker deletes each job that succeeded, and the leader
deletes failed or aborted ones after :data:`KEEP_FAILED_HOURS`.

Workers also deliver alerts (after each run and every ``alerts.dispatch_every``): the
outbox's claim and lease let any number of dispatchers work at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException
from procrastinate.job_context import JobContext
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from alerts.smtp import SmtpSettings
from crawler.observability import log_fields, utc_stamp
from scheduler.config import Config
from scheduler.delivery import Deliveries, deliver
from scheduler.executor import PlacedRunner
from scheduler.pool import KILL_AFTER, WorkerCommand, worker_command
from scheduler.runner import RUN_EVENT, RunOutcome, monitor_config
from storage.db import (
    DATABASE_ERRORS,
    DatabaseUnavailable,
    SchemaOutdated,
    check_exists,
    check_schema,
    describe_error,
    make_engine,
    session_factory,
)
from storage.jobs import CRAWL_TASK, close_job_runs, running_job_runs
from storage.spec import TopicSpec
from storage.topics import UnknownTopic, load_topic

logger = logging.getLogger(__name__)
run_logger = logging.getLogger(RUN_EVENT)
queue_logger = logging.getLogger("topicwatch.queue")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_SCHEMA = 2
# A worker silent for this many heartbeats is taken for dead.
STALLED_HEARTBEATS = 3
KEEP_FAILED_HOURS = 24 * 7
PRUNE_EVERY = 3600.0
# How long a worker may wait for new jobs between polls (a notification wakes it sooner).
POLL_INTERVAL = 2.0


def conninfo(url: str) -> str:
    """The libpq URI of a ``postgresql+psycopg://`` SQLAlchemy URL, for Procrastinate."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def site_of(spec: TopicSpec) -> str:
    """The site a topic's crawl is counted against for politeness: its first source's
    origin (host, and the port when one is given)."""
    parts = urlsplit(spec.sources[0])
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def make_app(url: str) -> procrastinate.App:
    """A Procrastinate app on the database at ``url`` (not yet opened)."""
    # Its per-job INFO lines repeat what topicwatch's own lines say; its warnings stay.
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(url)))


class QueueExecutor:
    """The leader's side of the queue: defers one crawl job per due slot of a topic."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.app = make_app(config.database.url)
        self.opened = False
        self.pruning: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.app.open_async()
        self.opened = True
        self.pruning = asyncio.get_running_loop().create_task(self._prune())

    async def crawl(
        self, spec: TopicSpec, *, due: datetime, timeout: float, stop: asyncio.Event
    ) -> RunOutcome | None:
        """Defer a crawl job of ``spec`` for the slot ``due``; never waits for the run."""
        del timeout, stop  # the worker applies its own run_timeout and shutdown
        slot = due.astimezone(UTC).isoformat()
        try:
            job_id = await self.app.configure_task(
                CRAWL_TASK,
                queue=self.config.executor.queue,
                lock=f"site:{site_of(spec)}",
                queueing_lock=f"topic:{spec.name}",
            ).defer_async(topic=spec.name, due_at=slot)
        except ConnectorException as exc:
            raise DatabaseUnavailable(f"the job queue did not take the job: {exc}") from None
        except AlreadyEnqueued:
            log_fields(
                queue_logger,
                logging.INFO,
                "coalesced",
                topic=spec.name,
                due=utc_stamp(due),
                reason="the topic's previous job still waits for a worker",
            )
            return None
        log_fields(
            queue_logger,
            logging.INFO,
            "deferred",
            topic=spec.name,
            job=job_id,
            due=utc_stamp(due),
            site=site_of(spec),
        )
        return None

    async def _prune(self) -> None:
        """Delete failed, cancelled and aborted jobs after a week (succeeded ones are
        deleted by the worker that ran them)."""
        while True:
            try:
                await self.app.job_manager.delete_old_jobs(
                    nb_hours=KEEP_FAILED_HOURS,
                    include_failed=True,
                    include_cancelled=True,
                    include_aborted=True,
                )
            except Exception as exc:
                logger.warning("Pruning the job queue failed: %s", describe_error(exc))
            await asyncio.sleep(PRUNE_EVERY)

    async def close(self) -> None:
        if self.pruning is not None:
            self.pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pruning
        if self.opened:
            self.opened = False
            await self.app.close_async()


class CrawlWorker:
    """``topicwatch worker``: takes crawl jobs from the queue and runs each in a crawl
    process; see the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        concurrency: int,
        queues: Iterable[str] | None = None,
        log_format: str = "text",
        log_level: str = "INFO",
        env: Mapping[str, str] | None = None,
        command: WorkerCommand = worker_command,
    ) -> None:
        self.config = config
        self.concurrency = concurrency
        self.queues = list(queues or [config.executor.queue])
        self.log_format = log_format
        self.log_level = log_level
        self.env = env
        self.command = command
        self.host = socket.gethostname()
        self.name = f"worker {os.getpid()}"
        self.app = make_app(config.database.url)
        self.app.task(name=CRAWL_TASK, pass_context=True)(self.crawl_job)
        self.sessions: sessionmaker[Session] | None = None
        self.runner: PlacedRunner | None = None
        self.smtp: SmtpSettings | None = None
        self.stop_runs = asyncio.Event()
        self.stopping = asyncio.Event()
        self.dispatch_lock = asyncio.Lock()
        self.deliveries = Deliveries(self.dispatch, self.stopping)

    @property
    def heartbeat(self) -> float:
        return self.config.executor.heartbeat

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; the exit code."""
        config = self.config
        upgrade = config.command("db", "upgrade")
        try:
            check_exists(config.database.url, upgrade_command=upgrade)
            engine = make_engine(config.database.url)
        except DatabaseUnavailable as exc:
            logger.error("Cannot start: %s", exc)
            return EXIT_ERROR
        try:
            try:
                await asyncio.to_thread(check_schema, engine, upgrade_command=upgrade)
                self.smtp = config.smtp_settings()
            except SchemaOutdated as exc:
                logger.error("Refusing to start: %s", exc)
                return EXIT_SCHEMA
            except DATABASE_ERRORS as exc:
                logger.error("Cannot start: %s", describe_error(exc))
                return EXIT_ERROR
            self.sessions = session_factory(engine)
            self.runner = PlacedRunner(
                config.database.url,
                self.sessions,
                worker=self.name,
                log_format=self.log_format,
                log_level=self.log_level,
                processes=self.concurrency,
                process_max_runs=config.crawl.process_max_runs,
                process_max_memory=config.crawl.process_max_memory,
                command=self.command,
                env=self.env,
                withheld=config.secret_variables(),
            )
            try:
                await self.app.open_async()
            except Exception as exc:
                logger.error("Cannot start: the job queue is unreachable: %s", exc)
                return EXIT_ERROR
            try:
                asked = await self._work()
            finally:
                await self.runner.close()
                await self.app.close_async()
            await self.deliveries.finish()
            await self.dispatch()
            if not asked:
                # Procrastinate stops a worker whose heartbeat or listener failed (the
                # database went away): exit 1, and the service manager starts it again.
                logger.error("The queue worker stopped unasked (see above); exiting")
                return EXIT_ERROR
            logger.info("topicwatch worker stopped")
            return EXIT_OK
        finally:
            engine.dispose()

    async def _work(self) -> bool:
        """Take and run jobs until stopped; whether a signal asked for the stop."""
        loop = asyncio.get_running_loop()
        grace = self.config.crawl.shutdown_grace
        worker = loop.create_task(
            self.app.run_worker_async(
                queues=self.queues,
                concurrency=self.concurrency,
                name=self.name,
                install_signal_handlers=False,
                update_heartbeat_interval=self.heartbeat,
                stalled_worker_timeout=self.heartbeat * STALLED_HEARTBEATS,
                delete_jobs="successful",
                fetch_job_polling_interval=POLL_INTERVAL,
                abort_job_polling_interval=max(POLL_INTERVAL, self.heartbeat),
                # A backstop only: the worker stops its crawls itself after the grace.
                shutdown_graceful_timeout=grace + KILL_AFTER + 60.0,
            ),
            name="queue worker",
        )
        side = [
            loop.create_task(self._recover_stalled(), name="stalled jobs"),
            loop.create_task(self._dispatch_timer(), name="alert dispatch"),
        ]

        def request_stop(signum: int) -> None:
            if self.stopping.is_set():
                logger.warning(
                    "Second %s: stopping running crawls now", signal.Signals(signum).name
                )
                self.stop_runs.set()
                return
            logger.info(
                "%s received: taking no new job; running crawls may go on for %gs",
                signal.Signals(signum).name,
                grace,
            )
            self.stopping.set()
            worker.cancel()  # Procrastinate stops fetching and waits for the running jobs
            loop.call_later(grace, self.stop_runs.set)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, request_stop, signum)
        loop.add_signal_handler(
            signal.SIGHUP,
            logger.warning,
            "SIGHUP ignored: a worker reads its configuration when it starts; restart it (it "
            "takes topics from the database, so topic changes need no restart)",
        )
        log_fields(
            queue_logger,
            logging.INFO,
            "worker_started",
            host=self.host,
            worker=self.name,
            queues=",".join(self.queues),
            concurrency=self.concurrency,
        )
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            return self.stopping.is_set()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            for task in side:
                task.cancel()
            for task in side:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- a job ---------------------------------------------------------------------------------

    async def crawl_job(self, context: JobContext, topic: str, due_at: str | None = None) -> None:
        """One crawl job: the run of ``topic`` for the slot ``due_at``, in a crawl process."""
        assert self.runner is not None
        assert self.sessions is not None
        job_id = context.job.id
        try:
            _topic_id, spec = await asyncio.to_thread(load_topic, self.sessions, topic)
        except UnknownTopic:
            logger.warning(
                "Job %s: topic %s is not in the database; nothing to crawl", job_id, topic
            )
            return
        due = datetime.fromisoformat(due_at) if due_at else None
        timeout = self.config.crawl.run_timeout
        if job_id is not None:
            self.runner.jobs[topic] = job_id
        try:
            outcome = await self.runner.run(
                topic,
                timeout=timeout,
                stop=self.stop_runs,
                stop_message=f"stopped at the shutdown of {self.name} on {self.host}",
                monitor=monitor_config(spec, timeout),
                due_at=due,
            )
        except DATABASE_ERRORS as exc:
            logger.error(
                "Crawl of topic %s not run (job %s): the database failed: %s",
                topic,
                job_id,
                describe_error(exc),
            )
            raise
        finally:
            self.runner.jobs.pop(topic, None)
        level = logging.INFO if outcome.succeeded else logging.WARNING
        fields = outcome.summary_fields()
        fields.update(host=self.host, worker=self.name, job=job_id)
        log_fields(run_logger, level, None, **fields)
        self.deliveries.request()

    # -- dead workers' jobs --------------------------------------------------------------------

    async def _recover_stalled(self) -> None:
        """Every heartbeat: the crawl jobs of workers silent for three heartbeats are closed
        (their runs marked interrupted) and queued again. Any worker may do it; the queue
        lets only one retry a job."""
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.recover_stalled()
            except Exception as exc:
                logger.error("Looking for the jobs of dead workers failed: %s", describe_error(exc))

    async def recover_stalled(self) -> int:
        """Queue again the jobs of dead workers; how many this worker queued."""
        assert self.sessions is not None
        stalled = await self.app.job_manager.get_stalled_jobs(
            task_name=CRAWL_TASK,
            seconds_since_heartbeat=self.heartbeat * STALLED_HEARTBEATS,
        )
        recovered = 0
        for job in stalled:
            assert job.id is not None
            runs = await asyncio.to_thread(running_job_runs, self.sessions, job.id)
            try:
                await self.app.job_manager.retry_job(job)
            except Exception as exc:  # another worker queued it again first
                logger.debug("Job %d was not retried here: %s", job.id, exc)
                continue
            recovered += 1
            places = ", ".join(
                f"run {run} on {host or '?'} ({worker or '?'})" for run, host, worker in runs
            )
            message = (
                f"interrupted: its worker stopped answering ({places or 'no run started'}); "
                f"job {job.id} queued again"
            )
            closed = await asyncio.to_thread(
                close_job_runs, self.sessions, job.id, message, [run for run, _h, _w in runs]
            )
            log_fields(
                queue_logger,
                logging.WARNING,
                "interrupted",
                topic=job.task_kwargs.get("topic", ""),
                job=job.id,
                runs=",".join(str(run) for run in closed) or "none",
                host=",".join(sorted({host or "?" for _r, host, _w in runs})) or "?",
                message="its worker stopped answering; the job is queued again",
            )
        return recovered

    # -- alerts --------------------------------------------------------------------------------

    async def _dispatch_timer(self) -> None:
        while True:
            await asyncio.sleep(self.config.alerts.dispatch_every)
            self.deliveries.request()

    async def dispatch(self) -> None:
        """Release the held alerts that are due and send the pending ones
        (:func:`scheduler.delivery.deliver`); never raises."""
        if self.sessions is None:
            return
        await deliver(self.sessions, self.smtp, self.config, self.dispatch_lock, host=self.host)


def run_worker(
    config: Config,
    *,
    concurrency: int,
    queues: Iterable[str] | None,
    log_format: str,
    env: Mapping[str, str] | None = None,
) -> int:
    """``topicwatch worker``: serve crawl jobs until stopped; the exit code."""
    worker = CrawlWorker(
        config,
        concurrency=concurrency,
        queues=queues,
        log_format=log_format,
        log_level=config.logging.level,
        env=env,
    )
    return asyncio.run(worker.serve())
