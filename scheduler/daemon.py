"""``topicwatch run``: the long-running service that crawls each topic on its schedule.

At start-up the daemon refuses a database whose schema is behind, writes the configured
topics into the database, stops any crawl process a previous daemon left running (found by
the pid and start time in its run's row), then marks the runs left ``running`` as failed, and
rebuilds every topic's schedule from the config and the ``crawl_runs`` history (APScheduler
keeps no job store of its own here): a topic that is overdue runs once soon, one that ran
recently runs one interval after its last start.

Each crawl run is handed to a warm crawl process (see :mod:`scheduler.runner` and
:mod:`scheduler.pool`; as many processes as ``max_concurrent_runs``, started when first
needed, recycled after ``process_max_runs`` runs or at ``process_max_memory``): one run per
topic at a time, at most ``max_concurrent_runs`` at once. After each run the daemon logs one
summary line, warns when a topic's health looks wrong, and asks for the pending alerts to be
sent; alerts also go out on a timer. Delivery is a task of its own, one at a time, bounded by
``alerts.dispatch_time_limit``: no crawl waits for it, so a dead SMTP server delays mail, not
crawls. A run that starts later than a quarter of its interval (and at least
``LATE_MINIMUM``) after it was due is logged as late. SIGTERM or SIGINT stops scheduling,
lets running crawls finish within the shutdown grace, stops the rest, sends what alerts it
can and exits 0. SIGHUP reloads the config file, all of it or nothing: topics, schedules,
crawl, SMTP, alert and ``[logging]`` settings take effect at once (a ``--log-format`` given
on the command line stays); a file with a wrong value changes nothing; a new
``database.url`` or ``[web]`` waits for a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.smtp import SmtpSettings
from crawler.observability import (
    Seconds,
    configure_logging,
    flush_sentry,
    init_sentry,
    log_fields,
    utc_stamp,
)
from scheduler.config import Config, ConfigError, format_duration, load_config
from scheduler.delivery import Deliveries, deliver
from scheduler.executor import Executor, LocalExecutor, PlacedRunner, daemon_worker_name
from scheduler.leader import CHECK_EVERY, LeadershipLost, check_leadership, wait_for_leadership
from scheduler.pool import KILL_AFTER, WorkerCommand, worker_command
from scheduler.processes import stop_process_group
from scheduler.runner import (
    RUN_EVENT,
    CrawlRunner,
    RunNotClosed,
    RunOutcome,
)
from storage.daemons import (
    DaemonLock,
    forget_daemon,
    record_daemon,
    record_next_runs,
    recorded_daemon,
)
from storage.db import (
    DATABASE_ERRORS,
    DatabaseUnavailable,
    SchemaOutdated,
    check_exists,
    check_schema,
    check_writable,
    describe_error,
    make_engine,
    safe_url,
    session_factory,
)
from storage.health import GOOD_RUN_STATUSES
from storage.jobs import last_deferred
from storage.retention import prune
from storage.runs import (
    mark_unfinished_runs,
    topic_status,
    unfinished_runs,
)
from storage.spec import TopicSpec
from storage.topics import sync_topics
from web.address import ExposureRefused, WebUnavailable

if TYPE_CHECKING:
    from web.app import DaemonState
    from web.server import WebServer

logger = logging.getLogger(__name__)
health_logger = logging.getLogger("topicwatch.health")
run_logger = logging.getLogger(RUN_EVENT)
retention_logger = logging.getLogger("topicwatch.retention")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_SCHEMA = 2
# A topic whose runs failed this many times in a row is reported as an ERROR (and to Sentry).
ESCALATE_AFTER = 3
# Seconds between the first runs of overdue topics at start-up, so they do not all start
# in the same instant.
STAGGER = 1.0
UNFINISHED_MESSAGE = "daemon stopped before the run finished"
DISPATCH_JOB = "alerts:dispatch"
PRUNE_JOB = "retention:prune"
LISTED_STAT = "topicwatch/links_listed"
EMPTY_BODY_STAT = "topicwatch/empty_body"
# A run is late when it starts more than this share of its interval after it was due, and
# more than LATE_MINIMUM seconds: a short interval's few seconds of queueing are no news.
LATE_SHARE = 0.25
LATE_MINIMUM = 5.0


class DaemonRunning(RuntimeError):
    """Another daemon serves the database; the message names it."""


class StoppedAsStandby(RuntimeError):
    """SIGTERM or SIGINT came while the daemon waited as a standby."""


def job_id(topic: str) -> str:
    return f"topic:{topic}"


def schedule_of(spec: TopicSpec) -> str:
    """The topic's schedule as the config file spells it, for logs and ``status``."""
    if spec.cron is not None:
        return f"cron {spec.cron}"
    return f"every {format_duration(spec.every or 900.0)}"


