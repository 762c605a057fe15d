"""Logging and Sentry, set up the same way in the daemon, the CLI and each crawl child.

Log lines go to stderr, one per event, greppable::

    2026-11-26T10:15:02Z INFO topicwatch.run topic=konflik-rusia-ukraina run=412 status=ok …

``--log-format json`` writes the same as one JSON object per line, with ``ts``, ``level``,
``logger``, ``message`` and every ``key=value`` field as a key of its own. Fields come from
:func:`log_fields`; a plain message made only of ``key=value`` pairs is split into fields too.

Text from outside (titles, URLs, servers' replies) reaches the log only tamed: each value
put into a line is cut at :data:`MAX_VALUE_CHARS` characters, control and bidirectional
formatting characters are written as ``\\uXXXX`` escapes, and passwords in URLs are masked
(:func:`storage.credentials.mask_credentials`).

With ``SENTRY_DSN`` in the environment, :func:`init_sentry` sends errors, and the log lines
before them as breadcrumbs, to Sentry; without it nothing is sent and nothing fails. Events
carry no local variables, and keys that name secrets, and passwords in URLs, are scrubbed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import time
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from storage.credentials import mask_credentials

if TYPE_CHECKING:
    from sentry_sdk.transport import Transport

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")
SENTRY_DSN_ENV = "SENTRY_DSN"
# Set to PROGRESS_TERMINAL for a crawl process whose stderr is a terminal a person watches
# (``topicwatch crawl``): it draws a live progress line there (crawler.progress).
PROGRESS_ENV = "TOPICWATCH_PROGRESS"
PROGRESS_TERMINAL = "terminal"

# Libraries that speak too much at INFO for an operator's log.
NOISY_LOGGERS = (
    "scrapy",
    "twisted",
    "apscheduler",
    "urllib3",
    "filelock",
    "charset_normalizer",
    "trafilatura",
    "htmldate",
    "courlan",
    "readability",
    "asyncio",
    "alembic.runtime.migration",
    "alembic.runtime.plugins",
)

# A value put into a log line is cut after this many characters (a 100,000-character title
# makes one long line, not a 100 KB one).
MAX_VALUE_CHARS = 1000
ELLIPSIS = "…"
# Characters that must not reach a log raw: C0 and C1 controls (terminal escapes, forged line
# breaks), and the bidirectional formatting characters that make a line read otherwise than
# it is (U+202E, U+2066-2069, …) and Unicode's own line separators.
_BIDI_AND_SEPARATORS = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE_IN_VALUE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
# In a whole line, line breaks and tabs stay: tracebacks follow their line.
_UNSAFE_IN_LINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
# What JSON leaves raw (it escapes C0 controls itself).
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI_AND_SEPARATORS}]")

# Keys whose values Sentry never gets, besides sentry-sdk's own list (password, secret, token,
# authorization, …): what names a database URL, a DSN, or libpq's connection string.
SENTRY_DENYLIST = (
    "pwd",
    "passphrase",
    "dsn",
    "conninfo",
    "database_url",
    "db_url",
    "url_with_password",
    "smtp_password",
    "pgpassword",
)

# Scrapy's own lines about a request that failed on the network (retries given up, a
# robots.txt that could not be fetched). The crawl run logs each failed fetch once, as a
# ``topicwatch.fetch`` WARNING with the URL and the reason in plain words; Scrapy's lines
# about it (an ERROR and a 60-line traceback each) are moved down to DEBUG, where they are
# still there for whoever asks, and no longer reach Sentry. An error that is not about the
# network (a bug) keeps its level and its traceback.
FETCH_FAILURE_LOGGERS = (
    "scrapy.downloadermiddlewares.retry",
    "scrapy.downloadermiddlewares.robotstxt",
)
# Exceptions that say a fetch failed on the network or was refused, by their module or name.
_NETWORK_MODULES = ("twisted.internet.error", "twisted.web._newclient", "OpenSSL", "ssl")
_NETWORK_NAMES = frozenset(
    {
        "CannotResolveHostError",
        "DownloadConnectionRefusedError",
        "DownloadTimeoutError",
        "DownloadFailedError",
        "DownloadCancelledError",
        "ResponseDataLossError",
        "ResponseFailed",
        "TunnelError",
        "AddressRefused",
        "TimeoutError",
        "ConnectionError",
    }
)

_BARE_VALUE = re.compile(r"^[^\s\"]+$")
_KEY = r"[A-Za-z_][\w.\-/]*"
_FIRST_KEY = re.compile(rf"(?:^|(?<=\s)){_KEY}=")
_PAIR = re.compile(rf'({_KEY})=("(?:[^"\\]|\\.)*"(?=\s|$)|.*?)(?=\s+{_KEY}=|$)')
# Attributes every LogRecord has; anything else came in through ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def _escape(text: str, unsafe: re.Pattern[str]) -> str:
    return unsafe.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def clean_value(text: str) -> str:
    """``text`` fit to be one value of a log line: at most :data:`MAX_VALUE_CHARS`
    characters (then an ellipsis), no control or bidirectional formatting character raw,
    no password of a URL."""
    return _escape(_cut(text), _UNSAFE_IN_VALUE)


def _cut(text: str) -> str:
    """At most :data:`MAX_VALUE_CHARS` characters, passwords masked. The masking sees a
    little more than is kept, so that a URL cut before its '@' is masked too."""
    if len(text) <= MAX_VALUE_CHARS:
        return mask_credentials(text)
    text = mask_credentials(text[: MAX_VALUE_CHARS + 1400])
    return text[: MAX_VALUE_CHARS - 1] + ELLIPSIS


def format_value(value: object) -> str:
    """One field value as it appears after ``key=``: bare when it can be, else JSON-quoted;
    cut and escaped as :func:`clean_value` says."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = _cut(value if isinstance(value, str) else str(value))
    if _BARE_VALUE.match(text) and not _UNSAFE_IN_VALUE.search(text):
        return text
    return _escape(json.dumps(text, ensure_ascii=False), _UNSAFE_IN_JSON)


