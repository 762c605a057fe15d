"""Worker processes fed straight from the crawl's event loop: readers and the writer.

Each worker is a process of its own joined to the crawl process by a socket pair: the event
loop writes a task to it without blocking (the transport buffers what the socket does not
take at once) and takes its answers as they arrive, so handing a page over costs the crawl
process a pickle and a write, with no threads of its own (a pool with threads would take the
interpreter lock from the crawl's event loop for every page). A worker gets at most
``IN_FLIGHT`` tasks at a time; the others wait in the crawl process for the least busy one.

A crawl run forks its workers at its start (:func:`fork_workers`), while it is still one
thread and has imported everything a worker needs: a forked worker is ready at once and costs
next to nothing to start, where a worker started afresh imports its modules again, on the
CPU the crawl needs. Where a process cannot be forked safely (another thread is running, or
the platform has no ``fork``), workers are started afresh (``spawn``), when first needed.

:class:`ReaderPool` reads article pages (:meth:`ReaderPool.read`,
:func:`crawler.reading.read_page`) and finds the links on listing pages
(:meth:`ReaderPool.discover`, :func:`crawler.discover.discover`); the run's writer process
(:class:`crawler.pipelines.WriterProcess`) is a pool of one with the tasks of
:mod:`crawler.recording`.

A worker that stops (killed, crashed) fails the tasks it held with :class:`ReadersStopped`;
the crawl then does them, and the rest of the run, in its own process. The worker's side is
:mod:`crawler.reading_worker`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import multiprocessing
import os
import pickle
import socket
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, ClassVar

from crawler.discover import Listing
from crawler.profiles import SiteProfile
from crawler.reading import Reading
from crawler.reading_worker import HEADER, READY, TASKS, serve

logger = logging.getLogger(__name__)

IN_FLIGHT = 2

Tasks = Mapping[str, Callable[..., Any]]
Initializer = tuple[Callable[..., Any], tuple[Any, ...]] | None


class ReadersStopped(RuntimeError):
    """A worker stopped before it answered."""


class WorkerTaskError(RuntimeError):
    """A task raised in a worker; the message names the exception."""


def can_fork() -> bool:
    """Whether workers can be forked from this process now: the platform has ``fork`` and
    this process runs one thread (a forked copy of a threaded process may inherit a lock
    some other thread held, and wait for it forever)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def fork_workers(*pools: WorkerPool) -> None:
    """Fork the workers of ``pools`` now (see :func:`can_fork`, which must hold); each pool
    is then started in the event loop (:meth:`WorkerPool.start`) without waiting for
    anything. A forked worker closes its copies of the crawl's ends of every worker's
    socket, its own included, so that each worker sees its socket close when the crawl
    closes it."""
    if not can_fork():
        raise RuntimeError("Workers cannot be forked from a process that runs threads")
    context = multiprocessing.get_context("fork")
    ours_so_far: list[Connection] = []
    for pool in pools:
        for _ in range(pool.size):
            ours, theirs = context.Pipe(duplex=True)  # a Unix socket pair
            ours_so_far.append(ours)
            process = context.Process(
                target=serve,
                args=(theirs, None, pool.tasks, pool.initializer),
                kwargs={"inherited": tuple(c.fileno() for c in ours_so_far)},
                name=pool.name,
            )
            process.daemon = True
            process.start()
            theirs.close()
            pool.forked.append((process, ours))


@dataclass
class _Worker:
    process: BaseProcess
    transport: asyncio.BaseTransport | None = None
    jobs: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    ready: bool = False
    alive: bool = True


class _Channel(asyncio.Protocol):
    """The crawl's end of one worker's socket: answers are taken as whole messages arrive,
    in the event loop's own callback (no task is woken for each of them)."""

    def __init__(self, pool: WorkerPool, worker: _Worker) -> None:
        self.pool = pool
        self.worker = worker
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.worker.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        start = 0
        while len(buffer) - start >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer, start)
            end = start + HEADER.size + length
            if len(buffer) < end:
                break
            message = bytes(buffer[start + HEADER.size : end])
            start = end
            # Our own worker, over a socket pair no other process holds.
            self.pool._answer(self.worker, pickle.loads(message))  # noqa: S301
        if start:
            del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool._lost(self.worker)


