"""Reading pages in worker processes, fed straight from the crawl's event loop.

Each worker is a process of its own joined to the crawl process by a socket pair: the event
loop writes a page to it without blocking (the transport buffers what the socket does not take
at once) and takes its answers as they arrive, so handing a page over costs the crawl process a
pickle and a write, with no threads of its own (a pool with threads would take the
interpreter lock from the crawl's event loop for every page). A worker gets at most
``IN_FLIGHT`` pages at a time; the others wait in the crawl process for the least busy one.

Workers read article pages (:meth:`ReaderPool.read`, :func:`crawler.reading.read_page`) and
find the links on listing pages (:meth:`ReaderPool.discover`,
:func:`crawler.discover.discover`).

A worker that stops (killed, crashed) fails the pages it held with :class:`ReadersStopped`;
the crawl then reads them, and the rest of the run, in its own process. The worker's side is
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
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from crawler.discover import Listing
from crawler.profiles import SiteProfile
from crawler.reading import Reading
from crawler.reading_worker import HEADER, READY, serve

logger = logging.getLogger(__name__)

IN_FLIGHT = 2


class ReadersStopped(RuntimeError):
    """A reading worker stopped before it answered."""


class WorkerTaskError(RuntimeError):
    """A task raised in a reading worker; the message names the exception."""


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

    def __init__(self, pool: ReaderPool, worker: _Worker) -> None:
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


class ReaderPool:
    """``size`` reading workers: :meth:`read` is :func:`crawler.reading.read_page` and
    :meth:`discover` is :func:`crawler.discover.discover`, in one of them. Start it with
    :meth:`start` in the running event loop."""

    def __init__(self, size: int, log_setup: tuple[str, int] | None = None) -> None:
        self.size = size
        self.log_setup = log_setup
        self.workers: list[_Worker] = []
        self.waiting: deque[tuple[tuple[Any, ...], asyncio.Future[Any]]] = deque()
        self.numbers = itertools.count()
        self.started = asyncio.Event()  # a worker is ready, or none will ever be

    async def start(self) -> None:
        """Start the workers; one that cannot start is left out (with none, :meth:`read`
        raises :class:`ReadersStopped`)."""
        try:
            await self._start()
        except Exception:
            logger.warning("Could not start the reading workers", exc_info=True)
        if not self.alive:
            self.started.set()

    async def _start(self) -> None:
        # "spawn": the crawl process runs threads, and a forked copy of a threaded process
        # may inherit a lock some thread held.
        context = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        for _ in range(self.size):
            ours, theirs = context.Pipe(duplex=True)  # a Unix socket pair
            process = context.Process(
                target=serve, args=(theirs, self.log_setup), name="topicwatch-reader"
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

    async def wait_ready(self) -> None:
        """Until a worker can take pages, or every worker has stopped."""
        await self.started.wait()

    @property
    def ready(self) -> bool:
        """Whether a worker has started and can take pages."""
        return any(w.ready and w.alive for w in self.workers)

    @property
    def alive(self) -> bool:
        return any(w.alive for w in self.workers)

    async def read(self, body: bytes, url: str, **options: Any) -> Reading:
        """Read one article page in a worker; raises :class:`ReadersStopped` if none can."""
        reading: Reading = await self._run("read", body, url, options)
        return reading

    async def discover(
        self, body: bytes, url: str, content_type: str | None, profile: SiteProfile
    ) -> Listing:
        """The links of one listing page, found in a worker; raises
        :class:`ReadersStopped` if none can, :class:`WorkerTaskError` if finding them
        failed."""
        listing: Listing = await self._run("discover", body, url, content_type, profile)
        return listing

    async def _run(self, task: str, *args: Any) -> Any:
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
            if future.done():  # the reader gave up on it (cancelled)
                continue
            try:
                data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # a page that cannot be sent fails alone
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
        stopped = ReadersStopped(f"reading worker {worker.process.pid} stopped")
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
                future.set_exception(ReadersStopped("every reading worker stopped"))

    async def close(self) -> None:
        """Stop the workers (a worker stops when its socket closes)."""
        for worker in self.workers:
            if worker.transport is not None:
                worker.transport.close()
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            await loop.run_in_executor(None, _stop, worker.process)


def _stop(process: BaseProcess) -> None:
    process.join(timeout=5)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)
