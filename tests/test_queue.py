"""Crawl runs through the PostgreSQL job queue: real schedulers and workers as processes, the
fixture site, real PostgreSQL (``[executor] kind = "queue"``).

A cluster on this machine: schedulers (a leader and a standby) and workers, topics on two
sites. Every slot a scheduler defers runs exactly once; a killed leader's standby takes over
within 30 s; a site never sees two crawls at once, from its own request log; a worker killed
mid-crawl has its job run again elsewhere with no change or alert twice; a worker told to
stop takes no new job and records the run it cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from fixture_site import FixtureSite
from mailserver import MailServer, mail_server
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from scheduler.cli import main
from scheduler.config import QUEUE_NEEDS_POSTGRES, parse_config
from scheduler.leader import wait_for_leadership
from scheduler.queue import conninfo, site_of
from storage.daemons import DaemonLock
from storage.db import alembic_config, make_engine, read_session, session_factory, upgrade
from storage.jobs import queue_overview
from storage.models import Alert, Article, Change, CrawlRun, Topic
from storage.spec import TopicSpec

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
DEFERRED = re.compile(r"topicwatch\.queue deferred topic=(\S+) job=(\d+) due=(\S+)")
COALESCED = re.compile(r"topicwatch\.queue coalesced topic=(\S+) due=(\S+)")
TAKEN_OVER = "this scheduler is the leader now"
ARTICLES = 40  # of the site whose crawl is cut: long enough a crawl to be caught half-way


class Proc:
    """``python -m scheduler --config F COMMAND …`` with its log in a file."""

    def __init__(self, config: Path, log: Path, *command: str) -> None:
        self.log_path = log
        inherited = ("SENTRY_DSN", "TOPICWATCH_DATABASE_URL", "TOPICWATCH_CONFIG")
        env = {k: v for k, v in os.environ.items() if k not in inherited}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        with log.open("ab") as handle:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "scheduler", "--config", str(config), *command],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout: float = 60.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=30)
            raise AssertionError(f"Not stopped {timeout} s after SIGTERM:\n{self.tail()}") from None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=30)


def wait_for(check: Callable[[], T], timeout: float, what: str, procs: list[Proc]) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n\n".join(f"--- {p.log_path.name}\n{p.tail()}" for p in procs)
            raise AssertionError(f"Waited {timeout:g} s for {what}; the logs end with:\n{logs}")
        time.sleep(0.2)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill()


def start(procs: list[Proc], config: Path, tmp_path: Path, *command: str) -> Proc:
    proc = Proc(config, tmp_path / f"{command[0]}-{len(procs)}.log", *command)
    procs.append(proc)
    return proc


def queue_config(
    url: str,
    topics: list[tuple[str, str, str]],
    *,
    smtp: MailServer | None = None,
    grace: str = "5s",
) -> str:
    """A queue configuration; ``topics`` are (name, source, every)."""
    text_ = f"""
[database]
url = "{url}"

[executor]
kind = "queue"
heartbeat = "1s"

[crawl]
download_delay = 0
autothrottle = false
concurrent_per_domain = 1
retry_times = 0
run_timeout = "60s"
shutdown_grace = "{grace}"

[alerts]
dispatch_every = "1s"
retry_backoff = "1s"
"""
    if smtp is not None:
        text_ += f"""
