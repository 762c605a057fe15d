"""The configuration file: one TOML file validated into typed, frozen objects.

The file is found at ``--config``, else ``$TOPICWATCH_CONFIG``, else ``./topicwatch.toml``.
Every key the file may hold is declared once, as a field of the dataclass its section becomes
(:func:`storage.spec.config_key`: type, default, check and documentation line); the loader,
:data:`CONFIG_KEYS` and ``docs/configuration.md`` are derived from those fields. A key that is
not declared is an error, so a typo is caught at start-up instead of silently ignored.
An error names the file, the field and what is expected::

    topicwatch.toml: topic[2].every: expected a duration like "15m" or "2h", got "fortnightly"

Secrets never live in the file: ``[smtp] password_env`` names the environment variable that
holds the SMTP password.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import make_url

from alerts.channels import Channel, understood
from alerts.digest import MAX_DIGEST_BYTES
from alerts.smtp import SECURITY_MODES, SmtpSettings, parse_mailbox
from crawler.profiles import PROFILES, ProfileLookupError, profile_by_name
from storage.credentials import mask_credentials
from storage.db import normalise_url, safe_url
from storage.spec import (
    CHANGE_KINDS,
    HEALTH_FAILURES,
    MAX_LIVE_WINDOW,
    ConfigKeyRule,
    CrawlSettings,
    TopicSpec,
    config_key,
)
from web.address import parse_listen

T = TypeVar("T")
DEFAULT_PATH = Path("topicwatch.toml")
CONFIG_ENV = "TOPICWATCH_CONFIG"
DATABASE_URL_ENV = "TOPICWATCH_DATABASE_URL"
QUEUE_NEEDS_POSTGRES = (
    '"queue" needs a PostgreSQL database, and database.url is SQLite: the job queue, the '
    "workers' heartbeats and the scheduler's leader lock live in the database that every "
    'machine reaches. Use kind = "local" (the default: crawls on this machine), or move to '
    "PostgreSQL first (deploy/sqlite-to-postgres.py copies the data) and set database.url "
    "to postgresql+psycopg://USER@HOST/DB"
)


class ConfigError(ValueError):
    """The configuration file is missing, is not valid TOML, or holds values that are wrong.

    ``errors`` holds each wrong value's message (file, field, expected, got), all of the
    file's; the exception's text is them joined by "; "."""

    def __init__(self, *errors: str) -> None:
        super().__init__("; ".join(errors))
        self.errors: tuple[str, ...] = errors


class _TableFailed(Exception):
    """A table held a wrong value, already noted by the loader: its object is not built."""


class TopicNotConfigured(LookupError):
    """A command named a topic that the configuration file does not define (whether or not
    the database knows it: that is ``storage.topics.UnknownTopic``)."""

    def __init__(self, name: str, config_path: Path | str, known: Sequence[str]) -> None:
        listed = ", ".join(known) if known else "none"
        super().__init__(
            f"No topic by the name of {name!r} is defined in {config_path} (topics: {listed})"
        )
        self.name = name


SMTP_SECURITY: tuple[str, ...] = SECURITY_MODES
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Below this a digest could hold hardly one change with a long diff.
MIN_DIGEST_BYTES = 16 * 1024

_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1024,
    "kib": 1024,
    "mb": 1024**2,
    "mib": 1024**2,
    "gb": 1024**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
_TOPIC_NAME = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")

DURATION_HINT = 'a duration like "15m" or "2h"'
# The longest duration any key accepts: beyond it a value is a mistake, and one far beyond
# overflows the date arithmetic of schedules.
MAX_DURATION = 366 * 86400.0


def parse_duration(value: object) -> float:
    """Seconds in ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"`` or a number of seconds.

    Raises ``ValueError`` naming what was expected.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value >= 0:
            return float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    raise ValueError(f"expected {DURATION_HINT}, got {_show(value)}")


def parse_size(value: object) -> int:
    """Bytes in ``"10MB"``, ``"512KB"``, ``"1GB"`` (powers of 1024) or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 0:
            return value
    elif isinstance(value, str):
        match = _SIZE.match(value)
        if match and match.group(2).lower() in _SIZE_UNITS:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise ValueError(f'expected a size like "10MB" or "512KB", got {_show(value)}')


def format_size(size: int) -> str:
    """The shortest exact spelling of ``size`` bytes in the units the file accepts."""
    for unit in ("GB", "MB", "KB"):
        if size >= _SIZE_UNITS[unit.lower()] and size % _SIZE_UNITS[unit.lower()] == 0:
            return f"{size // _SIZE_UNITS[unit.lower()]}{unit}"
    return f"{size}B"


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` in the units the file accepts."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _sentence_tail(exc: Exception) -> str:
    """An exception's message fit to follow a colon or parenthesis: lowercase first letter."""
    text = str(exc)
    return text[:1].lower() + text[1:]


