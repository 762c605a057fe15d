"""One delivery of pending alerts, as the daemon and the queue workers run it.

First the summaries and ended alerts of live and capped articles that are due are written
(:func:`storage.live.release`), then the pending alerts that are due are sent
(:func:`alerts.dispatcher.dispatch`, within ``alerts.dispatch_time_limit``). Neither step
raises: a database that is away is one ERROR line a try, anything else is logged with its
traceback, and the alerts wait for the next delivery. The outbox's claims let any number of
processes deliver at once; ``lock`` keeps one delivery at a time in this process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.orm import Session, sessionmaker

from alerts.dispatcher import dispatch
from alerts.smtp import SmtpSettings
from crawler.observability import log_fields
from scheduler.config import Config
from storage.db import DATABASE_ERRORS, describe_error
from storage.live import release

logger = logging.getLogger(__name__)
alerts_logger = logging.getLogger("topicwatch.alerts")
change_logger = logging.getLogger("topicwatch.change")


async def release_held(sessions: sessionmaker[Session]) -> None:
    """Write the summaries and ended alerts that are due (:mod:`storage.live`), one
    ``topicwatch.change`` line each; never raises."""
    try:
        released = await asyncio.to_thread(release, sessions)
    except DATABASE_ERRORS as exc:
        logger.error("Summarising held alerts failed: %s", describe_error(exc))
        return
    except Exception:
        logger.exception("Summarising held alerts failed")
        return
    for change in released:
        log_fields(
            change_logger,
            logging.INFO,
            None,
            kind=change.kind,
            topic=change.topic,
            url=change.url,
            folded=change.folded,
            alerts=change.alerts,
        )


async def deliver(
    sessions: sessionmaker[Session],
    smtp: SmtpSettings | None,
    config: Config,
    lock: asyncio.Lock,
    **fields: object,
) -> None:
    """Release the held alerts that are due, then send the pending alerts that are due; one
    ``topicwatch.alerts`` line (with ``fields``) when anything was sent, failed or deferred.
    Never raises. Without SMTP or channels the alerts stay pending (start-up said so)."""
    await release_held(sessions)
    if smtp is None and not config.channels:
        return
    alerts = config.alerts
    try:
        async with lock:
            report = await asyncio.to_thread(
                dispatch,
                sessions,
                smtp,
                max_attempts=alerts.max_attempts,
                backoff=alerts.retry_backoff,
                time_limit=alerts.dispatch_time_limit,
                max_digest_bytes=alerts.max_digest_bytes,
                channels=config.channels,
            )
    except DATABASE_ERRORS as exc:  # one line a try while the database is away
        logger.error("Sending alerts failed: the database failed: %s", describe_error(exc))
        logger.debug("The database error", exc_info=True)
        return
    except Exception:
        logger.exception("Sending alerts failed")
        return
    if report.sent_messages or report.sent_alerts or report.failed_alerts or report.deferred_alerts:
        log_fields(
            alerts_logger,
            logging.INFO,
            None,
            emails=report.sent_messages,
            sent=report.sent_alerts,
            failed=report.failed_alerts,
            deferred=report.deferred_alerts,
            **fields,
        )
    else:
        logger.debug("Alert dispatch: %s", report)


class Deliveries:
    """Deliveries in a task of their own, which no crawl waits for: a slow or dead SMTP server
    delays mail, never a crawl. At most one goes on at a time; asked for while one does,
    another follows it (unless ``stopping`` is set by then)."""

    def __init__(self, deliver: Callable[[], Awaitable[None]], stopping: asyncio.Event) -> None:
        self.deliver = deliver
        self.stopping = stopping
        self.task: asyncio.Task[None] | None = None
        self.again = False

    def request(self) -> None:
        if self.task is not None and not self.task.done():
            self.again = True
            return
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def finish(self) -> None:
        """Wait for the delivery under way, if any (bounded by ``dispatch_time_limit``)."""
        if self.task is not None:
            await self.task

    async def _run(self) -> None:
        again = True
        while again:
            self.again = False
            await self.deliver()
            again = self.again and not self.stopping.is_set()
