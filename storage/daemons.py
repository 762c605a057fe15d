"""One daemon per database: the daemon lock, and the row that names the daemon holding it.

Two daemons on one database would crawl every topic twice. A daemon therefore takes the
database's daemon lock before it schedules anything, and holds it until it exits:

- on PostgreSQL, a session advisory lock (:data:`ADVISORY_KEY`) held by a connection of its
  own; the server drops it when that connection ends, however the daemon ended;
- on SQLite, an exclusive ``flock`` on the file ``<database>.daemon.lock`` beside the
  database file; the kernel drops it when the process ends.

The holder writes the ``daemon`` row (host, pid, since, and each topic's next run as its
scheduler has it), so that a second daemon refused at start, and ``topicwatch status``, can
name it. The row alone proves nothing (a daemon killed with SIGKILL leaves it); a daemon
runs when the lock is held, which :func:`daemon_holds_lock` asks without taking it.

:meth:`DaemonLock.try_acquire` answers at once; a daemon that should wait for its turn
instead (a standby, :mod:`scheduler.leader`) calls it again until it returns True.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from storage.db import aware_now, read_session, write_transaction
from storage.models import DaemonRow

# The key of the PostgreSQL advisory lock a daemon holds on its database (advisory locks
# are per database): the first eight bytes of sha256(b"topicwatch daemon"), as a bigint.
ADVISORY_KEY = 0x47DC_B9B4_5198_EAE9
LOCK_SUFFIX = ".daemon.lock"


@dataclass(frozen=True)
class DaemonRecord:
    """The daemon named in the ``daemon`` row."""

    host: str
    pid: int
    started_at: datetime
    next_runs: dict[str, datetime]
    updated_at: datetime

    def describe(self) -> str:
        """``pid 4242 on host web1, since 2026-11-26T10:15:02Z``."""
        since = self.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"pid {self.pid} on host {self.host}, since {since}"


def lock_file(engine: Engine) -> Path | None:
    """Where the daemon lock of a SQLite database is; None for PostgreSQL or in-memory."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return path.with_name(path.name + LOCK_SUFFIX)


class DaemonLock:
    """The daemon lock of the database of ``engine``, taken by :meth:`try_acquire` and held
    until :meth:`release` (or the process ends)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if no other daemon holds it; whether this one holds it now."""
        if self.held:
            return True
        path = lock_file(self.engine)
        if path is not None:
            handle = path.open("ab")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._file = handle
            return True
        if self.engine.dialect.name != "postgresql":
            return True  # an in-memory database is this process's alone
        connection = self.engine.connect()
        try:
            got = connection.exec_driver_sql(
                f"SELECT pg_try_advisory_lock({ADVISORY_KEY})"
            ).scalar_one()
            connection.commit()
        except BaseException:
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        self._connection = connection
        return True

    @property
    def connection(self) -> Connection | None:
        """The PostgreSQL connection that holds the lock, while it is held."""
        return self._connection

    @property
    def held(self) -> bool:
        return self._file is not None or self._connection is not None

    def release(self) -> None:
        """Let the lock go (closing the connection or file that holds it)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.exec_driver_sql(f"SELECT pg_advisory_unlock({ADVISORY_KEY})")
                self._connection.commit()
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


def daemon_holds_lock(engine: Engine) -> bool:
    """Whether a daemon holds the database's daemon lock now; asked without taking it (on
    SQLite, a shared lock taken and let go at once; no lock file means no daemon)."""
    path = lock_file(engine)
    if path is not None:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return False
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as connection:
        held = connection.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND objsubid = 1 AND (classid::bigint << 32) | objid::bigint = :key"
            ),
            {"key": ADVISORY_KEY},
        ).scalar_one()
        connection.rollback()
    return bool(held)


def record_daemon(
    session_factory: sessionmaker[Session],
    *,
    host: str,
    pid: int | None = None,
    started_at: datetime | None = None,
) -> None:
    """Write the ``daemon`` row for this daemon (which holds the lock)."""
    moment = aware_now(started_at)

    def work(session: Session) -> None:
        session.execute(delete(DaemonRow))
        session.add(
            DaemonRow(
                id=1,
                host=host,
                pid=os.getpid() if pid is None else pid,
                started_at=moment,
                next_runs={},
                updated_at=moment,
            )
        )

    write_transaction(session_factory, work)


def record_next_runs(
    session_factory: sessionmaker[Session], next_runs: dict[str, datetime | None]
) -> None:
    """Keep each topic's next run (as the daemon's scheduler has it) in the ``daemon`` row."""
    stamps = {
        name: moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for name, moment in next_runs.items()
        if moment is not None
    }

    def work(session: Session) -> None:
        row = session.get(DaemonRow, 1)
        if row is not None:
            row.next_runs = stamps
            row.updated_at = aware_now()

    write_transaction(session_factory, work)


def forget_daemon(session_factory: sessionmaker[Session], pid: int | None = None) -> None:
    """Remove the ``daemon`` row of this daemon, as it stops."""
    mine = os.getpid() if pid is None else pid
    write_transaction(
        session_factory,
        lambda session: session.execute(delete(DaemonRow).where(DaemonRow.pid == mine)),
    )


def recorded_daemon(session_factory: sessionmaker[Session]) -> DaemonRecord | None:
    """The daemon the ``daemon`` row names, if any (whether or not it still runs)."""
    with read_session(session_factory) as session:
        row = session.scalars(select(DaemonRow)).first()
        if row is None:
            return None
        return DaemonRecord(
            host=row.host,
            pid=row.pid,
            started_at=row.started_at,
            next_runs={
                name: datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                for name, stamp in (row.next_runs or {}).items()
            },
            updated_at=row.updated_at,
        )


def running_daemon(engine: Engine, session_factory: sessionmaker[Session]) -> DaemonRecord | None:
    """The daemon serving the database now: the one the row names, when the lock is held."""
    if not daemon_holds_lock(engine):
        return None
    return recorded_daemon(session_factory)
