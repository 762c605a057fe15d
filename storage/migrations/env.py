"""Alembic's environment for topicwatch.

:func:`storage.db.upgrade` hands in an open connection (``config.attributes["connection"]``).
The ``alembic`` command line works too: ``alembic -c storage/alembic.ini -x
url=sqlite:///data/topicwatch.db upgrade head``.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from storage.db import make_engine
from storage.jobs import is_topicwatch_object
from storage.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations spell the column type plainly, so they never import the models.
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: Alembic rebuilds the table instead.
        render_as_batch=sqlite,
        # With SQLAlchemy emitting BEGIN itself, SQLite's DDL is transactional too.
        transactional_ddl=True,
        compare_type=True,
        render_item=render_item,
        include_name=is_topicwatch_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("Give the database URL: alembic -x url=sqlite:///path/to.db …")
    engine = make_engine(url, foreign_keys=False)
    try:
        with engine.connect() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("topicwatch migrations run against a live database only.")
run_online()