def next_due(spec: TopicSpec, last_started: datetime | None) -> datetime | None:
    """When the topic is next due by its schedule and its last run; None when never run.

    A time in the past means the topic is overdue.
    """
    if last_started is None:
        return None
    if spec.cron is not None:
        trigger = CronTrigger.from_crontab(spec.cron, timezone=UTC)
        due: datetime | None = trigger.get_next_fire_time(None, last_started + timedelta(seconds=1))
        return due
    return last_started + timedelta(seconds=spec.every or 900.0)


def first_run_time(
    spec: TopicSpec, last_started: datetime | None, now: datetime, *, stagger: float = 0.0
) -> datetime:
    """When a topic runs first after start-up: soon when overdue or new, else when due."""
    due = next_due(spec, last_started)
    if due is None or due <= now:
        return now + timedelta(seconds=stagger)
    return due


def late_after(spec: TopicSpec, due: datetime) -> float:
    """Seconds after ``due`` from which a start of the topic's run is reported as late."""
    following = next_due(spec, due)
    interval = 0.0 if following is None else (following - due).total_seconds()
    return max(LATE_SHARE * interval, LATE_MINIMUM)


def trigger_for(spec: TopicSpec, first: datetime) -> IntervalTrigger | CronTrigger:
    """The APScheduler trigger of a topic's schedule, with its jitter."""
    jitter = int(spec.jitter) if spec.jitter >= 1 else None
    if spec.cron is not None:
        trigger = CronTrigger.from_crontab(spec.cron, timezone=UTC)
        trigger.jitter = jitter
        return trigger
    return IntervalTrigger(
        seconds=spec.every or 900.0, start_date=first, timezone=UTC, jitter=jitter
    )


@dataclass(frozen=True)
class TopicSchedule:
    """A topic's job, built in full (trigger and first run) before anything is scheduled."""

    spec: TopicSpec
    trigger: IntervalTrigger | CronTrigger
    first: datetime


def plan_schedule(config: Config, spec: TopicSpec, first: datetime) -> TopicSchedule:
    """The topic's job, or :class:`ConfigError` naming the file and field when its schedule
    cannot be built; so that a value that fails only at scheduling time is refused before any
    change is made, not half-way through one."""
    try:
        trigger = trigger_for(spec, first)
        trigger.get_next_fire_time(None, first)
        if spec.cron is None:
            first + timedelta(seconds=spec.every or 900.0)  # the run after the first
    except (ValueError, OverflowError, TypeError) as exc:
        index = next(i for i, topic in enumerate(config.topics) if topic.name == spec.name)
        key = "cron" if spec.cron is not None else "every"
        shown = repr(spec.cron) if spec.cron is not None else f"{spec.every or 900.0:g} seconds"
        raise ConfigError(
            f"{config.path}: topic[{index}].{key}: expected a schedule that can be kept, got "
            f"{shown} ({type(exc).__name__}: {exc})"
        ) from None
    return TopicSchedule(spec, trigger, first)


@dataclass(frozen=True)
class _Reload:
    """A reloaded configuration and what applying it changes, every job already built."""

    config: Config
    added: list[str]
    changed: list[str]
    removed: list[str]
    jobs: list[TopicSchedule]  # of the added topics and of those whose schedule changed
    dispatch_trigger: IntervalTrigger | None  # when dispatch_every changed


@dataclass
class _TopicHealth:
    consecutive_failures: int = 0
    last_listed: int | None = None  # article links the last ok/partial run found listed


