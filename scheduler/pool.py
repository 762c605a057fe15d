"""A pool of warm crawl processes (:mod:`crawler.worker`), and the hand-off of one run to one.

The pool starts a process when a run needs one and none is idle, up to ``size`` at once;
each process imports everything once and then runs one crawl run after another. A process is
recycled (told to exit once idle, and a fresh one started when next needed) after
``max_runs`` runs, or when the memory it reports after a run reaches ``max_memory``.

:meth:`CrawlPool.crawl` hands one run to a process and waits for its end, within a deadline:

- the process answers that the run is over (it recorded the run's end, or says why not):
  ``done``, and the process serves again;
- the process exits or dies during the run: ``exited``, with its exit code;
- the deadline passes, or ``stop`` is set: the process is asked to stop the run (what was
  read is recorded); one that does not answer within ``kill_after`` seconds has its process
  group killed, and the next run gets a new process. ``timeout`` or ``stopped``.

So a crashing or hanging crawl costs at most its own process, never the pool's owner. The
pool knows nothing of the database: its owner (:class:`scheduler.runner.CrawlRunner`, or a
queue's worker) records runs; ``on_process`` tells it which process took a run, so that it
can note the process's pid and identity (:mod:`scheduler.processes`) in the run's row.

Processes are started from the event loop's thread, which must be the main thread: they
die with it (:mod:`crawler.lifeline`). Each leads a process group of its own. An idle
process waits on its pipe: no polling, no CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scheduler.processes import process_identity

logger = logging.getLogger(__name__)

WorkerCommand = Callable[[str, str], Sequence[str]]
# How long a new process may take to import everything and say it is ready.
START_TIMEOUT = 120.0
KILL_AFTER = 5.0
MIB = 1024 * 1024


def worker_command(log_format: str, log_level: str) -> list[str]:
    """The command line of a warm crawl process, ``python -m crawler.worker …``."""
    return [
        sys.executable,
        "-m",
        "crawler.worker",
        "--log-format",
        log_format,
        "--log-level",
        log_level,
    ]


class ProcessStartError(RuntimeError):
    """A crawl process could not be started, or ended before it was ready; the message says
    which, and ``code`` is its exit code when it exited."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RunEnd:
    """How the hand-off of one run ended.

    ``done``: the process answered; ``status`` is what it recorded as the run's end, or
    ``error`` says why it recorded none. ``exited``: the process ended during the run
    (``code``). ``timeout`` / ``stopped``: the run was stopped at the deadline or on request;
    ``code`` is set when the process had to be killed. ``not_started``: no process could
    take the run (``error``, and ``code`` if it exited).
    """

    kind: Literal["done", "exited", "timeout", "stopped", "not_started"]
    status: str | None = None
    error: str | None = None
    code: int | None = None
    cpu: float | None = None


@dataclass(frozen=True)
class _Done:
    run: int
    status: str | None
    error: str | None
    rss: int
    cpu: float | None


