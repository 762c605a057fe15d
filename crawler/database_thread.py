"""The one thread that runs a crawl run's database calls, the most urgent first.

A listing page cannot send its article requests until the database says which of its links
the topic knows, and the next listing page waits for that too: those calls are ``urgent``.
Batches of outcomes to record are not: nothing waits for them but the end of the run. With
one first-come queue a listing page would wait behind every batch queued before it, and the
crawl would run out of requests to send while the database catches up.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

URGENT = 0
LATER = 1
_STOP = 2


class DatabaseThread:
    """A single worker thread with two priorities; calls of one priority run in the order
    they were submitted."""

    def __init__(self, name: str = "topicwatch-db") -> None:
        self._queue: queue.PriorityQueue[
            tuple[int, int, Callable[[], Any] | None, Future[Any] | None]
        ] = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], Any], *, urgent: bool = False) -> Future[Any]:
        """Queue ``call``; its future holds what it returns or raises."""
        if self._closed:
            raise RuntimeError("The database thread of this crawl run has been shut down")
        future: Future[Any] = Future()
        self._queue.put((URGENT if urgent else LATER, next(self._order), call, future))
        return future

    def shutdown(self) -> None:
        """Run what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put((_STOP, next(self._order), None, None))
        self._thread.join()

    def _run(self) -> None:
        while True:
            _priority, _order, call, future = self._queue.get()
            if call is None or future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as exc:  # handed to whoever awaits the future
                future.set_exception(exc)
            else:
                future.set_result(result)
