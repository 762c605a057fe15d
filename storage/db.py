"""Engines, sessions and the schema's version.

SQLite (the default) is opened in WAL mode with a busy timeout and foreign keys on, and every
transaction that may write starts with ``BEGIN IMMEDIATE``: Python's ``sqlite3`` would
otherwise begin a transaction only at the first write, and a reader that later writes can
then fail at once with "database is locked" instead of waiting its turn. PostgreSQL is
reached through psycopg 3.

Every write goes through :func:`write_transaction`: one transaction, retried when PostgreSQL
chose it as a deadlock's or a serialization conflict's victim, or when a concurrent writer
inserted the same unique key first.

A database that does not answer is reported, not waited on forever: a PostgreSQL connection
attempt gives up after ``CONNECT_TIMEOUT`` and a statement after ``STATEMENT_TIMEOUT`` (both
chosen far above what any batch of topicwatch's needs; a ``connect_timeout`` or
``statement_timeout`` given in the URL wins), and SQLite waits for a lock at most
``SQLITE_BUSY_TIMEOUT``. :func:`describe_error` says what went wrong in one line.

The schema is created and upgraded only by :func:`upgrade` (Alembic, migrations shipped in
this package); :func:`check_schema` refuses a database that is behind.

Errors::

    RuntimeError
    ├── DatabaseUnavailable   the database cannot be reached or opened
    └── SchemaOutdated        the database's schema is not the one this code needs
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from storage.credentials import mask_credentials
from storage.models import Base

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.dialects import postgresql, sqlite

# Alembic is imported by the functions that use it (migrations and the schema check): the
# processes of a crawl run use neither, and it is a good part of their start-up.

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
STATEMENT_TIMEOUT = 60.0
# Execution option: a transaction that only reads may start with a plain (deferred) BEGIN,
# so it never waits for a writer on SQLite.
READ_ONLY = "topicwatch_read_only"
UPGRADE_COMMAND = "topicwatch db upgrade"
# PostgreSQL's deadlock_detected and serialization_failure: the transaction may be retried.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
WRITE_ATTEMPTS = 4
# Keeps IN (...) lists under SQLite's and psycopg's parameter limits.
CHUNK = 500

T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached (server down, wrong address) or opened."""


class SchemaOutdated(RuntimeError):
    """The database's schema revision is not the one this code was written for."""


# What a database that is down, unreachable, frozen or full raises.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, PoolTimeout, DatabaseUnavailable)


def describe_error(error: BaseException) -> str:
    """A database error in one short line, without its SQL: the driver's own message."""
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split()) or type(original).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def safe_url(url: str | URL) -> str:
    """``url`` fit for logs and messages: any password is replaced by ``***``.

    Also a URL that does not parse is masked, and one whose password holds an unencoded
    ``@`` (which SQLAlchemy splits at the first one) is masked whole.
    """
    try:
        rendered = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        rendered = str(url)
    return mask_credentials(rendered)


def normalise_url(url: str | URL) -> URL:
    """The SQLAlchemy URL for ``url``; PostgreSQL URLs of any spelling use psycopg 3."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise ValueError(
            f"The database URL {safe_url(url)!r} is not a valid URL; expected e.g. "
            "'sqlite:///data/topicwatch.db' or 'postgresql+psycopg://user@host/dbname'."
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        if driver not in ("", "psycopg"):
            raise ValueError(
                f"The database URL {safe_url(url)!r} names the driver {driver!r}; topicwatch "
                "talks to PostgreSQL through psycopg 3 ('postgresql+psycopg://…')."
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ValueError(
        f"The database URL {safe_url(url)!r} is neither SQLite nor PostgreSQL; topicwatch "
        "supports 'sqlite:///path/to/file.db' and 'postgresql+psycopg://user@host/dbname'."
    )


def make_engine(url: str | URL, *, foreign_keys: bool = True) -> Engine:
    """An engine for ``url`` (SQLite or PostgreSQL), set up as topicwatch needs it.

    For a SQLite file the parent directory is created when missing. ``foreign_keys=False``
    is for schema migrations only: rebuilding a SQLite table must not cascade.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, connect_args=_postgres_timeouts(parsed))
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        directory = Path(database).expanduser().parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"Cannot create the directory {directory} for the SQLite database at "
                f"{safe_url(parsed)}: {exc.strerror or exc}"
            ) from exc
    engine = create_engine(
        parsed, pool_pre_ping=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT}
    )
    _configure_sqlite(engine, foreign_keys=foreign_keys)
    return engine


def _postgres_timeouts(url: URL) -> dict[str, Any]:
    """psycopg's connect timeout and the server's statement timeout, unless ``url`` sets them."""
    timeouts: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        timeouts["connect_timeout"] = int(CONNECT_TIMEOUT)
    options = url.query.get("options", "")
    options = " ".join(options) if isinstance(options, tuple) else options
    if "statement_timeout" not in options:
        statement = f"-c statement_timeout={int(STATEMENT_TIMEOUT * 1000)}"
        timeouts["options"] = f"{options} {statement}".strip()
    return timeouts


