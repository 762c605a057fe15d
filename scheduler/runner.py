"""One crawl run of one topic, as a supervised child process.

The parent records that the run starts (a ``crawl_runs`` row), starts ``python -m crawler``
in a process group of its own, and waits for it with a wall-clock limit. The child crawls
and finishes the row itself. The parent steps in only when the child does not:

- past the limit the child's group gets SIGTERM, then SIGKILL a few seconds later, and the
  run is recorded as ``timeout`` ("killed after 600 s");
- when asked to stop (daemon shutdown) the same happens, recorded as ``failed`` with the
  message "stopped at shutdown";
- when the child exits without finishing the row (a crash, a signal), the run is recorded
  as ``failed`` with the exit code or signal.

A run closed by the parent gets the counts of the changes the child did record. When the
database cannot take the run's end (down, frozen, full), the parent says so in one line and
tries again, with growing pauses, until it can: until then the run stays ``running`` and its
alerts are held, and no other run of the topic starts. Every database call of the parent has
a time limit, so a database that does not answer is reported rather than waited on.

The child is told the parent's pid (:mod:`crawler.lifeline`) and dies with it; the parent
records the child's pid and start time in the run's row (:mod:`scheduler.processes`), so that
a restarted daemon can find a child that outlived its parent anyway and stop it.

The daemon and ``topicwatch crawl`` both use :func:`run_crawl`. With Sentry on, each run of
the daemon is also a Sentry Crons check-in (in progress, then ok or error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sentry_sdk.crons
from sqlalchemy.orm import Session, sessionmaker

from crawler.lifeline import SUPERVISOR_PID_ENV
from crawler.observability import Seconds, format_fields, utc_stamp
from scheduler.processes import process_identity
from storage.db import (
    CONNECT_TIMEOUT,
    DATABASE_ERRORS,
    STATEMENT_TIMEOUT,
    DatabaseUnavailable,
    describe_error,
)
from storage.runs import GOOD_RUN_STATUSES, RunRecord, close_run, record_run_process, start_run
from storage.spec import TopicSpec
from storage.topics import load_topic

if TYPE_CHECKING:
    from sentry_sdk._types import MonitorConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")

RUN_EVENT = "topicwatch.run"
KILL_AFTER = 5.0
# The longest a database call of the parent may take: a new connection, then one statement.
DATABASE_TIMEOUT = CONNECT_TIMEOUT + STATEMENT_TIMEOUT
# Pauses between attempts to close a run while the database is away: 1 s, 2 s, … 60 s.
CLOSE_RETRY_FIRST = 1.0
CLOSE_RETRY_MAX = 60.0
STOPPED_MESSAGE = "stopped at shutdown"
# The directory that holds the topicwatch packages, so a child finds them also when the
# project runs from a checkout rather than an installed distribution.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ChildRequest:
    """What a crawl child is told: where the database is, which topic, which run row."""

    database_url: str = field(repr=False)  # it may hold the database's password
    topic: str
    run_id: int
    log_format: str
    log_level: str


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


ChildCommand = Callable[[ChildRequest], Sequence[str]]


def crawl_command(request: ChildRequest) -> list[str]:
    """The command line of the crawl child, ``python -m crawler …``.

    The database URL goes to the child in its environment (``TOPICWATCH_DATABASE_URL``),
    not on its command line.
    """
    return [
        sys.executable,
        "-m",
        "crawler",
        "--topic",
        request.topic,
        "--run-id",
        str(request.run_id),
        "--log-format",
        request.log_format,
        "--log-level",
        request.log_level,
    ]


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
    """Starts and supervises crawl children recording into one database."""

    def __init__(
        self,
        database_url: str,
        sessions: sessionmaker[Session],
        *,
        log_format: str = "text",
        log_level: str = "INFO",
        child_command: ChildCommand = crawl_command,
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
        self.child_command = child_command
        self.kill_after = kill_after
        self.env = env
        self.withheld = frozenset(withheld)
        self.database_timeout = database_timeout
        self.close_retry = close_retry

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
        request = ChildRequest(self.database_url, topic, run_id, self.log_format, self.log_level)
        command = list(self.child_command(request))
        env = {
            **self.child_env(),
            # The URL may hold a password: the environment keeps it out of `ps`.
            DATABASE_URL_ENV: self.database_url,
            SUPERVISOR_PID_ENV: str(os.getpid()),
        }
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                # The child's stdout joins its log on stderr: stdout is the CLI's output.
                stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else None,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            message = f"cannot start the crawl process {command[0]}: {exc.strerror or exc}"
            return await self._close(
                topic, run_id, "failed", message, code=None, override=True, stop=stop
            )
        logger.debug("Crawl run %d of topic %s: child process %d", run_id, topic, process.pid)

        waiter = asyncio.ensure_future(process.wait())
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            await self._record_process(topic, run_id, process.pid)
            pending = {waiter} if stopper is None else {waiter, stopper}
            done, _ = await asyncio.wait(
                pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter in done:
                code = waiter.result()
                message = _exit_message(code)
                return await self._close(
                    topic, run_id, "failed", message, code=code, override=False, stop=stop
                )
            if stopper is not None and stopper in done:
                code = await self._terminate(process, waiter)
                return await self._close(
                    topic, run_id, "failed", stop_message, code=code, override=True, stop=stop
                )
            code = await self._terminate(process, waiter)
            message = f"killed after {timeout:g} s"
            return await self._close(
                topic, run_id, "timeout", message, code=code, override=True, stop=stop
            )
        except asyncio.CancelledError:
            # The daemon gave up on this run: never leave the child behind.
            if process.returncode is None:
                _signal_group(process.pid, signal.SIGKILL)
            raise
        finally:
            if stopper is not None:
                stopper.cancel()

    async def _terminate(
        self, process: asyncio.subprocess.Process, waiter: asyncio.Future[int]
    ) -> int:
        """SIGTERM to the child's process group, SIGKILL if still there after a grace."""
        _signal_group(process.pid, signal.SIGTERM)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), self.kill_after)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
            return await waiter

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

    async def _record_process(self, topic: str, run_id: int, pid: int) -> None:
        """Note the child in the run's row; without it, the child still dies with the parent."""
        try:
            identity = process_identity(pid)
            await self._database(record_run_process, self.sessions, run_id, pid, identity)
        except DATABASE_ERRORS as exc:
            logger.warning(
                "Crawl run %d of topic %s: cannot record its process %d in the database: %s",
                run_id,
                topic,
                pid,
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
    child_command: ChildCommand = crawl_command,
    kill_after: float = KILL_AFTER,
    withheld: Collection[str] = (),
) -> RunOutcome:
    """Crawl ``topic`` once in a supervised child process; how the run ended.

    The variables named in ``withheld`` are kept from the child's environment."""
    runner = CrawlRunner(
        database_url,
        sessions,
        log_format=log_format,
        log_level=log_level,
        child_command=child_command,
        kill_after=kill_after,
        withheld=withheld,
    )
    return await runner.run(
        topic, timeout=timeout, stop=stop, stop_message=stop_message, monitor=monitor
    )


def _exit_message(code: int) -> str:
    """What a child's exit says when the child left its run unfinished."""
    if code == 0:
        return "the crawl process exited without recording the run's result"
    if code < 0:
        return f"the crawl process was killed by signal {_signal_name(-code)}"
    return f"the crawl process exited with code {code}"


def _not_closed(run_id: int, topic: str, reason: str) -> str:
    return (
        f"Crawl run {run_id} of topic {topic} is left running, the database did not take its "
        f"end ({reason}); the next start of the daemon closes it"
    )


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True