class WorkerPool:
    """``size`` worker processes that run ``tasks`` (by name) for the crawl: forked by
    :func:`fork_workers`, or else started afresh by :meth:`start`, which is called in the
    running event loop either way. ``initializer`` (a function and its arguments) runs in
    each worker before its first task."""

    name = "tw-worker"  # of each process, as ps and top show it
    label = "worker"  # in messages
    tasks: ClassVar[Tasks] = {}

    def __init__(
        self,
        size: int,
        log_setup: tuple[str, int] | None = None,
        initializer: Initializer = None,
    ) -> None:
        self.size = size
        self.log_setup = log_setup
        self.initializer = initializer
        self.forked: list[tuple[BaseProcess, Connection]] = []  # by fork_workers
        self.workers: list[_Worker] = []
        self.waiting: deque[tuple[tuple[Any, ...], asyncio.Future[Any]]] = deque()
        self.numbers = itertools.count()
        self.started = asyncio.Event()  # a worker is ready, or none will ever be

    async def start(self) -> None:
        """Take up the forked workers, or start them; one that cannot start is left out
        (with none, every task raises :class:`ReadersStopped`)."""
        try:
            await self._start()
        except Exception:
            logger.warning("Could not start the %s processes", self.label, exc_info=True)
        if not self.alive:
            self.started.set()

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        # Not forked (see fork_workers): started afresh, "spawn".
        context = multiprocessing.get_context("spawn")
        for n in range(self.size):
            if n < len(self.forked):
                process, ours = self.forked[n]
            else:
                ours, theirs = context.Pipe(duplex=True)  # a Unix socket pair
                process = context.Process(
                    target=serve,
                    args=(theirs, self.log_setup, self.tasks, self.initializer),
                    name=self.name,
                )
                process.daemon = True
                process.start()
                theirs.close()
            sock = socket.socket(fileno=os.dup(ours.fileno()))
            ours.close()
            worker = _Worker(process)
            self.workers.append(worker)
            try:
                await loop.create_connection(functools.partial(_Channel, self, worker), sock=sock)
            except BaseException:
                self.workers.remove(worker)
                sock.close()  # the worker stops when its socket closes
                raise
        self.forked.clear()

    async def wait_ready(self) -> None:
        """Until a worker can take tasks, or every worker has stopped."""
        await self.started.wait()

    @property
    def ready(self) -> bool:
        """Whether a worker has started and can take tasks."""
        return any(w.ready and w.alive for w in self.workers)

    @property
    def alive(self) -> bool:
        return any(w.alive for w in self.workers)

    async def run(self, task: str, *args: Any) -> Any:
        """What task ``task`` returns for ``args``, from one of the workers; raises
        :class:`ReadersStopped` if none can run it, :class:`WorkerTaskError` if it failed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append(((next(self.numbers), task, args), future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self.waiting:
            candidates = [w for w in self.workers if w.alive and w.ready]
            if not candidates:
                if not self.alive:
                    self._fail_waiting()
                return
            worker = min(candidates, key=lambda w: len(w.jobs))
            if len(worker.jobs) >= IN_FLIGHT:
                return
            job, future = self.waiting.popleft()
            if future.done():  # the caller gave up on it (cancelled)
                continue
            try:
                data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # a task that cannot be sent fails alone
                future.set_exception(exc)
                continue
            worker.jobs[job[0]] = future
            assert isinstance(worker.transport, asyncio.WriteTransport)
            worker.transport.write(HEADER.pack(len(data)) + data)

    def _answer(self, worker: _Worker, answer: tuple[int, bool, Any]) -> None:
        number, ok, result = answer
        if number == READY:
            worker.ready = True
            self.started.set()
        else:
            future = worker.jobs.pop(number, None)
            if future is not None and not future.done():
                if ok:
                    future.set_result(result)
                else:
                    future.set_exception(WorkerTaskError(result))
        self._dispatch()

    def _lost(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        worker.alive = False
        stopped = ReadersStopped(f"{self.label} {worker.process.pid} stopped")
        for future in worker.jobs.values():
            if not future.done():
                future.set_exception(stopped)
        worker.jobs.clear()
        if worker.transport is not None:
            worker.transport.close()
        if not self.alive:
            self.started.set()
            self._fail_waiting()
        else:
            self._dispatch()

    def _fail_waiting(self) -> None:
        while self.waiting:
            _, future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ReadersStopped(f"every {self.label} stopped"))

    def discard(self) -> None:
        """Let forked workers that were never taken up (:meth:`start`) stop."""
        for process, ours in self.forked:
            ours.close()  # the worker stops when its socket closes
            _stop(process)
        self.forked.clear()

    async def close(self) -> None:
        """Stop the workers (a worker stops when its socket closes)."""
        for _, ours in self.forked:  # never taken up
            ours.close()
        for worker in self.workers:
            if worker.transport is not None:
                worker.transport.close()
        processes = [w.process for w in self.workers] + [p for p, _ in self.forked]
        self.forked.clear()
        loop = asyncio.get_running_loop()
        for process in processes:
            await loop.run_in_executor(None, _stop, process)


class ReaderPool(WorkerPool):
    """``size`` reading workers: :meth:`read` is :func:`crawler.reading.read_page` and
    :meth:`discover` is :func:`crawler.discover.discover`, in one of them."""

    name = "tw-reader"
    label = "reading worker"
    tasks = TASKS

    async def read(self, body: bytes, url: str, **options: Any) -> Reading:
        """Read one article page in a worker; raises :class:`ReadersStopped` if none can."""
        reading: Reading = await self.run("read", body, url, options)
        return reading

    async def discover(
        self, body: bytes, url: str, content_type: str | None, profile: SiteProfile
    ) -> Listing:
        """The links of one listing page, found in a worker; raises
        :class:`ReadersStopped` if none can, :class:`WorkerTaskError` if finding them
        failed."""
        listing: Listing = await self.run("discover", body, url, content_type, profile)
        return listing


def _stop(process: BaseProcess) -> None:
    process.join(timeout=5)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)