def format_fields(fields: Mapping[str, object]) -> str:
    """``key=value key=value`` for ``fields``, in their order."""
    return " ".join(f"{key}={format_value(value)}" for key, value in fields.items())


def log_fields(
    logger: logging.Logger | str,
    level: int,
    event: str | None = None,
    /,
    **fields: object,
) -> None:
    """Log one line of ``key=value`` fields, preceded by ``event`` when given.

    In JSON the fields become keys of the line's object (and ``event`` its ``event`` key).
    """
    log = logging.getLogger(logger) if isinstance(logger, str) else logger
    if not log.isEnabledFor(level):
        return
    rendered = format_fields(fields)
    text = f"{event} {rendered}" if event and rendered else (event or rendered)
    log.log(
        level,
        "%s",
        text,
        extra={"fields": dict(fields), "event": event, _RENDERED: True},
        stacklevel=2,
    )


class Seconds(float):
    """A duration in a log line: ``4.0s`` in text, the number 4.0 in JSON (to a tenth)."""

    def __new__(cls, seconds: float) -> Seconds:
        return super().__new__(cls, round(seconds, 1))

    def __str__(self) -> str:
        return f"{float(self):.1f}s"


def utc_stamp(moment: datetime) -> str:
    """``2026-11-26T10:15:02Z``: how every time topicwatch writes is spelled (UTC, with Z)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(created: float, *, millis: bool = False) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    if millis:
        stamp += f".{int(created % 1 * 1000):03d}"
    return stamp + "Z"


# Marks a record whose message log_fields built from values it already cleaned.
_RENDERED = "_topicwatch_rendered"


def log_message(record: logging.LogRecord) -> str:
    """The message of ``record`` as the log shows it: each argument put into it cleaned
    (:func:`clean_value`), then the whole without raw control characters or passwords."""
    if getattr(record, _RENDERED, False) or not record.args:
        message = record.getMessage()
    else:
        args: Any = record.args
        if isinstance(args, Mapping):
            args = {key: _clean_argument(value) for key, value in args.items()}
        else:
            args = tuple(_clean_argument(value) for value in args)
        try:
            message = str(record.msg) % args
        except (TypeError, ValueError):
            message = record.getMessage()  # as logging itself would fail, or not
    return clean_line(message)


def _clean_argument(value: object) -> object:
    return clean_value(value) if isinstance(value, str) else value


def clean_line(text: str) -> str:
    """``text`` (a message, a traceback) without raw control characters, except line breaks
    and tabs, and with passwords in URLs masked."""
    return mask_credentials(_escape(text, _UNSAFE_IN_LINE))


class TextFormatter(logging.Formatter):
    """``2026-11-26T10:15:02Z INFO logger message`` in UTC, traceback lines after it."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record.created)} {record.levelname} {record.name} {log_message(record)}"
        if record.exc_info:
            line += "\n" + clean_line(self.formatException(record.exc_info))
        elif record.stack_info:
            line += "\n" + clean_line(self.formatStack(record.stack_info))
        return line


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of ``record``: from :func:`log_fields`, else from its message.

    A message of the form ``[words ]key=value key=value …`` gives its pairs; a value runs to
    the next `` key=`` unless it is JSON-quoted. Anything else (prose, tracebacks) has none.
    """
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        return {key: _jsonable(value) for key, value in fields.items()}
    message = log_message(record)
    start = _FIRST_KEY.search(message)
    if start is None or "\n" in message or "=" in message[: start.start()]:
        return {}
    parsed: dict[str, Any] = {}
    for match in _PAIR.finditer(message, start.start()):
        raw = match.group(2)
        if raw.startswith('"') and raw.endswith('"') and len(raw) > 1:
            try:
                parsed[match.group(1)] = json.loads(raw)
                continue
            except json.JSONDecodeError:
                pass
        parsed[match.group(1)] = raw
    return parsed


def _jsonable(value: object) -> Any:
    # Cut, not escaped: the JSON line escapes what must not be raw (JsonFormatter).
    if isinstance(value, str):
        return _cut(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return _cut(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {}
        event = getattr(record, "event", None)
        if event:
            payload["event"] = event
        payload.update(fields_of(record))
        payload.update(
            ts=_utc(record.created, millis=True),
            level=record.levelname,
            logger=record.name,
            message=log_message(record),
        )
        if record.exc_info:
            payload["exception"] = clean_line(self.formatException(record.exc_info))
        ordered = {key: payload[key] for key in ("ts", "level", "logger", "message")}
        ordered.update((key, value) for key, value in payload.items() if key not in ordered)
        return _escape(json.dumps(ordered, ensure_ascii=False), _UNSAFE_IN_JSON)


_HANDLER_MARK = "_topicwatch_handler"


def configure_logging(
    fmt: str = "text", level: str | int = "INFO", *, stream: IO[str] | None = None
) -> None:
    """Send log lines to stderr (or ``stream``) as text or JSON, from ``level`` up.

    Calling it again replaces the handler it installed before. Lines of chatty libraries
    below WARNING are dropped unless ``level`` is DEBUG.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"Unknown log format {fmt!r}; expected one of {', '.join(LOG_FORMATS)}")
    numeric = level if isinstance(level, int) else logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"Unknown log level {level!r}; expected DEBUG, INFO, WARNING or ERROR")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.setLevel(numeric)
    if numeric > logging.DEBUG:
        handler.addFilter(_quiet_libraries)
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(numeric)
    _demote_fetch_failures()
    logging.captureWarnings(True)


