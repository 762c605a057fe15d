"""One active scheduler per database, others standing by (``[executor] kind = "queue"``).

Several ``topicwatch run`` on one database (on several machines, for a scheduler that
survives one) elect a leader with the database's daemon lock
(:class:`storage.daemons.DaemonLock`: a PostgreSQL advisory lock held by a connection of its
own). The first to take it schedules; every other one is a standby that asks for the lock
again every :data:`STANDBY_POLL` seconds and takes over when it is free.

The server lets the lock go when the leader's connection ends. When the leader's process
dies its machine closes the connection at once; when the whole machine or its network goes,
the server finds the connection dead by TCP keepalive (:data:`KEEPALIVE`, about 25 s), so a
standby takes over within about 30 s either way.

A leader that loses its lock connection (a network cut, a restarted database) stops: it can
no longer know that it is the only one scheduling, and a standby may already have taken
over. It exits 1, and its service manager starts it again as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from storage.daemons import DaemonLock
from storage.db import DATABASE_ERRORS, describe_error

logger = logging.getLogger(__name__)

# Seconds between a standby's attempts to take the lock, and between a leader's checks that
# its lock connection still lives.
STANDBY_POLL = 2.0
CHECK_EVERY = 5.0
# Server-side TCP keepalive of the lock's connection: idle seconds, interval, probes.
KEEPALIVE = (10, 5, 3)


class LeadershipLost(RuntimeError):
    """The connection that held the leader lock is gone."""


async def wait_for_leadership(
    lock: DaemonLock,
    stopping: asyncio.Event,
    *,
    holder: Callable[[], str],
    poll: float = STANDBY_POLL,
) -> bool:
    """Take ``lock``, waiting as a standby while another scheduler holds it; False when
    ``stopping`` is set first. ``holder()`` names the leader for the log."""
    waited = False
    while not stopping.is_set():
        try:
            if await asyncio.to_thread(lock.try_acquire):
                if waited:
                    logger.warning("Leader lock taken: this scheduler is the leader now")
                await asyncio.to_thread(keep_alive, lock)
                return True
        except DATABASE_ERRORS as exc:
            logger.error("Standby: cannot ask for the leader lock: %s", describe_error(exc))
        if not waited:
            waited = True
            try:
                named = await asyncio.to_thread(holder)
            except DATABASE_ERRORS:
                named = "another scheduler"
            logger.info("Standby: the leader is %s; this scheduler takes over when it stops", named)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), poll)
    return False


def keep_alive(lock: DaemonLock) -> None:
    """Ask the server to probe the lock's connection, so that a leader whose machine died
    loses the lock within about half a minute."""
    connection = lock.connection
    if connection is None:
        return
    idle, interval, count = KEEPALIVE
    with contextlib.suppress(*DATABASE_ERRORS):
        connection.exec_driver_sql(
            f"SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {interval}; "
            f"SET tcp_keepalives_count = {count}"
        )
        connection.commit()


def check_leadership(lock: DaemonLock) -> None:
    """Raise :class:`LeadershipLost` when the connection holding the lock is gone."""
    connection = lock.connection
    if connection is None:
        return
    try:
        connection.exec_driver_sql("SELECT 1").scalar_one()
        connection.commit()
    except DATABASE_ERRORS as exc:
        raise LeadershipLost(
            f"the connection that held the leader lock failed ({describe_error(exc)}); another "
            "scheduler may have taken over"
        ) from None