def _configure_sqlite(engine: Engine, *, foreign_keys: bool) -> None:
    # SQLAlchemy's recipe for SQLite transactions: sqlite3 emits no BEGIN of its own
    # (isolation_level None) and SQLAlchemy emits one when a transaction starts.
    pragmas = (
        f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}",
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def read_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reading only: on SQLite it never waits for a writer."""
    with factory() as session:
        session.connection(execution_options={READ_ONLY: True})
        try:
            yield session
        finally:
            session.rollback()


def write_transaction(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run ``work`` in one write transaction, retrying a lost race or deadlock."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with factory.begin() as session:
                return work(session)
        except IntegrityError:
            # A concurrent writer inserted the same key first; the retry sees its row.
            if attempt >= 2:
                raise
            logger.debug("Retrying a write that lost a race for a unique key")
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES:
                raise
            if attempt == WRITE_ATTEMPTS:
                raise
            logger.debug("Retrying a write after %s (attempt %d)", exc.orig, attempt)
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def upsert_for(dialect: str, model: type[Base]) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that understands ON CONFLICT, for a database of this kind. The dialect's
    module is imported here: a process on SQLite never loads PostgreSQL's (about 25 ms of
    a crawl process's start-up)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(model)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(model)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices short enough for an IN (...) list."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def aware_now(now: datetime | None = None) -> datetime:
    """``now``, or the current time when None; a time without a zone is refused, since every
    stored time is in UTC."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(
            f"The time {now.isoformat()} has no time zone; pass an aware datetime "
            "(e.g. datetime.now(UTC))."
        )
    return now


def _connect(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except DBAPIError as exc:
        raise DatabaseUnavailable(
            f"Cannot connect to the database at {safe_url(engine.url)}: {describe_error(exc)}"
        ) from exc


def connect_check(engine: Engine) -> None:
    """Raise :class:`DatabaseUnavailable` unless the database answers a query."""
    with _connect(engine) as connection:
        try:
            connection.exec_driver_sql("SELECT 1")
        except DBAPIError as exc:
            raise DatabaseUnavailable(
                f"The database at {safe_url(engine.url)} does not answer: {describe_error(exc)}"
            ) from exc


def alembic_config(url: str | URL | None = None) -> Config:
    """Alembic's configuration for topicwatch's migrations, without any ini file."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        rendered = normalise_url(url).render_as_string(hide_password=False)
        # ConfigParser interpolates '%'; URL-encoded passwords contain it.
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The schema revision this code needs."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"No migrations were found in {MIGRATIONS}.")
    return head


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Create or upgrade the schema of the database at ``url`` to ``revision``."""
    from alembic import command

    engine = make_engine(url, foreign_keys=False)
    try:
        with _connect(engine) as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            logger.info("Upgrading the database at %s to %s", safe_url(engine.url), revision)
            command.upgrade(config, revision)
            if engine.dialect.name == "sqlite":
                _check_foreign_keys(connection, engine)
    finally:
        engine.dispose()


def _check_foreign_keys(connection: Connection, engine: Engine) -> None:
    # Table rebuilds ran with foreign keys off; make sure they left none dangling.
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    connection.rollback()
    if problems:
        raise RuntimeError(
            f"After the upgrade, the database at {safe_url(engine.url)} has rows whose "
            f"foreign keys point nowhere: {problems[:10]}"
        )


def schema_status(engine: Engine) -> tuple[str | None, str]:
    """The database's schema revision (None when it has none) and the one this code needs."""
    from alembic.runtime.migration import MigrationContext

    with _connect(engine) as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        connection.rollback()
    return current, head_revision()


def check_exists(url: str | URL, *, upgrade_command: str = UPGRADE_COMMAND) -> None:
    """Raise :class:`DatabaseUnavailable` when ``url`` is a SQLite file that does not exist:
    a command that only reads says so, rather than create a file (and its directories) at
    a mistyped path. ``upgrade_command`` is the command that creates it."""
    parsed = normalise_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return
    path = Path(database).expanduser()
    if not path.exists():
        where = "" if path.parent.is_dir() else f" (nor does its directory {path.parent})"
        raise DatabaseUnavailable(
            f"The SQLite database {path} does not exist{where}; check [database] url, or "
            f'run "{upgrade_command}" to create it.'
        )


def check_schema(engine: Engine, *, upgrade_command: str = UPGRADE_COMMAND) -> None:
    """Raise :class:`SchemaOutdated` unless the database's schema is the one this code needs;
    the message names ``upgrade_command``, the command that upgrades it."""
    current, head = schema_status(engine)
    if current == head:
        return
    from alembic.script import ScriptDirectory

    known = ScriptDirectory.from_config(alembic_config())
    if current is not None and current not in {
        script.revision for script in known.walk_revisions()
    }:
        raise SchemaOutdated(
            f"The database at {safe_url(engine.url)} is at schema revision {current}, which "
            f"this topicwatch (schema {head}) does not know: it was upgraded by a newer "
            "release; run that release instead."
        )
    if current is None:
        raise SchemaOutdated(
            f"The database at {safe_url(engine.url)} is empty (it has no topicwatch schema "
            f'yet); run "{upgrade_command}" to create the schema.'
        )
    raise SchemaOutdated(
        f"The database at {safe_url(engine.url)} is at schema revision {current} but "
        f'this topicwatch needs {head}; run "{upgrade_command}" to upgrade it.'
    )


def check_writable(engine: Engine) -> None:
    """Raise :class:`DatabaseUnavailable` when this process cannot write the SQLite file or
    the directory SQLite keeps its journal in: said at start-up, not at the first write."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return
    path = Path(database).expanduser()
    where = "the file" if path.exists() and not os.access(path, os.W_OK) else None
    if where is None and not os.access(path.parent, os.W_OK | os.X_OK):
        where = f"its directory {path.parent} (SQLite writes its journal there)"
    if where is not None:
        raise DatabaseUnavailable(
            f"The SQLite database {path} is read-only for this user: make {where} writable "
            "by the user topicwatch runs as"
        )
