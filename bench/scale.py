"""Scale-out: crawl runs per minute through the PostgreSQL job queue with 1, 2, 4… workers.

    .venv/bin/python bench/scale.py [--hosts 8] [--topics 32] [--articles 6] [--latency 0.15]
                                    [--workers 1,2,4] [--rounds 2] [--overhead-jobs 30]
                                    [--size-jobs 10000] [--workdir DIR] [--json FILE]

The tests' fixture site (``FixtureSite.generate``) is served from threads of this process on
``--hosts`` loopback addresses (127.0.0.2, 127.0.0.3, …: a site each, as far as a crawl can
tell), every answer after ``--latency`` seconds, like a distant server; ``--topics`` topic
listings of ``--articles`` articles are spread over the sites. The topics are synced into a
fresh PostgreSQL database with ``[executor] kind = "queue"``, and ``topicwatch worker``
processes (``--concurrency 1`` each) run the jobs, each crawl in a crawl process of its worker,
with the per-site lock of the queue (one crawl of a site at a time in the whole cluster).

1. **Warm-up**: one job per topic; every topic's first crawl reads its articles.
2. **Throughput**, per worker count: ``--rounds`` jobs per topic are deferred at once (the
   steady state: listing read, articles re-checked, answered 304); *runs/min* is the jobs over
   the time from the first defer to the last run's end. *scaling* is runs/min over the one
   worker's, *efficiency* that over the worker count (1.0: linear). *CPU s/run* is the CPU
   of the workers and their crawl processes over the phase, per run.
3. **Queue overhead**: with idle workers, ``--overhead-jobs`` jobs one after another (each
   deferred once the one before has ended); the time from ``defer`` returning to the run's
   row being written by the worker that took it (median, p95).
4. **Size**: ``--size-jobs`` crawl-shaped jobs deferred into a queue no worker takes; the
   rows, table and index size of ``procrastinate_jobs`` and ``procrastinate_events`` per
   10,000 jobs; and the rows left after the phases above (a worker deletes each job that
   succeeded, the leader failed ones after a week: the tables do not grow without bound).

No test checks these figures; ``bench/README.md`` holds the latest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fixture_site import FixtureSite  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from bench.throughput import fresh_database  # noqa: E402
from scheduler.config import load_config  # noqa: E402
from scheduler.queue import make_app, site_of  # noqa: E402
from storage.db import make_engine, read_session, session_factory  # noqa: E402
from storage.jobs import CRAWL_TASK  # noqa: E402
from storage.models import CrawlRun  # noqa: E402
from storage.topics import sync_topics  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
WAIT = 900.0


def build_sites(hosts: int, topics: int, articles: int, latency: float) -> list[FixtureSite]:
    per_host = [topics // hosts + (1 if h < topics % hosts else 0) for h in range(hosts)]
    newest = datetime.now(UTC) - timedelta(minutes=5)
    sites = []
    for h, count in enumerate(per_host):
        site = FixtureSite.generate(
            count * articles,
            topics=[f"topik-{h}-{n}" for n in range(count)],
            per_page=articles,
            seed=h,
            multipage_every=0,
            newest=newest,
            host=f"127.0.0.{h + 2}",
            latency=latency,
        )
        site.start()
        sites.append(site)
    return sites


def config_toml(url: str, sites: list[FixtureSite]) -> str:
    text_ = f"""[database]
url = "{url}"

[executor]
kind = "queue"
heartbeat = "5s"

