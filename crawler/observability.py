"""Logging and Sentry, set up the same way in the daemon, the CLI and each crawl child.

Log lines go to stderr, one per event, greppable::

    2026-11-26T10:15:02Z INFO topicwatch.run topic=konflik-rusia-ukraina run=412 status=ok …

``--log-format json`` writes the same as one JSON object per line, with ``ts``, ``level``,
``logger``, ``message`` and every ``key=value`` field as a key of its own. Fields come from
:func:`log_fields`; a plain message made only of ``key=value`` pairs is split into fields too.

With ``SENTRY_DSN`` in the environment, :func:`init_sentry` sends errors, and the log lines
before them as breadcrumbs, to Sentry; without it nothing is sent and nothing fails.
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
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sentry_sdk.transport import Transport

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")
SENTRY_DSN_ENV = "SENTRY_DSN"

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


def format_value(value: object) -> str:
    """One field value as it appears after ``key=``: bare when it can be, else JSON-quoted."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = value if isinstance(value, str) else str(value)
    if _BARE_VALUE.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)


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
        extra={"fields": dict(fields), "event": event},
        stacklevel=2,
    )


def _utc(created: float, *, millis: bool = False) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    if millis:
        stamp += f".{int(created % 1 * 1000):03d}"
    return stamp + "Z"


class TextFormatter(logging.Formatter):
    """``2026-11-26T10:15:02Z INFO logger message`` in UTC, traceback lines after it."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record.created)} {record.levelname} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of ``record``: from :func:`log_fields`, else from its message.

    A message of the form ``[words ]key=value key=value …`` gives its pairs; a value runs to
    the next `` key=`` unless it is JSON-quoted. Anything else (prose, tracebacks) has none.
    """
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        return {key: _jsonable(value) for key, value in fields.items()}
    message = record.getMessage()
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
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)


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
            message=record.getMessage(),
        )
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        ordered = {key: payload[key] for key in ("ts", "level", "logger", "message")}
        ordered.update((key, value) for key, value in payload.items() if key not in ordered)
        return json.dumps(ordered, ensure_ascii=False)


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
    logging.captureWarnings(True)


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
    """
    environ = os.environ if env is None else env
    dsn = environ.get(SENTRY_DSN_ENV, "").strip() or None
    if dsn is None and transport is None:
        return False
    # Imported only when errors go somewhere: without a DSN, a crawl process starts faster.
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    sentry_sdk.init(
        dsn=dsn,
        transport=transport,
        release=f"topicwatch@{package_version()}",
        server_name=socket.gethostname(),
        environment=environ.get("SENTRY_ENVIRONMENT") or "production",
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
        auto_enabling_integrations=False,
        before_send=_tag_fields,
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
