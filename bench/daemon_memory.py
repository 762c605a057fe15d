"""The daemon's memory over a long run: resident memory after the warm-up and at the end.

    .venv/bin/python bench/daemon_memory.py [--runs 200] [--warmup 10] [--sample-every 20]
                                            [--topics 3] [--db sqlite|postgresql]
                                            [--database-url URL] [--max-growth 10]
                                            [--workdir DIR] [--no-smtp]

The local news site of the tests (``FixtureSite.reference_site()``) serves from a thread of
this process, and an SMTP server (aiosmtpd) receives the alert digests. ``python -m scheduler
--config F run`` runs as a real process on a config of a few topics crawled every second
(no jitter, no download delay, at most two runs at once), its log and its crawl children's
in a file. Every finished run is one summary line of that log (``topicwatch.run topic=…
run=… status=…``); the benchmark counts them and reads the daemon's own resident memory
(``VmRSS`` of ``/proc/PID/status``, not its children's) when the count reaches ``--warmup``,
every ``--sample-every`` runs and at ``--runs``. Along the way the site changes (an edited
body, a new article on two topics, a new title, an article gone 404 and back, rotated page
noise), so runs record changes and the daemon sends alerts.

Then the daemon gets SIGTERM and must exit 0. The table gives the runs, the elapsed time,
the memory at the warm-up and at the end, the growth, and the runs' statuses. The exit code
is 1 when the growth reaches ``--max-growth`` percent, when the daemon failed (exited early,
stalled, did not exit 0 on SIGTERM) or when a run did not end ``ok`` or ``partial``.

The database is SQLite in the work directory, or with ``--db postgresql`` a fresh
PostgreSQL database on the server of ``TOPICWATCH_TEST_POSTGRES`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432``), dropped at the end; ``--database-url``
names a database to use as it is (its schema is upgraded, nothing is dropped).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fixture_site import (  # noqa: E402
    LSI_TOPIC,
    REFERENCE_TOPIC,
    SEED_ARTICLE_ID,
    FixtureSite,
)
from sqlalchemy import func, select  # noqa: E402

from bench.throughput import fresh_database  # noqa: E402
from storage.db import make_engine, read_session, session_factory, upgrade  # noqa: E402
from storage.models import Alert, Change, CrawlRun  # noqa: E402

RECIPIENT = "desk@example.org"
SUMMARY = re.compile(
    rb"(?:INFO|WARNING) topicwatch\.run topic=(?P<topic>\S+) run=(?P<run>\d+) "
    rb"status=(?P<status>\w+) "
)
GOOD_STATUSES = ("ok", "partial")
# Seconds without a finished run after which the daemon counts as stalled.
STALL_TIMEOUT = 180.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 120.0
POLL = 0.2
# An article of each topic that the site changes along the way.
TIMNAS_ARTICLE_ID = 7480201
GONE_ARTICLE_ID = 7480106


class BenchmarkFailure(RuntimeError):
    """The daemon did not do what the benchmark needs: it exited, stalled or failed a run."""


# -- the daemon's config and process -----------------------------------------------------------


def topic_toml(name: str, source: str, every: str, *, smtp: bool) -> str:
    lines = [
        "[[topic]]",
        f'name = "{name}"',
        f'sources = ["{source}"]',
        f'every = "{every}"',
        "jitter = 0",
    ]
    if smtp:
        lines.append(f'alert_to = ["{RECIPIENT}"]')
    return "\n".join(lines) + "\n"


def config_toml(
    database_url: str,
    sources: list[tuple[str, str]],
    *,
    every: str,
    smtp_port: int | None,
    max_concurrent_runs: int,
) -> str:
    text_ = f"""[database]
url = "{database_url}"

[crawl]
download_delay = 0
autothrottle = false
retry_times = 0
download_timeout = "30s"
run_timeout = "60s"
shutdown_grace = "20s"
max_concurrent_runs = {max_concurrent_runs}

