"""Copy a topicwatch SQLite database into an empty PostgreSQL database.

Run it with the Python that topicwatch is installed in, while the daemon is stopped::

    /opt/topicwatch/.venv/bin/python deploy/sqlite-to-postgres.py \\
        --from /var/lib/topicwatch/topicwatch.db \\
        --to postgresql+psycopg://topicwatch@localhost:5432/topicwatch

``--from`` takes a SQLite URL or a file path. ``--to`` defaults to the environment variable
``TOPICWATCH_DATABASE_URL``; give the password in ``PGPASSWORD`` rather than in the URL.

What it does, in order:

1. checks that the SQLite database is at the schema revision of this topicwatch release
   (otherwise run ``topicwatch db upgrade`` on it first);
2. creates the schema in PostgreSQL with the migrations ``topicwatch db upgrade`` runs;
3. refuses to go on when any topicwatch table in PostgreSQL already holds rows;
4. copies every table but ``daemon`` (which daemon serves the SQLite database: none of the
   copy's business) in foreign-key order (topics and articles before the rows that point
   at them), keeping every id, reading SQLite in one read transaction (a consistent
   snapshot) and writing PostgreSQL in one transaction: on any error nothing is kept; the
   installation's token, which creating the schema made anew, is replaced by the SQLite
   database's, so the installation keeps its identity (and its digests their Message-IDs);
5. moves each table's id sequence past the highest copied id, so new rows get fresh ids;
6. compares the row count of every table before it commits.

Rows written to SQLite after the copy started are not copied: stop the daemon first.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    MetaData,
    Table,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url

from storage.db import (
    READ_ONLY,
    DatabaseUnavailable,
    SchemaOutdated,
    check_schema,
    make_engine,
    normalise_url,
    safe_url,
    upgrade,
)
from storage.models import Base, DaemonRow, Installation

PROG = "sqlite-to-postgres"
TARGET_ENV = "TOPICWATCH_DATABASE_URL"
ALEMBIC_TABLE = "alembic_version"
BATCH_SIZE = 1000
# Tables the migrations fill: the copy replaces their rows rather than adding to them.
FILLED_BY_MIGRATIONS = frozenset({Installation.__tablename__})
# Tables of what runs now, not data: the daemon that serves the SQLite database does not
# serve the copy.
NOT_COPIED = frozenset({DaemonRow.__tablename__})


class MigrationError(RuntimeError):
    """The copy cannot be made; the message says why and what to do."""


def sqlite_url(value: str) -> str:
    """A SQLite URL for ``value``, a SQLite URL or a path to a database file."""
    if "://" in value:
        url = normalise_url(value)
        if url.get_backend_name() != "sqlite":
            raise MigrationError(f"--from must be a SQLite database, got {safe_url(url)}")
        return url.render_as_string(hide_password=False)
    return f"sqlite:///{Path(value).expanduser().absolute()}"


def postgres_url(value: str) -> str:
    url = normalise_url(value)
    if url.get_backend_name() != "postgresql":
        raise MigrationError(f"--to must be a PostgreSQL database, got {safe_url(url)}")
    return url.render_as_string(hide_password=False)


def _target_table(table: Table, metadata: MetaData) -> Table:
    """``table`` for inserting: a NULL in a nullable JSON column stays SQL NULL."""
    copy = table.to_metadata(metadata)
    for column in copy.columns:
        if isinstance(column.type, JSON) and column.nullable:
            column.type = JSON(none_as_null=True)
    return copy


def _count(connection: Connection, table: Table) -> int:
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def _check_source_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        present = set(inspect(connection).get_table_names())
        connection.rollback()
    unknown = present - set(Base.metadata.tables) - {ALEMBIC_TABLE}
    if unknown:
        raise MigrationError(
            f"The SQLite database at {safe_url(engine.url)} has tables this topicwatch does "
            f"not know ({', '.join(sorted(unknown))}); they would not be copied. Use the "
            "topicwatch release that created them."
        )


def _check_target_empty(connection: Connection) -> None:
    filled = [
        table.name
        for table in Base.metadata.sorted_tables
        if table.name not in FILLED_BY_MIGRATIONS | NOT_COPIED and _count(connection, table)
    ]
    if filled:
        raise MigrationError(
            f"The PostgreSQL database at {safe_url(connection.engine.url)} already holds "
            f"topicwatch data (tables {', '.join(filled)}); copy into a new, empty database."
        )


def _reset_sequence(connection: Connection, table: Table) -> None:
    for column in table.primary_key.columns:
        if column.autoincrement is False or column.type.python_type is not int:
            continue
        highest = select(func.max(column)).scalar_subquery()
        connection.execute(
            select(
                func.setval(
                    func.pg_get_serial_sequence(table.name, column.name),
                    func.coalesce(highest, 1),
                    highest.is_not(None),
                )
            )
        )


def copy_database(
    source: str,
    target: str,
    *,
    batch_size: int = BATCH_SIZE,
    report: Callable[[str], None] = print,
) -> dict[str, int]:
    """Copy the SQLite database ``source`` into the PostgreSQL database ``target``.

    Returns the number of rows copied per table. Raises :class:`MigrationError`,
    :class:`~storage.db.DatabaseUnavailable` or :class:`~storage.db.SchemaOutdated`.
    """
    source_path = make_url(source).database
    if not source_path or not Path(source_path).is_file():
        raise MigrationError(f"No SQLite database file at {source_path or source!r}.")
    source_engine = make_engine(source)
    try:
        _check_source_tables(source_engine)
        check_schema(source_engine)
        report(f"Creating the schema in {safe_url(target)}")
        upgrade(target)
        target_engine = make_engine(target)
        try:
            return _copy(source_engine, target_engine, batch_size, report)
        finally:
            target_engine.dispose()
    finally:
        source_engine.dispose()


def _copy(
    source_engine: Engine,
    target_engine: Engine,
    batch_size: int,
    report: Callable[[str], None],
) -> dict[str, int]:
    copied: dict[str, int] = {}
    insertable = MetaData()
    with source_engine.connect() as reader, target_engine.begin() as writer:
        reader.execution_options(**{READ_ONLY: True})
        with reader.begin():
            _check_target_empty(writer)
            for table in Base.metadata.sorted_tables:
                if table.name in NOT_COPIED:
                    continue
                target_table = _target_table(table, insertable)
                if table.name in FILLED_BY_MIGRATIONS:
                    writer.execute(delete(target_table))
                query = select(table).order_by(*table.primary_key.columns)
                result = reader.execute(query.execution_options(yield_per=batch_size))
                rows = 0
                # A column that refers to a row of its own table (a change's summary) may name
                # a row of a later batch: it is filled in once every row is there.
                self_refs = sorted(
                    fk.parent.name for fk in table.foreign_keys if fk.column.table is table
                )
                later: list[dict[str, object]] = []
                for batch in result.partitions():
                    values = [dict(row._mapping) for row in batch]
                    for value in values:
                        if any(value[name] is not None for name in self_refs):
                            later.append(
                                {"pk_id": value["id"], **{f"v_{n}": value[n] for n in self_refs}}
                            )
                            value.update(dict.fromkeys(self_refs, None))
                    writer.execute(insert(target_table), values)
                    rows += len(batch)
                if later:
                    writer.execute(
                        update(target_table)
                        .where(target_table.c.id == bindparam("pk_id"))
                        .values({name: bindparam(f"v_{name}") for name in self_refs}),
                        later,
                    )
                _reset_sequence(writer, table)
                expected = _count(reader, table)
                landed = _count(writer, table)
                if not rows == expected == landed:
                    raise MigrationError(
                        f"Table {table.name}: SQLite holds {expected} rows, {rows} were read "
                        f"and PostgreSQL holds {landed}; nothing was kept."
                    )
                copied[table.name] = rows
                report(f"{table.name}: {rows} rows")
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Copy a topicwatch SQLite database into an empty PostgreSQL database.",
    )
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SQLITE",
        help="the SQLite database: a sqlite:/// URL or a file path",
    )
    parser.add_argument(
        "--to",
        dest="target",
        default=os.environ.get(TARGET_ENV),
        metavar="URL",
        help=f"the PostgreSQL database URL (default: ${TARGET_ENV})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        metavar="N",
        help=f"rows per insert (default {BATCH_SIZE})",
    )
    args = parser.parse_args(argv)
    if not args.target:
        parser.error(f"give the PostgreSQL database with --to or ${TARGET_ENV}")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    try:
        source = sqlite_url(args.source)
        target = postgres_url(args.target)
        copied = copy_database(source, target, batch_size=args.batch_size)
    except (MigrationError, DatabaseUnavailable, SchemaOutdated, ValueError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(
        f"Copied {sum(copied.values())} rows in {len(copied)} tables from {safe_url(source)} "
        f"to {safe_url(target)}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
