"""The configuration file: one TOML file validated into typed, frozen objects.

The file is found at ``--config``, else ``$TOPICWATCH_CONFIG``, else ``./topicwatch.toml``.
Every key the file may hold is described once, in :data:`CONFIG_KEYS`; a key that is not
described there is an error, so a typo is caught at start-up instead of silently ignored.
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
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import make_url

from alerts.smtp import SECURITY_MODES, SmtpSettings, parse_mailbox
from crawler.profiles import PROFILES, ProfileLookupError, profile_by_name
from storage.db import normalise_url
from storage.spec import CHANGE_KINDS, CrawlSettings, TopicSpec

DEFAULT_PATH = Path("topicwatch.toml")
CONFIG_ENV = "TOPICWATCH_CONFIG"
DATABASE_URL_ENV = "TOPICWATCH_DATABASE_URL"


class ConfigError(ValueError):
    """The configuration file is missing, is not valid TOML, or holds a value that is wrong."""


class UnknownTopic(LookupError):
    """A command named a topic that the configuration does not define."""

    def __init__(self, name: str, config_path: Path | str, known: Sequence[str]) -> None:
        listed = ", ".join(known) if known else "none"
        super().__init__(
            f"No topic by the name of {name!r} is defined in {config_path} (topics: {listed})"
        )
        self.name = name


@dataclass(frozen=True)
class ConfigKey:
    """One key of the configuration file, for validation and for the documentation."""

    path: str  # "crawl.run_timeout"; keys of each [[topic]] table are "topic.NAME"
    type: str
    default: str | None  # as written in TOML; None when the key is required or has no default
    meaning: str

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.path.split(".", 1)[1]


CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "database.url",
        "string",
        '"sqlite:///data/topicwatch.db"',
        "SQLAlchemy database URL: sqlite:///PATH (a relative path is taken from the config "
        "file's directory) or postgresql+psycopg://USER@HOST/DB. The environment variable "
        "TOPICWATCH_DATABASE_URL overrides it.",
    ),
    ConfigKey("smtp.host", "string", None, "SMTP server host name. Required in [smtp]."),
    ConfigKey("smtp.port", "integer", "587", "SMTP server port."),
    ConfigKey(
        "smtp.security",
        "string",
        '"starttls"',
        "starttls (upgrade a plain connection), tls (TLS from the start) or none.",
    ),
    ConfigKey("smtp.username", "string", None, "User name to log in with; none: no login."),
    ConfigKey(
        "smtp.password_env",
        "string",
        None,
        "Name of the environment variable that holds the SMTP password.",
    ),
    ConfigKey(
        "smtp.sender",
        "string",
        None,
        'From address of alert emails, e.g. "topicwatch <alerts@example.org>". Required in [smtp].',
    ),
    ConfigKey("smtp.timeout", "duration", '"30s"', "Timeout of each SMTP connection."),
    ConfigKey(
        "crawl.user_agent",
        "string",
        json.dumps(CrawlSettings().user_agent),
        "User-Agent of every request; name the service and a contact URL.",
    ),
    ConfigKey("crawl.max_concurrent_runs", "integer", "2", "Crawl runs at the same time, at most."),
    ConfigKey(
        "crawl.run_timeout",
        "duration",
        '"10m"',
        "Wall-clock limit of one crawl run; a run still going then is killed and recorded "
        "as timeout.",
    ),
    ConfigKey(
        "crawl.shutdown_grace",
        "duration",
        '"30s"',
        "On SIGTERM/SIGINT, how long running crawls may go on before they are stopped.",
    ),
    ConfigKey("crawl.obey_robots", "boolean", "true", "Obey robots.txt (topics can override it)."),
    ConfigKey("crawl.concurrent_per_domain", "integer", "2", "Concurrent requests to one domain."),
    ConfigKey("crawl.download_delay", "duration", "0.5", "Delay between requests to one domain."),
    ConfigKey(
        "crawl.autothrottle",
        "boolean",
        "true",
        "Adapt the delay to the server's response times (Scrapy AutoThrottle).",
    ),
    ConfigKey("crawl.download_timeout", "duration", '"30s"', "Timeout of one request."),
    ConfigKey(
        "crawl.download_maxsize", "size", '"10MB"', "Responses larger than this are dropped."
    ),
    ConfigKey(
        "crawl.retry_times", "integer", "2", "Retries of a request that timed out or got a 5xx."
    ),
    ConfigKey(
        "crawl.workers",
        "integer",
        "0",
        "Worker processes that read the pages of one crawl run (extraction, fingerprint, the "
        "links of its listing pages), plus one that records them in the database; 0 does both "
        "in the crawl process, which costs least for the few pages of a polite run. Worth it "
        "for big backlogs and sites that allow fast crawling, one per core. A run forks them "
        "at its start (ps shows them as tw-reader and tw-writer); where it cannot fork, it "
        "reads its first 30 pages and records its first 100 outcomes itself, and starts them "
        "afresh only when it has more.",
    ),
    ConfigKey(
        "crawl.store_raw_html",
        "boolean",
        "false",
        "Keep each version's compressed raw HTML in the database.",
    ),
    ConfigKey(
        "alerts.max_attempts",
        "integer",
        "8",
        "Delivery attempts of an alert before it is marked failed.",
    ),
    ConfigKey(
        "alerts.retry_backoff",
        "duration",
        '"1m"',
        "Wait before the first retry of a failed delivery; it doubles with each attempt.",
    ),
    ConfigKey(
        "alerts.dispatch_every",
        "duration",
        '"1m"',
        "How often the daemon sends pending alerts, besides after each crawl run.",
    ),
    ConfigKey("logging.format", "string", '"text"', "Log format on stderr: text or json."),
    ConfigKey("logging.level", "string", '"INFO"', "Log level: DEBUG, INFO, WARNING or ERROR."),
    ConfigKey(
        "topic.name",
        "string",
        None,
        "Unique name of the topic: lowercase letters, digits, '-' and '_', at most 50 "
        "characters. Required.",
    ),
    ConfigKey("topic.title", "string", None, "Human title used in emails; default: the name."),
    ConfigKey(
        "topic.sources",
        "list of URLs",
        None,
        "Topic listing pages, RSS/Atom feeds or news sitemaps (http or https). At least one.",
    ),
    ConfigKey(
        "topic.every",
        "duration",
        '"15m"',
        "Interval between crawl runs. Give either every or cron; without both, every 15m.",
    ),
    ConfigKey(
        "topic.cron",
        "string",
        None,
        'Crontab schedule with five fields in UTC, e.g. "*/15 * * * *" (day of week: '
        "0 is Monday, or use mon-sun).",
    ),
    ConfigKey(
        "topic.jitter",
        "duration",
        '"30s"',
        "Random delay up to this long added to each scheduled run; the default is 30s, or a "
        "quarter of every when that is shorter.",
    ),
    ConfigKey(
        "topic.max_pages", "integer", "2", "Listing pages followed through pagination, at most."
    ),
    ConfigKey(
        "topic.recheck_for",
        "duration",
        '"7d"',
        "How long articles that left the listing are still re-checked for edits.",
    ),
    ConfigKey(
        "topic.keywords",
        "list of strings",
        "[]",
        "Only articles whose title or text contains one of these words (case-insensitive).",
    ),
    ConfigKey(
        "topic.ignore_patterns",
        "list of regexes",
        "[]",
        "Text matching these regular expressions is ignored when comparing versions.",
    ),
    ConfigKey("topic.alert_to", "list of emails", "[]", "Recipients of this topic's alerts."),
    ConfigKey(
        "topic.alert_on",
        "list of strings",
        '["new", "updated", "removed"]',
        "Which changes are emailed: new, updated, removed, restored.",
    ),
    ConfigKey(
        "topic.profile",
        "string",
        None,
        "Site profile by name (e.g. tribunnews); default: chosen by the source's host.",
    ),
    ConfigKey(
        "topic.obey_robots",
        "boolean",
        None,
        "Per-topic override of crawl.obey_robots, for sites that gave permission.",
    ),
)

SECTIONS = ("database", "smtp", "crawl", "alerts", "logging", "topic")
_KEYS_BY_SECTION: dict[str, tuple[str, ...]] = {
    section: tuple(key.name for key in CONFIG_KEYS if key.section == section)
    for section in SECTIONS
}

SMTP_SECURITY: tuple[str, ...] = SECURITY_MODES
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

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


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///data/topicwatch.db"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    sender: str
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password_env: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0


@dataclass(frozen=True)
class CrawlConfig:
    user_agent: str = CrawlSettings().user_agent
    max_concurrent_runs: int = 2
    run_timeout: float = 600.0
    shutdown_grace: float = 30.0
    obey_robots: bool = True
    concurrent_per_domain: int = 2
    download_delay: float = 0.5
    autothrottle: bool = True
    download_timeout: float = 30.0
    download_maxsize: int = 10 * 1024 * 1024
    retry_times: int = 2
    store_raw_html: bool = False
    workers: int = 0

    def settings(self, *, obey_robots: bool | None = None) -> CrawlSettings:
        """What one crawl child needs of these settings, with a topic's robots override."""
        return CrawlSettings(
            user_agent=self.user_agent,
            obey_robots=self.obey_robots if obey_robots is None else obey_robots,
            concurrent_per_domain=self.concurrent_per_domain,
            download_delay=self.download_delay,
            autothrottle=self.autothrottle,
            download_timeout=self.download_timeout,
            download_maxsize=self.download_maxsize,
            retry_times=self.retry_times,
            store_raw_html=self.store_raw_html,
            workers=self.workers,
        )


