"""Engine set-up: URLs, SQLite's pragmas and write locks, and the indexes queries use."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from record_one import record_gone, record_not_modified, record_page
from sqlalchemy import Engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.changes import PageRead
from storage.db import (
    DatabaseUnavailable,
    SchemaOutdated,
    check_schema,
    connect_check,
    make_engine,
    normalise_url,
    read_session,
    safe_url,
    session_factory,
    upgrade,
)
from storage.history import list_changes
from storage.listings import note_listing, recheck_candidates
from storage.models import Topic
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@db.example.org/tw", "postgresql+psycopg://u@db.example.org/tw"),
        ("postgresql://u@db.example.org/tw", "postgresql+psycopg://u@db.example.org/tw"),
        ("postgresql+psycopg://u@db/tw", "postgresql+psycopg://u@db/tw"),
        ("sqlite:///data/topicwatch.db", "sqlite:///data/topicwatch.db"),
    ],
)
def test_database_urls_are_normalised(given: str, expected: str) -> None:
    assert normalise_url(given).render_as_string(hide_password=False) == expected


def test_unsupported_database_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="neither SQLite nor PostgreSQL"):
        make_engine("mysql://u:secret@db/tw")
    with pytest.raises(ValueError, match="through psycopg 3"):
        make_engine("postgresql+psycopg2://u@db/tw")


def test_safe_url_hides_passwords() -> None:
    assert safe_url("postgresql://tw:s3cret@db:5432/tw") == "postgresql://tw:***@db:5432/tw"
    assert safe_url("sqlite:///data/topicwatch.db") == "sqlite:///data/topicwatch.db"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def test_sqlite_file_gets_its_directory_and_pragmas(sqlite_url: str) -> None:
    path = Path(make_url(sqlite_url).database or "")
    assert not path.parent.exists()
    engine = make_engine(sqlite_url)
    try:
        assert path.parent.is_dir()
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_sqlite_directory_that_cannot_exist(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(DatabaseUnavailable, match="Cannot create the directory"):
        make_engine(f"sqlite:///{tmp_path / 'file' / 'topicwatch.db'}")


def test_upgrade_twice_is_harmless(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        check_schema(engine)
    finally:
        engine.dispose()


def test_check_schema_on_a_newer_database(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d'")
    with pytest.raises(SchemaOutdated, match="upgraded by a newer release"):
        check_schema(sqlite_engine)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "topicwatch.db"
    path.write_bytes(b"this is not a SQLite database, only some text" * 100)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with pytest.raises(DatabaseUnavailable, match="Cannot connect to the database at sqlite"):
            connect_check(engine)
    finally:
        engine.dispose()


def _try_write_lock(path: str) -> bool:
    with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as other:
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return False
        other.execute("ROLLBACK")
        return True


def test_sqlite_transactions_take_the_write_lock_at_begin(sqlite_engine: Engine) -> None:
    path = sqlite_engine.url.database or ""
    factory = session_factory(sqlite_engine)
    with factory() as session:
        session.execute(select(Topic)).all()  # only a read, yet the lock is held
        assert not _try_write_lock(path)
    assert _try_write_lock(path)
    with read_session(factory) as session:
        session.execute(select(Topic)).all()
        assert _try_write_lock(path)


# -- indexes ----------------------------------------------------------------------------------

WATCHED_TABLES = {"articles", "article_versions", "topic_articles", "changes", "alerts"}


def _plans(engine: Engine, statements: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """(statement, plan line) for every full-table scan of a watched table."""
    scans = []
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT")):
                continue
            cursor = raw.cursor()
            try:
                rows = cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            finally:
                cursor.close()
            for row in rows:
                detail = str(row[-1])
                match = re.fullmatch(r"SCAN (\w+)", detail)
                if match and match.group(1) in WATCHED_TABLES:
                    scans.append((statement, detail))
        connection.rollback()
    return scans


def _observation(url: str, body: str) -> PageRead:
    return PageRead(
        url=url,
        title="Judul",
        body=body,
        lead="",
        authors=(),
        published=None,
        modified=None,
        fingerprint=f"fp-{body}",
        field_hashes={"body": body},
    )


def test_recording_and_rechecks_use_indexes(sqlite_engine: Engine) -> None:
    factory: sessionmaker[Session] = session_factory(sqlite_engine)
    sync_topics(
        factory,
        [
            TopicSpec(
                name="t", title="T", sources=("https://x.example/t",), alert_to=("a@x.example",)
            )
        ],
    )
    topic_id, _ = load_topic(factory, "t")
    urls = [f"https://x.example/a/{i}" for i in range(3)]
    statements: list[tuple[str, Any]] = []

    @event.listens_for(sqlite_engine, "before_cursor_execute")
    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if isinstance(parameters, tuple | list) and not (
            parameters and isinstance(parameters[0], tuple | list)
        ):
            statements.append((statement, parameters))

    note_listing(factory, topic_id, urls, NOW)
    record_page(factory, topic_id=topic_id, run_id=None, observation=_observation(urls[0], "a"))
    record_page(factory, topic_id=topic_id, run_id=None, observation=_observation(urls[0], "b"))
    record_page(factory, topic_id=topic_id, run_id=None, observation=_observation(urls[0], "a"))
    record_not_modified(factory, topic_id=topic_id, run_id=None, url=urls[0])
    record_gone(factory, topic_id=topic_id, run_id=None, url=urls[0])
    recheck_candidates(factory, topic_id, NOW + timedelta(hours=2), 7 * 86400.0, exclude=())
    list_changes(factory, topic="t", limit=10)
    event.remove(sqlite_engine, "before_cursor_execute", capture)

    assert len(statements) > 20
    assert _plans(sqlite_engine, statements) == []
