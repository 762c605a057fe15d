"""The ``topicwatch`` command: each subcommand is a few lines over a library call.

Errors that an operator can fix (a wrong config value, an outdated schema, an unreachable
database or SMTP server, an unknown topic or URL) are printed as one line,
``topicwatch: error: …``, with exit status 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.channels import Channel, ChannelError, send_to_channel
from alerts.diff import diff_text, has_changes, word_diff
from alerts.dispatcher import (
    VIEW_STATUSES,
    DispatchReport,
    dispatch,
    list_alerts,
    requeue_failed,
)
from alerts.feed import DEFAULT_ENTRIES, build_feed
from alerts.smtp import DeliveryError, send_test_email
from crawler.observability import (
    PROGRESS_ENV,
    PROGRESS_TERMINAL,
    configure_logging,
    format_fields,
    init_sentry,
    package_version,
    utc_stamp,
)
from crawler.urls import canonical_url
from scheduler.config import (
    DEFAULT_PATH,
    Config,
    ConfigError,
    TopicNotConfigured,
    format_size,
    load_config,
    parse_duration,
)
from scheduler.daemon import next_due, run_daemon, schedule_of
from scheduler.executor import queue_lines
from scheduler.runner import RUN_EVENT, RunOutcome, run_crawl
from storage.credentials import mask_credentials
from storage.daemons import DaemonRecord, running_daemon
from storage.db import (
    DatabaseUnavailable,
    SchemaOutdated,
    check_exists,
    check_schema,
    head_revision,
    make_engine,
    safe_url,
    session_factory,
    upgrade,
)
from storage.health import HEALTHY, Health
from storage.history import (
    ArticleHistory,
    ChangeEntry,
    UnknownArticle,
    VersionRecord,
    article_history,
    list_changes,
    similar_urls,
)
from storage.live import release
from storage.retention import prune
from storage.runs import RunRecord, TopicStatus, topic_status
from storage.spec import RECORDED_KINDS, TopicSpec
from storage.topics import UnknownTopic, sync_topics, topic_names
from web.address import ExposureRefused, WebUnavailable

PROG = "topicwatch"
EXAMPLE_CONFIG = Path(__file__).resolve().parent / "topicwatch.example.toml"


class CommandError(Exception):
    """A command cannot do what was asked; the message says why."""


# The errors an operator can act on: one line, no traceback.
OPERATOR_ERRORS: tuple[type[BaseException], ...] = (
    CommandError,
    ConfigError,
    TopicNotConfigured,
    UnknownTopic,
    UnknownArticle,
    SchemaOutdated,
    DatabaseUnavailable,
    DeliveryError,
    ExposureRefused,
    WebUnavailable,
)


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class Context:
    """What every command gets: the parsed arguments and, loaded on first use, the config."""

    args: argparse.Namespace
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.args.config)
            configure_logging(
                getattr(self.args, "log_format", None) or self._config.logging.format,
                self._config.logging.level,
            )
        return self._config

    @contextmanager
    def database(self) -> Iterator[sessionmaker[Session]]:
        """Sessions on the configured database, which must exist (a command never creates
        one at a mistyped path) with its schema up to date."""
        with self.engine() as engine:
            yield session_factory(engine)

    @contextmanager
    def engine(self) -> Iterator[Engine]:
        """The engine of :meth:`database`."""
        config = self.config
        upgrade_command = config.command("db", "upgrade")
        check_exists(config.database.url, upgrade_command=upgrade_command)
        engine = make_engine(config.database.url)
        try:
            check_schema(engine, upgrade_command=upgrade_command)
            yield engine
        finally:
            engine.dispose()

    @property
    def width(self) -> int | None:
        """How wide a table may be: the terminal's width, unless ``--wide`` (or output that
        goes to a pipe or file, unless ``COLUMNS`` is set)."""
        if getattr(self.args, "wide", False):
            return None
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return int(columns)
        if sys.stdout.isatty():
            return shutil.get_terminal_size().columns
        return None

    def check_topic(self, sessions: sessionmaker[Session], name: str | None) -> None:
        """Refuse a ``--topic`` that neither the configuration nor the database knows."""
        if name is None:
            return
        configured = [spec.name for spec in self.config.topics]
        if name in configured:
            return
        stored = topic_names(sessions)
        if name in stored:
            return
        known = list(dict.fromkeys([*configured, *stored]))
        raise CommandError(
            f"No topic by the name of {name!r} is defined in {self.config.path} or known to "
            f"the database (topics: {', '.join(known) or 'none'})"
        )


def _utc(moment: datetime | None) -> str:
    return "-" if moment is None else utc_stamp(moment)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else _utc(moment)


ELLIPSIS = "…"
# A column cut to fit the terminal keeps at least this many characters.
MIN_COLUMN = 10


def _table(
    rows: Sequence[Sequence[str]],
    header: Sequence[str],
    *,
    width: int | None = None,
    shrink: Sequence[int] = (),
) -> str:
    """``rows`` under ``header`` in columns two spaces apart. With ``width``, the columns
    named in ``shrink`` (widest first) are cut, ending in an ellipsis, until the lines fit."""
    widths = [len(title) for title in header]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    if width is not None:
        excess = sum(widths) + 2 * (len(widths) - 1) - width
        while excess > 0:
            cuttable = [i for i in shrink if widths[i] > max(MIN_COLUMN, len(header[i]))]
            if not cuttable:
                break
            widest = max(cuttable, key=lambda i: widths[i])
            others = max([widths[i] for i in cuttable if i != widest] or [0])
            floor = max(MIN_COLUMN, len(header[widest]), others, widths[widest] - excess)
            cut = max(1, widths[widest] - floor)
            widths[widest] -= cut
            excess -= cut
    lines = [header, *rows]
    return "\n".join(
        "  ".join(
            _fit(cell, size).ljust(size) for cell, size in zip(line, widths, strict=True)
        ).rstrip()
        for line in lines
    )


def _fit(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + ELLIPSIS


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _print_line(value: dict[str, Any]) -> None:
    """One JSON object on one line, as the JSON log lines are."""
    print(json.dumps(value, ensure_ascii=False))


def _dispatch_fields(report: DispatchReport) -> dict[str, int]:
    return {
        "emails": report.sent_messages,
        "sent": report.sent_alerts,
        "failed": report.failed_alerts,
        "deferred": report.deferred_alerts,
    }


def _dispatch_line(report: DispatchReport) -> str:
    return "topicwatch.alerts " + format_fields(_dispatch_fields(report))


def _since(text: str) -> datetime:
    """``--since``: a duration back from now ("1d", "6h") or an ISO date or time (UTC)."""
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected a duration like "1d" or "6h", or a date like 2026-11-26, got {text!r}'
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- commands --------------------------------------------------------------------------------


def cmd_run(ctx: Context) -> int:
    """Run the daemon in the foreground: crawl every topic on its schedule, send alerts."""
    return run_daemon(ctx.args.config, log_format=ctx.args.log_format)


def cmd_worker(ctx: Context) -> int:
    """Run crawl jobs of the job queue (with [executor] kind = "queue"), each in a crawl
    process of this machine, and deliver alerts; until SIGTERM/SIGINT."""
    from scheduler.queue import run_worker  # Procrastinate only where it is used

    config = ctx.config
    if config.executor.kind != "queue":
        raise CommandError(
            f'{config.path}: executor.kind is "{config.executor.kind}": crawl runs happen in '
            'the daemon\'s own processes; set kind = "queue" (PostgreSQL) to run workers'
        )
    fmt = ctx.args.log_format or config.logging.format
    configure_logging(fmt, config.logging.level)
    init_sentry("worker")
    return run_worker(
        config,
        concurrency=ctx.args.concurrency,
        queues=ctx.args.queue or None,
        log_format=fmt,
    )


def cmd_crawl(ctx: Context) -> int:
    """Crawl one topic now, print the run's summary line, then send pending alerts."""
    config = ctx.config
    config.topic(ctx.args.topic)
    init_sentry("cli")
    smtp = config.smtp_settings()
    as_json = (ctx.args.log_format or config.logging.format) == "json"
    with ctx.database() as sessions:
        sync_topics(sessions, config.topic_specs())
        outcome = asyncio.run(_crawl_once(ctx, sessions))
        if as_json:
            _print_line({"logger": RUN_EVENT, **outcome.summary_fields()})
        else:
            print(outcome.summary())
        if smtp is not None or config.channels:
            release(sessions)
            report = dispatch(
                sessions,
                smtp,
                max_attempts=config.alerts.max_attempts,
                backoff=config.alerts.retry_backoff,
                max_digest_bytes=config.alerts.max_digest_bytes,
                channels=config.channels,
            )
            if as_json:
                _print_line({"logger": "topicwatch.alerts", **_dispatch_fields(report)})
            else:
                print(_dispatch_line(report))
        if smtp is None:
            pending = len(list_alerts(sessions, "pending", limit=100_000))
            print(
                f"{PROG}: alerts not sent: {config.path} has no [smtp] section"
                + (f"; {pending} alert(s) wait, pending" if pending else ""),
                file=sys.stderr,
            )
    return 0 if outcome.succeeded else 1