def _show(value: object) -> str:
    """A value as the TOML file spells it, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return repr(value)


# -- checks of single values, named in the declarations below --------------------------------


def _database_url(url: str) -> str:
    try:
        normalise_url(url)
    except ValueError:
        raise ValueError(
            'expected a SQLite or PostgreSQL URL like "sqlite:///data/topicwatch.db" or '
            f'"postgresql+psycopg://user@host/db", got {_show(safe_url(url))}'
        ) from None
    return url


def _port(port: int) -> int:
    if port > 65535:
        raise ValueError(f"expected a port number up to 65535, got {port}")
    return port


def _digest_cap(size: int) -> int:
    if size < MIN_DIGEST_BYTES:
        raise ValueError(
            f"expected a size of at least {format_size(MIN_DIGEST_BYTES)}, got {size} bytes"
        )
    return size


def _environment_variable(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"expected the name of an environment variable, got {_show(name)}")
    return name


def _apprise_url(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) or not rest:
        raise ValueError(
            'expected an Apprise URL like "slack://…" or "json://host/path", got '
            f"{_show(scheme + separator + '…' if separator else '…')}"
        )
    if not understood(url):
        # The URL is not shown: its path may hold the service's tokens.
        raise ValueError(
            f"Apprise does not know this {scheme}://… URL or cannot read its parts; see "
            "https://appriseit.com/services/ for the URLs of each service"
        )
    return url


def _health_recipient(recipient: str) -> str:
    """An email address, or an Apprise URL (it has "://")."""
    return _apprise_url(recipient) if "://" in recipient else _email_address(recipient)


def _sender(sender: str) -> str:
    try:
        parse_mailbox(sender)
    except ValueError:
        raise ValueError(
            f'expected an address like "topicwatch <alerts@example.org>", got {_show(sender)}'
        ) from None
    return sender


def _live_window(checks: int) -> int:
    if checks > MAX_LIVE_WINDOW:
        raise ValueError(f"expected at most {MAX_LIVE_WINDOW} checks, got {checks}")
    return checks


def _log_level(level: str) -> str:
    if level.upper() not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {_show(level.upper())}")
    return level.upper()


def _topic_name(name: str) -> str:
    if len(name) > 50 or not _TOPIC_NAME.match(name):
        raise ValueError(
            "expected lowercase letters, digits, '-' and '_' (at most 50 characters, "
            f'like "konflik-rusia-ukraina"), got {_show(name)}'
        )
    return name


def _http_url(source: str) -> str:
    try:
        parts = urlsplit(source)
        parts.port  # noqa: B018 - raises for a port out of range or not a number
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # an unclosed "[" of an IPv6 address, a bad port
        valid = False
    if not valid:
        raise ValueError(f"expected an http(s) URL, got {_show(mask_credentials(source))}")
    return source


def _crontab(cron: str) -> str:
    try:
        CronTrigger.from_crontab(cron, timezone="UTC")
    except ValueError as exc:
        raise ValueError(
            f'expected a crontab schedule like "*/15 * * * *", got {_show(cron)} '
            f"({_sentence_tail(exc)})"
        ) from None
    return cron


def _regular_expression(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"expected a regular expression, got {_show(pattern)} ({exc})") from None
    return pattern


def _email_address(address: str) -> str:
    try:
        valid = "@" in parse_mailbox(address).addr_spec
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f'expected an email address like "desk@example.org", got {_show(address)}')
    return address


def _profile(name: str) -> str:
    try:
        return profile_by_name(name).name
    except ProfileLookupError:
        known = ", ".join(profile.name for profile in PROFILES)
        raise ValueError(f"expected one of {known}, got {_show(name)}") from None


# -- the sections of the file: each key declared once ----------------------------------------


@dataclass(frozen=True, repr=False)
class DatabaseConfig:
    url: str = config_key(
        "string",
        "SQLAlchemy database URL: sqlite:///PATH (a relative path is taken from the config "
        "file's directory) or postgresql+psycopg://USER@HOST/DB. The environment variable "
        "TOPICWATCH_DATABASE_URL overrides it.",
        "sqlite:///data/topicwatch.db",
        check=_database_url,
    )
    prune_every: float = config_key(
        "duration",
        "How often the daemon applies the topics' retention policies (keep_text_for, "
        "keep_raw_html_for), in short transactions beside the crawls; 0: never (topicwatch "
        "db prune does it by hand).",
        6 * 3600.0,
    )

    def __repr__(self) -> str:
        # The URL may hold the database's password.
        return f"DatabaseConfig(url={safe_url(self.url)!r}, prune_every={self.prune_every!r})"


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    host: str = config_key("string", "SMTP server host name. Required in [smtp].")
    port: int = config_key("integer", "SMTP server port.", 587, minimum=1, check=_port)
    security: str = config_key(
        "string",
        "starttls (upgrade a plain connection), tls (TLS from the start) or none.",
        "starttls",
        choices=SMTP_SECURITY,
    )
    username: str | None = config_key("string", "User name to log in with; none: no login.", None)
    password_env: str | None = config_key(
        "string",
        "Name of the environment variable that holds the SMTP password.",
        None,
        check=_environment_variable,
    )
    sender: str = config_key(
        "string",
        'From address of alert emails, e.g. "topicwatch <alerts@example.org>". Required in [smtp].',
        check=_sender,
    )
    timeout: float = config_key("duration", "Timeout of each SMTP connection.", 30.0, positive=True)
    # Not a key: read from the variable that password_env names.
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CrawlConfig(CrawlSettings):
    """The ``[crawl]`` section: what each crawl child needs (:class:`CrawlSettings`), and the
    daemon's limits on the runs themselves."""

    max_concurrent_runs: int = config_key(
        "integer", "Crawl runs at the same time, at most.", 2, minimum=1
    )
    run_timeout: float = config_key(
        "duration",
        "Wall-clock limit of one crawl run; a run still going then is killed and recorded "
        "as timeout.",
        600.0,
        positive=True,
    )
    shutdown_grace: float = config_key(
        "duration",
        "On SIGTERM/SIGINT, how long running crawls may go on before they are stopped.",
        30.0,
    )
    process_max_runs: int = config_key(
        "integer",
        "A crawl process is replaced by a fresh one after this many runs.",
        200,
        minimum=1,
    )
    process_max_memory: int = config_key(
        "size",
        "A crawl process whose resident memory reaches this after a run is replaced by a "
        "fresh one.",
        512 * 1024 * 1024,
        positive=True,
    )

    def settings(self, *, obey_robots: bool | None = None) -> CrawlSettings:
        """What one crawl child needs of these settings, with a topic's robots override."""
        values = {key.name: getattr(self, key.name) for key in fields(CrawlSettings)}
        if obey_robots is not None:
            values["obey_robots"] = obey_robots
        return CrawlSettings(**values)


