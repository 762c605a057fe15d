"""Database size per 10,000 articles and per 100,000 versions, before and after retention.

    .venv/bin/python bench/retention.py [--articles 1000] [--live-share 0.1]
                                        [--live-versions 48] [--db sqlite,postgresql]

A fresh database of each kind is filled, by bulk inserts, with a topic's history as the
product records it: each article with its topic link, its versions (fingerprint, field hashes,
title, lead, a body of realistic length, paragraph hashes) and one change per version with a
sent alert. Most articles are ordinary news: one to three versions over their first two
days. A share of them (``--live-share``) are live coverage: ``--live-versions`` versions in
one day, each with one more entry on top of the body. All of it is 100 days old, so the
topic's policy (``keep_text_for = "30d"``, the default being 90 days) applies to every
article: the text of the first version, the current one and the last of each day is kept.

The size is the database's own: the SQLite file after ``VACUUM``, PostgreSQL's
``pg_database_size`` after ``VACUUM FULL``, each less the size of the same database empty
(the schema alone). :func:`storage.retention.prune` runs in between; its CPU time and the
bytes it reports freed are printed beside the sizes measured.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import Engine, insert, text  # noqa: E402

from bench.throughput import fresh_database  # noqa: E402
from storage.db import make_engine, session_factory  # noqa: E402
from storage.models import Alert, Article, ArticleVersion, Change, TopicArticle  # noqa: E402
from storage.retention import prune  # noqa: E402
from storage.spec import TopicSpec  # noqa: E402
from storage.topics import load_topic, sync_topics  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)
BORN = NOW - timedelta(days=100)
CHUNK = 500


def digest(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def size_of(url: str, engine: Engine) -> int:
    """The database's size in bytes, compacted first."""
    if url.startswith("sqlite"):
        engine.dispose()
        path = url.removeprefix("sqlite:///")
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.execute("VACUUM")
        finally:
            connection.close()
        return Path(path).stat().st_size
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM FULL")
        return int(connection.scalar(text("SELECT pg_database_size(current_database())")) or 0)


def histories(articles: int, live_share: float, live_versions: int) -> list[list[datetime]]:
    """Per article, when each of its versions was fetched."""
    rng = random.Random(26)
    out: list[list[datetime]] = []
    for i in range(articles):
        start = BORN + timedelta(minutes=17 * i)
        if rng.random() < live_share:
            out.append([start + timedelta(minutes=20 * n) for n in range(live_versions)])
        else:
            count = rng.choice((1, 1, 2, 3))
            out.append(sorted(start + timedelta(hours=rng.uniform(0, 40)) for _ in range(count)))
            out[-1][0] = start
    return out


