"""Many topics on one machine: the daemon's CPU, lateness and memory over a full cycle.

    .venv/bin/python bench/many_topics.py [--topics 200] [--hosts 10] [--every 3m]
                                          [--jitter 18s] [--cycles 1] [--db sqlite,postgresql]
                                          [--max-concurrent-runs 2] [--edits-per-minute 3]
                                          [--code DIR] [--workdir DIR] [--json FILE]

The tests' fixture site (``FixtureSite.generate``) is served from threads of this process on
``--hosts`` loopback addresses (127.0.0.2, 127.0.0.3, …: a host name each, as far as a crawl
can tell), each with ``--topics / --hosts`` topic listings of 20 articles (the newest 5
minutes old, one every 17 minutes before it). ``python -m scheduler --config F run`` watches
every topic ``--every`` with ``--jitter`` (a watch list of 1,000 topics every 15 minutes is
1.1 runs a second; 200 every 3 minutes is the same rate), at most ``--max-concurrent-runs``
at once, politeness lifted for these hosts only. Along the way ``--edits-per-minute`` times a
minute a topic gets a new article or its newest article is edited, so runs read pages again
and record changes.

The first cycle is the warm-up (every topic's first crawl reads its 20 articles); then
``--cycles`` full cycles are measured. Printed, per database:

- **CPU per run**: the crawl's own CPU (the ``topicwatch/cpu_seconds`` stat each run records;
  median, p95), the pages it fetched, and its **fixed overhead**, the intercept of CPU
  against pages fetched (least squares, given 30 runs or more with three page counts or
  more); and *all in*: the CPU of the daemon and every crawl
  process, started ones included, over the window, per run finished in it;
- the daemon's and its crawl processes' CPU as a **share of one core** over the window;
- runs started **late** (more than the daemon's threshold after they were due: a quarter of
  the interval, at least 5 s), and the lag of all runs (median, p95, max);
- runs **skipped or coalesced**: two starts of a topic more than 1.5 intervals (plus jitter)
  apart, and APScheduler's own warnings of runs skipped or missed;
- **RSS** of the daemon and its crawl processes every ``--sample-every`` seconds, and the
  growth from the start of the window to its highest sample.

``--code DIR`` runs the daemon from another checkout of topicwatch (with this virtualenv),
to compare releases on the same site: only the all-in figures exist for code that records
no ``topicwatch/cpu_seconds``. The exit code is 1 when the daemon failed (exited, did not
exit 0 on SIGTERM) or a run ended other than ok or partial.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fixture_site import FixtureSite  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench.daemon_memory import DaemonProcess  # noqa: E402
from bench.throughput import fresh_database  # noqa: E402
from scheduler.config import parse_duration  # noqa: E402
from storage.db import make_engine, read_session, session_factory  # noqa: E402
from storage.models import CrawlRun, Topic  # noqa: E402

ARTICLES_PER_TOPIC = 20
CPU_STAT = "topicwatch/cpu_seconds"
LATE_SHARE, LATE_MINIMUM = 0.25, 5.0  # scheduler.daemon's threshold of a late run
TICKS = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT = 180.0
APSCHEDULER_SKIPS = re.compile(rb"maximum number of running instances reached|was missed by")


# -- the site ------------------------------------------------------------------------------


def topic_slug(host: int, n: int) -> str:
    return f"topik-{host}-{n}"


def build_sites(hosts: int, topics: int) -> list[FixtureSite]:
    """``hosts`` sites on 127.0.0.2…, ``topics`` listings of 20 articles spread over them."""
    per_host = [topics // hosts + (1 if h < topics % hosts else 0) for h in range(hosts)]
    newest = datetime.now(UTC) - timedelta(minutes=5)
    sites = []
    for h, count in enumerate(per_host):
        slugs = [topic_slug(h, n) for n in range(count)]
        site = FixtureSite.generate(
            count * ARTICLES_PER_TOPIC,
            topics=slugs,
            per_page=ARTICLES_PER_TOPIC,
            seed=h,
            multipage_every=0,
            newest=newest,
            host=f"127.0.0.{h + 2}",
        )
        site.start()
        sites.append(site)
    return sites


def topic_sources(sites: list[FixtureSite]) -> list[tuple[str, str]]:
    return [(slug, site.listing_url(slug)) for site in sites for slug in site.topics]


def edit_somewhere(sites: list[FixtureSite], rng: random.Random, round_: int) -> None:
    """One site change: a new article on a topic, or an edit of a topic's newest article
    (which the topic re-checks at every run), in turns."""
    site = rng.choice(sites)
    slug = rng.choice(site.topics)
    if round_ % 2:
        site.add_article(topics=[slug], section="nasional", words=400)
    else:
        newest = site.listing_ids(slug)[0]
        site.edit_body(newest, insert_sentence=f"Pembaruan ke-{round_}: situasi terkini.")


# -- the daemon ------------------------------------------------------------------------------


def config_toml(database_url: str, sources: list[tuple[str, str]], args: argparse.Namespace) -> str:
    text = f"""[database]
