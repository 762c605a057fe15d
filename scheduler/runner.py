"""One crawl run of one topic, handed to a warm crawl process and supervised.

The parent records that the run starts (a ``crawl_runs`` row) and hands the run to a crawl
process of its pool (:mod:`scheduler.pool`: long-lived ``python -m crawler.worker``
processes, each in a process group of its own, that run crawl after crawl), with a
wall-clock limit. The process crawls and finishes the row itself. The parent steps in only
when it does not:

- past the limit the process is asked to stop the run, and killed a few seconds later if
  it has not; the run is recorded as ``timeout`` ("killed after 600 s");
- when asked to stop (daemon shutdown) the same happens, recorded as ``failed`` with the
  message "stopped at shutdown";
- when the process exits during the run (a crash, a signal), the run is recorded as
  ``failed`` with the exit code or signal; when it says it could not record the run (the
  database failed, the crawl raised), as ``failed`` with its reason.

A killed or failed process is not used again: the next run gets a new one. A run closed by
the parent gets the counts of the changes the process did record. When the database cannot
take the run's end (down, frozen, full), the parent says so in one line and tries again,
with growing pauses, until it can: until then the run stays ``running`` and its alerts are
held, and no other run of the topic starts. Every database call of the parent has a time
limit, so a database that does not answer is reported rather than waited on.

The crawl processes are told the parent's pid (:mod:`crawler.lifeline`) and die with it;
the parent records the pid and start time of the process that took a run in the run's row
(:mod:`scheduler.processes`), so that a restarted daemon can find a process that outlived
its parent anyway and stop it.

The daemon and ``topicwatch crawl`` both use :class:`CrawlRunner` (the latter through
:func:`run_crawl`, with a pool of one process for its one run). With Sentry on, each run of
the daemon is also a Sentry Crons check-in (in progress, then ok or error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sentry_sdk.crons
from sqlalchemy.orm import Session, sessionmaker

from crawler.lifeline import SUPERVISOR_PID_ENV
from crawler.observability import Seconds, format_fields, utc_stamp
from scheduler.pool import (
    KILL_AFTER,
    CrawlPool,
    CrawlProcess,
    RunEnd,
    WorkerCommand,
    exit_message,
    worker_command,
)
from storage.db import (
    CONNECT_TIMEOUT,
    DATABASE_ERRORS,
    STATEMENT_TIMEOUT,
    DatabaseUnavailable,
    describe_error,
)
from storage.health import GOOD_RUN_STATUSES
from storage.runs import RunRecord, close_run, record_run_process, start_run
from storage.spec import TopicSpec
from storage.topics import load_topic

if TYPE_CHECKING:
    from sentry_sdk._types import MonitorConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")

RUN_EVENT = "topicwatch.run"
# The longest a database call of the parent may take: a new connection, then one statement.
DATABASE_TIMEOUT = CONNECT_TIMEOUT + STATEMENT_TIMEOUT
# Pauses between attempts to close a run while the database is away: 1 s, 2 s, … 60 s.
CLOSE_RETRY_FIRST = 1.0
CLOSE_RETRY_MAX = 60.0
STOPPED_MESSAGE = "stopped at shutdown"
# Recycling of crawl processes, when the caller names no limits (``topicwatch crawl``).
PROCESS_MAX_RUNS = 200
PROCESS_MAX_MEMORY = 512 * 1024 * 1024
# The directory that holds the topicwatch packages, so a child finds them also when the
# project runs from a checkout rather than an installed distribution.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


DATABASE_URL_ENV = "TOPICWATCH_DATABASE_URL"

# The variables of the daemon's environment a crawl process gets; no other. It needs to run
# Python (PATH, HOME, locale, time zone, PYTHON*), reach the database (libpq's PG*, e.g.
# PGPASSWORD), report to Sentry, and fetch through the operator's proxy and CA bundle. The
# SMTP password, and whatever else the daemon was given, is none of its business.
CHILD_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "SENTRY_DSN",
        "SENTRY_ENVIRONMENT",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "XDG_CACHE_HOME",
        "TLDEXTRACT_CACHE",
        "TOPICWATCH_PROGRESS",  # set by `topicwatch crawl` on a terminal (crawler.progress)
    }
)
CHILD_ENV_PREFIXES = ("LC_", "PYTHON", "PG", "OPENBLAS_")


class RunNotClosed(RuntimeError):
    """The run's end could not be recorded before the supervisor was asked to stop; the run
    stays ``running`` until the next start of the daemon closes it."""


@dataclass(frozen=True)
class RunOutcome:
    """How one crawl run ended, as recorded in its ``crawl_runs`` row."""

    topic: str
    run_id: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: Mapping[str, int]
    stats: Mapping[str, Any] = field(default_factory=dict)
    failures: tuple[Mapping[str, str], ...] = ()
    message: str | None = None
    exit_code: int | None = None

    @classmethod
    def from_record(cls, record: RunRecord, exit_code: int | None) -> RunOutcome:
        return cls(
            topic=record.topic,
            run_id=record.id,
            status=record.status,
            started_at=record.started_at,
            finished_at=record.finished_at,
            counts=dict(record.counts),
            stats=dict(record.stats),
            failures=tuple(record.failures),
            message=record.message,
            exit_code=exit_code,
        )

    @property
    def succeeded(self) -> bool:
        """Whether the run did its work (``ok``, or ``partial`` with some fetches failed)."""
        return self.status in GOOD_RUN_STATUSES

    @property
    def duration(self) -> float:
        if self.finished_at is None:
            return 0.0
        return max(0.0, (self.finished_at - self.started_at).total_seconds())

    def count(self, name: str) -> int:
        return int(self.counts.get(name, 0))

    def summary_fields(self, next_run: datetime | None = None) -> dict[str, object]:
        """The fields of the run's summary line, in their order."""
        fields: dict[str, object] = {
            "topic": self.topic,
            "run": self.run_id,
            "status": self.status,
            "pages": self.count("pages_fetched"),
            "articles": self.count("articles_seen"),
            "new": self.count("articles_new"),
            "updated": self.count("articles_updated"),
            "removed": self.count("articles_removed"),
        }
        if self.count("articles_restored"):
            fields["restored"] = self.count("articles_restored")
        fields["unchanged"] = self.count("articles_unchanged") + self.count("articles_not_modified")
        fields["errors"] = self.count("errors")
        fields["duration"] = Seconds(self.duration)
        if next_run is not None:
            fields["next"] = utc_stamp(next_run)
        if self.message:
            fields["message"] = self.message
        return fields

    def summary(self, next_run: datetime | None = None) -> str:
        """``topicwatch.run topic=… run=… status=… pages=… …`` on one line."""
        return f"{RUN_EVENT} {format_fields(self.summary_fields(next_run))}"


