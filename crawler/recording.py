"""Recording a crawl run's outcomes in the database, a batch at a time.

A batch is one transaction: every change in it is written with its alert rows, or nothing of
the batch is. A batch that fails is written again one outcome at a time, so a bad outcome
costs only itself; an outcome that still cannot be written comes back as a
:class:`RecordFailure` with the reason.

Batches are recorded in the run's database thread, or, for a crawl that uses worker
processes, in a writer process of its own (:class:`crawler.pipelines.WriterProcess`, which
runs :data:`WRITER_TASKS` after :func:`open_writer`):
recording is a good part of a fast crawl's CPU, and in a thread of the crawl process it
holds the interpreter lock the crawl itself needs. Recording the same outcome twice records
it once: the second time the stored article already holds what it says.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from crawler.observability import init_sentry
from storage.changes import Outcome
from storage.db import make_engine, session_factory
from storage.recording import ChangeRecord, record_outcomes

logger = logging.getLogger(__name__)


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
            logger.exception("Could not record the outcome for %s", batch[0].url)
            return [RecordFailure(reason_of(exc))]
        logger.warning(
            "A batch of %d outcomes could not be recorded; recording them one by one",
            len(batch),
            exc_info=True,
        )
    results: list[Result] = []
    for outcome in batch:
        try:
            results.extend(
                record_outcomes(sessions, topic_id=topic_id, run_id=run_id, outcomes=[outcome])
            )
        except Exception as exc:
            logger.exception("Could not record the outcome for %s", outcome.url)
            results.append(RecordFailure(reason_of(exc)))
    return results


def reason_of(error: BaseException) -> str:
    """The error in one short line: a database error's own message, not its SQL."""
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split()) or type(original).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# -- the writer process -------------------------------------------------------------------------


@dataclass
class _Writer:
    engine: Engine | None = None
    sessions: sessionmaker[Session] | None = None


_writer = _Writer()  # this process's connection, when it is a writer process


def open_writer(database_url: str) -> None:
    """Start of a writer process: send errors to Sentry as the crawl does (a forked writer
    already does) and set up the connection to the run's database (made when the first
    batch comes)."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is None or not sentry_sdk.get_client().is_active():
        init_sentry("crawler")
    _writer.engine = make_engine(database_url)
    _writer.sessions = session_factory(_writer.engine)


def record_in_writer(topic_id: int, run_id: int | None, batch: Sequence[Outcome]) -> list[Result]:
    """:func:`record_batch` in a writer process (see :func:`open_writer`)."""
    if _writer.sessions is None:
        raise RuntimeError("This process is not a writer: open_writer() was not called")
    return record_batch(_writer.sessions, topic_id=topic_id, run_id=run_id, batch=batch)


def close_writer() -> None:
    """End of a writer process: close its database connections."""
    if _writer.engine is not None:
        _writer.engine.dispose()
    _writer.engine = _writer.sessions = None


# What a writer process does, by name (see crawler.reading_worker.serve).
WRITER_TASKS: dict[str, Callable[..., Any]] = {"record": record_in_writer, "close": close_writer}