url = "{database_url}"

[crawl]
download_delay = 0
autothrottle = false
retry_times = 0
download_timeout = "30s"
run_timeout = "120s"
shutdown_grace = "20s"
max_concurrent_runs = {args.max_concurrent_runs}

[alerts]
dispatch_every = "1m"
"""
    for name, source in sources:
        text += (
            f'\n[[topic]]\nname = "{name}"\nsources = ["{source}"]\n'
            f'every = "{args.every}"\njitter = "{args.jitter}"\nallow_private_addresses = true\n'
        )
    return text


class Daemon(DaemonProcess):
    """The daemon (:class:`bench.daemon_memory.DaemonProcess`), with its crawl processes'
    CPU and memory."""

    def children(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat is not None and int(stat[1]) == self.popen.pid:
                    found.append(int(entry.name))
        return found

    def cpu(self) -> float:
        """CPU seconds of the daemon, its finished children and its living ones."""
        stat = _stat(self.popen.pid)
        if stat is None:
            return 0.0
        ticks = sum(int(stat[i]) for i in (11, 12, 13, 14))
        for child in self.children():
            child_stat = _stat(child)
            if child_stat is not None:
                ticks += sum(int(child_stat[i]) for i in (11, 12, 13, 14))
        return ticks / TICKS

    def rss(self) -> tuple[int, int]:
        """Resident KiB of the daemon, and of its crawl processes together."""
        return _rss(self.popen.pid), sum(_rss(child) for child in self.children())


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE)
    return int(match[1]) if match else 0


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Run:
    topic: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    due_at: datetime | None
    pages: int
    cpu: float | None


def runs_of(url: str) -> list[Run]:
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        with read_session(sessions) as session:
            rows = session.execute(
                select(CrawlRun, Topic.name).join(Topic, Topic.id == CrawlRun.topic_id)
            )
            return [
                Run(
                    name,
                    run.status,
                    _aware(run.started_at),
                    _aware(run.finished_at),
                    _aware(getattr(run, "due_at", None)),
                    int(run.pages_fetched or 0),
                    _float((run.stats or {}).get(CPU_STAT)),
                )
                for run, name in rows
            ]
    finally:
        engine.dispose()


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


@dataclass
class Sample:
    elapsed: float
    daemon_kib: int
    processes_kib: int

    @property
    def total_kib(self) -> int:
        return self.daemon_kib + self.processes_kib


@dataclass
class Result:
    db: str
    code: str
    topics: int
    hosts: int
    every: float
    jitter: float
    window: float = 0.0
    runs: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    cpu_median: float | None = None
    cpu_p95: float | None = None
    fixed_overhead: float | None = None
    cpu_per_page: float | None = None
    pages_median: float | None = None
    all_in_per_run: float | None = None
    core_share: float | None = None
    late: int = 0
    lag_median: float | None = None
    lag_p95: float | None = None
    lag_max: float | None = None
    skipped: int = 0
    scheduler_skips: int = 0
    samples: list[Sample] = field(default_factory=list)
    growth: float | None = None
    exit_code: int | None = None
    processes_started: int = 0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def least_squares(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """Intercept and slope of ``ys`` against ``xs``."""
    if len(xs) < 30 or len(set(xs)) < 3:
        return None  # too few runs, or too alike, for the line to mean anything
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return mean_y - slope * mean_x, slope


def upgrade_with(code: Path, config: Path) -> None:
    """Give the configured database the schema of the checkout ``code`` (its own
    ``db upgrade``), so that another release's daemon runs on a schema it knows."""
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "--config", str(config), "db", "upgrade"],
        cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"db upgrade of {code} failed:\n{done.stderr}")


