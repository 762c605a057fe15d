"""A warm crawl process: imports Scrapy, Twisted, SQLAlchemy, trafilatura and topicwatch once,
then runs crawl run after crawl run in one reactor (``python -m crawler.worker``).

A new interpreter costs about a second of CPU before its crawl fetches anything; a watch list
of many small topics re-checked often would spend most of its CPU on that. The supervisor
(:mod:`scheduler.pool`) starts a few of these processes and hands them runs, one at a time
each, over a channel of JSON lines, one object a line. On stdin it sends::

    {"op": "run", "run": 412, "topic": "konflik", "log_format": "text", "log_level": "INFO"}
    {"op": "stop", "run": 412}

and on stdout the process answers::

    {"event": "ready", "pid": 1234}
    {"event": "done", "run": 412, "status": "ok", "error": null, "rss": 130000000, "cpu": 0.4}

``ready`` comes once everything is imported; ``done`` when a run is over: it recorded the
run's end itself (``status``), or it could not (``error`` says why, ``status`` is null).
``rss`` is the process's resident memory then, in bytes, and ``cpu`` the CPU seconds the run
took in this process. ``stop`` ends the run under way early, as a SIGTERM ends a crawl: what
was read is recorded, and the run is finished as ``partial``. End of input: the process exits
0 once the run under way is over; SIGTERM stops that run first.

Stdout carries these lines only: its file descriptor is taken for the channel at start, and
what is printed to stdout afterwards goes to stderr with the log. The database URL comes in
the environment (``TOPICWATCH_DATABASE_URL``), never on a line or the command line.

Between runs nothing of a run stays behind: each crawl has its own crawler, settings and
signal connections, and its own database engine, disposed when it ends; the DNS cache and
the address guard's refusals are forgotten (:func:`crawler.run.crawl_in_reactor`). The log
format and level follow each request, Sentry events carry the run's topic and run id, and a
full garbage collection after each run frees what the run left in cycles. The process dies
with its supervisor (:mod:`crawler.lifeline`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import resource
import signal
import sys
from typing import Any

from crawler.lifeline import die_with_supervisor
from crawler.observability import LOG_FORMATS, configure_logging, flush_sentry, init_sentry

logger = logging.getLogger("topicwatch.crawl")

DATABASE_URL_ENV = "TOPICWATCH_DATABASE_URL"
ASYNCIO_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
# Threads of the reactor's pool (DNS lookups), as Scrapy's REACTOR_THREADPOOL_MAXSIZE.
THREAD_POOL_SIZE = 10
# The longest a request line may be; anything longer is not from the supervisor.
MAX_LINE = 64 * 1024


def resident_bytes() -> int:
    """This process's resident memory now (``/proc/self/statm``), else its peak."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Worker:
    """Reads requests, runs one crawl at a time, answers on ``channel`` (a file descriptor)."""

    def __init__(self, channel: int, database_url: str, log_format: str, log_level: str) -> None:
        self.channel = channel
        self.database_url = database_url
        self.logging = (log_format, log_level)
        self.crawl: asyncio.Task[None] | None = None
        self.crawl_run: int | None = None
        self.stop_crawl = asyncio.Event()
        self.closing = asyncio.Event()
        self.frozen_after_first_run = False

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.channel, data) :]

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.terminate)
        reader = asyncio.StreamReader(limit=MAX_LINE)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self.send({"event": "ready", "pid": os.getpid()})
        reading = asyncio.ensure_future(self._read(reader))
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            await asyncio.wait({reading, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reading.cancel()
            closing.cancel()
        if self.crawl is not None:
            await asyncio.gather(self.crawl, return_exceptions=True)

    def terminate(self) -> None:
        """SIGTERM: stop the run under way (its end recorded), then exit."""
        self.stop_crawl.set()
        self.closing.set()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line over MAX_LINE
                logger.error("crawl process: a request line longer than %d bytes", MAX_LINE)
                return
            if not line:
                return  # the supervisor closed the channel: exit after the run under way
            try:
                request = json.loads(line)
                self.handle(request)
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("crawl process: a request it cannot read: %s", exc)

    def handle(self, request: dict[str, Any]) -> None:
        op = request["op"]
        if op == "stop":
            if self.crawl_run is not None and int(request["run"]) == self.crawl_run:
                self.stop_crawl.set()
            return
        if op != "run":
            raise ValueError(f"unknown op {op!r}")
        run_id = int(request["run"])
        if self.crawl is not None:
            self.send({"event": "done", "run": run_id, "status": None, "error": "busy"})
            return
        self.crawl_run = run_id
        self.stop_crawl = asyncio.Event()
        self.crawl = asyncio.ensure_future(
            self.run(
                str(request["topic"]),
                run_id,
                str(request.get("log_format") or self.logging[0]),
                str(request.get("log_level") or self.logging[1]),
            )
        )
        self.crawl.add_done_callback(self._crawl_done)

    def _crawl_done(self, _task: asyncio.Task[None]) -> None:
        self.crawl = None
        self.crawl_run = None

    async def run(self, topic: str, run_id: int, log_format: str, log_level: str) -> None:
        from crawler.run import crawl_in_reactor
        from storage.db import DATABASE_ERRORS, describe_error

        if (log_format, log_level) != self.logging and log_format in LOG_FORMATS:
            configure_logging(log_format, log_level)
            self.logging = (log_format, log_level)
        began = cpu_seconds()
        status: str | None = None
        error: str | None = None
        with _sentry_run(topic, run_id):
            try:
                result = await crawl_in_reactor(
                    self.database_url, topic, run_id, stop=self.stop_crawl
                )
                status = result.status
            except DATABASE_ERRORS as exc:
                # The database is down or full: one line, the traceback only for those who ask.
                error = f"the database failed: {describe_error(exc)}"
                logger.error("crawl run %s of topic %s stopped: %s", run_id, topic, error)
                logger.debug("The database error", exc_info=True)
            except Exception as exc:
                error = f"the crawl crashed: {type(exc).__name__}: {exc}"
                logger.exception("crawl run %s of topic %s crashed", run_id, topic)
            flush_sentry()
        gc.collect()
        if not self.frozen_after_first_run:
            # What the first crawl imported and set up stays for the life of the process.
            gc.freeze()
            self.frozen_after_first_run = True
        self.send(
            {
                "event": "done",
                "run": run_id,
                "status": status,
                "error": error,
                "rss": resident_bytes(),
                "cpu": round(cpu_seconds() - began, 4),
            }
        )


@contextlib.contextmanager
def _sentry_run(topic: str, run_id: int) -> Any:
    """Sentry events sent during the run name its topic and run; the breadcrumbs of earlier
    runs are dropped. A no-op when Sentry is off."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is None or not sentry_sdk.get_client().is_active():
        yield
        return
    scope = sentry_sdk.get_global_scope()
    sentry_sdk.get_isolation_scope().clear_breadcrumbs()
    scope.set_tag("topic", topic)
    scope.set_tag("run", str(run_id))
    try:
        yield
    finally:
        scope.remove_tag("topic")
        scope.remove_tag("run")


def main(argv: list[str] | None = None) -> int:
    die_with_supervisor()
    # The channel keeps stdout's file descriptor; stdout itself now writes to stderr.
    channel = os.dup(1)
    os.dup2(2, 1)
    parser = argparse.ArgumentParser(
        prog="python -m crawler.worker",
        description="A warm crawl process: runs the crawl runs a supervisor hands it.",
    )
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    database_url = os.environ.get(DATABASE_URL_ENV, "")
    if not database_url:
        parser.error(f"the database URL is needed in {DATABASE_URL_ENV}")
    configure_logging(args.log_format, args.log_level)
    init_sentry("crawler")

    from scrapy.utils.reactor import install_reactor

    install_reactor(ASYNCIO_REACTOR)
    from twisted.internet import reactor as installed

    reactor: Any = installed  # the asyncio reactor; its interfaces do not type its methods

    # Everything a crawl needs, imported now (reading's modules too, which a one-off crawl
    # imports only when it reads its first page).
    import crawler.reading
    import crawler.run  # noqa: F401

    reactor.getThreadPool().adjustPoolsize(maxthreads=THREAD_POOL_SIZE)
    worker = Worker(channel, database_url, args.log_format, args.log_level)
    failed: list[BaseException] = []

    async def serve() -> None:
        try:
            await worker.serve()
        except BaseException as exc:
            failed.append(exc)
            logger.exception("crawl process failed")
        finally:
            reactor.stop()

    # Start-up is over: what it set up is moved out of the collector's sight for good.
    gc.collect()
    gc.freeze()
    from crawler.run import GC_THRESHOLDS

    gc.set_threshold(*GC_THRESHOLDS)
    reactor.callWhenRunning(lambda: asyncio.ensure_future(serve()))
    reactor.run(installSignalHandlers=False)
    flush_sentry()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