[alerts]
dispatch_every = "2s"
retry_backoff = "2s"
"""
    if smtp_port is not None:
        text_ += f"""
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "topicwatch <alerts@example.org>"
timeout = "10s"
"""
    topics = [
        topic_toml(name, source, every, smtp=smtp_port is not None) for name, source in sources
    ]
    return text_ + "\n" + "\n".join(topics)


def resident_kib(pid: int) -> int:
    """The process's resident set size in KiB (``VmRSS``), the process alone."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    if match is None:
        raise BenchmarkFailure(f"/proc/{pid}/status has no VmRSS line; is the process gone?")
    return int(match[1])


class DaemonProcess:
    """``python -m scheduler --config F run``, its log (and its children's) in a file."""

    def __init__(self, config: Path, log: Path, code: Path = ROOT) -> None:
        """Start the daemon of the checkout ``code`` (this one by default)."""
        self.log_path = log
        inherited = ("SENTRY_DSN", "TOPICWATCH_DATABASE_URL", "TOPICWATCH_CONFIG")
        environment = {k: v for k, v in os.environ.items() if k not in inherited}
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(code), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        with log.open("ab") as handle:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "scheduler", "--config", str(config), "run"],
                cwd=code,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        self._offset = 0
        self._partial = b""
        self.statuses: list[str] = []

    @property
    def pid(self) -> int:
        return self.popen.pid

    def finished_runs(self) -> int:
        """How many summary lines the log holds; reads only what was added since last time."""
        with self.log_path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            match = SUMMARY.search(line)
            if match is not None:
                self.statuses.append(match["status"].decode())
        return len(self.statuses)

    def tail(self, lines: int = 40) -> str:
        text_ = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text_.splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then wait; the exit code, or None when it had to be killed."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=30)


# -- the site's changes ----------------------------------------------------------------------


def change_site(site: FixtureSite, round_: int) -> None:
    """One round of edits that the next runs record as changes (and the daemon alerts)."""
    site.edit_body(SEED_ARTICLE_ID, insert_sentence=f"Pembaruan ke-{round_}: situasi terkini.")
    site.add_article(topics=[REFERENCE_TOPIC], section="internasional", words=300)
    site.add_article(topics=[LSI_TOPIC], section="sport", words=300)
    site.set_title(TIMNAS_ARTICLE_ID, f"Timnas Indonesia Gelar Latihan Tertutup, Sesi {round_}")
    site.set_status(GONE_ARTICLE_ID, 404 if round_ % 2 else 200)
    site.rotate_noise()


# -- databases ---------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, url: str | None, workdir: Path) -> Iterator[str]:
    """The URL of the benchmark's database, with the schema in place."""
    if url is not None:
        upgrade(url)
        yield url
        return
    with fresh_database(kind, workdir) as fresh:
        yield fresh


@dataclass
class Recorded:
    """What the database holds after the run."""

    runs: Counter[str] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)


def recorded(url: str) -> Recorded:
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        result = Recorded()
        with read_session(sessions) as session:
            for column, counter in (
                (CrawlRun.status, result.runs),
                (Change.kind, result.changes),
                (Alert.status, result.alerts),
            ):
                for value, count in session.execute(select(column, func.count()).group_by(column)):
                    counter[str(value)] = int(count)
        return result
    finally:
        engine.dispose()


# -- the benchmark -----------------------------------------------------------------------------


@dataclass
class Sample:
    runs: int
    elapsed: float
    rss_kib: int


@dataclass
class Result:
    samples: list[Sample] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    warmup: Sample | None = None
    end: Sample | None = None
    exit_code: int | None = None
    failure: str | None = None
    recorded: Recorded | None = None
    mails: int = 0
    change_rounds: int = 0
    elapsed: float = 0.0

    @property
    def growth(self) -> float | None:
        if self.warmup is None or self.end is None:
            return None
        return 100.0 * (self.end.rss_kib - self.warmup.rss_kib) / self.warmup.rss_kib