def is_network_error(error: BaseException) -> bool:
    """Whether ``error`` says a fetch failed on the network (DNS, refused, TLS, time-out, a
    connection lost) or was refused by the crawl's address guard, rather than a bug."""
    for kind in type(error).__mro__:
        if kind.__name__ in _NETWORK_NAMES or kind.__module__.startswith(_NETWORK_MODULES):
            return True
    return False


def _fetch_failure_to_debug(record: logging.LogRecord) -> bool:
    """A filter of :data:`FETCH_FAILURE_LOGGERS`: their lines about a fetch that failed on
    the network become DEBUG lines (see there)."""
    if record.levelno < logging.WARNING:
        return True
    error = record.exc_info[1] if record.exc_info else None
    gave_up = str(record.msg).startswith("Gave up retrying")
    if gave_up or (error is not None and is_network_error(error)):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return True


def _demote_fetch_failures() -> None:
    for name in FETCH_FAILURE_LOGGERS:
        log = logging.getLogger(name)
        if _fetch_failure_to_debug not in log.filters:
            log.addFilter(_fetch_failure_to_debug)


def log_handlers() -> list[logging.StreamHandler[Any]]:
    """The handlers :func:`configure_logging` installed (on the root logger)."""
    return [
        handler
        for handler in logging.getLogger().handlers
        if getattr(handler, _HANDLER_MARK, False) and isinstance(handler, logging.StreamHandler)
    ]


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """Drop chatty libraries' lines below WARNING.

    A filter on the handler, not logger levels: Scrapy resets its loggers' levels when a
    crawl starts.
    """
    if record.levelno >= logging.WARNING:
        return True
    name = record.name
    return not any(name == noisy or name.startswith(noisy + ".") for noisy in NOISY_LOGGERS)