async def _crawl_once(ctx: Context, sessions: sessionmaker[Session]) -> RunOutcome:
    config = ctx.config
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if sys.stderr.isatty():  # the crawl process draws a live progress line there
        os.environ[PROGRESS_ENV] = PROGRESS_TERMINAL
    try:
        return await run_crawl(
            config.database.url,
            sessions,
            ctx.args.topic,
            timeout=ctx.args.timeout if ctx.args.timeout is not None else config.crawl.run_timeout,
            log_format=ctx.args.log_format or config.logging.format,
            log_level=config.logging.level,
            stop=stop,
            stop_message="interrupted",
            withheld=config.secret_variables(),
        )
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def cmd_status(ctx: Context) -> int:
    """Whether a daemon serves the database; per topic: the last run, how late it started,
    its counts, why it failed, when the next run is due, failures in a row."""
    config = ctx.config
    now = datetime.now(UTC)
    with ctx.engine() as engine:
        sessions = session_factory(engine)
        known = {status.name: status for status in topic_status(sessions)}
        daemon = running_daemon(engine, sessions)
        queue = queue_lines(sessions, now) if config.executor.kind == "queue" else []
    entries = [_status_entry(spec, known.get(spec.name), daemon, now) for spec in config.topics]
    if ctx.args.json:
        _print_json(entries)
        return 0
    print(_daemon_line(daemon, now, config.command("run")))
    for line in queue:
        print(line)
    if not entries:
        print(f"{config.path} defines no topics.")
        return 0
    rows = []
    for entry in entries:
        last: dict[str, Any] = entry["last_run"] or {}
        next_run = entry["next_run"] or "now"
        if entry["overdue"] and entry["next_run"]:
            next_run += " (overdue)"
        rows.append(
            [
                entry["topic"],
                entry["schedule"],
                last.get("started_at") or "never",
                "-" if last.get("lag") is None else f"{last['lag']:.0f}s",
                last.get("status", "-"),
                str(last.get("articles_seen", "-")),
                str(last.get("articles_new", "-")),
                str(last.get("articles_updated", "-")),
                str(last.get("articles_removed", "-")),
                str(last.get("errors", "-")),
                next_run,
                str(entry["consecutive_failures"]),
                entry["health"]["state"],
                " ".join((entry["reason"] or entry["health"]["reason"] or "-").split()),
            ]
        )
    header = [
        "TOPIC",
        "SCHEDULE",
        "LAST RUN",
        "LAG",
        "STATUS",
        "ARTICLES",
        "NEW",
        "UPDATED",
        "REMOVED",
        "ERRORS",
        "NEXT RUN",
        "FAILURES",
        "HEALTH",
        "REASON",
    ]
    print()
    print(_table(rows, header, width=ctx.width, shrink=(0, 1, 13)))
    return 0


