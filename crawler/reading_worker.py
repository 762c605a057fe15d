"""A worker process: the other end of the sockets of :class:`crawler.readers.WorkerPool`.

A worker forked from the crawl process has everything imported already. One started afresh
(where the crawl cannot fork) imports what its tasks need: for a reading worker, what
reading and discovering need and nothing of the crawl's own machinery (Scrapy, asyncio, the
database), so it is ready to take pages soon after it is started, while the crawl is
running. Messages both ways are a length (``HEADER``) and a pickle: from the crawl
``(number, task, args)``, back ``(number, ok, result or reason)``; the first answer has the
number ``READY``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from multiprocessing import current_process
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from crawler import collector
from crawler.discover import discover
from crawler.reading import Reading, read_page

# Under the pool's name: the workers' lines go with the pool's own.
logger = logging.getLogger("crawler.readers")

HEADER = struct.Struct("!Q")  # the length of the pickled message that follows
READY = -1  # the job number of a worker's first message: its imports are done


def _read(body: bytes, url: str, options: dict[str, Any]) -> Reading:
    try:
        return read_page(body, url, **options)
    except Exception as exc:  # a page that breaks the reader is an error of that page
        logger.exception("Reading %s failed", url)
        return Reading(error=f"the page could not be read: {type(exc).__name__}: {exc}")


TASKS: dict[str, Callable[..., Any]] = {"read": _read, "discover": discover}


def serve(
    connection: Connection,
    log_setup: tuple[str, int] | None,
    tasks: Mapping[str, Callable[..., Any]] | None = None,
    initializer: tuple[Callable[..., Any], tuple[Any, ...]] | None = None,
    *,
    inherited: Sequence[int] | None = None,
) -> None:
    """Answer ``tasks`` (by default the reading tasks, ``TASKS``) until the crawl process
    closes the socket. A forked worker gets the file descriptors of the crawl's ends of the
    sockets (``inherited``), and closes them; one started afresh sets up logging as the crawl
    did (``log_setup``) and the garbage collector as a crawl process does."""
    with contextlib.suppress(OSError):  # the name ps and top show (Linux)
        Path("/proc/self/comm").write_text(current_process().name[:15], encoding="utf-8")
    # Ctrl-C reaches the whole process group: the crawl process decides how its run ends,
    # and closes this worker's socket when it is over.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if inherited is not None:
        for descriptor in inherited:
            with contextlib.suppress(OSError):
                os.close(descriptor)
    elif log_setup is not None:
        from crawler.observability import configure_logging

        configure_logging(*log_setup)
    sock = socket.socket(fileno=os.dup(connection.fileno()))
    connection.close()
    stream = sock.makefile("rb")
    table = TASKS if tasks is None else tasks
    try:
        if initializer is not None:
            try:
                initializer[0](*initializer[1])
            except Exception:  # the crawl sees the socket close, and does the tasks itself
                logger.exception("A worker process could not be set up")
                return
        _answer_tasks(sock, stream, table, settle=inherited is None)
    finally:
        # Errors logged here go to Sentry when the crawl sends them there (a forked worker
        # shares its set-up): what is still queued goes out before the worker ends.
        sentry_sdk = sys.modules.get("sentry_sdk")
        if sentry_sdk is not None and sentry_sdk.get_client().is_active():
            sentry_sdk.flush(timeout=5)


def _answer_tasks(
    sock: socket.socket, stream: Any, table: Mapping[str, Callable[..., Any]], *, settle: bool
) -> None:
    def send(answer: tuple[int, bool, Any]) -> None:
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an answer that cannot be sent fails alone
            data = pickle.dumps((answer[0], False, f"{type(exc).__name__}: {exc}"))
        sock.sendall(HEADER.pack(len(data)) + data)

    if settle:  # a forked worker has the crawl's settings, and its frozen objects
        collector.settle()
    send((READY, True, None))
    while True:
        header = stream.read(HEADER.size)
        if len(header) < HEADER.size:
            return  # the crawl closed the socket: the run is over
        message = stream.read(HEADER.unpack(header)[0])
        # From the crawl process that started this one, over a socket pair only the two hold.
        number, task, args = pickle.loads(message)  # noqa: S301
        try:
            answer = (number, True, table[task](*args))
        except Exception as exc:  # a task that fails must not stop the worker
            logger.exception("Task %s failed in a worker process", task)
            answer = (number, False, f"{type(exc).__name__}: {exc}")
        send(answer)