def package_version() -> str:
    """topicwatch's version: from the installed distribution, else from pyproject.toml."""
    from importlib import metadata

    try:
        return metadata.version("topicwatch")
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        return str(tomllib.loads(pyproject.read_text("utf-8"))["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0+unknown"


def _tag_fields(event: Any, hint: Any) -> Any:
    """Promote a log line's topic, run and URL to tags, so an event names them."""
    record = hint.get("log_record") if isinstance(hint, dict) else None
    if record is not None:
        fields = fields_of(record)
        tags = event.setdefault("tags", {})
        for key in ("topic", "run", "url", "status"):
            if key in fields and fields[key] is not None:
                tags.setdefault(key, str(fields[key])[:200])
    return event


def mask_event(value: Any) -> Any:
    """``value`` (a Sentry event, or a part of one) with passwords in URLs and connection
    strings masked in every string it holds, keys included."""
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, dict):
        return {mask_event(key): mask_event(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_event(item) for item in value]
    if isinstance(value, tuple):
        return tuple(mask_event(item) for item in value)
    return value


def _before_send(event: Any, hint: Any) -> Any:
    return mask_event(_tag_fields(event, hint))


def _before_breadcrumb(crumb: Any, hint: Any) -> Any:
    return mask_event(crumb)


def init_sentry(
    component: str,
    *,
    transport: Transport | None = None,
    env: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> bool:
    """Start sending errors to Sentry when ``SENTRY_DSN`` is set (or ``transport`` given).

    Logged errors become events, with the log lines before them as breadcrumbs; every event
    carries the ``component`` tag (``daemon``, ``cli``, ``crawler``) and ``tags``. Events
    still queued are flushed when the process exits. Returns whether Sentry is on.

    No secret goes with them: stack frames carry no local variables (they held the SMTP
    settings and the driver's connection parameters), values under keys that name secrets
    are replaced (sentry-sdk's list and :data:`SENTRY_DENYLIST`, at any depth), and
    passwords in URLs and ``password=`` settings are masked in every string sent.
    """
    environ = os.environ if env is None else env
    dsn = environ.get(SENTRY_DSN_ENV, "").strip() or None
    if dsn is None and transport is None:
        return False
    # Imported only when errors go somewhere: without a DSN, a crawl process starts faster.
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=dsn,
        transport=transport,
        release=f"topicwatch@{package_version()}",
        server_name=socket.gethostname(),
        environment=environ.get("SENTRY_ENVIRONMENT") or "production",
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
        auto_enabling_integrations=False,
        before_send=_before_send,
        before_breadcrumb=_before_breadcrumb,
        include_local_variables=False,
        event_scrubber=EventScrubber(
            denylist=[*DEFAULT_DENYLIST, *SENTRY_DENYLIST], recursive=True
        ),
        shutdown_timeout=5,
    )
    sentry_sdk.set_tag("component", component)
    for key, value in (tags or {}).items():
        sentry_sdk.set_tag(key, value)
    return True


def flush_sentry(timeout: float = 5.0) -> None:
    """Send what Sentry still holds, waiting at most ``timeout`` seconds (no-op when off)."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is not None and sentry_sdk.get_client().is_active():
        sentry_sdk.flush(timeout=timeout)
