"""A reading worker process: the other end of :class:`crawler.readers.ReaderPool`'s sockets.

It imports what reading and discovering need and nothing of the crawl's own machinery
(Scrapy, asyncio, the database), so it is ready to take pages soon after it is started,
while the crawl is running. Messages both ways are a length (``HEADER``) and a pickle: from
the crawl ``(number, task, args)``, back ``(number, ok, result or reason)``; the first answer
has the number ``READY``.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import struct
from collections.abc import Callable
from multiprocessing.connection import Connection
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


def serve(connection: Connection, log_setup: tuple[str, int] | None) -> None:
    """Answer tasks until the crawl process closes the socket."""
    if log_setup is not None:
        from crawler.observability import configure_logging

        configure_logging(*log_setup)
    sock = socket.socket(fileno=os.dup(connection.fileno()))
    connection.close()
    stream = sock.makefile("rb")

    def send(answer: tuple[int, bool, Any]) -> None:
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an answer that cannot be sent fails alone
            data = pickle.dumps((answer[0], False, f"{type(exc).__name__}: {exc}"))
        sock.sendall(HEADER.pack(len(data)) + data)

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
            answer = (number, True, TASKS[task](*args))
        except Exception as exc:  # a task that fails must not stop the worker
            logger.exception("Task %s failed in a reading worker", task)
            answer = (number, False, f"{type(exc).__name__}: {exc}")
        send(answer)