def topic_sources(site: FixtureSite, count: int) -> list[tuple[str, str]]:
    """``count`` topics over the site's two Tribunnews-like listings (more share them)."""
    listings = [("konflik", REFERENCE_TOPIC), ("timnas", LSI_TOPIC)]
    sources = []
    for n in range(count):
        name, slug = listings[n % len(listings)]
        suffix = "" if n < len(listings) else f"-{n // len(listings) + 1}"
        sources.append((name + suffix, site.listing_url(slug)))
    return sources


def run_benchmark(args: argparse.Namespace, workdir: Path, db_url: str) -> Result:
    result = Result()
    with contextlib.ExitStack() as stack:
        site = stack.enter_context(FixtureSite.reference_site())
        smtp: Any = None
        if not args.no_smtp:
            from mailserver import mail_server

            smtp = stack.enter_context(mail_server())
        config = workdir / "topicwatch.toml"
        config.write_text(
            config_toml(
                db_url,
                topic_sources(site, args.topics),
                every=args.every,
                smtp_port=None if smtp is None else smtp.port,
                max_concurrent_runs=args.max_concurrent_runs,
            ),
            encoding="utf-8",
        )
        log = workdir / "daemon.log"
        log.write_bytes(b"")
        daemon = DaemonProcess(config, log)
        started = time.monotonic()
        try:
            watch(daemon, site, args, result, started)
        except BenchmarkFailure as exc:
            result.failure = str(exc)
        finally:
            result.elapsed = time.monotonic() - started
            result.exit_code = daemon.stop()
            daemon.finished_runs()
            result.statuses = Counter(daemon.statuses)
            if result.failure is not None or result.exit_code != 0:
                print(f"The daemon's log ({log}) ends with:\n{daemon.tail()}\n", file=sys.stderr)
        if smtp is not None:
            result.mails = len(smtp.to(RECIPIENT))
    result.recorded = recorded(db_url)
    return result


def watch(
    daemon: DaemonProcess,
    site: FixtureSite,
    args: argparse.Namespace,
    result: Result,
    started: float,
) -> None:
    """Follow the daemon until ``args.runs`` runs finished; sample its memory on the way."""
    deadline = started + args.timeout
    first_change = max(1, args.warmup // 2)
    next_change = first_change
    last_count, last_progress = 0, started
    next_sample = args.warmup
    while True:
        count = daemon.finished_runs()
        now = time.monotonic()
        code = daemon.popen.poll()
        if code is not None:
            raise BenchmarkFailure(f"The daemon exited with code {code} after {count} run(s).")
        if count != last_count:
            last_count, last_progress = count, now
        if count >= next_sample or count >= args.runs:
            sample = Sample(count, now - started, resident_kib(daemon.pid))
            result.samples.append(sample)
            if result.warmup is None:
                result.warmup = sample
            while next_sample <= count:
                next_sample += args.sample_every
            if count >= args.runs:
                result.end = sample
                return
        if count >= next_change:
            result.change_rounds += 1
            change_site(site, result.change_rounds)
            while next_change <= count:
                next_change += args.change_every
        if count == 0 and now - started > START_TIMEOUT:
            raise BenchmarkFailure(f"No run finished within {START_TIMEOUT:g} s of the start.")
        if now - last_progress > STALL_TIMEOUT:
            raise BenchmarkFailure(
                f"No run finished for {STALL_TIMEOUT:g} s; {count} run(s) finished in all."
            )
        if now > deadline:
            raise BenchmarkFailure(
                f"Only {count} of {args.runs} runs finished within {args.timeout:g} s."
            )
        time.sleep(POLL)


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def print_table(result: Result, args: argparse.Namespace, db_kind: str, out: IO[str]) -> None:
    print(
        f"Daemon memory: {args.runs} runs of {args.topics} topics every {args.every}, "
        f"at most {args.max_concurrent_runs} at once, {db_kind}, {os.cpu_count()} CPUs",
        file=out,
    )
    header = f"{'runs':>6}{'elapsed s':>11}{'RSS MiB':>10}{'vs warm-up':>12}"
    print(header, file=out)
    print("-" * len(header), file=out)
    base = result.warmup.rss_kib if result.warmup is not None else None
    for sample in result.samples:
        versus = f"{100.0 * (sample.rss_kib - base) / base:+.1f}%" if base else ""
        print(
            f"{sample.runs:>6}{sample.elapsed:>11.1f}{mib(sample.rss_kib):>10}{versus:>12}",
            file=out,
        )
    print(file=out)
    rows: list[tuple[str, str]] = [
        ("runs finished by the stop", str(sum(result.statuses.values())))
    ]
    rows.append(("elapsed", f"{result.elapsed:.1f} s"))
    if result.warmup is not None:
        rows.append(
            (
                f"RSS at run {result.warmup.runs}",
                f"{mib(result.warmup.rss_kib)} MiB ({result.warmup.rss_kib} KiB)",
            )
        )
    if result.end is not None:
        rows.append(
            (
                f"RSS at run {result.end.runs}",
                f"{mib(result.end.rss_kib)} MiB ({result.end.rss_kib} KiB)",
            )
        )
    growth = result.growth
    if growth is not None:
        rows.append(("growth", f"{growth:+.2f}% (limit {args.max_growth:g}%)"))
    rows.append(("run statuses (log)", counts_text(result.statuses)))
    if result.recorded is not None:
        rows.append(("run statuses (database)", counts_text(result.recorded.runs)))
        rows.append(("changes recorded", counts_text(result.recorded.changes)))
        rows.append(("alerts", counts_text(result.recorded.alerts)))
    rows.append(("site change rounds", str(result.change_rounds)))
    if not args.no_smtp:
        rows.append(("digests received", str(result.mails)))
    rows.append(
        ("daemon exit on SIGTERM", "killed" if result.exit_code is None else str(result.exit_code))
    )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}", file=out)