def _status_entry(
    spec: TopicSpec, status: TopicStatus | None, daemon: DaemonRecord | None, now: datetime
) -> dict[str, Any]:
    """One topic of ``status --json``. The next run is the daemon's own (with its jitter)
    while one serves the database; else when the schedule makes it due."""
    run = status.last_run if status else None
    due = next_due(spec, run.started_at if run else None)
    if daemon is not None and spec.name in daemon.next_runs:
        due = daemon.next_runs[spec.name]
    entry: dict[str, Any] = {
        "topic": spec.name,
        "title": spec.title,
        "schedule": schedule_of(spec),
        "last_run": None,
        "next_run": _iso(due),
        "overdue": due is None or due <= now,
        "consecutive_failures": status.consecutive_failures if status else 0,
        "last_ok_at": _iso(status.last_ok_at) if status else None,
        "reason": None,
        "health": _health_entry(status.health if status else HEALTHY),
    }
    if run is not None:
        entry["reason"] = _failure_reason(run)
        entry["last_run"] = {
            "id": run.id,
            "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "status": run.status,
            "lag": None if run.lag is None else run.lag.total_seconds(),
            "duration": None if run.duration is None else run.duration.total_seconds(),
            "message": run.message,
            **run.counts,
        }
    return entry


def _health_entry(health: Health) -> dict[str, Any]:
    """Whether the topic's crawl works (storage.health): ok or broken, and why."""
    return {
        "state": health.state,
        "problem": health.problem,
        "reason": health.reason,
        "since": _iso(health.since),
    }