def monitor_config(spec: TopicSpec, run_timeout: float) -> MonitorConfig:
    """The Sentry Crons monitor of a topic: its schedule, and how late or long a run may be.

    Sentry counts intervals in whole minutes; a shorter interval is reported as one minute.
    """
    max_runtime = max(1, math.ceil(run_timeout / 60))
    if spec.cron is not None:
        return {
            "schedule": {"type": "crontab", "value": spec.cron},
            "timezone": "UTC",
            "checkin_margin": max(1, math.ceil(spec.jitter / 60)),
            "max_runtime": max_runtime,
        }
    every = spec.every or 900.0
    minutes = max(1, round(every / 60))
    return {
        "schedule": {"type": "interval", "value": minutes, "unit": "minute"},
        "timezone": "UTC",
        "checkin_margin": max(1, math.ceil(spec.jitter / 60)),
        "max_runtime": max_runtime,
    }


class CrawlRunner:
    """Hands crawl runs of one database to a pool of warm crawl processes, and supervises
    them: :meth:`run` is one run, start to end; :meth:`close` ends the processes."""

    def __init__(
        self,
        database_url: str,
        sessions: sessionmaker[Session],
        *,
        log_format: str = "text",
        log_level: str = "INFO",
        processes: int = 1,
        process_max_runs: int = PROCESS_MAX_RUNS,
        process_max_memory: int = PROCESS_MAX_MEMORY,
        command: WorkerCommand = worker_command,
        kill_after: float = KILL_AFTER,
        env: Mapping[str, str] | None = None,
        withheld: Collection[str] = (),
        database_timeout: float = DATABASE_TIMEOUT,
        close_retry: tuple[float, float] = (CLOSE_RETRY_FIRST, CLOSE_RETRY_MAX),
    ) -> None:
        self.database_url = database_url
        self.sessions = sessions
        self.log_format = log_format
        self.log_level = log_level
        self.env = env
        self.withheld = frozenset(withheld)
        self.database_timeout = database_timeout
        self.close_retry = close_retry
        self.pool = CrawlPool(
            {
                **self.child_env(),
                # The URL may hold a password: the environment keeps it out of `ps`.
                DATABASE_URL_ENV: database_url,
                SUPERVISOR_PID_ENV: str(os.getpid()),
            },
            size=processes,
            max_runs=process_max_runs,
            max_memory=process_max_memory,
            command=command,
            log_format=log_format,
            log_level=log_level,
            kill_after=kill_after,
        )

    async def close(self) -> None:
        """End the crawl processes (after the runs under way: stop those first)."""
        await self.pool.close()

    def child_env(self) -> dict[str, str]:
        """The environment of a crawl process: the variables of :data:`CHILD_ENV_NAMES` and
        :data:`CHILD_ENV_PREFIXES` that this process has, except the ``withheld`` ones (the
        one ``[smtp] password_env`` names)."""
        source = os.environ if self.env is None else self.env
        env = {
            name: value
            for name, value in source.items()
            if (name in CHILD_ENV_NAMES or name.startswith(CHILD_ENV_PREFIXES))
            and name not in self.withheld
        }
        if PACKAGE_ROOT.name in ("site-packages", "dist-packages"):
            return env  # installed: the child finds the packages where the parent did
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if str(PACKAGE_ROOT) not in paths:
            env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), *paths])
        return env

    async def run(
        self,
        topic: str,
        *,
        timeout: float,
        stop: asyncio.Event | None = None,
        stop_message: str = STOPPED_MESSAGE,
        monitor: MonitorConfig | None = None,
        due_at: datetime | None = None,
    ) -> RunOutcome:
        """Crawl ``topic`` once in a child process; how the run ended.

        ``stop`` set while the child runs stops it; the run is recorded as failed with
        ``stop_message`` (default "stopped at shutdown"). With ``monitor``,
        the run is reported as a Sentry Crons check-in of the monitor named after the topic.
        ``due_at`` is when the schedule wanted the run to start.

        Raises one of :data:`storage.db.DATABASE_ERRORS` when the run cannot be started, and
        :class:`RunNotClosed` when ``stop`` is set while its end cannot be recorded.
        """
        topic_id, _spec = await self._database(load_topic, self.sessions, topic)
        run_id = await self._database(start_run, self.sessions, topic_id, due_at=due_at)
        check_in: str | None = None
        if monitor is not None:
            check_in = sentry_sdk.crons.capture_checkin(
                monitor_slug=topic, status="in_progress", monitor_config=monitor
            )
        began = time.monotonic()
        outcome: RunOutcome | None = None
        try:
            outcome = await self._supervise(
                topic, run_id, timeout=timeout, stop=stop, stop_message=stop_message
            )
            return outcome
        finally:
            if check_in is not None:
                sentry_sdk.crons.capture_checkin(
                    monitor_slug=topic,
                    check_in_id=check_in,
                    status="ok" if outcome is not None and outcome.succeeded else "error",
                    duration=time.monotonic() - began,
                )

    async def _supervise(
        self,
        topic: str,
        run_id: int,
        *,
        timeout: float,
        stop: asyncio.Event | None,
        stop_message: str,
    ) -> RunOutcome:
        self.pool.log_format, self.pool.log_level = self.log_format, self.log_level

        async def note_process(process: CrawlProcess) -> None:
            logger.debug("Crawl run %d of topic %s: crawl process %d", run_id, topic, process.pid)
            await self._record_process(topic, run_id, process)

        end = await self.pool.crawl(
            run_id, topic, timeout=timeout, stop=stop, on_process=note_process
        )
        status, message, override = _what_ended(end, timeout, stop_message)
        return await self._close(
            topic,
            run_id,
            status,
            message,
            code=0 if end.kind == "done" else end.code,
            override=override,
            stop=stop,
        )

    async def _database(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` in a thread, given up on after ``database_timeout``:
        a frozen database is reported, not waited on (the thread ends when its call does)."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(function, *args, **kwargs), self.database_timeout
            )
        except TimeoutError:
            raise DatabaseUnavailable(
                f"the database did not answer within {self.database_timeout:g} s"
            ) from None

    async def _record_process(self, topic: str, run_id: int, process: CrawlProcess) -> None:
        """Note the process in the run's row; without it, the process still dies with the
        parent."""
        try:
            await self._database(
                record_run_process, self.sessions, run_id, process.pid, process.identity
            )
        except DATABASE_ERRORS as exc:
            logger.warning(
                "Crawl run %d of topic %s: cannot record its process %d in the database: %s",
                run_id,
                topic,
                process.pid,
                describe_error(exc),
            )

    async def _close(
        self,
        topic: str,
        run_id: int,
        status: str,
        message: str,
        *,
        code: int | None,
        override: bool,
        stop: asyncio.Event | None,
    ) -> RunOutcome:
        """Record the end of a run the child did not (or not rightly) finish
        (:func:`storage.runs.close_run`), trying again until the database takes it.

        With ``override`` the parent's status wins also over one the child recorded while
        it was being stopped; the child's counters are kept.
        """
        ended = datetime.now(UTC)
        pause, longest = self.close_retry
        failures = 0
        while True:
            try:
                record = await self._database(
                    close_run,
                    self.sessions,
                    run_id,
                    status=status,
                    message=message,
                    override=override,
                    now=ended,
                )
            except DATABASE_ERRORS as exc:
                failures += 1
                reason = describe_error(exc)
                logger.debug("The database error", exc_info=True)
                if stop is not None and stop.is_set():
                    raise RunNotClosed(_not_closed(run_id, topic, reason)) from None
                logger.error(
                    "Cannot record the end of crawl run %d of topic %s: %s; trying again in %gs",
                    run_id,
                    topic,
                    reason,
                    pause,
                )
                if stop is None:
                    await asyncio.sleep(pause)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), pause)
                pause = min(pause * 2, longest)
                continue
            if failures:
                logger.warning(
                    "Recorded the end of crawl run %d of topic %s after %d failed attempt(s)",
                    run_id,
                    topic,
                    failures,
                )
            return RunOutcome.from_record(record, code)


async def run_crawl(
    database_url: str,
    sessions: sessionmaker[Session],
    topic: str,
    *,
    timeout: float,
    log_format: str = "text",
    log_level: str = "INFO",
    stop: asyncio.Event | None = None,
    stop_message: str = STOPPED_MESSAGE,
    monitor: MonitorConfig | None = None,
    command: WorkerCommand = worker_command,
    kill_after: float = KILL_AFTER,
    withheld: Collection[str] = (),
) -> RunOutcome:
    """Crawl ``topic`` once in a crawl process started for it, which then exits; how the
    run ended.

    The variables named in ``withheld`` are kept from the process's environment."""
    runner = CrawlRunner(
        database_url,
        sessions,
        log_format=log_format,
        log_level=log_level,
        command=command,
        kill_after=kill_after,
        withheld=withheld,
    )
    try:
        return await runner.run(
            topic, timeout=timeout, stop=stop, stop_message=stop_message, monitor=monitor
        )
    finally:
        await runner.close()


def _what_ended(end: RunEnd, timeout: float, stop_message: str) -> tuple[str, str, bool]:
    """The status and message a run gets from how its hand-off ended, and whether they win
    over what the crawl process recorded (``override``)."""
    if end.kind == "timeout":
        return "timeout", f"killed after {timeout:g} s", True
    if end.kind == "stopped":
        return "failed", stop_message, True
    if end.kind == "not_started":
        return "failed", end.error or "the crawl process did not start", True
    if end.kind == "exited":
        return "failed", exit_message(end.code or 0), False
    # done: the process recorded the run's end, or says why it could not.
    return "failed", end.error or "the crawl process ended the run without recording it", False


def _not_closed(run_id: int, topic: str, reason: str) -> str:
    return (
        f"Crawl run {run_id} of topic {topic} is left running, the database did not take its "
        f"end ({reason}); the next start of the daemon closes it"
    )