def counts_text(counts: Counter[str]) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(counts.items())) or "none"


def verdict(result: Result, args: argparse.Namespace) -> list[str]:
    """What went wrong, one sentence each; empty when the benchmark passed."""
    problems = []
    if result.failure is not None:
        problems.append(result.failure)
    if result.exit_code != 0:
        shown = "was killed" if result.exit_code is None else f"exited {result.exit_code}"
        problems.append(f"The daemon {shown} on SIGTERM, not 0.")
    bad = {s: n for s, n in result.statuses.items() if s not in GOOD_STATUSES}
    if bad:
        problems.append(f"Runs ended {counts_text(Counter(bad))}; every run should end ok.")
    growth = result.growth
    if growth is not None and growth >= args.max_growth:
        problems.append(
            f"The daemon's resident memory grew {growth:.1f}% from run "
            f"{result.warmup.runs if result.warmup else '?'} to run "
            f"{result.end.runs if result.end else '?'} (limit {args.max_growth:g}%)."
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200, help="finished runs to wait for")
    parser.add_argument("--warmup", type=int, default=10, help="run at which memory is the base")
    parser.add_argument("--sample-every", type=int, default=20, help="runs between samples")
    parser.add_argument("--topics", type=int, default=3, help="topics in the config")
    parser.add_argument("--every", default="1s", help="each topic's schedule")
    parser.add_argument("--max-concurrent-runs", type=int, default=2)
    parser.add_argument("--change-every", type=int, default=25, help="runs between site edits")
    parser.add_argument("--max-growth", type=float, default=10.0, help="percent; at or above fails")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--database-url", help="use this database as it is")
    parser.add_argument("--no-smtp", action="store_true", help="no SMTP server, no digests")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds for all runs")
    parser.add_argument("--workdir", type=Path, help="keep the config, log and database here")
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.runs:
        parser.error("--warmup must be at least 1 and below --runs")
    if args.sample_every < 1 or args.change_every < 1 or args.topics < 1:
        parser.error("--sample-every, --change-every and --topics must be at least 1")

    db_kind = "database " + args.database_url.split(":", 1)[0] if args.database_url else args.db
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            workdir = args.workdir.resolve()
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tw-mem-")))
        db_url = stack.enter_context(database(args.db, args.database_url, workdir))
        result = run_benchmark(args, workdir, db_url)
    print_table(result, args, db_kind, sys.stdout)
    problems = verdict(result, args)
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print("PASS")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
