"""Recording a crawl run's outcomes in the database, a batch at a time.

Outcomes are written in batches so the crawl goes on fetching and reading pages while the
database works (:class:`Recorder`): a batch goes out when it holds ``batch_size`` outcomes or
its oldest one has waited ``batch_delay`` seconds, and whatever is left goes out when the run
drains it at its end; batches are recorded in the order they go out.

A batch is one transaction: every change in it is written with its alert rows, or nothing of
the batch is. A batch that fails is written again one outcome at a time (:func:`record_batch`),
so a bad outcome costs only itself; an outcome that still cannot be written comes back as a
:class:`RecordFailure` with the reason.

A crawl process killed in the middle of a run loses at most the outcomes not yet written; the
articles they concern are read again, and recorded, by the next run.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from storage.changes import Outcome
from storage.db import DATABASE_ERRORS, describe_error
from storage.recording import ChangeRecord, record_outcomes

logger = logging.getLogger(__name__)

WRITE_BATCH = 100
WRITE_DELAY = 0.5
# Batches handed to the database and not yet written; past this, new outcomes wait for them.
MAX_BATCHES_IN_FLIGHT = 4


@dataclass(frozen=True)
class RecordFailure:
    """An outcome that could not be recorded, and why (one line, without SQL)."""

    reason: str


Result = ChangeRecord | None | RecordFailure


def record_batch(
    sessions: sessionmaker[Session],
    *,
    topic_id: int,
    run_id: int | None,
    batch: Sequence[Outcome],
) -> list[Result]:
    """Record ``batch``; per outcome its change, None (no change) or why it failed."""
    try:
        return list(record_outcomes(sessions, topic_id=topic_id, run_id=run_id, outcomes=batch))
    except Exception as exc:
        if len(batch) == 1:
            _log_failure(batch[0].url, exc)
            return [RecordFailure(describe_error(exc))]
        logger.warning(
            "A batch of %d outcomes could not be recorded; recording them one by one: %s",
            len(batch),
            describe_error(exc),
        )
        logger.debug("The batch's error", exc_info=True)
    results: list[Result] = []
    for outcome in batch:
        try:
            results.extend(
                record_outcomes(sessions, topic_id=topic_id, run_id=run_id, outcomes=[outcome])
            )
        except Exception as exc:
            _log_failure(outcome.url, exc)
            results.append(RecordFailure(describe_error(exc)))
    return results


def _log_failure(url: str, error: Exception) -> None:
    if not isinstance(error, DATABASE_ERRORS):
        logger.error("Could not record the outcome for %s", url, exc_info=error)
        return
    # One line each: when the database is down, every outcome of the run fails alike.
    logger.error("Could not record the outcome for %s: %s", url, describe_error(error))
    logger.debug("The error recording %s", url, exc_info=error)


class Recorder:
    """Gathers outcomes into batches, hands each batch to ``write`` (which records it and
    gives one :data:`Result` per outcome) and each outcome with its result to ``noted``."""

    def __init__(
        self,
        write: Callable[[list[Outcome]], Awaitable[list[Result]]],
        noted: Callable[[Outcome, Result], None],
        *,
        batch_size: int = WRITE_BATCH,
        batch_delay: float = WRITE_DELAY,
    ) -> None:
        self.write = write
        self.noted = noted
        self.batch_size = max(1, batch_size)
        self.batch_delay = batch_delay
        self.pending: list[Outcome] = []
        self.in_flight: deque[asyncio.Task[None]] = deque()
        self.timer: asyncio.TimerHandle | None = None

    async def add(self, outcome: Outcome) -> None:
        """Record ``outcome`` with the next batch; waits only while too many batches are on
        their way to the database."""
        if self.queue(outcome):
            await self.room()

    def queue(self, outcome: Outcome) -> bool:
        """Record ``outcome`` with the next batch, without waiting; True when too many
        batches are on their way to the database, and the caller should wait for
        :meth:`room` before it hands over more."""
        self.pending.append(outcome)
        if len(self.pending) >= self.batch_size:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.batch_delay, self.flush)
        return len(self.in_flight) > MAX_BATCHES_IN_FLIGHT

    async def room(self) -> None:
        """Wait while too many batches are on their way to the database."""
        while len(self.in_flight) > MAX_BATCHES_IN_FLIGHT:
            await asyncio.wait([self.in_flight[0]])

    def flush(self) -> None:
        """Send the pending outcomes off as one batch."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self.in_flight.append(task)
        task.add_done_callback(self.in_flight.remove)

    async def drain(self) -> None:
        """Send what is pending and wait until every batch is written."""
        self.flush()
        while self.in_flight:
            await asyncio.wait([self.in_flight[0]])

    async def _write(self, batch: list[Outcome]) -> None:
        results = await self.write(batch)
        for outcome, result in zip(batch, results, strict=True):
            self.noted(outcome, result)