@dataclass(frozen=True)
class AlertsConfig:
    max_attempts: int = config_key(
        "integer", "Delivery attempts of an alert before it is marked failed.", 8, minimum=1
    )
    retry_backoff: float = config_key(
        "duration",
        "Wait before the first retry of a failed delivery; it doubles with each attempt.",
        60.0,
    )
    dispatch_every: float = config_key(
        "duration",
        "How often the daemon sends pending alerts, besides after each crawl run.",
        60.0,
        positive=True,
    )
    dispatch_time_limit: float = config_key(
        "duration",
        "How long one delivery of the daemon goes on beginning digests; those not begun wait "
        "for the next delivery (each SMTP connection waits at most smtp.timeout for an answer).",
        60.0,
        positive=True,
    )
    max_digest_bytes: int = config_key(
        "size",
        "Largest digest email; a digest with more changes is sent as several emails.",
        MAX_DIGEST_BYTES,
        check=_digest_cap,
    )
    notify: tuple[str, ...] = config_key(
        "list of URLs",
        "Apprise URLs (slack://…, tgram://…, json://…) told of the changes of every topic "
        "that sets neither notify nor notify_env.",
        (),
        check=_apprise_url,
    )
    notify_env: tuple[str, ...] = config_key(
        "list of strings",
        "Names of environment variables that each hold an Apprise URL, told like notify: "
        "for URLs whose tokens should not be in the file.",
        (),
        check=_environment_variable,
    )


@dataclass(frozen=True)
class LoggingConfig:
    format: str = config_key(
        "string", "Log format on stderr: text or json.", "text", choices=LOG_FORMATS
    )
    level: str = config_key(
        "string", "Log level: DEBUG, INFO, WARNING or ERROR.", "INFO", check=_log_level
    )


def _listen(listen: str) -> str:
    parse_listen(listen)
    return listen.strip()


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    listen: str | None = config_key(
        "string",
        'Address of the read-only web view and /metrics, e.g. "127.0.0.1:8080"; the daemon '
        "serves it when set (off by default). Any address but a loopback one needs the "
        "token of token_env.",
        None,
        check=_listen,
    )
    token_env: str = config_key(
        "string",
        "Name of the environment variable that holds the web view's token (at least 16 "
        "characters); when set, every page but /healthz asks for it.",
        "TOPICWATCH_WEB_TOKEN",
        check=_environment_variable,
    )
    # Not a key: read from the variable that token_env names.
    token: str | None = field(default=None, repr=False)


EXECUTOR_KINDS = ("local", "queue")


@dataclass(frozen=True)
class ExecutorConfig:
    """Where crawl runs happen: see :mod:`scheduler.executor`."""

    kind: str = config_key(
        "string",
        "local: crawl runs in processes of the daemon's machine (no broker). queue: the daemon "
        "puts each run in a job queue in the PostgreSQL database and `topicwatch worker` "
        "processes on any machine run them (PostgreSQL only).",
        "local",
        choices=EXECUTOR_KINDS,
    )
    queue: str = config_key(
        "string",
        'With kind = "queue": the name of the queue crawl jobs go to, and that '
        "`topicwatch worker` takes them from unless given --queue.",
        "crawl",
    )
    heartbeat: float = config_key(
        "duration",
        'With kind = "queue": how often a worker tells the database it is alive; a worker '
        "silent for three heartbeats is taken for dead and its running jobs are run again.",
        10.0,
        positive=True,
    )