def measure(args: argparse.Namespace, kind: str, code: Path, workdir: Path) -> Result:
    every, jitter = parse_duration(args.every), parse_duration(args.jitter)
    result = Result(kind, str(code), args.topics, args.hosts, every, jitter)
    rng = random.Random(0)
    with contextlib.ExitStack() as stack:
        sites = build_sites(args.hosts, args.topics)
        for site in sites:
            stack.callback(site.close)
        url = stack.enter_context(fresh_database(kind, workdir, upgraded=False))
        config = workdir / f"topicwatch-{kind}.toml"
        config.write_text(config_toml(url, topic_sources(sites), args), encoding="utf-8")
        upgrade_with(code, config)
        log = workdir / f"daemon-{kind}.log"
        log.write_bytes(b"")
        daemon = Daemon(config, log, code)
        try:
            began = time.monotonic()
            print(f"{kind}: warming up ({args.every} and every topic's first run)", flush=True)
            warm_until = began + every + jitter
            while time.monotonic() < warm_until or len(_ran(url)) < args.topics:
                _check(daemon, log, began, limit=every * 4)
                time.sleep(2)
            window_start = datetime.now(UTC)
            cpu_start, t0 = daemon.cpu(), time.monotonic()
            pids_start = set(daemon.children())
            print(f"{kind}: measuring {args.cycles} cycle(s)", flush=True)
            edits = 0
            next_edit = t0
            next_sample = t0
            started = set(pids_start)
            while time.monotonic() < t0 + args.cycles * every:
                now = time.monotonic()
                _check(daemon, log, began, limit=float("inf"))
                started.update(daemon.children())
                if now >= next_sample:
                    result.samples.append(Sample(now - t0, *daemon.rss()))
                    next_sample += args.sample_every
                if args.edits_per_minute and now >= next_edit:
                    edits += 1
                    edit_somewhere(sites, rng, edits)
                    next_edit += 60.0 / args.edits_per_minute
                time.sleep(0.5)
            cpu_end, t1 = daemon.cpu(), time.monotonic()
            result.samples.append(Sample(t1 - t0, *daemon.rss()))
            window_end = datetime.now(UTC)
            result.processes_started = len(started - pids_start)
        finally:
            result.exit_code = daemon.stop(STOP_TIMEOUT)
        log_bytes = log.read_bytes()
        runs = runs_of(url)
    result.window = t1 - t0
    analyse(result, runs, window_start, window_end, cpu_end - cpu_start, log_bytes)
    return result


def _ran(url: str) -> set[str]:
    return {run.topic for run in runs_of(url) if run.status != "running"}


def _check(daemon: Daemon, log: Path, began: float, *, limit: float) -> None:
    code = daemon.popen.poll()
    if code is not None:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise SystemExit(f"The daemon exited with code {code}:\n" + "\n".join(tail))
    if time.monotonic() - began > limit:
        daemon.stop(STOP_TIMEOUT)
        raise SystemExit("The warm-up did not end: not every topic ran within four cycles.")


