"""Atom feeds of changes, parsed back with feedparser entry by entry.

Each test runs on SQLite and on PostgreSQL (the ``session_factory`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from record_one import observation, record_gone, record_page
from sqlalchemy.orm import Session, sessionmaker

from alerts.feed import build_feed
from scheduler.cli import main
from storage.changes import PageRead
from storage.db import make_engine, upgrade
from storage.db import session_factory as make_session_factory
from storage.runs import finish_run, start_run
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SITE = "https://news.example/internasional"
OLD = "Sumbernya adalah pejabat AS yang terlibat langsung."
NEW = "Sumbernya adalah mantan pejabat AS yang terlibat langsung."
HOSTILE = "<script>alert(1)</script> & <b>Bold</b>\x1b[31m\x0c"

Factory = sessionmaker[Session]


def topic(factory: Factory, name: str) -> int:
    spec = TopicSpec(name=name, title=f"Topik {name}", sources=(f"{SITE}/{name}",))
    sync_topics(factory, [spec], now=T0)
    return load_topic(factory, name)[0]


def read(factory: Factory, topic_id: int, obs: PageRead, when: datetime) -> None:
    run_id = start_run(factory, topic_id, now=when)
    record_page(factory, topic_id=topic_id, run_id=run_id, observation=obs, now=when)
    finish_run(factory, run_id, status="ok", counts={}, errors=[], stats={}, now=when)


def gone(factory: Factory, topic_id: int, url: str, when: datetime) -> None:
    run_id = start_run(factory, topic_id, now=when)
    record_gone(factory, topic_id=topic_id, run_id=run_id, url=url, now=when)
    finish_run(factory, run_id, status="ok", counts={}, errors=[], stats={}, now=when)


def scripted(factory: Factory) -> tuple[str, str]:
    """new A, A edited, new B (hostile title), B removed, B back, A edited again."""
    one = topic(factory, "satu")
    a, b = f"{SITE}/a", f"{SITE}/b"
    read(factory, one, observation(a, "Berita A", OLD, published=None), T0)
    read(factory, one, observation(a, "Berita A", NEW, published=None), T0 + timedelta(minutes=1))
    read(factory, one, observation(b, HOSTILE, "Isi B.", published=None), T0 + timedelta(minutes=2))
    gone(factory, one, b, T0 + timedelta(minutes=3))
    read(factory, one, observation(b, HOSTILE, "Isi B.", published=None), T0 + timedelta(minutes=4))
    read(
        factory,
        one,
        observation(a, "Berita A", NEW + " Lagi.", published=None),
        T0 + timedelta(minutes=5),
    )
    return a, b


def test_one_entry_per_change_with_stable_unique_ids(session_factory: Factory) -> None:
    a, b = scripted(session_factory)
    parsed = feedparser.parse(build_feed(session_factory, "satu"))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "topicwatch: Topik satu"
    entries = parsed.entries
    assert [(e.title.split(":")[0], e.link) for e in entries] == [
        ("updated", a),
        ("restored", b),
        ("removed", b),
        ("new", b),
        ("updated", a),
        ("new", a),
    ]
    ids = [e.id for e in entries]
    assert len(set(ids)) == 6
    assert all(i.startswith("tag:topicwatch.invalid,2026:") for i in ids)
    updated = [e.updated_parsed for e in entries]
    assert updated == sorted(updated, reverse=True)
    assert entries[-1].updated == "2026-01-05T08:00:00+00:00"
    # The word diff, as escaped HTML content.
    edit = entries[4].content[0]
    assert edit.type == "text/html"
    assert "mantan" in edit.value
    assert "<ins" in edit.value

    # The same changes give the same ids, and a new change adds one entry with a new id.
    again = feedparser.parse(build_feed(session_factory, "satu"))
    assert [e.id for e in again.entries] == ids
    one = load_topic(session_factory, "satu")[0]
    read(
        session_factory,
        one,
        observation(a, "Berita A", OLD, published=None),
        T0 + timedelta(minutes=9),
    )
    later = feedparser.parse(build_feed(session_factory, "satu"))
    assert [e.id for e in later.entries][1:] == ids
    assert later.entries[0].id not in ids


def test_scraped_markup_cannot_inject_anything(session_factory: Factory) -> None:
    scripted(session_factory)
    data = build_feed(session_factory)
    assert b"<script>" not in data
    assert b"\x1b" not in data
    parsed = feedparser.parse(data)
    assert not parsed.bozo
    new_b = next(e for e in parsed.entries if e.title.startswith("[satu] new:"))
    # The title is text: the markup shows as written, the control characters are gone.
    assert new_b.title == "[satu] new: <script>alert(1)</script> & <b>Bold</b> [31m"
    assert "&lt;script&gt;" in new_b.content[0].value
    assert "<script>" not in new_b.content[0].value


def test_the_feed_of_all_topics_and_the_command(
    session_factory: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted(session_factory)
    two = topic(session_factory, "dua")
    read(
        session_factory,
        two,
        observation(f"{SITE}/c", "Berita C", OLD, published=None),
        T0 + timedelta(hours=1),
    )
    parsed = feedparser.parse(build_feed(session_factory, limit=3))
    assert [e.title for e in parsed.entries] == [
        "[dua] new: Berita C",
        "[satu] updated: Berita A",
        "[satu] restored: <script>alert(1)</script> & <b>Bold</b> [31m",
    ]
    assert parsed.feed.updated == "2026-01-05T09:00:00+00:00"


def test_topicwatch_feed_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    scripted(factory)
    engine.dispose()
    config = tmp_path / "tw.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    out = tmp_path / "satu.xml"
    assert main(["--config", str(config), "feed", "satu", "-o", str(out)]) == 0
    assert len(feedparser.parse(out.read_bytes()).entries) == 6
    assert main(["--config", str(config), "feed", "--limit", "2"]) == 0
    assert len(feedparser.parse(capsys.readouterr().out).entries) == 2
    assert main(["--config", str(config), "feed", "nosuch"]) == 1
    assert "No topic by the name of 'nosuch'" in capsys.readouterr().err
