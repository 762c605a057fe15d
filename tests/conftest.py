"""Shared fixtures: a fresh database on SQLite and on PostgreSQL for every test that asks.

``db_url`` runs a test twice, against a SQLite file and against a PostgreSQL database made
for it (and dropped after). PostgreSQL must be running on 127.0.0.1:5432; if it is not,
those cases fail, unless ``TOPICWATCH_SKIP_POSTGRES=1`` says to skip them.
``engine`` and ``session_factory`` give the same database with the schema in place.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from storage.db import make_engine, upgrade
from storage.db import session_factory as make_session_factory

POSTGRES_SERVER = os.environ.get(
    "TOPICWATCH_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432"
)


def _postgres_admin() -> Engine:
    return create_engine(
        f"{POSTGRES_SERVER}/postgres",
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped (with FORCE) after the test."""
    name = f"topicwatch_test_{uuid.uuid4().hex[:12]}"
    admin = _postgres_admin()
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL at {POSTGRES_SERVER} is not reachable: {exc.orig}"
        if os.environ.get("TOPICWATCH_SKIP_POSTGRES") == "1":
            pytest.skip(message)
        pytest.fail(f"{message} (set TOPICWATCH_SKIP_POSTGRES=1 to skip these tests)")
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file (not yet created) in the test's own directory."""
    return f"sqlite:///{tmp_path / 'data' / 'topicwatch.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database: each test using it runs on SQLite and PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url`` with the schema upgraded to the latest revision.

    The test fails if it leaves a connection checked out of the pool.
    """
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        yield engine
        leaked = engine.pool.checkedout()  # type: ignore[attr-defined]
        assert leaked == 0, f"{leaked} database connection(s) were left open by the test"
    finally:
        engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the upgraded database of ``engine``."""
    return make_session_factory(engine)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process set up logging on a stream that pytest closes afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