_TOPIC_DEFAULTS = {key.name: key.default for key in fields(TopicSpec)}
_JITTER_AT_MOST = 30.0


@dataclass(frozen=True, kw_only=True)
class TopicTable:
    """One ``[[topic]]`` table as the file gives it; the loader makes a :class:`TopicSpec` of
    it, where defaults that depend on other keys are filled in."""

    name: str = config_key(
        "string",
        "Unique name of the topic: lowercase letters, digits, '-' and '_', at most 50 "
        "characters. Required.",
        check=_topic_name,
    )
    title: str | None = config_key("string", "Human title used in emails; default: the name.", None)
    sources: tuple[str, ...] = config_key(
        "list of URLs",
        "Topic listing pages, RSS/Atom feeds or news sitemaps (http or https). At least one.",
        (),
        check=_http_url,
        shown_default="",
    )
    every: float = config_key(
        "duration",
        "Interval between crawl runs. Give either every or cron; without both, every 15m.",
        _TOPIC_DEFAULTS["every"],
        positive=True,
    )
    cron: str | None = config_key(
        "string",
        'Crontab schedule with five fields in UTC, e.g. "*/15 * * * *" (day of week: '
        "0 is Monday, or use mon-sun).",
        None,
        check=_crontab,
    )
    jitter: float | None = config_key(
        "duration",
        "Random delay up to this long added to each scheduled run; the default is 30s, or a "
        "quarter of every when that is shorter.",
        None,
        shown_default=json.dumps(format_duration(_JITTER_AT_MOST)),
    )
    max_pages: int = config_key(
        "integer",
        "Listing pages followed through pagination, at most.",
        _TOPIC_DEFAULTS["max_pages"],
        minimum=1,
    )
    recheck_for: float = config_key(
        "duration",
        "How long articles that left the listing are still re-checked for edits.",
        _TOPIC_DEFAULTS["recheck_for"],
    )
    keywords: tuple[str, ...] = config_key(
        "list of strings",
        "Only articles whose title or text contains one of these words (case-insensitive).",
        _TOPIC_DEFAULTS["keywords"],
    )
    ignore_patterns: tuple[str, ...] = config_key(
        "list of regexes",
        "Text matching these regular expressions is ignored when comparing versions.",
        _TOPIC_DEFAULTS["ignore_patterns"],
        check=_regular_expression,
    )
    alert_to: tuple[str, ...] = config_key(
        "list of emails",
        "Recipients of this topic's alerts.",
        _TOPIC_DEFAULTS["alert_to"],
        check=_email_address,
    )
    alert_on: tuple[str, ...] = config_key(
        "list of strings",
        "Which changes are sent, by email and to channels: new, updated, removed, restored.",
        _TOPIC_DEFAULTS["alert_on"],
        choices=CHANGE_KINDS,
    )
    notify: tuple[str, ...] | None = config_key(
        "list of URLs",
        "Apprise URLs (slack://…, tgram://…, ntfy://…, json://…) told of this topic's "
        "changes; default: alerts.notify (unless notify_env is given).",
        None,
        check=_apprise_url,
        shown_default="",
    )
    notify_env: tuple[str, ...] | None = config_key(
        "list of strings",
        "Names of environment variables that each hold an Apprise URL for this topic, for "
        "URLs whose tokens should not be in the file; default: alerts.notify_env (unless "
        "notify is given).",
        None,
        check=_environment_variable,
        shown_default="",
    )
    health_to: tuple[str, ...] | None = config_key(
        "list of emails or URLs",
        "Who is told when this topic's crawl stops working (runs fail health_failures "
        "times in a row, the listing suddenly yields no articles, or most article pages yield "
        "no text) and when it works again: email addresses and Apprise URLs; default: the "
        "topic's alert_to and channels.",
        None,
        check=_health_recipient,
        shown_default="",
    )
    health_failures: int = config_key(
        "integer",
        "Failed crawl runs in a row after which the topic's health_to are told that it "
        "stopped working, with the last reason; one alert when it breaks, one when it works "
        "again.",
        HEALTH_FAILURES,
        minimum=1,
    )
    profile: str | None = config_key(
        "string",
        "Site profile by name (e.g. tribunnews); default: chosen by the source's host.",
        None,
        check=_profile,
    )
    obey_robots: bool | None = config_key(
        "boolean",
        "Per-topic override of crawl.obey_robots, for sites that gave permission.",
        None,
    )
    allow_private_addresses: bool = config_key(
        "boolean",
        "Let the crawl reach private, loopback and CGNAT addresses, for intranet sites; "
        "otherwise only public addresses and the sources' own host and port are fetched.",
        _TOPIC_DEFAULTS["allow_private_addresses"],
    )
    live_after: int = config_key(
        "integer",
        "An article that changed in more than this many of its last live_window checks is "
        "live coverage, also without live markup (JSON-LD LiveBlogPosting or a live marker, "
        "which make it live at once); 0: only markup does.",
        _TOPIC_DEFAULTS["live_after"],
    )
    live_window: int = config_key(
        "integer",
        f"How many of an article's last checks live_after counts (at most {MAX_LIVE_WINDOW}).",
        _TOPIC_DEFAULTS["live_window"],
        minimum=1,
        check=_live_window,
    )
    live_summary_every: float = config_key(
        "duration",
        "A live article's updates are not alerted one by one: one alert when it goes live, "
        "then at most one summary this often (how many updates since when, with the combined "
        "diff), and one when it ends.",
        _TOPIC_DEFAULTS["live_summary_every"],
        positive=True,
    )
    live_ends_after: float = config_key(
        "duration",
        "Live coverage ends (with an alert) when the article was not updated for this long, "
        "or when its markup says the coverage ended.",
        _TOPIC_DEFAULTS["live_ends_after"],
        positive=True,
    )
    alert_cap: int = config_key(
        "integer",
        "Alerts of updates of one article, at most, per alert_cap_period; the updates "
        "beyond go out as one summary with the next digest after the period; 0: no cap.",
        _TOPIC_DEFAULTS["alert_cap"],
    )
    alert_cap_period: float = config_key(
        "duration",
        "The period of alert_cap.",
        _TOPIC_DEFAULTS["alert_cap_period"],
        positive=True,
    )
    keep_text_for: float = config_key(
        "duration",
        "Every version's text (lead and body) is kept this long; after it, only the "
        "first version's, the current one's and the last of each day's (UTC). Fingerprints, "
        "field hashes, titles and dates are kept for good; 0: keep every text.",
        _TOPIC_DEFAULTS["keep_text_for"],
    )
    keep_raw_html_for: float = config_key(
        "duration",
        "Raw HTML of versions (crawl.store_raw_html) is kept this long, the current "
        "version's too; 0: for good.",
        _TOPIC_DEFAULTS["keep_raw_html_for"],
    )


SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseConfig,
    "smtp": SmtpConfig,
    "crawl": CrawlConfig,
    "alerts": AlertsConfig,
    "logging": LoggingConfig,
    "web": WebConfig,
    "executor": ExecutorConfig,
    "topic": TopicTable,
}

# Keys the file held once, with why they went: refused with that reason rather than as unknown.
REMOVED_KEYS = {
    # crawl.workers went in the release after 0.1.0; this entry can go one release later.
    "crawl.workers": (
        "removed, delete the line: a crawl run reads and records its pages in one process "
        "(worker processes cost more CPU per page than they saved); to use more cores, let "
        "more crawl runs go at once with crawl.max_concurrent_runs"
    ),
}


@dataclass(frozen=True)
class ConfigKey:
    """One key of the configuration file: a field declared with :func:`config_key`."""

    path: str  # "crawl.run_timeout"; keys of each [[topic]] table are "topic.NAME"
    rule: ConfigKeyRule
    value: Any  # the field's default; MISSING when the key is required

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.path.split(".", 1)[1]

    @property
    def type(self) -> str:
        return self.rule.type

    @property
    def meaning(self) -> str:
        return self.rule.meaning

    @property
    def default(self) -> str | None:
        """The default as the file would spell it; None when the key is required or has none."""
        if self.rule.shown_default is not None:
            return self.rule.shown_default or None
        if self.value is MISSING or self.value is None:
            return None
        if self.type == "duration":
            return json.dumps(format_duration(self.value))
        if self.type == "size":
            return json.dumps(format_size(self.value))
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return json.dumps(list(self.value) if isinstance(self.value, tuple) else self.value)


CONFIG_KEYS: tuple[ConfigKey, ...] = tuple(
    ConfigKey(f"{name}.{declared.name}", declared.metadata["config_key"], declared.default)
    for name, section in SECTIONS.items()
    for declared in fields(section)
    if "config_key" in declared.metadata
)
_KEYS_BY_SECTION = {name: [key for key in CONFIG_KEYS if key.section == name] for name in SECTIONS}