class CrawlProcess:
    """One warm crawl process, as its supervisor sees it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pid = process.pid
        self.identity = process_identity(process.pid)
        self.runs = 0
        self.rss = 0
        self.clean = False  # whether its last run ended with an answer and no error
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.exited: asyncio.Future[int] = asyncio.ensure_future(process.wait())
        self._answers: asyncio.Queue[_Done] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    async def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            try:
                line = await stream.readline()
            except (ValueError, OSError):
                break
            if not line:
                break
            try:
                message = json.loads(line)
                event = message["event"]
                if event == "ready":
                    if not self.ready.done():
                        self.ready.set_result(None)
                elif event == "done":
                    rss = int(message.get("rss") or 0)
                    cpu = message.get("cpu")
                    self._answers.put_nowait(
                        _Done(
                            int(message["run"]),
                            message.get("status"),
                            message.get("error"),
                            rss,
                            float(cpu) if cpu is not None else None,
                        )
                    )
            except (ValueError, KeyError, TypeError):
                logger.warning("Crawl process %d wrote a line that is no message", self.pid)

    def send(self, message: Mapping[str, Any]) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            stdin.write((json.dumps(message) + "\n").encode())

    async def answer(self, run_id: int) -> _Done | int:
        """The process's answer about run ``run_id``, or its exit code if it ends first."""
        while True:
            getting = asyncio.ensure_future(self._answers.get())
            waiting: set[asyncio.Future[Any]] = {getting, self.exited}
            try:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getting.done():
                    getting.cancel()
            if getting.done() and not getting.cancelled():
                if getting.result().run == run_id:
                    return getting.result()
                continue  # an answer about an earlier run: not this one's
            # It ended: what it wrote before that is read to the end first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 1.0)
            while not self._answers.empty():
                done = self._answers.get_nowait()
                if done.run == run_id:
                    return done
            return self.exited.result()

    def kill(self) -> None:
        """SIGKILL to the process's group: what it runs goes with it."""
        if self.alive:
            _signal_group(self.pid, signal.SIGKILL)

    async def close(self, grace: float) -> None:
        """End of input: the process exits when idle; SIGTERM, then SIGKILL, if it does not."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        for signum in (signal.SIGTERM, signal.SIGKILL):
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), grace)
                break
            except TimeoutError:
                _signal_group(self.pid, signum)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), grace)
        self._reader.cancel()


class CrawlPool:
    """Warm crawl processes for runs on one database; see the module docstring."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        size: int,
        max_runs: int,
        max_memory: int,
        command: WorkerCommand = worker_command,
        log_format: str = "text",
        log_level: str = "INFO",
        kill_after: float = KILL_AFTER,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.env = dict(env)
        self.size = size
        self.max_runs = max_runs
        self.max_memory = max_memory
        self.command = command
        self.log_format = log_format
        self.log_level = log_level
        self.kill_after = kill_after
        self.start_timeout = start_timeout
        self.idle: list[CrawlProcess] = []
        self.busy: set[CrawlProcess] = set()
        self.closing: set[asyncio.Task[None]] = set()
        self.started = 0  # processes started in all
        self._free = asyncio.Condition()
        self._starting = 0
        self._closed = False

    @property
    def processes(self) -> list[CrawlProcess]:
        return [*self.idle, *self.busy]

    async def crawl(
        self,
        run_id: int,
        topic: str,
        *,
        timeout: float,
        stop: asyncio.Event | None = None,
        on_process: Callable[[CrawlProcess], Awaitable[None]] | None = None,
    ) -> RunEnd:
        """Hand run ``run_id`` of ``topic`` to a process and wait for its end, at most
        ``timeout`` seconds from now (a new process's start-up included)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            process = await asyncio.wait_for(self.acquire(), timeout)
        except TimeoutError:
            return RunEnd("timeout", error=f"no crawl process was ready within {timeout:g} s")
        except ProcessStartError as exc:
            return RunEnd("not_started", error=str(exc), code=exc.code)
        process.clean = False
        try:
            if on_process is not None:
                await on_process(process)
            process.send(
                {
                    "op": "run",
                    "run": run_id,
                    "topic": topic,
                    "log_format": self.log_format,
                    "log_level": self.log_level,
                }
            )
            answer = asyncio.ensure_future(process.answer(run_id))
            stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
            try:
                waiting = {answer} if stopper is None else {answer, stopper}
                await asyncio.wait(
                    waiting,
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                kind: Literal["timeout", "stopped"]
                if answer.done():
                    return self._ended(process, answer.result())
                kind = "stopped" if stopper is not None and stopper.done() else "timeout"
                process.send({"op": "stop", "run": run_id})
                try:
                    result = await asyncio.wait_for(asyncio.shield(answer), self.kill_after)
                except TimeoutError:
                    process.kill()
                    return RunEnd(kind, code=await process.exited)
                if isinstance(result, int):
                    return RunEnd(kind, code=result)
                self._note(process, result)
                return RunEnd(kind, status=result.status, cpu=result.cpu)
            finally:
                answer.cancel()
                if stopper is not None:
                    stopper.cancel()
        except asyncio.CancelledError:
            process.kill()  # the owner gave up on the run: never leave the process behind
            raise
        finally:
            self.release(process, reusable=process.clean)

    def _ended(self, process: CrawlProcess, result: _Done | int) -> RunEnd:
        if isinstance(result, int):
            return RunEnd("exited", code=result)
        self._note(process, result)
        return RunEnd("done", status=result.status, error=result.error, cpu=result.cpu)

    def _note(self, process: CrawlProcess, done: _Done) -> None:
        process.runs += 1
        process.rss = done.rss
        # A run that raised may have left the process in a state no one planned for.
        process.clean = done.error is None

    async def acquire(self) -> CrawlProcess:
        """An idle process, or a new one when fewer than ``size`` are busy; waits otherwise."""
        async with self._free:
            while True:
                if self._closed:
                    raise ProcessStartError("the crawl processes are shutting down")
                while self.idle:
                    process = self.idle.pop()
                    if process.alive:
                        self.busy.add(process)
                        return process
                if len(self.busy) + self._starting < self.size:
                    break
                await self._free.wait()
            self._starting += 1
        try:
            process = await self._start()
        except BaseException:
            self._wake()
            raise
        finally:
            self._starting -= 1
        self.busy.add(process)
        return process

    async def _start(self) -> CrawlProcess:
        command = list(self.command(self.log_format, self.log_level))
        try:
            started = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=self.env,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProcessStartError(
                f"cannot start the crawl process {command[0]}: {exc.strerror or exc}"
            ) from None
        process = CrawlProcess(started)
        self.started += 1
        starting: set[asyncio.Future[Any]] = {process.ready, process.exited}
        try:
            await asyncio.wait(
                starting,
                timeout=self.start_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            process.kill()
            raise
        if process.ready.done():
            logger.debug("Crawl process %d started", process.pid)
            return process
        if process.exited.done():
            code = process.exited.result()
            raise ProcessStartError(exit_message(code, before_ready=True), code)
        process.kill()
        raise ProcessStartError(f"the crawl process was not ready within {self.start_timeout:g} s")

    def release(self, process: CrawlProcess, *, reusable: bool) -> None:
        """Give ``process`` back after a run: idle again, or retired (it exited, was killed,
        failed a run, or reached its limits)."""
        self.busy.discard(process)
        reason = None
        if not process.alive:
            reason = None  # gone already
        elif not reusable:
            reason = "its run did not end cleanly"
        elif process.runs >= self.max_runs:
            reason = f"after {process.runs} runs"
        elif process.rss >= self.max_memory:
            reason = f"at {process.rss / MIB:.0f} MiB"
        elif self._closed or len(self.idle) + len(self.busy) >= self.size:
            reason = "the pool is smaller now"
        if process.alive and reason is None:
            self.idle.append(process)
        elif process.alive:
            logger.info("Recycling crawl process %d %s", process.pid, reason)
            self._retire(process)
        self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._free:
                self._free.notify()

        task = asyncio.ensure_future(notify())
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    def _retire(self, process: CrawlProcess) -> None:
        task = asyncio.ensure_future(process.close(self.kill_after))
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    async def close(self) -> None:
        """Ask every process to exit, kill those that do not; wait until they are gone."""
        self._closed = True
        idle, self.idle = self.idle, []
        for process in idle:
            self._retire(process)
        for process in list(self.busy):
            process.kill()
        while self.closing:
            await asyncio.gather(*self.closing, return_exceptions=True)


def exit_message(code: int, *, before_ready: bool = False) -> str:
    """What a process's exit says about the run it had (or the start it did not finish)."""
    if before_ready:
        if code < 0:
            return f"the crawl process was killed by signal {_signal_name(-code)} as it started"
        return f"the crawl process exited with code {code} as it started"
    if code == 0:
        return "the crawl process exited without recording the run's result"
    if code < 0:
        return f"the crawl process was killed by signal {_signal_name(-code)}"
    return f"the crawl process exited with code {code}"


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