[smtp]
host = "{smtp.host}"
port = {smtp.port}
security = "none"
sender = "topicwatch <alerts@example.org>"
timeout = "10s"
"""
    for name, source, every in topics:
        text_ += (
            f'\n[[topic]]\nname = "{name}"\nsources = ["{source}"]\nevery = "{every}"\n'
            'jitter = 0\nalert_to = ["desk@example.org"]\n'
        )
    return text_


def runs(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    with read_session(sessions) as session:
        rows = session.execute(
            select(CrawlRun, Topic.name).join(Topic, Topic.id == CrawlRun.topic_id)
        ).all()
        return [
            {
                "id": run.id,
                "topic": name,
                "status": run.status,
                "due_at": run.due_at,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "host": run.host,
                "worker": run.worker,
                "job_id": run.job_id,
                "message": run.message,
            }
            for run, name in rows
        ]


def new_changes(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with read_session(sessions) as session:
        return [
            (topic, url)
            for topic, url in session.execute(
                select(Topic.name, Article.url)
                .join(Change, Change.topic_id == Topic.id)
                .join(Article, Article.id == Change.article_id)
                .where(Change.kind == "new")
            )
        ]


def plain(received: Any) -> str:
    """The plain-text part of a received digest."""
    part = received.message.get_body(preferencelist=("plain",))
    return str(part.get_content()) if part is not None else ""


def stamp(text_: str) -> datetime:
    return datetime.fromisoformat(text_.replace("Z", "+00:00"))


def log_time(line: str) -> datetime:
    return stamp(line.split(" ", 1)[0])


# -- without processes -----------------------------------------------------------------------


def test_the_queue_with_sqlite_is_refused_with_why_and_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "topicwatch.toml"
    config.write_text('[database]\nurl = "sqlite:///data/tw.db"\n\n[executor]\nkind = "queue"\n')
    assert main(["--config", str(config), "run"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"topicwatch: error: {config}: executor.kind: {QUEUE_NEEDS_POSTGRES}"
    )
    assert QUEUE_NEEDS_POSTGRES == (
        '"queue" needs a PostgreSQL database, and database.url is SQLite: the job queue, the '
        "workers' heartbeats and the scheduler's leader lock live in the database that every "
        'machine reaches. Use kind = "local" (the default: crawls on this machine), or move to '
        "PostgreSQL first (deploy/sqlite-to-postgres.py copies the data) and set database.url "
        "to postgresql+psycopg://USER@HOST/DB"
    )


def test_executor_keys_are_checked() -> None:
    path = Path("tw.toml")
    config = parse_config(
        '[database]\nurl = "postgresql+psycopg://u@h/db"\n[executor]\nkind = "queue"\n',
        path,
        env={},
    )
    assert (config.executor.kind, config.executor.queue, config.executor.heartbeat) == (
        "queue",
        "crawl",
        10.0,
    )
    assert parse_config("", path, env={}).executor.kind == "local"
    with pytest.raises(ValueError, match=r"tw\.toml: executor\.kind: expected one of"):
        parse_config('[executor]\nkind = "celery"\n', path, env={})


def test_a_topic_is_polite_to_the_origin_of_its_first_source() -> None:
    def spec(*sources: str) -> TopicSpec:
        return TopicSpec(name="t", title="T", sources=sources)

    assert site_of(spec("https://WWW.Example.org/topic/a")) == "www.example.org"
    assert site_of(spec("http://127.0.0.1:8080/x", "https://other.example/")) == "127.0.0.1:8080"
    assert (
        conninfo("postgresql+psycopg://u:p%40ss@db:5433/tw") == "postgresql://u:p%40ss@db:5433/tw"
    )


@pytest.mark.postgres
def test_a_standby_takes_the_leader_lock_when_the_leader_lets_it_go(postgres_url: str) -> None:
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    leader, standby = DaemonLock(engine), DaemonLock(engine)

    async def scenario() -> tuple[bool, bool, float]:
        stopping = asyncio.Event()
        assert leader.try_acquire()
        waiting = asyncio.ensure_future(
            wait_for_leadership(standby, stopping, holder=lambda: "the leader", poll=0.1)
        )
        await asyncio.sleep(0.5)
        still_waiting = not waiting.done()
        released = time.monotonic()
        leader.release()
        took = await asyncio.wait_for(waiting, 10)
        return still_waiting, took, time.monotonic() - released

    try:
        still_waiting, took, after = asyncio.run(scenario())
        assert still_waiting
        assert took
        assert after < 2
        assert standby.held

        async def stopped() -> bool:
            stopping = asyncio.Event()
            stopping.set()
            return await wait_for_leadership(leader, stopping, holder=lambda: "x", poll=0.1)

        assert asyncio.run(stopped()) is False
    finally:
        standby.release()
        leader.release()
        engine.dispose()


@pytest.mark.postgres
def test_the_queue_schema_comes_and_goes_with_its_revision(postgres_url: str) -> None:
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    tables = "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'procrastinate%'"
    try:
        with engine.connect() as connection:
            assert connection.execute(text(tables)).scalar_one() == 4
        with engine.connect() as connection:  # the revision before, then back
            config = alembic_config(postgres_url)
            config.attributes["connection"] = connection
            command.downgrade(config, "0008")
            connection.commit()
        with engine.connect() as connection:
            assert connection.execute(text(tables)).scalar_one() == 0
        upgrade(postgres_url)
        with engine.connect() as connection:
            assert connection.execute(text(tables)).scalar_one() == 4
    finally:
        engine.dispose()


# -- a cluster of processes ------------------------------------------------------------------


# The suite runs a small cluster (6 topics on 2 sites); the same test runs larger with
# TOPICWATCH_CLUSTER_TOPICS, TOPICWATCH_CLUSTER_SITES and TOPICWATCH_CLUSTER_MINUTES (how long
# the cluster goes on after the standby took over), e.g. 50 topics on 5 sites for 3 minutes.
CLUSTER_TOPICS = int(os.environ.get("TOPICWATCH_CLUSTER_TOPICS", "6"))
CLUSTER_SITES = int(os.environ.get("TOPICWATCH_CLUSTER_SITES", "2"))
CLUSTER_MINUTES = float(os.environ.get("TOPICWATCH_CLUSTER_MINUTES", "0"))


@pytest.mark.slow
@pytest.mark.postgres
def test_a_cluster_runs_each_slot_once_is_polite_per_site_and_survives_its_leader(
    tmp_path: Path, postgres_url: str, procs: list[Proc]
) -> None:
    upgrade(postgres_url)
    per_site = -(-CLUSTER_TOPICS // CLUSTER_SITES)
    slugs = tuple(f"berita-{chr(ord('a') + i)}" for i in range(per_site))
    with contextlib.ExitStack() as stack:
        sites = {
            f"s{number}": stack.enter_context(
                FixtureSite.generate(
                    6 * len(slugs), topics=slugs, multipage_every=0, latency=0.02, seed=number
                )
            )
            for number in range(CLUSTER_SITES)
        }
        topics = [
            (f"{name}-{slug}", f"{site.base_url}/topic/{slug}", "4s")
            for name, site in sites.items()
            for slug in slugs
        ]
        config = tmp_path / "topicwatch.toml"
        config.write_text(queue_config(postgres_url, topics))
        engine = make_engine(postgres_url)
        sessions = session_factory(engine)
        try:
            leader = start(procs, config, tmp_path, "run")
            wait_for(lambda: "daemon started" in leader.log(), 30, "the leader", procs)
            standby = start(procs, config, tmp_path, "run")
            wait_for(lambda: "Standby:" in standby.log(), 30, "the standby", procs)
            workers = [
                start(procs, config, tmp_path, "worker", "--concurrency", "1") for _ in range(3)
            ]
            wait_for(lambda: len(runs(sessions)) >= 10, 60, "ten runs", procs)
            leader.kill()  # kill -9: no goodbye, the lock goes with its connection
            killed = datetime.now(UTC)
            line = wait_for(
                lambda: next((x for x in standby.log().splitlines() if TAKEN_OVER in x), None),
                35,
                "the standby to take over",
                procs,
            )
            assert log_time(line) - killed < timedelta(seconds=30)
            before = len(runs(sessions))
            wait_for(lambda: len(runs(sessions)) >= before + 8, 60, "runs after it", procs)
            time.sleep(
                max(0.0, CLUSTER_MINUTES * 60 - (datetime.now(UTC) - killed).total_seconds())
            )
            assert standby.stop() == 0, standby.tail()
            wait_for(lambda: not queue_overview(sessions).jobs, 60, "the queue to drain", procs)
            for worker in workers:
                assert worker.stop() == 0, worker.tail()

            done = runs(sessions)
            deferred = [
                (m[1], int(m[2]), stamp(m[3]))
                for p in (leader, standby)
                for m in DEFERRED.finditer(p.log())
            ]
            # Every deferred slot ran exactly once: none lost, none twice.
            assert Counter(run["job_id"] for run in done) == Counter(
                job for _t, job, _d in deferred
            )
            assert all(run["status"] == "ok" for run in done), done
            slots = Counter((run["topic"], run["due_at"]) for run in done)
            assert max(slots.values()) == 1
            for topic, _job, due in deferred:
                assert (topic, due.replace(microsecond=0)) in {
                    (t, d.replace(microsecond=0)) for t, d in slots
                }
            for m in COALESCED.finditer(standby.log() + leader.log()):
                assert (m[1], stamp(m[2])) not in {(t, d.replace(microsecond=0)) for t, d in slots}
            assert {run["host"] for run in done} == {os.uname().nodename}
            assert {run["worker"] for run in done} <= {f"worker {w.pid}" for w in workers}
            # The same changes as one machine gets: each listed article new once per topic.
            changes = new_changes(sessions)
            assert len(changes) == len(set(changes))
            assert Counter(topic for topic, _url in changes) == {
                f"{name}-{slug}": len(site.listing_ids(slug))
                for name, site in sites.items()
                for slug in slugs
            }
            # Politeness, from each site's own log: one crawl of a site at a time, cluster-wide
            # (every request the site answered falls in exactly one of its runs, and its runs
            # never overlap).
            for name, site in sites.items():
                assert len(site.requests) > 50
                spans = sorted(
                    (run["started_at"].timestamp(), run["finished_at"].timestamp())
                    for run in done
                    if run["topic"].startswith(f"{name}-")
                )
                assert all(a[1] <= b[0] for a, b in pairwise(spans))
                for request in site.requests:
                    inside = [
                        span
                        for span in spans
                        if span[0] <= request.received_at and request.answered_at <= span[1]
                    ]
                    assert len(inside) == 1, (request, spans)
        finally:
            engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_killed_mid_crawl_has_its_job_run_again_with_no_effect_twice(
    tmp_path: Path, postgres_url: str, procs: list[Proc]
) -> None:
    upgrade(postgres_url)
    with (
        FixtureSite.generate(ARTICLES, topics=("berita",), multipage_every=0, latency=0.4) as site,
        mail_server() as smtp,
    ):
        config = tmp_path / "topicwatch.toml"
        topics = [("berita", f"{site.base_url}/topic/berita", "1h")]
        config.write_text(queue_config(postgres_url, topics, smtp=smtp))
        engine = make_engine(postgres_url)
        sessions = session_factory(engine)
        try:
            workers = [start(procs, config, tmp_path, "worker", "--concurrency", "1")]
            workers.append(start(procs, config, tmp_path, "worker", "--concurrency", "1"))
            start(procs, config, tmp_path, "run")

            def half_way() -> dict[str, Any] | None:
                going = [run for run in runs(sessions) if run["status"] == "running"]
                # Outcomes are written in batches while the crawl goes on: some, not all.
                if going and going[0]["worker"] and 0 < len(new_changes(sessions)) < ARTICLES:
                    return going[0]
                return None

            first = wait_for(half_way, 60, "a crawl half-way", procs)
            victim = next(w for w in workers if first["worker"] == f"worker {w.pid}")
            victim.kill()
            survivor = next(w for w in workers if w is not victim)

            def retried() -> list[dict[str, Any]] | None:
                done = [run for run in runs(sessions) if run["job_id"] == first["job_id"]]
                finished = [run for run in done if run["status"] != "running"]
                return done if len(finished) == 2 else None

            both = wait_for(retried, 60, "the job to run again", procs)
            interrupted = next(run for run in both if run["id"] == first["id"])
            again = next(run for run in both if run["id"] != first["id"])
            assert interrupted["status"] == "failed"
            assert interrupted["message"].startswith("interrupted: its worker stopped answering")
            assert f"on {os.uname().nodename} (worker {victim.pid})" in interrupted["message"]
            assert again["status"] == "ok"
            assert again["worker"] == f"worker {survivor.pid}"

            def all_sent() -> bool:
                with read_session(sessions) as session:
                    statuses = list(session.scalars(select(Alert.status)))
                return len(statuses) == ARTICLES and set(statuses) == {"sent"}

            wait_for(all_sent, 60, "every alert sent", procs)
            changes = new_changes(sessions)
            assert len(changes) == len(set(changes)) == ARTICLES
            mailed = Counter(
                url
                for received in smtp.received
                for url in set(re.findall(r"http://127\.0\.0\.1:\d+/\S+", plain(received)))
                if "/topic/" not in url
            )
            assert set(mailed) == {url for _t, url in changes}
            assert set(mailed.values()) == {1}, mailed
        finally:
            engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_stopped_worker_takes_no_new_job_and_records_the_crawl_it_cut(
    tmp_path: Path, postgres_url: str, procs: list[Proc]
) -> None:
    upgrade(postgres_url)
    with FixtureSite.generate(16, topics=("satu", "dua"), multipage_every=0, latency=0.25) as site:
        config = tmp_path / "topicwatch.toml"
        topics = [(slug, f"{site.base_url}/topic/{slug}", "1h") for slug in ("satu", "dua")]
        config.write_text(queue_config(postgres_url, topics, grace="1s"))
        engine = make_engine(postgres_url)
        sessions = session_factory(engine)
        try:
            leader = start(procs, config, tmp_path, "run")
            # Both topics are of one site: the second job waits while the first runs.
            wait_for(lambda: len(DEFERRED.findall(leader.log())) == 2, 60, "two jobs", procs)
            worker = start(procs, config, tmp_path, "worker")
            wait_for(
                lambda: any(r["status"] == "running" and r["worker"] for r in runs(sessions)),
                60,
                "a crawl",
                procs,
            )
            began = time.monotonic()
            assert worker.stop() == 0, worker.tail()
            assert time.monotonic() - began < 15
            [run] = runs(sessions)
            assert run["status"] == "failed"
            assert run["message"].startswith(
                f"stopped at the shutdown of worker {worker.pid} on {os.uname().nodename}"
            )
            waiting = queue_overview(sessions).jobs
            assert [(job.status, job.worker_id) for job in waiting] == [("todo", None)]
        finally:
            engine.dispose()