def _failure_reason(run: RunRecord) -> str | None:
    """Why the run failed, or which fetches failed in a partial run; None for a good run."""
    if run.message:
        return run.message
    if run.failures:
        first = run.failures[0]
        more = f" (and {len(run.failures) - 1} more)" if len(run.failures) > 1 else ""
        return f"{first.get('url', '?')}: {first.get('reason', '?')}{more}"
    return None


def _daemon_line(daemon: DaemonRecord | None, now: datetime, start: str) -> str:
    """``Daemon: running, pid 4242 on host web1, since … (2h 5m ago)``, like ``systemctl``."""
    if daemon is None:
        return f"Daemon: not running on this database (start it with `{start}`)"
    return f"Daemon: running, {daemon.describe()} ({_ago(now - daemon.started_at)} ago)"


def _ago(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


def cmd_db_upgrade(ctx: Context) -> int:
    """Create the database schema, or upgrade it to this release's."""
    url = ctx.config.database.url
    upgrade(url)
    print(f"The database at {safe_url(url)} is at schema revision {head_revision()}.")
    return 0


def cmd_db_prune(ctx: Context) -> int:
    """Apply the topics' retention policies now: remove the texts (and raw HTML) of versions
    the policies no longer keep, and say how much space that frees."""
    with ctx.database() as sessions:
        sync_topics(sessions, ctx.config.topic_specs())
        report = prune(sessions, dry_run=ctx.args.dry_run)
    verb = "would remove" if report.dry_run else "removed"
    print(
        f"Retention {verb} the text of {report.texts} version(s) and the raw HTML of "
        f"{report.raw_html} version(s) of {report.articles} article(s): "
        f"{format_size(report.bytes_freed)} ({report.bytes_freed} bytes)"
        + (" would be freed." if report.dry_run else " freed inside the database.")
    )
    for name, count in sorted(report.per_topic.items()):
        print(f"  {name}: {count} version text(s)")
    return 0


def cmd_alerts(ctx: Context) -> int:
    """List alerts (newest first): pending and failed ones by default."""
    statuses = [ctx.args.status] if ctx.args.status else ["pending", "failed"]
    with ctx.database() as sessions:
        views = [
            view for status in statuses for view in list_alerts(sessions, status, ctx.args.limit)
        ]
    views.sort(key=lambda view: view.id, reverse=True)
    if ctx.args.json:
        _print_json(
            [
                {
                    "id": view.id,
                    "status": view.status,
                    "recipient": view.recipient,
                    "topic": view.topic,
                    "kind": view.kind,
                    "url": view.url,
                    "title": view.title,
                    "detected_at": _iso(view.detected_at),
                    "attempts": view.attempts,
                    "next_attempt_at": _iso(view.next_attempt_at),
                    "last_error": view.last_error,
                    "sent_at": _iso(view.sent_at),
                }
                for view in views
            ]
        )
        return 0
    if not views:
        print(f"No {' or '.join(statuses)} alerts.")
        return 0
    rows = [
        [
            str(view.id),
            view.status,
            view.recipient,
            view.topic,
            view.kind,
            _utc(view.detected_at),
            str(view.attempts),
            " ".join(view.title.split()) or "-",
            view.url,
            " ".join((view.last_error or "").split()),
        ]
        for view in views
    ]
    header = [
        "ID",
        "STATUS",
        "RECIPIENT",
        "TOPIC",
        "KIND",
        "DETECTED",
        "TRIES",
        "TITLE",
        "URL",
        "ERROR",
    ]
    print(_table(rows, header, width=ctx.width, shrink=(2, 3, 7, 8, 9)))
    return 0


def cmd_alerts_send(ctx: Context) -> int:
    """Send the pending alerts that are due now, as digest emails and channel messages."""
    config = ctx.config
    smtp = config.smtp_settings()
    if smtp is None and not config.channels:
        raise CommandError(f"{config.path} has no [smtp] section, so alerts cannot be sent")
    init_sentry("cli")
    with ctx.database() as sessions:
        release(sessions)
        report = dispatch(
            sessions,
            smtp,
            max_attempts=config.alerts.max_attempts,
            backoff=config.alerts.retry_backoff,
            max_digest_bytes=config.alerts.max_digest_bytes,
            channels=config.channels,
        )
    print(_dispatch_line(report))
    for error in report.errors:
        print(f"{PROG}: error: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def cmd_alerts_retry(ctx: Context) -> int:
    """Put failed alerts back in the queue, once what made them fail is fixed.

    Every failed alert, those given by id, or a topic's; the daemon's next dispatch or
    `topicwatch alerts send` sends them."""
    with ctx.database() as sessions:
        ctx.check_topic(sessions, ctx.args.topic)
        try:
            done = requeue_failed(sessions, ctx.args.ids, topic=ctx.args.topic)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
    for alert_id, status in done.left.items():
        if status == "missing":
            print(f"{PROG}: error: no alert {alert_id} is in the database", file=sys.stderr)
        else:
            print(f"{PROG}: error: alert {alert_id} is {status}, not failed", file=sys.stderr)
    if done.queued:
        print(
            f"Queued {done.queued} failed alert(s) again; the daemon's next dispatch or "
            "`topicwatch alerts send` sends them."
        )
    elif not done.left:
        print("No failed alerts.")
    return 1 if done.left else 0


def cmd_test_email(ctx: Context) -> int:
    """Send a test email through the configured SMTP server, proving the settings."""
    config = ctx.config
    smtp = config.smtp_settings()
    if smtp is None:
        raise CommandError(f"{config.path} has no [smtp] section; add one to send email")
    reply = send_test_email(smtp, ctx.args.address)
    print(f"Sent a test email to {ctx.args.address} through {smtp.server}: {reply}")
    return 0


def cmd_feed(ctx: Context) -> int:
    """Write the Atom feed of the changes of a topic, or of all topics: one entry per change."""
    args = ctx.args
    if args.limit < 1:
        raise CommandError(f"--limit must be at least 1, not {args.limit}")
    with ctx.database() as sessions:
        ctx.check_topic(sessions, args.topic)
        data = build_feed(sessions, args.topic, limit=args.limit)
    if args.output is None or args.output == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    target = Path(args.output)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(target)  # readers never see half a feed
    except OSError as exc:
        raise CommandError(f"Cannot write the feed to {target}: {exc.strerror}") from None
    return 0


def cmd_web(ctx: Context) -> int:
    """Serve the read-only web view, /metrics and /healthz without the daemon, until stopped."""
    from scheduler.webview import check_web, serve_alone

    config = ctx.config
    check_web(config, ctx.args.listen)  # before the database: a refusal is the first word
    with ctx.engine() as engine:
        return serve_alone(config, engine, listen=ctx.args.listen)


def cmd_test_notify(ctx: Context) -> int:
    """Send a test message to an Apprise URL, or to every channel the configuration names."""
    config = ctx.config
    if ctx.args.url:
        targets = [Channel(url=_apprise_url_argument(ctx.args.url))]
    else:
        targets = list(config.channels.values())
        if not targets:
            raise CommandError(
                f"{config.path} names no channel (notify, notify_env or alerts.notify); "
                "give an Apprise URL to test one"
            )
    failures = 0
    for channel in targets:
        shown = (
            channel.key if ctx.args.url is None else f"the URL {ctx.args.url.split('://')[0]}://…"
        )
        try:
            send_to_channel(
                channel.resolve(),
                channel.key,
                "topicwatch test message",
                f"This is a test message from topicwatch ({config.path}): the channel works.",
            )
        except ChannelError as exc:
            failures += 1
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            continue
        print(f"Sent a test message to {shown}")
    return 1 if failures else 0


def _apprise_url_argument(url: str) -> str:
    if "://" not in url:
        raise CommandError('expected an Apprise URL like "slack://…" or "json://host/path"')
    return url


def cmd_topics(ctx: Context) -> int:
    """List the topics the configuration defines, with their schedules and sources."""
    config = ctx.config
    if ctx.args.json:
        _print_json(
            [
                {
                    "name": spec.name,
                    "title": spec.title,
                    "schedule": schedule_of(spec),
                    "sources": [mask_credentials(source) for source in spec.sources],
                    "alert_to": list(spec.alert_to),
                    "alert_on": list(spec.alert_on),
                }
                for spec in config.topics
            ]
        )
        return 0
    if not config.topics:
        print(f"{config.path} defines no topics.")
        return 0
    rows = [
        [
            spec.name,
            spec.title,
            schedule_of(spec),
            " ".join(mask_credentials(source) for source in spec.sources),
            ", ".join(spec.alert_to) or "-",
        ]
        for spec in config.topics
    ]
    print(_table(rows, ["NAME", "TITLE", "SCHEDULE", "SOURCES", "ALERT TO"]))
    return 0


def cmd_changes(ctx: Context) -> int:
    """List recorded changes, newest first."""
    args = ctx.args
    with ctx.database() as sessions:
        ctx.check_topic(sessions, args.topic)
        entries = list_changes(
            sessions, topic=args.topic, since=args.since, kind=args.kind, limit=args.limit
        )
    if args.json:
        _print_json(
            [
                {
                    "id": entry.id,
                    "detected_at": _iso(entry.detected_at),
                    "kind": entry.kind,
                    "topic": entry.topic,
                    "url": entry.url,
                    "title": entry.title,
                    "fields": list(entry.fields),
                    "from_version": entry.from_version,
                    "to_version": entry.to_version,
                    "alerted": entry.alerted and not entry.held,
                    "held": entry.held,
                    "folded": entry.folded,
                    "live": entry.live,
                    "crawl_run_id": entry.crawl_run_id,
                }
                for entry in entries
            ]
        )
        return 0
    if not entries:
        print("No changes.")
        return 0
    rows = [
        [
            _utc(entry.detected_at),
            _kind_shown(entry),
            entry.topic,
            ",".join(entry.fields) or "-",
            ("[LIVE] " if entry.live else "") + (" ".join(entry.title.split()) or "-"),
            entry.url,
        ]
        for entry in entries
    ]
    header = ["DETECTED", "KIND", "TOPIC", "FIELDS", "TITLE", "URL"]
    print(_table(rows, header, width=ctx.width, shrink=(2, 3, 4, 5)))
    return 0


def _kind_shown(entry: ChangeEntry) -> str:
    """The change's kind, with what alert shaping did: held for a summary, or how many
    updates a summary folds."""
    if entry.held:
        return f"{entry.kind} (held)"
    if entry.kind in ("summary", "ended") and entry.folded:
        return f"{entry.kind} ({entry.folded})"
    return entry.kind


def cmd_show(ctx: Context) -> int:
    """Show an article's versions and changes, and the word diff between two versions."""
    url = ctx.args.url
    with ctx.database() as sessions:
        try:
            history = article_history(sessions, url)
        except UnknownArticle:
            canonical = canonical_url(url)
            if canonical == url:
                raise UnknownArticle(_no_article(url, similar_urls(sessions, url))) from None
            try:
                history = article_history(sessions, canonical)
            except UnknownArticle:
                close = similar_urls(sessions, canonical)
                raise UnknownArticle(_no_article(url, close)) from None
    print(_render_history(history, ctx.args.from_version, ctx.args.to_version))
    return 0


def _no_article(url: str, close: Sequence[str]) -> str:
    text = f"No article with the URL {url!r} is in the database"
    if not close:
        return text + "."
    return f"{text}; did you mean {' or '.join(close)}?"


def _render_history(history: ArticleHistory, first: int | None, second: int | None) -> str:
    lines = [
        history.url,
        f"status: {history.status}   topics: {', '.join(history.topics) or '-'}",
        f"first seen: {_utc(history.first_seen)}   last checked: {_utc(history.last_checked)}",
    ]
    if history.live is not None:
        lines.append(
            f"live coverage: since {_utc(history.live_since)} (recognised by {history.live})"
        )
    elif history.live_until is not None:
        lines.append(f"live coverage: ended {_utc(history.live_until)}")
    lines += ["", "versions:"]
    for version in history.versions:
        gone = "  [text pruned]" if version.text_pruned_at is not None else ""
        lines.append(
            f"  v{version.version}  {_utc(version.fetched_at)}  {version.fingerprint[:12]}  "
            f"{version.title}{gone}"
        )
    if history.changes:
        lines += ["", "changes:"]
        for change in history.changes:
            versions = "→".join(
                f"v{v}" for v in (change.from_version, change.to_version) if v is not None
            )
            fields = f" ({', '.join(change.fields)})" if change.fields else ""
            shaped = " held for a summary" if change.held else ""
            if change.folded:
                shaped = f" folding {change.folded} update{'s' if change.folded != 1 else ''}"
            lines.append(
                f"  {_utc(change.detected_at)}  {change.kind} {versions}{fields}  "
                f"[{change.topic}]{shaped}"
            )
    by_number = {version.version: version for version in history.versions}
    if first is None and second is None:
        if len(history.versions) < 2:
            lines += ["", "Only one version is stored; there is nothing to compare."]
            return "\n".join(lines)
        first, second = history.versions[-2].version, history.versions[-1].version
    elif second is None:
        second = history.versions[-1].version if history.versions else None
    elif first is None:
        first = second - 1
    numbers = ", ".join(str(n) for n in by_number) or "none"
    for wanted in (first, second):
        if wanted not in by_number:
            raise CommandError(f"{history.url} has no version {wanted} (its versions: {numbers})")
    assert first is not None
    assert second is not None
    lines += [
        "",
        f"diff v{first} → v{second}:",
        *_version_diff(by_number[first], by_number[second]),
    ]
    return "\n".join(lines)


def _version_diff(old: VersionRecord, new: VersionRecord) -> list[str]:
    gone = [
        f"(the text of v{version.version} is gone: the retention policy removed its lead and "
        f"body on {_utc(version.text_pruned_at)}; its title, dates, fingerprint and field "
        "hashes are kept)"
        for version in (old, new)
        if version.text_pruned_at is not None
    ]
    fields: list[tuple[str, str, str]] = [
        ("title", old.title, new.title),
        ("lead", old.lead, new.lead),
        ("authors", ", ".join(old.authors), ", ".join(new.authors)),
        ("published", old.published or "", new.published or ""),
        ("modified", old.modified or "", new.modified or ""),
        ("body", old.body, new.body),
    ]
    if gone:
        fields = [field for field in fields if field[0] not in ("lead", "body")]
    lines: list[str] = [*gone, ""] if gone else []
    for name, before, after in fields:
        ops = word_diff(before, after)
        if has_changes(ops):
            lines += [f"--- {name}", diff_text(ops), ""]
    if not lines:
        lines = ["(the versions' texts are the same)"]
    elif gone and len(lines) == len(gone) + 1:
        lines.append("(nothing else kept differs)")
    return lines


def cmd_init(ctx: Context) -> int:
    """Write a commented example configuration file to edit."""
    target = Path(ctx.args.path) if ctx.args.path else Path(ctx.args.config or DEFAULT_PATH)
    if target.exists():
        raise CommandError(f"{target} already exists; not overwriting it")
    text = EXAMPLE_CONFIG.read_text("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("x", encoding="utf-8") as handle:
        handle.write(text)
    print(
        f"Wrote {target}. Edit it, then run `{PROG} --config {target} db upgrade` and "
        f"`{PROG} --config {target} run`."
    )
    return 0


# -- the parser ------------------------------------------------------------------------------

Handler = Callable[[Context], int]


def _command(
    subparsers: Any, name: str, handler: Handler, *, aliases: Sequence[str] = ()
) -> argparse.ArgumentParser:
    doc = (handler.__doc__ or "").strip()
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=doc.splitlines()[0] if doc else None, description=doc, aliases=list(aliases)
    )
    parser.set_defaults(handler=handler)
    _config_option(parser, default=argparse.SUPPRESS)
    return parser


def _config_option(parser: argparse.ArgumentParser, *, default: Any = None) -> None:
    """``--config``, before the subcommand or after it (a subcommand's own wins)."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help=f"configuration file (default: $TOPICWATCH_CONFIG, else ./{DEFAULT_PATH})",
    )


def _wide(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wide",
        action="store_true",
        help="show every column in full, however wide the terminal",
    )


def _log_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as text or as one JSON object per line (default: [logging] format)",
    )


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Watch news topic pages and email what changed: new, edited and removed "
        "articles, with diffs.",
    )
    _config_option(parser)
    parser.add_argument("--version", action="version", version=f"{PROG} {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _log_format(_command(commands, "run", cmd_run))

    worker = _command(commands, "worker", cmd_worker)
    worker.add_argument(
        "--concurrency",
        type=int,
        default=2,
        metavar="N",
        help="crawl runs at the same time in this worker (default 2)",
    )
    worker.add_argument(
        "--queue",
        action="append",
        metavar="NAME",
        help="take jobs from this queue (repeatable; default: [executor] queue)",
    )
    _log_format(worker)

    crawl = _command(commands, "crawl", cmd_crawl)
    crawl.add_argument("topic", metavar="TOPIC", help="name of a topic in the configuration")
    crawl.add_argument(
        "--timeout",
        type=_duration,
        metavar="DURATION",
        help="wall-clock limit of the run (default: [crawl] run_timeout)",
    )
    _log_format(crawl)

    status = _command(commands, "status", cmd_status)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _wide(status)

    db = _command(commands, "db", _missing_subcommand)
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    _command(db_commands, "upgrade", cmd_db_upgrade)
    db_prune = _command(db_commands, "prune", cmd_db_prune)
    db_prune.add_argument("--dry-run", action="store_true", help="only count what would be removed")

    alerts = _command(commands, "alerts", cmd_alerts)
    alerts.add_argument(
        "--status",
        choices=VIEW_STATUSES,
        help="only alerts with this status (default: pending and failed)",
    )
    alerts.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    alerts.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _wide(alerts)
    alerts_commands = alerts.add_subparsers(dest="alerts_command", metavar="COMMAND")
    _command(alerts_commands, "send", cmd_alerts_send)
    retry = _command(alerts_commands, "retry", cmd_alerts_retry)
    retry.add_argument(
        "ids",
        nargs="*",
        type=int,
        metavar="ID",
        help="only these alerts (default: every failed one)",
    )
    retry.add_argument("--topic", metavar="TOPIC", help="only the failed alerts of this topic")

    test_email = _command(commands, "test-email", cmd_test_email)
    test_email.add_argument("address", metavar="ADDRESS", help="where to send the test email")

    feed = _command(commands, "feed", cmd_feed)
    feed.add_argument(
        "topic", nargs="?", metavar="TOPIC", help="only this topic's changes (default: all)"
    )
    feed.add_argument(
        "-o", "--output", metavar="FILE", help="write the feed to FILE (default: stdout)"
    )
    feed.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_ENTRIES,
        help=f"the newest this many changes (default {DEFAULT_ENTRIES})",
    )

    web = _command(commands, "web", cmd_web)
    web.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where to serve (default: [web] listen, else 127.0.0.1:8080)",
    )

    test_notify = _command(commands, "test-notify", cmd_test_notify)
    test_notify.add_argument(
        "url",
        nargs="?",
        metavar="URL",
        help="an Apprise URL to send to (default: every channel of the configuration)",
    )

    topics = _command(commands, "topics", cmd_topics)
    topics.add_argument("--json", action="store_true", help="print JSON instead of a table")

    changes = _command(commands, "changes", cmd_changes)
    changes.add_argument("--topic", metavar="TOPIC", help="only changes of this topic")
    changes.add_argument(
        "--since",
        type=_since,
        metavar="WHEN",
        help='only changes since then: a duration back from now ("1d", "6h") or a date',
    )
    changes.add_argument("--kind", choices=RECORDED_KINDS, help="only changes of this kind")
    changes.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    changes.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _wide(changes)

    show = _command(commands, "show", cmd_show)
    show.add_argument("url", metavar="URL", help="the article's canonical URL")
    show.add_argument(
        "--from",
        dest="from_version",
        type=int,
        metavar="V",
        help="compare from this version (default: the one before --to)",
    )
    show.add_argument(
        "--to",
        dest="to_version",
        type=int,
        metavar="V",
        help="compare to this version (default: the latest)",
    )

    init = _command(commands, "init", cmd_init)
    init.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help=f"where to write it (default: --config, else ./{DEFAULT_PATH})",
    )
    return parser


def _missing_subcommand(ctx: Context) -> int:  # pragma: no cover - argparse requires one
    """Database maintenance."""
    raise CommandError("a subcommand is required")


def main(argv: Sequence[str] | None = None) -> int:
    """The ``topicwatch`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    # `alerts`' own default handler would shadow its subcommands'.
    alerts_handlers = {"send": cmd_alerts_send, "retry": cmd_alerts_retry}
    args.handler = alerts_handlers.get(getattr(args, "alerts_command", None) or "", args.handler)
    ctx = Context(args)
    try:
        code: int = args.handler(ctx)
    except OPERATOR_ERRORS as exc:
        for line in exc.errors if isinstance(exc, ConfigError) else [_one_line(exc)]:
            print(f"{PROG}: error: {' '.join(line.split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`topicwatch changes | head`): not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, LookupError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]  # KeyError-style repr quotes would hide the sentence
    else:
        text = str(exc)
    return " ".join(text.split())
