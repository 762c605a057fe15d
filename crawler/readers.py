"""Reading pages in worker processes, fed straight from the crawl's event loop.

Each worker is a process of its own joined to the crawl process by a socket pair: the event
loop writes a page to it without blocking (asyncio buffers what the socket does not take at
once) and reads its answers as they come, so handing a page over costs the crawl process a
pickle and a write, with no threads of its own (a pool with threads would take the
interpreter lock from the crawl's event loop for every page). A worker gets at most
``IN_FLIGHT`` pages at a time; the others wait in the crawl process for the least busy one.

A worker that stops (killed, crashed) fails the pages it held with :class:`ReadersStopped`;
the crawl then reads them, and the rest of the run, in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import socket
import struct
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from crawler import collector
from crawler.reading import Reading, read_page

logger = logging.getLogger(__name__)

IN_FLIGHT = 2
_HEADER = struct.Struct("!Q")  # the length of the pickled message that follows
_READY = -1  # the job number of a worker's first message: its imports are done


class ReadersStopped(RuntimeError):
    """A reading worker stopped before it answered."""


@dataclass
class _Worker:
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    jobs: dict[int, asyncio.Future[Reading]] = field(default_factory=dict)
    ready: bool = False
    alive: bool = True
    task: asyncio.Task[None] | None = None


class ReaderPool:
    """``size`` reading workers; :meth:`read` is :func:`crawler.reading.read_page` in one
    of them. Start it with :meth:`start` in the running event loop."""

    def __init__(self, size: int, log_setup: tuple[str, int] | None = None) -> None:
        self.size = size
        self.log_setup = log_setup
        self.workers: list[_Worker] = []
        self.waiting: deque[tuple[tuple[Any, ...], asyncio.Future[Reading]]] = deque()
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
        for _ in range(self.size):
            ours, theirs = context.Pipe(duplex=True)  # a Unix socket pair
            process = context.Process(
                target=_serve, args=(theirs, self.log_setup), name="topicwatch-reader"
            )
            process.daemon = True
            process.start()
            theirs.close()
            sock = socket.socket(fileno=os.dup(ours.fileno()))
            ours.close()
            reader, writer = await asyncio.open_connection(sock=sock)
            worker = _Worker(process, reader, writer)
            worker.task = asyncio.get_running_loop().create_task(self._receive(worker))
            self.workers.append(worker)

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
        """Read one page in a worker; raises :class:`ReadersStopped` if none can."""
        future: asyncio.Future[Reading] = asyncio.get_running_loop().create_future()
        self.waiting.append(((next(self.numbers), body, url, options), future))
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
            worker.writer.write(_HEADER.pack(len(data)) + data)

    async def _receive(self, worker: _Worker) -> None:
        try:
            while True:
                header = await worker.reader.readexactly(_HEADER.size)
                message = await worker.reader.readexactly(_HEADER.unpack(header)[0])
                # Our own worker, over a socket pair no other process holds.
                number, reading = pickle.loads(message)  # noqa: S301
                if number == _READY:
                    worker.ready = True
                    self.started.set()
                else:
                    future = worker.jobs.pop(number, None)
                    if future is not None and not future.done():
                        future.set_result(reading)
                self._dispatch()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            self._lost(worker)
            raise
        self._lost(worker)

    def _lost(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        worker.alive = False
        stopped = ReadersStopped(f"reading worker {worker.process.pid} stopped")
        for future in worker.jobs.values():
            if not future.done():
                future.set_exception(stopped)
        worker.jobs.clear()
        worker.writer.close()
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
            worker.writer.close()
        for worker in self.workers:
            if worker.task is not None:
                worker.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.task
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            await loop.run_in_executor(None, _stop, worker.process)


def _stop(process: BaseProcess) -> None:
    process.join(timeout=5)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)


def _serve(connection: Connection, log_setup: tuple[str, int] | None) -> None:
    """A reading worker: answer pages until the crawl process closes the socket."""
    from crawler.observability import configure_logging

    if log_setup is not None:
        configure_logging(*log_setup)
    sock = socket.socket(fileno=os.dup(connection.fileno()))
    connection.close()
    stream = sock.makefile("rb")

    def send(number: int, reading: Reading | None) -> None:
        data = pickle.dumps((number, reading), protocol=pickle.HIGHEST_PROTOCOL)
        sock.sendall(_HEADER.pack(len(data)) + data)

    collector.settle()
    send(_READY, None)
    while True:
        header = stream.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return  # the crawl closed the socket: the run is over
        message = stream.read(_HEADER.unpack(header)[0])
        # From the crawl process that started this one, over a socket pair only the two hold.
        number, body, url, options = pickle.loads(message)  # noqa: S301
        try:
            reading = read_page(body, url, **options)
        except Exception as exc:  # a page that breaks the reader must not stop the worker
            logger.exception("Reading %s failed", url)
            reading = Reading(error=f"the page could not be read: {type(exc).__name__}: {exc}")
        send(number, reading)
