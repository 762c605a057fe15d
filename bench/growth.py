"""How cost grows: recording an observation as the database fills, and scheduling 1,000 topics.

    .venv/bin/python bench/growth.py [--sizes 1000,10000,100000] [--db sqlite,postgresql]
                                     [--samples 200] [--topics 1000] [--idle 60]
                                     [--skip-record] [--skip-schedule]

**Recording.** A fresh database for each size is filled, by bulk inserts, with articles as a
crawl leaves them: each with its topic link, one version (a body of realistic length), its
``new`` change and one sent alert, first seen over the last 30 days. The sizes are timed side
by side, taking turns in ten rounds, so that the machine's drift in speed falls on all of them
alike. At each size :func:`storage.recording.record_outcomes` is timed on a sample of
articles: ``record_page`` (one page in a transaction of its own) for a new URL, for a stored
article whose content is unchanged, and for one whose content changed (a new version, an
``updated`` change and its alert); and ``record_outcomes`` with batches of 100 (what a crawl
run uses) for new pages and for 304s. Every statement those calls run is then
explained by the database itself, and any full scan of a large table is reported. PostgreSQL is
``ANALYZE``d after each bulk fill, as its autovacuum would do; SQLite has no statistics, as in
the product. The figures are medians in milliseconds per observation, and the ratio of the
largest size to the smallest.

**Scheduling.** A configuration with ``--topics`` topics (every 15 minutes, each run recently,
so none is due) is loaded by the daemon itself (:class:`scheduler.daemon.Daemon`): the time to
prepare (sync the topics into the database, read each topic's history and plan its job) and
to start the schedule (one APScheduler job a topic), then the daemon's CPU time while it idles
for ``--idle`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import Engine, event, insert, select, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from bench.throughput import fresh_database  # noqa: E402
from storage.changes import NotModified, PageRead  # noqa: E402
from storage.db import make_engine, session_factory  # noqa: E402
from storage.models import (  # noqa: E402
    Alert,
    Article,
    ArticleVersion,
    Change,
    CrawlRun,
    Topic,
    TopicArticle,
)
from storage.recording import record_outcomes  # noqa: E402
from storage.runs import start_run  # noqa: E402
from storage.spec import TopicSpec  # noqa: E402
from storage.topics import load_topic, sync_topics  # noqa: E402

NOW = datetime.now(UTC)
FILL_CHUNK = 5000
BATCH = 100
LARGE_TABLES = ("articles", "article_versions", "changes", "alerts", "topic_articles")
TOPICS = 4


def digest(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def url_of(i: int) -> str:
    section = ("nasional", "internasional", "bisnis", "sport")[i % 4]
    return f"https://www.example-news.id/{section}/{7_000_000 + i}/artikel-nomor-{i}"


def field_hashes(seed: str) -> dict[str, str]:
    return {
        name: digest(f"{name}:{seed}") for name in ("title", "lead", "body", "authors", "dates")
    }


class Bodies:
    """Article bodies of realistic length (the fixture site's generated Indonesian prose)."""

    def __init__(self, count: int = 64) -> None:
        from fixture_site import generated_paragraphs

        rng = random.Random(7)
        self.texts = [
            "\n\n".join(generated_paragraphs(f"growth:{i}", rng.randint(500, 900)))
            for i in range(count)
        ]

    def __getitem__(self, i: int) -> str:
        return self.texts[i % len(self.texts)]


def observation(i: int, bodies: Bodies, *, version: int = 1) -> PageRead:
    seed = f"{i}:{version}"
    return PageRead(
        url=url_of(i),
        title=f"Judul artikel nomor {i}" + (f" (versi {version})" if version > 1 else ""),
        body=bodies[i + version],
        lead=f"Ringkasan artikel nomor {i}.",
        authors=("Penulis Satu",),
        published=(NOW - timedelta(minutes=i)).isoformat(),
        modified=None,
        fingerprint=digest(seed),
        field_hashes=field_hashes(seed),
        etag=f'"{digest(seed)[:32]}"',
        last_modified=None,
        raw_sha256=digest(f"raw:{seed}"),
    )


# -- filling ------------------------------------------------------------------------------------


@dataclass
class Filled:
    topic_ids: list[int]
    run_id: int
    size: int = 0
    ids: dict[str, int] = field(default_factory=dict)  # next id per table


def prepare(sessions: sessionmaker[Session]) -> Filled:
    specs = [
        TopicSpec(
            name=f"topic-{t}",
            title=f"Topic {t}",
            sources=(f"https://www.example-news.id/topic/topic-{t}",),
            alert_to=(f"desk{t}@example.org",),
        )
        for t in range(TOPICS)
    ]
    sync_topics(sessions, specs)
    topic_ids = [load_topic(sessions, s.name)[0] for s in specs]
    run_id = start_run(sessions, topic_ids[0])
    return Filled(topic_ids=topic_ids, run_id=run_id)


def fill(engine: Engine, filled: Filled, target: int, bodies: Bodies) -> float:
    """Bulk-insert articles up to ``target`` (as a crawl would have left them); seconds."""
    started = time.perf_counter()
    with engine.begin() as connection:
        next_id = {
            table: int(connection.scalar(text(f"SELECT coalesce(max(id), 0) FROM {table}")) or 0)
            + 1
            for table in LARGE_TABLES
        }
    for start in range(filled.size, target, FILL_CHUNK):
        stop = min(target, start + FILL_CHUNK)
        articles, links, versions, changes, alerts = [], [], [], [], []
        for i in range(start, stop):
            article_id = next_id["articles"] + (i - start)
            change_id = next_id["changes"] + (i - start)
            topic_id = filled.topic_ids[i % TOPICS]
            seen = NOW - timedelta(days=30) * (1 - i / max(target, 1))
            seed = f"{i}:1"
            articles.append(
                {
                    "id": article_id,
                    "url": url_of(i),
                    "first_seen": seen,
                    "age_from": seen,
                    "last_seen_on_listing": seen,
                    "last_checked": seen,
                    "status": "live",
                    "etag": f'"{digest(seed)[:32]}"',
                    "last_modified": None,
                    "current_version": 1,
                    "raw_sha256": digest(f"raw:{seed}"),
                }
            )
            links.append(
                {
                    "id": next_id["topic_articles"] + (i - start),
                    "topic_id": topic_id,
                    "article_id": article_id,
                    "since": seen,
                    "last_listed": seen,
                }
            )
            versions.append(
                {
                    "id": next_id["article_versions"] + (i - start),
                    "article_id": article_id,
                    "version": 1,
                    "fingerprint": digest(seed),
                    "field_hashes": field_hashes(seed),
                    "title": f"Judul artikel nomor {i}",
                    "lead": f"Ringkasan artikel nomor {i}.",
                    "authors": ["Penulis Satu"],
                    "published": (NOW - timedelta(minutes=i)).isoformat(),
                    "modified": None,
                    "body": bodies[i + 1],
                    "fetched_at": seen,
                    "raw_html": None,
                }
            )
            changes.append(
                {
                    "id": change_id,
                    "kind": "new",
                    "article_id": article_id,
                    "topic_id": topic_id,
                    "from_version": None,
                    "to_version": 1,
                    "fields": [],
                    "detected_at": seen,
                    "crawl_run_id": filled.run_id,
                    "alerted": True,
                }
            )
            alerts.append(
                {
                    "id": next_id["alerts"] + (i - start),
                    "change_id": change_id,
                    "topic_id": topic_id,
                    "recipient": f"desk{i % TOPICS}@example.org",
                    "status": "sent",
                    "attempts": 1,
                    "next_attempt_at": seen,
                    "sent_at": seen,
                    "created_at": seen,
                }
            )
        with engine.begin() as connection:
            for model, rows in (
                (Article, articles),
                (TopicArticle, links),
                (ArticleVersion, versions),
                (Change, changes),
                (Alert, alerts),
            ):
                connection.execute(insert(model), rows)
        for table in LARGE_TABLES:
            next_id[table] += stop - start
    filled.size = target
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            for table in LARGE_TABLES:
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    else:
        raw = engine.raw_connection()  # outside any transaction: the checkpoint needs that
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    return time.perf_counter() - started


# -- timing -------------------------------------------------------------------------------------


@dataclass
class Statements:
    """The distinct statements run while it listens, with one set of their parameters."""

    seen: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def listening(self, engine: Engine) -> Iterator[None]:
        def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT", "DELETE")):
                params = parameters
                if isinstance(parameters, list):  # executemany: one set is enough
                    params = parameters[0] if parameters else None
                self.seen.setdefault(statement, params)

        event.listen(engine, "before_cursor_execute", record)
        try:
            yield
        finally:
            event.remove(engine, "before_cursor_execute", record)

    def full_scans(self, engine: Engine) -> list[str]:
        """Plan lines that read a large table whole."""
        found: list[str] = []
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for statement, params in self.seen.items():
                if engine.dialect.name == "postgresql":
                    cursor.execute("EXPLAIN " + statement, params)
                    lines = [row[0] for row in cursor.fetchall()]
                    bad = [
                        line
                        for line in lines
                        if "Seq Scan on" in line
                        and any(f"Seq Scan on {t} " in line + " " for t in LARGE_TABLES)
                    ]
                else:
                    cursor.execute("EXPLAIN QUERY PLAN " + statement, params or ())
                    lines = [str(row[-1]) for row in cursor.fetchall()]
                    bad = [
                        line
                        for line in lines
                        if line.startswith("SCAN ")
                        and line.split()[1] in LARGE_TABLES
                        and "INDEX" not in line
                    ]
                found.extend(
                    f"{line.strip()}  <-  {' '.join(statement.split())[:160]}" for line in bad
                )
            raw.rollback()
        finally:
            raw.close()
        return found


Plan = dict[str, tuple[list[Callable[[], Any]], int]]  # figure -> (calls, observations each)
ROUNDS = 10


def timed_side_by_side(plans: list[Plan], rounds: int = ROUNDS) -> list[dict[str, float]]:
    """Median milliseconds per observation of each plan's calls (one plan a size). The sizes
    are timed side by side: each figure's calls are cut into ``rounds`` slices, and the sizes
    take turns slice by slice (a different one first each round), so that a drift in the
    machine's speed falls on every size alike. The first tenth of each list (at least one call)
    warms caches up and is not counted."""
    results: list[dict[str, float]] = [{} for _ in plans]
    names = list(dict.fromkeys(name for plan in plans for name in plan))
    for name in names:
        present = [i for i, plan in enumerate(plans) if name in plan]
        slices: dict[int, list[list[Callable[[], Any]]]] = {}
        for i in present:
            calls, _per_call = plans[i][name]
            warm = max(1, len(calls) // 10) if len(calls) > 2 else 0
            for call in calls[:warm]:
                call()
            rest = calls[warm:]
            slices[i] = [
                rest[k * len(rest) // rounds : (k + 1) * len(rest) // rounds] for k in range(rounds)
            ]
        durations: dict[int, list[float]] = {i: [] for i in present}
        for k in range(rounds):
            for i in present[k % len(present) :] + present[: k % len(present)]:
                per_call = plans[i][name][1]
                for call in slices[i][k]:
                    started = time.perf_counter()
                    call()
                    durations[i].append((time.perf_counter() - started) * 1000 / per_call)
        for i in present:
            if durations[i]:
                results[i][name] = statistics.median(durations[i])
    return results


@dataclass
class SizeResult:
    size: int
    fill_seconds: float
    figures: dict[str, float]
    scans: list[str]


def plan(sessions: sessionmaker[Session], filled: Filled, samples: int, bodies: Bodies) -> Plan:
    """The calls to time on a database filled to ``filled.size``, by figure."""
    topics, run_id = filled.topic_ids, filled.run_id
    rng = random.Random(filled.size)
    # 304s are recorded in batches of one topic (the first); single pages by each article's own
    # topic. No article is used twice.
    first_topic = list(range(0, filled.size, TOPICS))
    not_modified = rng.sample(first_topic, min(4, len(first_topic) // BATCH) * BATCH)
    taken = set(not_modified)
    others = [
        i
        for i in rng.sample(range(filled.size), min(filled.size, 3 * samples + len(taken)))
        if i not in taken
    ]
    unchanged, edited = others[:samples], others[samples : 2 * samples]
    base_new = 10_000_000 + filled.size * 10

    def page(observation_: PageRead, topic_id: int) -> Callable[[], Any]:
        # "record_page": one page recorded in a transaction of its own.
        return lambda: record_outcomes(
            sessions, topic_id=topic_id, run_id=run_id, outcomes=[observation_]
        )

    def batch(outcomes: list[Any]) -> Callable[[], Any]:
        return lambda: record_outcomes(
            sessions, topic_id=topics[0], run_id=run_id, outcomes=outcomes
        )

    calls: Plan = {
        "record_page, new article": (
            [page(observation(base_new + k, bodies), topics[k % TOPICS]) for k in range(samples)],
            1,
        ),
        "record_page, unchanged": (
            [page(observation(i, bodies), topics[i % TOPICS]) for i in unchanged],
            1,
        ),
        "record_page, updated": (
            [page(observation(i, bodies, version=2), topics[i % TOPICS]) for i in edited],
            1,
        ),
    }
    new_batches = [
        batch([observation(base_new + samples + b * BATCH + k, bodies) for k in range(BATCH)])
        for b in range(max(3, samples // BATCH * 2))
    ]
    calls["record_outcomes x100, new"] = (new_batches, BATCH)
    chunks = [not_modified[k : k + BATCH] for k in range(0, len(not_modified), BATCH)]
    if chunks:
        calls["record_outcomes x100, 304"] = (
            [batch([NotModified(url_of(i)) for i in chunk]) for chunk in chunks],
            BATCH,
        )
    return calls


def run_record(args: argparse.Namespace, workdir: Path) -> dict[str, list[SizeResult]]:
    bodies = Bodies()
    results: dict[str, list[SizeResult]] = {}
    for kind in args.db:
        with ExitStack() as stack:
            # A database of each size, all open at once, so that they can be timed side by side.
            sized: list[tuple[Engine, Filled, float]] = []
            for size in args.sizes:
                engine = make_engine(stack.enter_context(fresh_database(kind, workdir)))
                stack.callback(engine.dispose)
                filled = prepare(session_factory(engine))
                seconds = fill(engine, filled, size, bodies)
                print(f"{kind} {size:>7} articles filled in {seconds:.1f} s", flush=True)
                sized.append((engine, filled, seconds))
            plans = [
                plan(session_factory(engine), filled, args.samples, bodies)
                for engine, filled, _ in sized
            ]
            seen = [Statements() for _ in sized]
            with ExitStack() as listening:
                for statements, (engine, _, _) in zip(seen, sized, strict=True):
                    listening.enter_context(statements.listening(engine))
                figures = timed_side_by_side(plans)
            for statements, (engine, filled, seconds), sized_figures in zip(
                seen, sized, figures, strict=True
            ):
                scans = statements.full_scans(engine)
                results.setdefault(kind, []).append(
                    SizeResult(filled.size, seconds, sized_figures, scans)
                )
                print(
                    f"{kind} {filled.size:>7} articles: "
                    + ", ".join(f"{k} {v:.2f} ms" for k, v in sized_figures.items())
                    + f"; {len(statements.seen)} statements, {len(scans)} full scans",
                    flush=True,
                )
    return results


def print_record(results: dict[str, list[SizeResult]]) -> None:
    print()
    print(f"Recording one observation, median ms per observation ({os.cpu_count()} cores)")
    for kind, rows in results.items():
        names = list(rows[0].figures)
        header = (
            f"{kind:<28}" + "".join(f"{r.size:>10,}" for r in rows) + f"{'largest/smallest':>18}"
        )
        print(header)
        print("-" * len(header))
        for name in names:
            values = [r.figures[name] for r in rows]
            print(
                f"{name:<28}"
                + "".join(f"{v:>10.2f}" for v in values)
                + f"{values[-1] / values[0]:>17.2f}x"
            )
        counts = ", ".join(f"{len(r.scans)} at {r.size:,}" for r in rows)
        print(f"full scans of a large table in the statements those calls ran: {counts}")
        for r in rows:
            for line in dict.fromkeys(r.scans):
                print(f"  at {r.size:,}: {line}")
        print()


# -- scheduling ---------------------------------------------------------------------------------


def write_config(path: Path, database_url: str, topics: int) -> None:
    lines = [
        "[database]",
        f'url = "{database_url}"',
        "",
        "[crawl]",
        'user_agent = "topicwatch-bench/1.0 (+http://127.0.0.1/bench)"',
        "max_concurrent_runs = 2",
        "",
        "[logging]",
        'level = "WARNING"',
        "",
    ]
    for t in range(topics):
        lines += [
            "[[topic]]",
            f'name = "topic-{t:04d}"',
            f'title = "Topic {t}"',
            f'sources = ["http://127.0.0.1:9/topic/topic-{t:04d}"]',
            'every = "15m"',
            'jitter = "30s"',
            f'alert_to = ["desk{t % 50}@example.org"]',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def run_schedule(args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, float]]:
    from scheduler.config import load_config
    from scheduler.daemon import Daemon

    results: dict[str, dict[str, float]] = {}
    logging.getLogger().setLevel(logging.WARNING)
    for kind in args.db:
        with fresh_database(kind, workdir) as url:
            config_path = workdir / f"topicwatch-{kind}.toml"
            write_config(config_path, url, args.topics)
            config = load_config(config_path, env={})
            # Every topic ran a minute ago, so none is due while the daemon idles.
            engine = make_engine(url)
            sessions = session_factory(engine)
            sync_topics(sessions, config.topic_specs())
            with sessions.begin() as session:
                ids = list(session.scalars(select(Topic.id)))
                session.execute(
                    insert(CrawlRun),
                    [
                        {
                            "topic_id": topic_id,
                            "started_at": NOW - timedelta(minutes=1),
                            "finished_at": NOW - timedelta(seconds=50),
                            "status": "ok",
                            "error_details": {},
                            "stats": {},
                        }
                        for topic_id in ids
                    ],
                )
            engine.dispose()
            daemon = Daemon(config, log_format="text", log_level="WARNING", env={})

            async def measure(
                daemon: Daemon = daemon, topics: int = len(config.topics)
            ) -> dict[str, float]:
                started = time.perf_counter()
                await daemon.prepare()
                prepared = time.perf_counter()
                daemon.start_scheduler()
                built = time.perf_counter()
                assert daemon.scheduler is not None
                jobs = len(daemon.scheduler.get_jobs())
                cpu, wall = time.process_time(), time.perf_counter()
                await asyncio.sleep(args.idle)
                idle_cpu = time.process_time() - cpu
                idle_wall = time.perf_counter() - wall
                daemon.scheduler.shutdown(wait=False)
                if daemon.engine is not None:
                    daemon.engine.dispose()
                return {
                    "topics": float(topics),
                    "jobs": float(jobs),
                    "prepare_s": prepared - started,
                    "schedule_s": built - prepared,
                    "idle_cpu_per_min_s": idle_cpu * 60 / idle_wall,
                }

            figures = asyncio.run(measure())
            results[kind] = figures
            print(
                f"{kind}: {figures['topics']:.0f} topics, {figures['jobs']:.0f} jobs; prepare "
                f"{figures['prepare_s']:.2f} s, schedule {figures['schedule_s']:.2f} s, idle CPU "
                f"{figures['idle_cpu_per_min_s']:.3f} s per minute",
                flush=True,
            )
    return results


def print_schedule(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print()
    print(f"Daemon with {args.topics} topics configured ({os.cpu_count()} cores)")
    header = (
        f"{'database':<12}{'jobs':>6}{'prepare (sync, plan)':>23}{'start schedule':>16}"
        f"{'idle CPU per minute':>21}"
    )
    print(header)
    print("-" * len(header))
    for kind, f in results.items():
        print(
            f"{kind:<12}{f['jobs']:>6.0f}{f['prepare_s']:>21.2f} s{f['schedule_s']:>14.2f} s"
            f"{f['idle_cpu_per_min_s'] * 1000:>18.0f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle to measure")
    parser.add_argument("--skip-record", action="store_true")
    parser.add_argument("--skip-schedule", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    args.db = [kind.strip() for kind in args.db.split(",") if kind.strip()]
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="topicwatch-growth-") as tmp:
        workdir = Path(tmp)
        record = {} if args.skip_record else run_record(args, workdir)
        schedule = {} if args.skip_schedule else run_schedule(args, workdir)
    if record:
        print_record(record)
    if schedule:
        print_schedule(schedule, args)
    if args.json is not None:
        data = {
            "record": {kind: [r.__dict__ for r in rows] for kind, rows in record.items()},
            "schedule": schedule,
        }
        args.json.write_text(json.dumps(data, indent=1), encoding="utf-8")
    print(f"\nbenchmark time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