[crawl]
download_delay = 0
autothrottle = false
concurrent_per_domain = 2
retry_times = 0
run_timeout = "120s"
shutdown_grace = "20s"
"""
    for site in sites:
        for slug in site.topics:
            text_ += (
                f'\n[[topic]]\nname = "{slug}"\nsources = ["{site.listing_url(slug)}"]\n'
                'every = "1h"\nallow_private_addresses = true\n'
            )
    return text_


def cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and its waited-for children, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / TICKS


def tree_cpu(pids: list[int]) -> float:
    """CPU of ``pids`` and of every living descendant (the crawl processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except OSError:
                continue
    tree, frontier = set(pids), list(pids)
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(cpu_seconds(pid) for pid in tree)


class Workers:
    def __init__(self, config: Path, count: int, workdir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("TOPICWATCH_DATABASE_URL", None)
        self.procs = []
        for n in range(count):
            log = (workdir / f"worker-{count}-{n}.log").open("ab")
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "scheduler",
                        "--config",
                        str(config),
                        "worker",
                        "--concurrency",
                        "1",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def cpu(self) -> float:
        return tree_cpu([proc.pid for proc in self.procs])

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_until(check: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.05)


async def defer(app: Any, specs: list[Any], rounds: int, queue: str = "crawl") -> list[int]:
    jobs = []
    slot = datetime.now(UTC)
    for n in range(rounds):
        for spec in specs:
            job = await app.configure_task(
                CRAWL_TASK, queue=queue, lock=f"site:{site_of(spec)}"
            ).defer_async(topic=spec.name, due_at=(slot + timedelta(microseconds=n)).isoformat())
            jobs.append(job)
    return jobs


def finished(sessions: Any, jobs: list[int]) -> tuple[int, datetime | None]:
    with read_session(sessions) as session:
        count, last = session.execute(
            select(func.count(), func.max(CrawlRun.finished_at)).where(
                CrawlRun.job_id.in_(jobs), CrawlRun.status != "running"
            )
        ).one()
    return int(count), last


def queue_size(sessions: Any) -> int:
    with read_session(sessions) as session:
        return int(session.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar_one())


def registered(sessions: Any) -> int:
    with read_session(sessions) as session:
        return int(session.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar_one())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--topics", type=int, default=32)
    parser.add_argument("--articles", type=int, default=6, help="articles per topic")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds per answer")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="jobs per topic per phase")
    parser.add_argument("--overhead-jobs", type=int, default=30)
    parser.add_argument("--size-jobs", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="topicwatch-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    counts = [int(n) for n in args.workers.split(",")]
    sites = build_sites(args.hosts, args.topics, args.articles, args.latency)
    results: dict[str, Any] = {"phases": []}
    try:
        with fresh_database("postgresql", workdir) as url:
            config_path = workdir / "topicwatch.toml"
            config_path.write_text(config_toml(url, sites))
            config = load_config(config_path)
            engine = make_engine(url)
            sessions = session_factory(engine)
            sync_topics(sessions, config.topic_specs())
            specs = config.topic_specs()
            app = make_app(url)
            loop = asyncio.new_event_loop()
            loop.run_until_complete(app.open_async())
            try:
                print(
                    f"{len(specs)} topics on {len(sites)} sites, {args.articles} articles each, "
                    f"{args.latency * 1000:.0f} ms a page; workers of --concurrency 1; "
                    f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                warm = Workers(config_path, max(counts), workdir)
                wait_until(lambda: registered(sessions) == max(counts), "workers")
                jobs = loop.run_until_complete(defer(app, specs, 1))
                wait_until(lambda: finished(sessions, jobs)[0] == len(jobs), "the warm-up")
                warm.stop()
                print(f"warm-up: {len(jobs)} first crawls done", flush=True)

                header = (
                    f"{'workers':>7}  {'runs':>5}  {'seconds':>8}  {'runs/min':>8}  "
                    f"{'scaling':>7}  {'efficiency':>10}  {'CPU s/run':>9}"
                )
                print(header)
                print("-" * len(header))
                base = None
                for count in counts:
                    workers = Workers(config_path, count, workdir)
                    wait_until(lambda count=count: registered(sessions) == count, "workers")
                    # Each worker starts its crawl process with its first job: not measured.
                    warming = loop.run_until_complete(
                        defer(app, specs[:: args.topics // args.hosts][: 2 * count], 1)
                    )
                    wait_until(lambda w=warming: finished(sessions, w)[0] == len(w), "the warm-up")
                    wait_until(lambda: queue_size(sessions) == 0, "the warm-up jobs to end")
                    cpu_before = workers.cpu()
                    began = datetime.now(UTC)
                    jobs = loop.run_until_complete(defer(app, specs, args.rounds))
                    wait_until(lambda jobs=jobs: finished(sessions, jobs)[0] == len(jobs), "runs")
                    last = finished(sessions, jobs)[1]
                    cpu = workers.cpu() - cpu_before
                    workers.stop()
                    assert last is not None
                    seconds = (last - began).total_seconds()
                    rate = len(jobs) / seconds * 60
                    base = base or rate / count  # per worker, at the first count
                    phase = {
                        "workers": count,
                        "runs": len(jobs),
                        "seconds": seconds,
                        "runs_per_minute": rate,
                        "scaling": rate / base,
                        "efficiency": rate / base / count,
                        "cpu_per_run": cpu / len(jobs),
                    }
                    results["phases"].append(phase)
                    print(
                        f"{count:>7}  {len(jobs):>5}  {seconds:>8.1f}  {rate:>8.1f}  "
                        f"{phase['scaling']:>7.2f}  {phase['efficiency']:>10.2f}  "
                        f"{phase['cpu_per_run']:>9.2f}  (load average {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )

                workers = Workers(config_path, 2, workdir)
                wait_until(lambda: registered(sessions) == 2, "workers")
                lags = []
                for n in range(args.overhead_jobs):
                    spec = specs[n % len(specs)]
                    deferred = datetime.now(UTC)
                    [job] = loop.run_until_complete(defer(app, [spec], 1))
                    deferred = max(deferred, datetime.now(UTC))

                    def started(job: int = job) -> datetime | None:
                        with read_session(sessions) as session:
                            return session.scalar(
                                select(CrawlRun.started_at).where(CrawlRun.job_id == job)
                            )

                    wait_until(lambda: started() is not None, "a run to start", 60)
                    moment = started()
                    assert moment is not None
                    lags.append(max(0.0, (moment - deferred).total_seconds()))
                    # Over (deleted) before the next: a job holds its site lock until then.
                    wait_until(lambda: queue_size(sessions) == 0, "the job to end", 120)
                workers.stop()
                lags.sort()
                median = statistics.median(lags) * 1000
                p95 = lags[int(0.95 * (len(lags) - 1))] * 1000
                results["overhead_ms"] = {"median": median, "p95": p95, "jobs": len(lags)}
                print(
                    f"\nqueue overhead, defer -> run started by an idle worker: median "
                    f"{median:.1f} ms, p95 {p95:.1f} ms ({len(lags)} jobs)"
                )

                with engine.connect() as connection:
                    left = connection.execute(
                        text(
                            "SELECT (SELECT count(*) FROM procrastinate_jobs), "
                            "(SELECT count(*) FROM procrastinate_events)"
                        )
                    ).one()
                results["rows_left"] = {"jobs": left[0], "events": left[1]}
                total_runs = sum(p["runs"] for p in results["phases"])
                print(
                    f"rows left in the queue after {total_runs + len(specs) + len(lags)} runs: "
                    f"{left[0]} jobs, {left[1]} events (each job is deleted when it succeeds)"
                )

                sizes = loop.run_until_complete(size_of_jobs(app, specs, args.size_jobs, engine))
                results["size_per_10000_jobs"] = sizes
                print(
                    f"per 10,000 waiting jobs: {sizes['jobs_rows']:.0f} job rows, "
                    f"{sizes['events_rows']:.0f} event rows; table {sizes['table_mib']:.2f} MiB, "
                    f"indexes {sizes['index_mib']:.2f} MiB, events {sizes['events_mib']:.2f} MiB"
                )
            finally:
                loop.run_until_complete(app.close_async())
                loop.close()
                engine.dispose()
    finally:
        for site in sites:
            site.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


async def size_of_jobs(app: Any, specs: list[Any], count: int, engine: Any) -> dict[str, float]:
    """Defer ``count`` crawl-shaped jobs into a queue no worker takes; sizes per 10,000."""
    slot = datetime.now(UTC)
    kwargs = [
        {"topic": specs[n % len(specs)].name, "due_at": (slot + timedelta(seconds=n)).isoformat()}
        for n in range(count)
    ]
    for start in range(0, count, 1000):
        await app.configure_task(CRAWL_TASK, queue="bench-size").batch_defer_async(
            *kwargs[start : start + 1000]
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE procrastinate_jobs"))
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'bench-size'), "
                "(SELECT count(*) FROM procrastinate_events e JOIN procrastinate_jobs j "
                "ON j.id = e.job_id WHERE j.queue_name = 'bench-size'), "
                "pg_relation_size('procrastinate_jobs'), pg_indexes_size('procrastinate_jobs'), "
                "pg_total_relation_size('procrastinate_events')"
            )
        ).one()
    scale = 10_000 / count
    mib = 1024 * 1024
    with contextlib.suppress(Exception), engine.begin() as connection:
        connection.execute(text("DELETE FROM procrastinate_jobs WHERE queue_name = 'bench-size'"))
    return {
        "jobs_rows": row[0] * scale,
        "events_rows": row[1] * scale,
        "table_mib": row[2] * scale / mib,
        "index_mib": row[3] * scale / mib,
        "events_mib": row[4] * scale / mib,
    }


if __name__ == "__main__":
    sys.exit(main())