def fill(engine: Engine, topic_id: int, times: list[list[datetime]]) -> tuple[int, int]:
    """Bulk-insert the articles and their versions; (articles, versions)."""
    from fixture_site import generated_paragraphs

    bodies = ["\n\n".join(generated_paragraphs(f"retention:{i}", 700)) for i in range(32)]
    entries = [generated_paragraphs(f"entry:{i}", 40)[0] for i in range(64)]
    article_id = version_id = change_id = alert_id = 0
    rows: dict[str, list[dict[str, Any]]] = {"a": [], "l": [], "v": [], "c": [], "al": []}

    def flush() -> None:
        with engine.begin() as connection:
            for key, table in (
                ("a", Article),
                ("l", TopicArticle),
                ("v", ArticleVersion),
                ("c", Change),
                ("al", Alert),
            ):
                if rows[key]:
                    connection.execute(insert(table), rows[key])
                    rows[key] = []

    for i, fetched in enumerate(times):
        article_id += 1
        url = f"https://www.example-news.id/berita/{i}/judul-{i}"
        rows["a"].append(
            {
                "id": article_id,
                "url": url,
                "first_seen": fetched[0],
                "age_from": fetched[0],
                "last_checked": fetched[-1],
                "status": "live",
                "current_version": len(fetched),
                "checks": "",
            }
        )
        rows["l"].append(
            {"id": article_id, "topic_id": topic_id, "article_id": article_id, "since": fetched[0]}
        )
        for number, moment in enumerate(fetched, start=1):
            version_id += 1
            change_id += 1
            alert_id += 1
            body = "\n\n".join(
                [*(entries[(i + n) % len(entries)] for n in range(number - 1)), bodies[i % 32]]
            )
            seed = f"{i}:{number}"
            rows["v"].append(
                {
                    "id": version_id,
                    "article_id": article_id,
                    "version": number,
                    "fingerprint": digest(seed),
                    "field_hashes": {
                        name: digest(f"{name}:{seed}")
                        for name in ("title", "lead", "body", "authors", "dates")
                    },
                    "title": f"Judul artikel nomor {i}",
                    "lead": f"Ringkasan artikel nomor {i}, versi {number}.",
                    "authors": ["Penulis Satu"],
                    "published": fetched[0].isoformat(),
                    "modified": moment.isoformat(),
                    "body": body,
                    "blocks": [digest(p)[:16] for p in body.split("\n\n")],
                    "fetched_at": moment,
                }
            )
            rows["c"].append(
                {
                    "id": change_id,
                    "kind": "new" if number == 1 else "updated",
                    "article_id": article_id,
                    "topic_id": topic_id,
                    "from_version": None if number == 1 else number - 1,
                    "to_version": number,
                    "fields": [] if number == 1 else ["body"],
                    "detected_at": moment,
                    "alerted": True,
                    "held": False,
                    "folded": 0,
                }
            )
            rows["al"].append(
                {
                    "id": alert_id,
                    "change_id": change_id,
                    "topic_id": topic_id,
                    "recipient": "desk@example.org",
                    "status": "sent",
                    "attempts": 1,
                    "next_attempt_at": moment,
                    "sent_at": moment,
                    "created_at": moment,
                }
            )
        if len(rows["v"]) >= CHUNK:
            flush()
    flush()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in ("articles", "topic_articles", "article_versions", "changes", "alerts"):
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
    return article_id, version_id


def run(kind: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database(kind, workdir) as url:
        engine = make_engine(url)
        sessions = session_factory(engine)
        spec = TopicSpec(
            name="bench",
            title="Bench",
            sources=("https://www.example-news.id/topic/bench",),
            keep_text_for=30 * 86400.0,
        )
        sync_topics(sessions, [spec])
        topic_id = load_topic(sessions, "bench")[0]
        empty = size_of(url, engine)
        times = histories(args.articles, args.live_share, args.live_versions)
        articles, versions = fill(engine, topic_id, times)
        before = size_of(url, engine) - empty
        started = time.process_time()
        report = prune(sessions, now=NOW)
        cpu = time.process_time() - started
        after = size_of(url, engine) - empty
        engine.dispose()
    return {
        "db": kind,
        "articles": articles,
        "versions": versions,
        "live": sum(1 for t in times if len(t) == args.live_versions),
        "before": before,
        "after": after,
        "texts": report.texts,
        "reported": report.bytes_freed,
        "cpu": cpu,
    }


def mib(size: float) -> str:
    return f"{size / 1024 / 1024:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--live-share", type=float, default=0.1)
    parser.add_argument("--live-versions", type=int, default=48)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="retention-") as workdir:
        for kind in args.db.split(","):
            results.append(run(kind, Path(workdir), args))
    header = (
        f"{'db':<11} {'articles':>8} {'live':>5} {'versions':>8} {'texts pruned':>12} "
        f"{'MiB before':>10} {'after':>7} {'per 10k articles':>17} {'per 100k versions':>18} "
        f"{'after/before':>12} {'reported freed MiB':>18} {'prune CPU s':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        scale_a, scale_v = 10000 / r["articles"], 100000 / r["versions"]
        per_articles = f"{mib(r['before'] * scale_a)} -> {mib(r['after'] * scale_a)}"
        per_versions = f"{mib(r['before'] * scale_v)} -> {mib(r['after'] * scale_v)}"
        print(
            f"{r['db']:<11} {r['articles']:>8} {r['live']:>5} {r['versions']:>8} "
            f"{r['texts']:>12} {mib(r['before']):>10} {mib(r['after']):>7} {per_articles:>17} "
            f"{per_versions:>18} {r['after'] / r['before']:>12.2f} {mib(r['reported']):>18} "
            f"{r['cpu']:>11.2f}"
        )
    print(
        "MiB per 10k articles and per 100k versions: the database's size (less the empty "
        "schema's) scaled linearly, before -> after pruning."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