@dataclass(frozen=True)
class AlertsConfig:
    max_attempts: int = 8
    retry_backoff: float = 60.0
    dispatch_every: float = 60.0


@dataclass(frozen=True)
class LoggingConfig:
    format: str = "text"
    level: str = "INFO"


@dataclass(frozen=True)
class Config:
    """The whole validated configuration file."""

    path: Path
    database: DatabaseConfig = DatabaseConfig()
    smtp: SmtpConfig | None = None
    crawl: CrawlConfig = CrawlConfig()
    alerts: AlertsConfig = AlertsConfig()
    logging: LoggingConfig = LoggingConfig()
    topics: tuple[TopicSpec, ...] = ()

    def topic_specs(self) -> list[TopicSpec]:
        """Each topic's definition, with the ``[crawl]`` settings merged in."""
        return list(self.topics)

    def topic(self, name: str) -> TopicSpec:
        """The topic called ``name``; raises :class:`UnknownTopic`."""
        for spec in self.topics:
            if spec.name == name:
                return spec
        raise UnknownTopic(name, self.path, [spec.name for spec in self.topics])

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
        allowed = _KEYS_BY_SECTION[section]
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise self.error(key, f"unknown key{hint} (known: {', '.join(allowed)})")

    def error(self, key: str, message: str) -> ConfigError:
        return self.loader.error(f"{self.prefix}{key}", message)

    def has(self, key: str) -> bool:
        return key in self.data

    def string(self, key: str, default: str | None = None, *, choices: Sequence[str] = ()) -> str:
        value = self.optional_string(key)
        if value is None:
            if default is None:
                raise self.error(key, "required, expected a string")
            return default
        if choices and value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {_show(value)}")
        return value

    def optional_string(self, key: str) -> str | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {_show(value)}")
        return value.strip()

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected a whole number, got {_show(value)}")
        if value < minimum:
            raise self.error(key, f"expected a number of at least {minimum}, got {value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_show(value)}")
        return value

    def duration(self, key: str, default: float, *, positive: bool = False) -> float:
        if key not in self.data:
            return default
        value = self.data[key]
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        if positive and seconds <= 0:
            raise self.error(key, f"expected {DURATION_HINT} longer than zero, got {_show(value)}")
        return seconds

    def size(self, key: str, default: int) -> int:
        if key not in self.data:
            return default
        try:
            return parse_size(self.data[key])
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def strings(self, key: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        value = self.data.get(key, list(default))
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
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env

    def error(self, field_path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {field_path}: {message}")

    def section(self, data: Mapping[str, Any], name: str) -> _Table | None:
        if name not in data:
            return None
        value = data[name]
        if not isinstance(value, dict):
            raise self.error(name, f"expected a [{name}] table, got {_show(value)}")
        return _Table(self, f"{name}.", value, name)

    def config(self, data: Mapping[str, Any]) -> Config:
        for name in data:
            if name not in SECTIONS:
                close = difflib.get_close_matches(name, SECTIONS, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise self.error(name, f"unknown section{hint} (known: {', '.join(SECTIONS)})")
        crawl = self.crawl(self.section(data, "crawl"))
        return Config(
            path=self.path,
            database=self.database(self.section(data, "database")),
            smtp=self.smtp(self.section(data, "smtp")),
            crawl=crawl,
            alerts=self.alerts(self.section(data, "alerts")),
            logging=self.logging(self.section(data, "logging")),
            topics=self.topics(data.get("topic", []), crawl),
        )

    def database(self, table: _Table | None) -> DatabaseConfig:
        override = self.env.get(DATABASE_URL_ENV, "").strip()
        if override:
            try:
                normalise_url(override)
            except ValueError:
                raise ConfigError(
                    f"{DATABASE_URL_ENV}: expected a SQLite or PostgreSQL URL like "
                    f'"sqlite:///data/topicwatch.db", got {_show(override)}'
                ) from None
            return DatabaseConfig(url=override)
        if table is None:
            return DatabaseConfig(url=self.resolve_sqlite(DatabaseConfig().url))
        url = table.string("url", DatabaseConfig().url)
        try:
            normalise_url(url)
        except ValueError:
            raise table.error(
                "url",
                'expected a SQLite or PostgreSQL URL like "sqlite:///data/topicwatch.db" or '
                f'"postgresql+psycopg://user@host/db", got {_show(url)}',
            ) from None
        return DatabaseConfig(url=self.resolve_sqlite(url))

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

    def smtp(self, table: _Table | None) -> SmtpConfig | None:
        if table is None:
            return None
        password_env = table.optional_string("password_env")
        if password_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
            raise table.error(
                "password_env",
                f"expected the name of an environment variable, got {_show(password_env)}",
            )
        port = table.integer("port", 587, minimum=1)
        if port > 65535:
            raise table.error("port", f"expected a port number up to 65535, got {port}")
        sender = table.string("sender")
        try:
            parse_mailbox(sender)
        except ValueError:
            raise table.error(
                "sender",
                f'expected an address like "topicwatch <alerts@example.org>", got {_show(sender)}',
            ) from None
        return SmtpConfig(
            host=table.string("host"),
            sender=sender,
            port=port,
            security=table.string("security", "starttls", choices=SMTP_SECURITY),
            username=table.optional_string("username"),
            password_env=password_env,
            password=self.env.get(password_env) if password_env else None,
            timeout=table.duration("timeout", 30.0, positive=True),
        )

    def crawl(self, table: _Table | None) -> CrawlConfig:
        if table is None:
            return CrawlConfig()
        defaults = CrawlConfig()
        return CrawlConfig(
            user_agent=table.string("user_agent", defaults.user_agent),
            max_concurrent_runs=table.integer("max_concurrent_runs", 2, minimum=1),
            run_timeout=table.duration("run_timeout", 600.0, positive=True),
            shutdown_grace=table.duration("shutdown_grace", 30.0),
            obey_robots=table.boolean("obey_robots", True),
            concurrent_per_domain=table.integer("concurrent_per_domain", 2, minimum=1),
            download_delay=table.duration("download_delay", 0.5),
            autothrottle=table.boolean("autothrottle", True),
            download_timeout=table.duration("download_timeout", 30.0, positive=True),
            download_maxsize=table.size("download_maxsize", 10 * 1024 * 1024),
            retry_times=table.integer("retry_times", 2),
            store_raw_html=table.boolean("store_raw_html", False),
            workers=table.integer("workers", 0, minimum=0),
        )

    def alerts(self, table: _Table | None) -> AlertsConfig:
        if table is None:
            return AlertsConfig()
        return AlertsConfig(
            max_attempts=table.integer("max_attempts", 8, minimum=1),
            retry_backoff=table.duration("retry_backoff", 60.0),
            dispatch_every=table.duration("dispatch_every", 60.0, positive=True),
        )

    def logging(self, table: _Table | None) -> LoggingConfig:
        if table is None:
            return LoggingConfig()
        level = table.string("level", "INFO").upper()
        if level not in LOG_LEVELS:
            raise table.error(
                "level", f"expected one of {', '.join(LOG_LEVELS)}, got {_show(level)}"
            )
        return LoggingConfig(
            format=table.string("format", "text", choices=LOG_FORMATS), level=level
        )

    def topics(self, value: object, crawl: CrawlConfig) -> tuple[TopicSpec, ...]:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error("topic", f"expected [[topic]] tables, got {_show(value)}")
        specs: list[TopicSpec] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            spec = self.topic(_Table(self, f"topic[{index}].", item, "topic"), crawl)
            if spec.name in seen:
                raise self.error(
                    f"topic[{index}].name",
                    f"the name {spec.name!r} is already used by topic[{seen[spec.name]}]",
                )
            seen[spec.name] = index
            specs.append(spec)
        return tuple(specs)

    def topic(self, table: _Table, crawl: CrawlConfig) -> TopicSpec:
        name = table.string("name")
        if len(name) > 50 or not _TOPIC_NAME.match(name):
            raise table.error(
                "name",
                "expected lowercase letters, digits, '-' and '_' (at most 50 characters, "
                f'like "konflik-rusia-ukraina"), got {_show(name)}',
            )
        sources = table.strings("sources")
        if not sources:
            raise table.error("sources", "expected at least one http(s) URL")
        for index, source in enumerate(sources):
            parts = urlsplit(source)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise table.error(
                    f"sources[{index}]", f"expected an http(s) URL, got {_show(source)}"
                )
        if table.has("every") and table.has("cron"):
            raise table.error("cron", "give either every or cron, not both")
        cron = table.optional_string("cron")
        every: float | None = None
        if cron is not None:
            try:
                CronTrigger.from_crontab(cron, timezone="UTC")
            except ValueError as exc:
                raise table.error(
                    "cron",
                    f'expected a crontab schedule like "*/15 * * * *", got {_show(cron)} '
                    f"({_sentence_tail(exc)})",
                ) from None
        else:
            every = table.duration("every", 900.0, positive=True)
        jitter_default = 30.0 if every is None else min(30.0, every / 4)
        patterns = table.strings("ignore_patterns")
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise table.error(
                    f"ignore_patterns[{index}]",
                    f"expected a regular expression, got {_show(pattern)} ({exc})",
                ) from None
        alert_to = table.strings("alert_to")
        for index, address in enumerate(alert_to):
            try:
                valid = "@" in parse_mailbox(address).addr_spec
            except ValueError:
                valid = False
            if not valid:
                raise table.error(
                    f"alert_to[{index}]",
                    f'expected an email address like "desk@example.org", got {_show(address)}',
                )
        alert_on = table.strings("alert_on", ("new", "updated", "removed"))
        for index, kind in enumerate(alert_on):
            if kind not in CHANGE_KINDS:
                raise table.error(
                    f"alert_on[{index}]",
                    f"expected one of {', '.join(CHANGE_KINDS)}, got {_show(kind)}",
                )
        profile = table.optional_string("profile")
        if profile is not None:
            try:
                profile = profile_by_name(profile).name
            except ProfileLookupError:
                known = ", ".join(known_profile.name for known_profile in PROFILES)
                raise table.error(
                    "profile", f"expected one of {known}, got {_show(profile)}"
                ) from None
        obey_robots = table.boolean("obey_robots", crawl.obey_robots)
        return TopicSpec(
            name=name,
            title=table.string("title", name),
            sources=sources,
            max_pages=table.integer("max_pages", 2, minimum=1),
            recheck_for=table.duration("recheck_for", 7 * 86400.0),
            keywords=table.strings("keywords"),
            ignore_patterns=patterns,
            alert_to=alert_to,
            alert_on=alert_on,
            every=every,
            cron=cron,
            jitter=table.duration("jitter", jitter_default),
            profile=profile,
            crawl=crawl.settings(obey_robots=obey_robots),
        )