def analyse(
    result: Result,
    runs: list[Run],
    start: datetime,
    end: datetime,
    cpu: float,
    log: bytes,
) -> None:
    window = [r for r in runs if start <= r.started_at < end]
    finished = [r for r in runs if r.finished_at is not None and start <= r.finished_at < end]
    result.runs = len(window)
    result.statuses = dict(Counter(r.status for r in window))
    costs = [(r.pages, r.cpu) for r in window if r.cpu is not None and r.status != "running"]
    if costs:
        result.cpu_median = statistics.median(c for _, c in costs)
        result.cpu_p95 = percentile([c for _, c in costs], 0.95)
        result.pages_median = statistics.median(p for p, _ in costs)
        fit = least_squares([float(p) for p, _ in costs], [c for _, c in costs])
        if fit is not None:
            result.fixed_overhead, result.cpu_per_page = fit
    if finished:
        result.all_in_per_run = cpu / len(finished)
    result.core_share = cpu / result.window if result.window else None
    late_after = max(LATE_SHARE * result.every, LATE_MINIMUM)
    lags = [(r.started_at - r.due_at).total_seconds() for r in window if r.due_at is not None]
    if lags:
        result.late = sum(1 for lag in lags if lag > late_after)
        result.lag_median = statistics.median(lags)
        result.lag_p95 = percentile(lags, 0.95)
        result.lag_max = max(lags)
    by_topic: dict[str, list[datetime]] = defaultdict(list)
    for run in runs:
        if start - timedelta(seconds=result.every * 2) <= run.started_at < end:
            by_topic[run.topic].append(run.started_at)
    gap = 1.5 * result.every + result.jitter
    for starts in by_topic.values():
        starts.sort()
        result.skipped += sum(
            1 for a, b in itertools.pairwise(starts) if (b - a).total_seconds() > gap
        )
    result.scheduler_skips = len(APSCHEDULER_SKIPS.findall(log))
    samples = result.samples
    if samples:
        base = samples[0].total_kib
        result.growth = 100.0 * (max(s.total_kib for s in samples) - base) / base


def _fmt(value: float | None, unit: str = "", digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def print_result(result: Result) -> None:
    print()
    print(
        f"{result.db}: {result.topics} topics on {result.hosts} hosts every "
        f"{result.every:g} s (jitter {result.jitter:g} s), {result.window:.0f} s measured, "
        f"code {result.code}"
    )
    rows = [
        ("runs started in the window", f"{result.runs} ({result.runs / result.window:.2f}/s)"),
        ("statuses", " ".join(f"{k}={v}" for k, v in sorted(result.statuses.items()))),
        (
            "crawl CPU per run, median / p95",
            f"{_fmt(result.cpu_median, ' s')} / {_fmt(result.cpu_p95, ' s')}",
        ),
        ("pages fetched per run, median", _fmt(result.pages_median, "", 0)),
        (
            "fixed overhead per run (intercept)",
            f"{_fmt(result.fixed_overhead, ' s')} (+{_fmt(result.cpu_per_page, ' s', 4)} a page)"
            if result.fixed_overhead is not None
            else "- (every run fetched as many pages: at most the median above)",
        ),
        ("all-in CPU per run (daemon + processes)", _fmt(result.all_in_per_run, " s")),
        (
            "share of one core",
            _fmt(None if result.core_share is None else result.core_share * 100, " %", 1),
        ),
        ("crawl processes started in the window", str(result.processes_started)),
        (
            "late runs (lag median / p95 / max)",
            f"{result.late} ({_fmt(result.lag_median, ' s', 1)} / "
            f"{_fmt(result.lag_p95, ' s', 1)} / {_fmt(result.lag_max, ' s', 1)})",
        ),
        (
            "skipped or coalesced runs",
            f"{result.skipped} (scheduler warnings: {result.scheduler_skips})",
        ),
        ("RSS growth, window start to its peak", _fmt(result.growth, " %", 1)),
        ("daemon exit on SIGTERM", str(result.exit_code)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"  {'RSS over time (MiB)':<{width}}  elapsed: daemon + crawl processes = total")
    step = max(1, len(result.samples) // 12)
    for sample in result.samples[::step]:
        print(
            f"  {'':<{width}}  {sample.elapsed:6.0f} s: {sample.daemon_kib / 1024:6.1f} + "
            f"{sample.processes_kib / 1024:6.1f} = {sample.total_kib / 1024:6.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--topics", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--every", default="3m")
    parser.add_argument("--jitter", default="18s")
    parser.add_argument("--cycles", type=int, default=1, help="measured cycles after the warm-up")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--max-concurrent-runs", type=int, default=2)
    parser.add_argument("--edits-per-minute", type=float, default=3.0)
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout the daemon runs from")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= 200 or args.topics < args.hosts:
        parser.error("--hosts must be 1-200 and --topics at least --hosts")
    results = []
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            workdir = args.workdir.resolve()
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tw-many-")))
        for kind in args.db.split(","):
            result = measure(args, kind.strip(), args.code.resolve(), workdir)
            print_result(result)
            results.append(result)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], default=str, indent=1))
    bad = [r for r in results if r.exit_code != 0 or set(r.statuses) - {"ok", "partial", "running"}]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