def listed_articles(counts: Mapping[str, int], stats: Mapping[str, Any]) -> int:
    """How many article links a run found on its listings (articles seen, without the stat)."""
    listed = stats.get(LISTED_STAT)
    if isinstance(listed, int):
        return listed
    return int(counts.get("articles_seen", 0))


class Daemon:
    """The scheduler of crawl runs and alert deliveries; see the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        log_format: str,
        log_level: str,
        log_format_fixed: bool = False,
        env: Mapping[str, str] | None = None,
        command: WorkerCommand = worker_command,
    ) -> None:
        self.config = config
        self.env = env
        self.log_format = log_format
        self.log_level = log_level
        # A format given on the command line outlasts the config file's.
        self.log_format_fixed = log_format_fixed
        self.command = command
        self.specs: dict[str, TopicSpec] = {spec.name: spec for spec in config.topics}
        self.health: dict[str, _TopicHealth] = {}
        self.active: dict[str, asyncio.Task[Any]] = {}
        self.smtp: SmtpSettings | None = None
        self.engine: Engine | None = None
        self.sessions: sessionmaker[Session] | None = None
        self.runner: CrawlRunner | None = None
        self.executor: Executor | None = None
        self.exit_code = EXIT_OK
        self.scheduler: AsyncIOScheduler | None = None
        self.semaphore = asyncio.Semaphore(config.crawl.max_concurrent_runs)
        self.stopping = asyncio.Event()
        self.stop_runs = asyncio.Event()
        self.dispatch_lock = asyncio.Lock()  # the final delivery at shutdown waits its turn
        self.deliveries = Deliveries(self.dispatch, self.stopping)
        self.reloading: asyncio.Task[None] | None = None
        self.reload_lock = asyncio.Lock()
        self.initial_jobs: list[TopicSchedule] = []
        self.lock: DaemonLock | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.web: WebServer | None = None  # the web view, when [web] listen is set
        self.started_at = datetime.now(UTC)

    # -- start and stop --------------------------------------------------------------------

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; the process exit code."""
        try:
            try:
                await self.prepare()
            except SchemaOutdated as exc:
                logger.error("Refusing to start: %s", exc)
                return EXIT_SCHEMA
            except DaemonRunning as exc:
                logger.error("Refusing to start: %s", exc)
                return EXIT_ERROR
            except StoppedAsStandby:
                logger.info("topicwatch standby stopped")
                return EXIT_OK
            except (DatabaseUnavailable, ConfigError, ExposureRefused, WebUnavailable) as exc:
                logger.error("Cannot start: %s", exc)
                return EXIT_ERROR
            await self.run_until_stopped()
            return self.exit_code
        finally:
            if self.web is not None:
                await self.web.stop()
            if self.executor is not None:
                await self.executor.close()
            elif self.runner is not None:
                await self.runner.close()
            if self.lock is not None:
                self.lock.release()
            if self.engine is not None:
                self.engine.dispose()
            flush_sentry()

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            self.start_scheduler()
            if self.web is not None:
                self.web.start()
            if self.queued:
                self.background(self.watch_leadership())
            await self.stopping.wait()
            await self.shutdown()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)

    async def prepare(self) -> None:
        config = self.config
        if config.web.listen is not None:
            from scheduler.webview import check_web

            check_web(config)  # before anything starts: an exposed view needs a token
        self.smtp = config.smtp_settings()
        if self.smtp is None:
            logger.warning(
                "%s has no [smtp] section: alerts are recorded but no email is sent",
                config.path,
            )
        check_exists(config.database.url, upgrade_command=config.command("db", "upgrade"))
        self.engine = make_engine(config.database.url)
        await asyncio.to_thread(
            check_schema, self.engine, upgrade_command=config.command("db", "upgrade")
        )
        check_writable(self.engine)
        self.sessions = session_factory(self.engine)
        if self.queued:
            await self.take_leadership()
        else:
            await asyncio.to_thread(self.take_lock)
        await asyncio.to_thread(sync_topics, self.sessions, config.topic_specs())
        if self.queued:
            # Runs marked running are the workers' own; a dead worker's are closed by the
            # workers that find its jobs stalled.
            self.executor = await self.open_queue()
        else:
            await asyncio.to_thread(self.close_unfinished_runs)
            self.runner = PlacedRunner(
                config.database.url,
                self.sessions,
                worker=daemon_worker_name(),
                log_format=self.log_format,
                log_level=self.log_level,
                processes=config.crawl.max_concurrent_runs,
                process_max_runs=config.crawl.process_max_runs,
                process_max_memory=config.crawl.process_max_memory,
                command=self.command,
                env=self.env,
                withheld=config.secret_variables(),
            )
            self.executor = LocalExecutor(self.runner)
        last_started = await asyncio.to_thread(self._history)
        self.initial_jobs = self.plan_jobs(config, config.topics, last_started, datetime.now(UTC))
        if config.web.listen is not None:
            from scheduler.webview import web_server

            self.web = web_server(config, self.sessions, self.web_state)
        if not config.topics:
            logger.warning("%s defines no [[topic]]: nothing will be crawled", config.path)

    def web_state(self) -> DaemonState:
        """What the web view shows of this daemon (called from its worker threads)."""
        from web.app import DaemonState

        scheduler = self.scheduler
        next_runs = {name: self.next_run_time(name) for name in list(self.specs)}
        return DaemonState(
            running=scheduler is not None and scheduler.running and not self.stopping.is_set(),
            started_at=self.started_at,
            where=f"pid {os.getpid()}",
            next_runs={name: when for name, when in next_runs.items() if when is not None},
            in_process=True,
        )

    @property
    def queued(self) -> bool:
        """Whether crawl runs go to the job queue (``[executor] kind = "queue"``)."""
        return self.config.executor.kind == "queue"

    async def open_queue(self) -> Executor:
        from scheduler.queue import QueueExecutor  # Procrastinate only where it is used

        executor = QueueExecutor(self.config)
        try:
            await executor.open()
        except Exception as exc:
            raise DatabaseUnavailable(f"the job queue cannot be opened: {exc}") from None
        return executor

    async def take_leadership(self) -> None:
        """With the job queue: become the leader scheduler, waiting as a standby while
        another one is (:mod:`scheduler.leader`); SIGTERM/SIGINT end the wait."""
        assert self.engine is not None
        assert self.sessions is not None
        sessions = self.sessions
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        try:
            self.lock = DaemonLock(self.engine)

            def holder() -> str:
                record = recorded_daemon(sessions)
                return record.describe() if record is not None else "a scheduler that is starting"

            if not await wait_for_leadership(self.lock, self.stopping, holder=holder):
                self.lock.release()
                self.lock = None
                raise StoppedAsStandby
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        await asyncio.to_thread(record_daemon, self.sessions, host=socket.gethostname())

    async def watch_leadership(self) -> None:
        """Stop (exit 1) when the connection holding the leader lock is gone."""
        assert self.lock is not None
        while not self.stopping.is_set():
            await asyncio.sleep(CHECK_EVERY)
            try:
                await asyncio.to_thread(check_leadership, self.lock)
            except LeadershipLost as exc:
                logger.error("Stopping: %s", exc)
                self.exit_code = EXIT_ERROR
                self.stopping.set()
                return

    def take_lock(self) -> None:
        """Take the database's daemon lock and write the ``daemon`` row; raises
        :class:`DaemonRunning` naming the daemon that holds it. Nothing else is touched
        before: the crawl processes of the other daemon are its own."""
        assert self.engine is not None
        assert self.sessions is not None
        self.lock = DaemonLock(self.engine)
        if not self.lock.try_acquire():
            self.lock = None
            holder = recorded_daemon(self.sessions)
            named = holder.describe() if holder is not None else "a daemon that is starting"
            raise DaemonRunning(
                f"another topicwatch daemon serves the database at "
                f"{safe_url(self.config.database.url)}: {named}; stop it first (one daemon "
                "per database, or every topic would be crawled twice)"
            )
        record_daemon(self.sessions, host=socket.gethostname())

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in a task of its own, kept until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def save_next_runs(self) -> None:
        """Keep each topic's next run in the ``daemon`` row, for ``topicwatch status``."""
        if self.sessions is None or self.scheduler is None:
            return
        next_runs = {name: self.next_run_time(name) for name in self.specs}
        try:
            await asyncio.to_thread(record_next_runs, self.sessions, next_runs)
        except DATABASE_ERRORS as exc:
            logger.debug("Could not record the next runs: %s", describe_error(exc))

    def close_unfinished_runs(self) -> None:
        """Stop the crawl processes a previous daemon left running, then mark their runs
        failed: a topic is never crawled twice at once, and a run is closed only once its
        process is gone (what it recorded until then is counted in the run)."""
        assert self.sessions is not None
        for run in unfinished_runs(self.sessions):
            if run.process_id is None or run.process_start is None:
                continue
            if stop_process_group(run.process_id, run.process_start, grace=KILL_AFTER):
                logger.warning(
                    "Stopped crawl process %d of run %d (topic %s), left running by a "
                    "previous daemon",
                    run.process_id,
                    run.id,
                    run.topic,
                )
        stale = mark_unfinished_runs(self.sessions, "failed", UNFINISHED_MESSAGE)
        if stale:
            logger.warning(
                "Marked %d crawl run(s) left running by a previous process as failed", stale
            )

    def start_scheduler(self) -> None:
        config = self.config
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.start()
        for planned in self.initial_jobs:
            self.schedule_topic(planned)
        self.initial_jobs = []
        self.scheduler.add_job(
            self.dispatch_job,
            IntervalTrigger(seconds=config.alerts.dispatch_every, timezone=UTC),
            id=DISPATCH_JOB,
            name="alert dispatch",
        )
        if config.database.prune_every > 0:
            self.scheduler.add_job(
                self.prune_job,
                IntervalTrigger(seconds=config.database.prune_every, timezone=UTC),
                id=PRUNE_JOB,
                name="retention",
            )
        self.background(self.save_next_runs())
        logger.info(
            "topicwatch daemon started: %d topic(s), database %s, config %s, "
            "at most %d concurrent run(s)",
            len(config.topics),
            safe_url(config.database.url),
            config.path,
            config.crawl.max_concurrent_runs,
        )

    def _history(self) -> dict[str, datetime]:
        """The start of each topic's last run, and each topic's failure streak."""
        assert self.sessions is not None
        started: dict[str, datetime] = {}
        for status in topic_status(self.sessions):
            health = self.health.setdefault(status.name, _TopicHealth())
            health.consecutive_failures = status.consecutive_failures
            run = status.last_run
            if run is not None:
                started[status.name] = run.started_at
                if run.status in GOOD_RUN_STATUSES:
                    health.last_listed = listed_articles(run.counts, run.stats)
        if self.queued:
            # A slot deferred by a previous leader counts as run, started or not.
            for name, due in last_deferred(self.sessions).items():
                if name not in started or due > started[name]:
                    started[name] = due
        return started

    @staticmethod
    def plan_jobs(
        config: Config,
        specs: Iterable[TopicSpec],
        last_started: Mapping[str, datetime],
        now: datetime,
    ) -> list[TopicSchedule]:
        """The jobs of ``specs``, each built in full; the overdue ones start one after
        another, ``STAGGER`` apart. Raises :class:`ConfigError` when one cannot be built."""
        overdue = 0
        planned = []
        for spec in specs:
            due = next_due(spec, last_started.get(spec.name))
            if due is None or due <= now:
                due = now + timedelta(seconds=overdue * STAGGER)
                overdue += 1
            planned.append(plan_schedule(config, spec, due))
        return planned

    def schedule_topic(self, planned: TopicSchedule) -> None:
        assert self.scheduler is not None
        spec = planned.spec
        self.scheduler.add_job(
            self.crawl_job,
            planned.trigger,
            args=[spec.name],
            id=job_id(spec.name),
            name=f"crawl {spec.name}",
            next_run_time=planned.first,
            replace_existing=True,
        )
        logger.info(
            "Topic %s: %s, first run at %s",
            spec.name,
            schedule_of(spec),
            utc_stamp(planned.first),
        )

    def request_stop(self, signum: int) -> None:
        if self.stopping.is_set():
            logger.warning("Second %s: stopping running crawls now", signal.Signals(signum).name)
            self.stop_runs.set()
            return
        logger.info("%s received: stopping", signal.Signals(signum).name)
        self.stopping.set()

    async def shutdown(self) -> None:
        grace = self.config.crawl.shutdown_grace
        if self.scheduler is not None:
            self.scheduler.pause()
        if self.reloading is not None:
            with contextlib.suppress(Exception):
                await self.reloading
        running = {task for task in self.active.values() if not task.done()}
        if running:
            logger.info(
                "Waiting up to %gs for %d running crawl(s): %s",
                grace,
                len(running),
                ", ".join(sorted(self.active)),
            )
            _done, pending = await asyncio.wait(running, timeout=grace)
            if pending:
                logger.warning("Stopping %d crawl(s) still running at shutdown", len(pending))
                self.stop_runs.set()
                await asyncio.wait(pending, timeout=60.0)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.runner is not None:
            await self.runner.close()  # the crawl processes exit, idle now
        await self.deliveries.finish()  # the delivery under way
        await self.dispatch()  # and the alerts of the runs that ended since
        if self.sessions is not None:
            try:
                await asyncio.to_thread(forget_daemon, self.sessions)
            except DATABASE_ERRORS as exc:
                logger.debug("Could not remove the daemon row: %s", describe_error(exc))
        logger.info("topicwatch daemon stopped")

    # -- jobs ----------------------------------------------------------------------------------

    async def crawl_job(self, name: str) -> None:
        """One scheduled run of one topic; never raises, so one topic cannot stop others."""
        due = datetime.now(UTC)  # the scheduler calls the job when the topic is due
        task = asyncio.current_task()
        if self.stopping.is_set() or name not in self.specs or name in self.active:
            return
        assert task is not None
        self.active[name] = task
        try:
            await self._crawl(name, due)
        except DATABASE_ERRORS as exc:
            logger.error(
                "Crawl of topic %s not run: the database failed: %s", name, describe_error(exc)
            )
            logger.debug("The database error", exc_info=True)
        except RunNotClosed as exc:
            logger.warning("%s", exc)
        except Exception:
            logger.exception(
                "The crawl job of topic %s failed", name, extra={"fields": {"topic": name}}
            )
        finally:
            self.active.pop(name, None)

    async def _crawl(self, name: str, due: datetime) -> None:
        assert self.executor is not None
        async with self.semaphore:
            spec = self.specs.get(name)
            if self.stopping.is_set() or spec is None:
                return
            self.warn_if_late(spec, due)
            outcome = await self.executor.crawl(
                spec, due=due, timeout=self.config.crawl.run_timeout, stop=self.stop_runs
            )
        if outcome is None:  # handed to the job queue: the worker that runs it reports it
            await self.save_next_runs()
            return
        self.report(spec, outcome)
        self.deliveries.request()
        await self.save_next_runs()

    def warn_if_late(self, spec: TopicSpec, due: datetime) -> None:
        """A WARNING when the run starts late: the daemon has more due runs than it can start
        (``max_concurrent_runs``, long runs)."""
        lag = (datetime.now(UTC) - due).total_seconds()
        if lag > late_after(spec, due):
            log_fields(
                health_logger,
                logging.WARNING,
                "late",
                topic=spec.name,
                lag=Seconds(lag),
                schedule=schedule_of(spec),
                due=utc_stamp(due),
                waiting=len(self.active) - 1,
                max_concurrent_runs=self.config.crawl.max_concurrent_runs,
            )

    def next_run_time(self, name: str) -> datetime | None:
        if self.scheduler is None or self.stopping.is_set():
            return None
        job = self.scheduler.get_job(job_id(name))
        return None if job is None else job.next_run_time

    def report(self, spec: TopicSpec, outcome: RunOutcome) -> None:
        """The run's summary line, then what its result says about the topic's health."""
        level = logging.INFO if outcome.succeeded else logging.WARNING
        log_fields(run_logger, level, None, **outcome.summary_fields(self.next_run_time(spec.name)))
        health = self.health.setdefault(spec.name, _TopicHealth())
        if not outcome.succeeded:
            health.consecutive_failures += 1
            if health.consecutive_failures >= ESCALATE_AFTER:
                log_fields(
                    health_logger,
                    logging.ERROR,
                    "failing",
                    topic=spec.name,
                    failures=health.consecutive_failures,
                    status=outcome.status,
                    run=outcome.run_id,
                    url=spec.sources[0],
                    message=outcome.message,
                )
            return
        health.consecutive_failures = 0
        listed = listed_articles(outcome.counts, outcome.stats)
        if listed == 0 and health.last_listed:
            log_fields(
                health_logger,
                logging.WARNING,
                "empty_listing",
                topic=spec.name,
                url=" ".join(spec.sources),
                previous=health.last_listed,
                run=outcome.run_id,
            )
        empty = int(outcome.stats.get(EMPTY_BODY_STAT, 0) or 0)
        if empty:
            urls = [
                failure.get("url", "")
                for failure in outcome.failures
                if "empty body" in failure.get("reason", "")
            ]
            log_fields(
                health_logger,
                logging.WARNING,
                "empty_bodies",
                topic=spec.name,
                count=empty,
                url=urls[0] if urls else spec.sources[0],
                run=outcome.run_id,
            )
        if listed:
            # An empty listing warns at every run until articles are listed again.
            health.last_listed = listed

    async def dispatch_job(self) -> None:
        """The timer's delivery, for retries. Changes of a run still going are held back by
        the dispatcher itself until the run ends, so one run's digest is never split."""
        if not self.stopping.is_set():
            self.deliveries.request()

    async def prune_job(self) -> None:
        """Apply the topics' retention policies, in a thread and short transactions of its
        own, beside the crawls; never raises."""
        if self.sessions is None or self.stopping.is_set():
            return
        try:
            report = await asyncio.to_thread(prune, self.sessions)
        except DATABASE_ERRORS as exc:
            logger.error("Retention failed: the database failed: %s", describe_error(exc))
            return
        except Exception:
            logger.exception("Retention failed")
            return
        if report.texts or report.raw_html:
            log_fields(
                retention_logger,
                logging.INFO,
                None,
                texts=report.texts,
                raw_html=report.raw_html,
                articles=report.articles,
                freed=report.bytes_freed,
            )

    async def dispatch(self) -> None:
        """Release the held alerts that are due and send the pending ones
        (:func:`scheduler.delivery.deliver`); never raises."""
        if self.sessions is None:
            return
        await deliver(self.sessions, self.smtp, self.config, self.dispatch_lock)

    def request_reload(self) -> None:
        if self.stopping.is_set():
            return
        logger.info("SIGHUP received: reloading %s", self.config.path)
        self.reloading = asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> None:
        """Apply the config file again, all of it or nothing: every part of the new
        configuration (its values, each topic's trigger and first run, the SMTP settings) is
        built before anything is changed, so an invalid file leaves the running configuration
        whole, and the next good file is applied in full. Reloads follow one another."""
        async with self.reload_lock:
            try:
                new = load_config(self.config.path, env=self.env)
                smtp = new.smtp_settings()
                change = await self._plan(new)
                assert self.sessions is not None
                await asyncio.to_thread(sync_topics, self.sessions, change.config.topic_specs())
            except Exception as exc:
                # ConfigError says file, field, expected and got; a database error says why.
                logger.error("Reloading the configuration failed; keeping the running one: %s", exc)
                logger.debug("The reload failed", exc_info=not isinstance(exc, ConfigError))
                return
            try:
                self._apply(change, smtp)
            except Exception:
                logger.exception("Applying the reloaded configuration failed")

    async def _plan(self, new: Config) -> _Reload:
        """What applying ``new`` changes, built in full; raises :class:`ConfigError`."""
        old = self.config
        if new.database.url != old.database.url:
            logger.warning(
                "database.url changed in %s; the daemon keeps %s until it is restarted",
                new.path,
                safe_url(old.database.url),
            )
            new = replace(new, database=old.database)
        if new.web != old.web:
            logger.warning("[web] changed in %s; it takes effect at a restart", new.path)
            new = replace(new, web=old.web)
        if new.executor != old.executor:
            logger.warning(
                "[executor] changed in %s; the daemon keeps kind = %r until it is restarted",
                new.path,
                old.executor.kind,
            )
            new = replace(new, executor=old.executor)
        old_specs = self.specs
        new_specs = {spec.name: spec for spec in new.topics}
        added = [name for name in new_specs if name not in old_specs]
        removed = [name for name in old_specs if name not in new_specs]
        changed = [
            name for name in new_specs if name in old_specs and new_specs[name] != old_specs[name]
        ]
        rescheduled = [
            name
            for name in changed
            if (new_specs[name].every, new_specs[name].cron, new_specs[name].jitter)
            != (old_specs[name].every, old_specs[name].cron, old_specs[name].jitter)
        ]
        last_started = await asyncio.to_thread(self._history)
        now = datetime.now(UTC)
        jobs = self.plan_jobs(new, [new_specs[name] for name in added], last_started, now)
        for name in rescheduled:
            first = first_run_time(new_specs[name], last_started.get(name), now)
            jobs.append(plan_schedule(new, new_specs[name], first))
        dispatch_trigger = None
        if new.alerts.dispatch_every != old.alerts.dispatch_every:
            dispatch_trigger = IntervalTrigger(seconds=new.alerts.dispatch_every, timezone=UTC)
        return _Reload(new, added, changed, removed, jobs, dispatch_trigger)

    def _apply(self, change: _Reload, smtp: SmtpSettings | None) -> None:
        """Make ``change`` the running configuration; nothing here refuses a value."""
        old, new = self.config, change.config
        assert self.scheduler is not None
        if new.logging != old.logging:
            self.apply_logging(new)
        self.specs = {spec.name: spec for spec in new.topics}
        self.config = new
        self.smtp = smtp
        if new.crawl.max_concurrent_runs != old.crawl.max_concurrent_runs:
            # Runs under way keep their place in the old semaphore.
            self.semaphore = asyncio.Semaphore(new.crawl.max_concurrent_runs)
        if self.runner is not None:
            pool = self.runner.pool
            pool.size = new.crawl.max_concurrent_runs
            pool.max_runs = new.crawl.process_max_runs
            pool.max_memory = new.crawl.process_max_memory
        for name in change.removed:
            if self.scheduler.get_job(job_id(name)) is not None:
                self.scheduler.remove_job(job_id(name))
        for planned in change.jobs:
            self.schedule_topic(planned)
        if change.dispatch_trigger is not None:
            self.scheduler.reschedule_job(DISPATCH_JOB, trigger=change.dispatch_trigger)
        self.background(self.save_next_runs())
        logger.info(
            "Configuration reloaded: %d topic(s); added %s; changed %s; removed %s",
            len(self.specs),
            ", ".join(change.added) or "none",
            ", ".join(change.changed) or "none",
            ", ".join(change.removed) or "none",
        )

    def apply_logging(self, config: Config) -> None:
        """The reloaded ``[logging]``: for the daemon's own lines and the runs it starts."""
        fmt = self.log_format if self.log_format_fixed else config.logging.format
        configure_logging(fmt, config.logging.level)
        self.log_format, self.log_level = fmt, config.logging.level
        if self.runner is not None:  # the crawl runs started from now on
            self.runner.log_format, self.runner.log_level = fmt, config.logging.level
        logger.info("Logging now at level %s as %s", config.logging.level.upper(), fmt)


def run_daemon(
    config_path: str | Path | None = None,
    *,
    log_format: str | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """``topicwatch run``: load the config, set up logging and Sentry, serve until stopped.

    Raises :class:`ConfigError` when the config file is invalid; returns the exit code.
    """
    config = load_config(config_path, env=env)
    fmt = log_format or config.logging.format
    configure_logging(fmt, config.logging.level)
    init_sentry("daemon", env=env)
    daemon = Daemon(
        config,
        log_format=fmt,
        log_level=config.logging.level,
        log_format_fixed=log_format is not None,
        env=env,
    )
    return asyncio.run(daemon.serve())