@dataclass(frozen=True)
class Config:
    """The whole validated configuration file."""

    path: Path
    database: DatabaseConfig = DatabaseConfig()
    smtp: SmtpConfig | None = None
    crawl: CrawlConfig = CrawlConfig()
    alerts: AlertsConfig = AlertsConfig()
    logging: LoggingConfig = LoggingConfig()
    web: WebConfig = WebConfig()
    executor: ExecutorConfig = ExecutorConfig()
    topics: tuple[TopicSpec, ...] = ()
    # Every channel that a topic or alerts.notify names, by key (alerts.channels).
    channels: Mapping[str, Channel] = field(default_factory=dict)
    # Whether TOPICWATCH_DATABASE_URL gave the database, not the file.
    database_from_env: bool = False

    def command(self, *words: str) -> str:
        """``topicwatch WORDS…`` as a command line that works when pasted: with ``--config``
        naming this file (unless it is the default) and, when the environment gave the
        database, that variable (its password masked)."""
        parts = ["topicwatch"]
        if self.path != DEFAULT_PATH:
            parts += ["--config", str(self.path)]
        line = shlex.join([*parts, *words])
        if self.database_from_env:
            line = f"{DATABASE_URL_ENV}={shlex.quote(safe_url(self.database.url))} {line}"
        return line

    def topic_specs(self) -> list[TopicSpec]:
        """Each topic's definition, with the ``[crawl]`` settings merged in."""
        return list(self.topics)

    def topic(self, name: str) -> TopicSpec:
        """The topic called ``name``; raises :class:`TopicNotConfigured`."""
        for spec in self.topics:
            if spec.name == name:
                return spec
        raise TopicNotConfigured(name, self.path, [spec.name for spec in self.topics])

    def secret_variables(self) -> tuple[str, ...]:
        """The environment variables that hold this configuration's secrets (the SMTP
        password, the channels' URLs of notify_env and the web view's token): crawl processes
        are not given them."""
        names = [channel.env for channel in self.channels.values() if channel.env is not None]
        if self.smtp is not None and self.smtp.password_env is not None:
            names.insert(0, self.smtp.password_env)
        names.append(self.web.token_env)
        return tuple(dict.fromkeys(names))

    def smtp_settings(self) -> SmtpSettings | None:
        """The SMTP settings, or None when the file has no ``[smtp]`` section.

        Raises :class:`ConfigError` when ``password_env`` names a variable that is not set.
        """
        smtp = self.smtp
        if smtp is None:
            return None
        if smtp.password_env and smtp.password is None:
            raise ConfigError(
                f"{self.path}: smtp.password_env: the environment variable "
                f"{smtp.password_env} is not set"
            )
        security = next(mode for mode in SECURITY_MODES if mode == smtp.security)
        return SmtpSettings(
            host=smtp.host,
            port=smtp.port,
            security=security,
            username=smtp.username,
            password=smtp.password,
            sender=smtp.sender,
            timeout=smtp.timeout,
        )


def config_path(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Where the configuration file is: ``path``, else ``$TOPICWATCH_CONFIG``, else default."""
    environ = os.environ if env is None else env
    if path is not None:
        return Path(path)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return DEFAULT_PATH


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration file; raises :class:`ConfigError`."""
    environ = os.environ if env is None else env
    where = config_path(path, environ)
    try:
        raw = where.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: no such configuration file; write one with `topicwatch init {where}` "
            f"or name another with --config or {CONFIG_ENV}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the configuration file: {exc.strerror}") from None
    return parse_config(raw, where, env=environ)


def parse_config(raw: bytes | str, path: Path, *, env: Mapping[str, str]) -> Config:
    """Validate the TOML text ``raw`` of the file at ``path``."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        if match:
            where = f"line {match.group(1)}, column {match.group(2)}"
            message = message[: match.start()]
            raise ConfigError(f"{path}: {where}: invalid TOML: {message}") from None
        raise ConfigError(f"{path}: invalid TOML: {message}") from None
    return _Loader(path, env).config(data)


class _Table:
    """Reads and checks the keys of one TOML table, naming the field in every error."""

    def __init__(self, loader: _Loader, prefix: str, data: Mapping[str, Any], section: str):
        self.loader = loader
        self.prefix = prefix
        self.data = data
        self.keys = _KEYS_BY_SECTION[section]
        allowed = [key.name for key in self.keys]
        self.failed = False
        for key in data:
            if f"{section}.{key}" in REMOVED_KEYS:
                self.note(self.error(key, REMOVED_KEYS[f"{section}.{key}"]))
            elif key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                self.note(self.error(key, f"unknown key{hint} (known: {', '.join(allowed)})"))

    def note(self, error: ConfigError) -> None:
        """Keep ``error`` for the report of the whole file; this table is not built."""
        self.loader.errors.append(str(error))
        self.failed = True

    def error(self, key: str, message: str) -> ConfigError:
        return self.loader.error(f"{self.prefix}{key}", message)

    def values(self) -> dict[str, Any]:
        """Each key of the section as the table gives it, checked, or its default; raises
        :class:`_TableFailed` once every key is checked when one was wrong (each noted)."""
        values: dict[str, Any] = {}
        for key in self.keys:
            try:
                values[key.name] = self.key_value(key)
            except ConfigError as exc:
                self.note(exc)
        if self.failed:
            raise _TableFailed
        return values

    def key_value(self, key: ConfigKey) -> Any:
        if key.name not in self.data:
            if key.value is MISSING:
                raise self.error(key.name, "required, expected a string")
            return key.value
        value = self.value(key)
        if isinstance(value, tuple):  # a list: each item is checked
            return tuple(
                self.checked(f"{key.name}[{index}]", key.rule, item)
                for index, item in enumerate(value)
            )
        return self.checked(key.name, key.rule, value)

    def checked(self, where: str, rule: ConfigKeyRule, value: Any) -> Any:
        """``value`` once it passed the checks of ``rule``: its choices, then its check."""
        if rule.choices and value not in rule.choices:
            expected = ", ".join(rule.choices)
            raise self.error(where, f"expected one of {expected}, got {_show(value)}")
        if rule.check is None:
            return value
        try:
            return rule.check(value)
        except ValueError as exc:
            raise self.error(where, str(exc)) from None

    def value(self, key: ConfigKey) -> Any:
        """The value the table gives for ``key``, as its declared type."""
        value = self.data[key.name]
        rule = key.rule
        if rule.type == "string":
            if not isinstance(value, str) or not value.strip():
                raise self.error(key.name, f"expected a non-empty string, got {_show(value)}")
            return value.strip()
        if rule.type == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(key.name, f"expected a whole number, got {_show(value)}")
            if value < rule.minimum:
                raise self.error(
                    key.name, f"expected a number of at least {rule.minimum}, got {value}"
                )
            return value
        if rule.type == "boolean":
            if not isinstance(value, bool):
                raise self.error(key.name, f"expected true or false, got {_show(value)}")
            return value
        if rule.type in ("duration", "size"):
            try:
                number = (parse_duration if rule.type == "duration" else parse_size)(value)
            except ValueError as exc:
                raise self.error(key.name, str(exc)) from None
            if rule.positive and number <= 0:
                raise self.error(
                    key.name, f"expected {DURATION_HINT} longer than zero, got {_show(value)}"
                )
            if rule.type == "duration" and not number <= MAX_DURATION:
                raise self.error(
                    key.name,
                    f"expected {DURATION_HINT} of at most {format_duration(MAX_DURATION)}, "
                    f"got {_show(value)}",
                )
            return number
        return self.strings(key.name, value)  # "list of ..."

    def strings(self, key: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.error(key, f"expected a list of strings, got {_show(value)}")
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.error(
                    f"{key}[{index}]", f"expected a non-empty string, got {_show(item)}"
                )
            items.append(item.strip())
        return tuple(items)


class _Loader:
    """Reads the whole file and reports every wrong value in it at once."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.errors: list[str] = []
        self.default_channels: tuple[Channel, ...] = ()
        self.channels: dict[str, Channel] = {}

    def section(self, build: Callable[[], T], default: T) -> T:
        """``build()``, or ``default`` when it failed (its errors are noted)."""
        try:
            return build()
        except _TableFailed:
            return default
        except ConfigError as exc:
            self.errors.extend(exc.errors)
            return default

    def error(self, field_path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {field_path}: {message}")

    def values(self, data: Mapping[str, Any], name: str) -> dict[str, Any]:
        """The keys of section ``name``, checked; the defaults when the file has none."""
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise self.error(name, f"expected a [{name}] table, got {_show(value)}")
        return _Table(self, f"{name}.", value, name).values()

    def config(self, data: Mapping[str, Any]) -> Config:
        for name in data:
            if name not in SECTIONS:
                close = difflib.get_close_matches(name, SECTIONS, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                self.errors.append(
                    str(self.error(name, f"unknown section{hint} (known: {', '.join(SECTIONS)})"))
                )
        crawl = self.section(lambda: CrawlConfig(**self.values(data, "crawl")), CrawlConfig())
        alerts = self.section(lambda: AlertsConfig(**self.values(data, "alerts")), AlertsConfig())
        self.default_channels = _channels(alerts.notify, alerts.notify_env)
        for channel in self.default_channels:
            self.channels[channel.key] = channel
        no_topics: tuple[TopicSpec, ...] = ()
        topics = self.section(lambda: self.topics(data.get("topic", []), crawl), no_topics)
        config = Config(
            path=self.path,
            database_from_env=bool(self.env.get(DATABASE_URL_ENV, "").strip()),
            database=self.section(lambda: self.database(data), DatabaseConfig()),
            smtp=self.section(lambda: self.smtp(data), None),
            crawl=crawl,
            alerts=alerts,
            logging=self.section(
                lambda: LoggingConfig(**self.values(data, "logging")), LoggingConfig()
            ),
            web=self.section(lambda: self.web(data), WebConfig()),
            executor=self.section(lambda: self.executor(data), ExecutorConfig()),
            topics=topics,
            channels=self.channels,
        )
        if config.executor.kind == "queue" and not self.errors and not _postgres(config):
            self.errors.append(str(self.error("executor.kind", QUEUE_NEEDS_POSTGRES)))
        if self.errors:
            raise ConfigError(*self.errors)
        return config

    def database(self, data: Mapping[str, Any]) -> DatabaseConfig:
        override = self.env.get(DATABASE_URL_ENV, "").strip()
        if override:
            try:
                normalise_url(override)
            except ValueError:
                raise ConfigError(
                    f"{DATABASE_URL_ENV}: expected a SQLite or PostgreSQL URL like "
                    f'"sqlite:///data/topicwatch.db", got {_show(safe_url(override))}'
                ) from None
            values = self.values(data, "database") if "database" in data else {}
            return DatabaseConfig(
                url=override, prune_every=values.get("prune_every", DatabaseConfig.prune_every)
            )
        values = self.values(data, "database")
        return DatabaseConfig(
            url=self.resolve_sqlite(values["url"]), prune_every=values["prune_every"]
        )

    def executor(self, data: Mapping[str, Any]) -> ExecutorConfig:
        values = self.values(data, "executor")
        if not values["queue"].strip():
            raise self.error("executor.queue", "expected a queue name, got an empty string")
        return ExecutorConfig(**values)

    def resolve_sqlite(self, url: str) -> str:
        """A relative SQLite path is taken from the configuration file's directory."""
        parsed = make_url(url)
        database = parsed.database
        if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return url
        if database.startswith("file:") or Path(database).is_absolute():
            return url
        absolute = (self.path.parent / database).absolute()
        return parsed.set(database=str(absolute)).render_as_string(hide_password=False)

    def web(self, data: Mapping[str, Any]) -> WebConfig:
        values = self.values(data, "web")
        return WebConfig(token=self.env.get(values["token_env"]) or None, **values)

    def smtp(self, data: Mapping[str, Any]) -> SmtpConfig | None:
        if "smtp" not in data:
            return None
        values = self.values(data, "smtp")
        password_env = values["password_env"]
        password = self.env.get(password_env) if password_env else None
        return SmtpConfig(password=password, **values)

    def topics(self, value: object, crawl: CrawlConfig) -> tuple[TopicSpec, ...]:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error("topic", f"expected [[topic]] tables, got {_show(value)}")
        specs: list[TopicSpec] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            table = _Table(self, f"topic[{index}].", item, "topic")
            try:
                spec = self.topic(table, crawl)
            except _TableFailed:
                continue
            except ConfigError as exc:
                self.errors.extend(exc.errors)
                continue
            if spec.name in seen:
                self.errors.append(
                    str(
                        self.error(
                            f"topic[{index}].name",
                            f"the name {spec.name!r} is already used by topic[{seen[spec.name]}]",
                        )
                    )
                )
                continue
            seen[spec.name] = index
            specs.append(spec)
        return tuple(specs)

    def topic(self, table: _Table, crawl: CrawlConfig) -> TopicSpec:
        if "every" in table.data and "cron" in table.data:
            table.note(table.error("cron", "give either every or cron, not both"))
        given = TopicTable(**table.values())
        if not given.sources:
            raise table.error("sources", "expected at least one http(s) URL")
        every = None if given.cron is not None else given.every
        if given.notify is None and given.notify_env is None:
            channels = self.default_channels
        else:
            channels = _channels(given.notify or (), given.notify_env or ())
        for channel in channels:
            self.channels[channel.key] = channel
        health_to: tuple[str, ...] | None = None
        if given.health_to is not None:
            told = []
            for recipient in given.health_to:
                if "://" in recipient:
                    channel = Channel(url=recipient)
                    self.channels[channel.key] = channel
                    told.append(channel.key)
                else:
                    told.append(recipient)
            health_to = tuple(dict.fromkeys(told))
        jitter = given.jitter
        if jitter is None:
            jitter = _JITTER_AT_MOST if every is None else min(_JITTER_AT_MOST, every / 4)
        return TopicSpec(
            name=given.name,
            title=given.title or given.name,
            sources=given.sources,
            max_pages=given.max_pages,
            recheck_for=given.recheck_for,
            keywords=given.keywords,
            ignore_patterns=given.ignore_patterns,
            alert_to=given.alert_to,
            alert_on=given.alert_on,
            notify=tuple(channel.key for channel in channels),
            health_to=health_to,
            health_failures=given.health_failures,
            every=every,
            cron=given.cron,
            jitter=jitter,
            profile=given.profile,
            allow_private_addresses=given.allow_private_addresses,
            live_after=given.live_after,
            live_window=given.live_window,
            live_summary_every=given.live_summary_every,
            live_ends_after=given.live_ends_after,
            alert_cap=given.alert_cap,
            alert_cap_period=given.alert_cap_period,
            keep_text_for=given.keep_text_for,
            keep_raw_html_for=given.keep_raw_html_for,
            crawl=crawl.settings(obey_robots=given.obey_robots),
        )


def _postgres(config: Config) -> bool:
    return normalise_url(config.database.url).get_backend_name() == "postgresql"


def _channels(urls: Sequence[str], variables: Sequence[str]) -> tuple[Channel, ...]:
    """The channels of a notify and a notify_env list, each once."""
    made = [Channel(url=url) for url in urls] + [Channel(env=name) for name in variables]
    return tuple({channel.key: channel for channel in made}.values())
