"""Log lines (text and JSON) and Sentry set-up, shared by the daemon, the CLI and crawl children."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from crawler.observability import (
    configure_logging,
    fields_of,
    flush_sentry,
    init_sentry,
    log_fields,
    package_version,
)

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (?P<level>[A-Z]+) (?P<rest>.*)$")


class CapturingTransport(Transport):
    """Keeps what Sentry would send, in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        return [event for env in self.envelopes if (event := env.get_event()) is not None]

    def check_ins(self) -> list[dict[str, Any]]:
        return [
            item.payload.json
            for env in self.envelopes
            for item in env.items
            if item.type == "check_in" and item.payload.json is not None
        ]


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Log lines written by ``configure_logging`` into a string; logging restored after."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    yield buffer
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def sentry() -> Iterator[CapturingTransport]:
    transport = CapturingTransport()
    yield transport
    client = sentry_sdk.get_client()
    client.close()
    sentry_sdk.get_global_scope().set_client(None)
    sentry_sdk.get_isolation_scope().clear()
    sentry_sdk.get_current_scope().clear()


def lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


def test_text_lines_are_utc_level_logger_then_fields(stream: io.StringIO) -> None:
    configure_logging("text", "INFO", stream=stream)
    log_fields(
        "topicwatch.run",
        logging.INFO,
        None,
        topic="konflik-rusia-ukraina",
        run=412,
        status="ok",
        duration="6.4s",
    )
    log_fields(
        "topicwatch.health",
        logging.WARNING,
        "empty_listing",
        topic="t",
        url="https://example.org/topic?page=2",
        title='Rusia "menolak" usulan',
        missing=None,
    )
    logging.getLogger("scheduler.daemon").debug("not shown at INFO")
    first, second = lines(stream)
    match = TEXT_LINE.match(first)
    assert match is not None
    assert match["level"] == "INFO"
    assert match["rest"] == (
        "topicwatch.run topic=konflik-rusia-ukraina run=412 status=ok duration=6.4s"
    )
    match = TEXT_LINE.match(second)
    assert match is not None
    assert match["rest"] == (
        "topicwatch.health empty_listing topic=t url=https://example.org/topic?page=2 "
        'title="Rusia \\"menolak\\" usulan" missing=-'
    )


def test_json_lines_carry_the_same_fields_as_keys(stream: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=stream)
    log_fields("topicwatch.run", logging.INFO, None, topic="alpha", run=7, status="ok")
    # Plain %-style lines made of key=value pairs are split into fields as well.
    logging.getLogger("topicwatch.change").info(
        "kind=%s topic=%s url=%s title=%s", "new", "alpha", "http://x/1", '"Dua kata"'
    )
    logging.getLogger("scheduler.daemon").warning("Marked %d run(s) as failed", 2)
    run, change, plain = (json.loads(line) for line in lines(stream))
    assert run["level"] == "INFO"
    assert run["logger"] == "topicwatch.run"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", run["ts"])
    assert (run["topic"], run["run"], run["status"]) == ("alpha", 7, "ok")
    assert run["message"] == "topic=alpha run=7 status=ok"
    assert change["kind"] == "new"
    assert change["title"] == "Dua kata"
    assert change["url"] == "http://x/1"
    assert plain["message"] == "Marked 2 run(s) as failed"
    assert "topic" not in plain


def test_exceptions_follow_their_line(stream: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    [line] = lines(stream)
    assert "RuntimeError: boom" in json.loads(line)["exception"]


def test_noisy_libraries_are_quiet_unless_debugging(stream: io.StringIO) -> None:
    configure_logging("text", "INFO", stream=stream)
    logging.getLogger("scrapy").setLevel(logging.DEBUG)  # as Scrapy's own set-up does
    logging.getLogger("scrapy.core.engine").debug("Crawled (200)")
    logging.getLogger("scrapy.core.engine").info("Spider opened")
    logging.getLogger("scrapy.core.engine").warning("Something odd")
    assert len(lines(stream)) == 1
    configure_logging("text", "DEBUG", stream=stream)
    logging.getLogger("scrapy.core.engine").info("Spider opened")
    assert len(lines(stream)) == 2
    logging.getLogger("scrapy").setLevel(logging.NOTSET)


def test_a_second_configuration_replaces_the_first(stream: io.StringIO) -> None:
    configure_logging("text", "INFO", stream=stream)
    configure_logging("text", "INFO", stream=stream)
    logging.getLogger("x").info("once")
    assert len(lines(stream)) == 1


def test_bad_format_or_level_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown log format 'xml'"):
        configure_logging("xml")
    with pytest.raises(ValueError, match="Unknown log level 'LOUD'"):
        configure_logging("text", "LOUD")


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        ("Marked 2 run(s) as failed", {}),
        ("Gave up retrying <GET http://x/t?page=2> (failed 2 times): 500", {}),
        (
            "fetch failed topic=a url=http://x/t?page=2 reason=HTTP 404",
            {"topic": "a", "url": "http://x/t?page=2", "reason": "HTTP 404"},
        ),
        ('kind=new title="A b=c" fields=-', {"kind": "new", "title": "A b=c", "fields": "-"}),
        ("line one x=1\nline two", {}),
    ],
)
def test_fields_are_read_from_key_value_messages(message: str, fields: dict[str, str]) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, message, (), None)
    assert fields_of(record) == fields


def test_without_a_dsn_nothing_is_set_up() -> None:
    assert init_sentry("daemon", env={}) is False
    assert not sentry_sdk.get_client().is_active()
    flush_sentry()  # harmless when off


def test_logged_errors_reach_sentry_with_topic_url_and_component(
    stream: io.StringIO, sentry: CapturingTransport
) -> None:
    configure_logging("text", "INFO", stream=stream)
    assert init_sentry("crawler", transport=sentry, env={}, tags={"run": "5"}) is True
    logging.getLogger("topicwatch.run").info("a breadcrumb first")
    log_fields(
        "topicwatch.fetch",
        logging.ERROR,
        "spider_error",
        topic="alpha",
        url="http://127.0.0.1:1/a",
        reason="boom",
    )
    logging.getLogger("topicwatch.fetch").warning("only a breadcrumb")
    flush_sentry()
    [event] = sentry.events()
    assert event["level"] == "error"
    assert event["release"] == f"topicwatch@{package_version()}"
    assert event["tags"]["component"] == "crawler"
    assert event["tags"]["topic"] == "alpha"
    assert event["tags"]["url"] == "http://127.0.0.1:1/a"
    assert event["tags"]["run"] == "5"
    assert "spider_error topic=alpha" in event["logentry"]["formatted"]
    crumbs = [crumb["message"] for crumb in event["breadcrumbs"]["values"]]
    assert "a breadcrumb first" in crumbs


def test_an_exception_reaches_sentry_without_the_values_of_its_frames(
    stream: io.StringIO, sentry: CapturingTransport
) -> None:
    """A traceback goes to Sentry, but not the local variables of its frames, which may hold
    passwords (a connection's parameters, the SMTP settings)."""
    configure_logging("text", "INFO", stream=stream)
    init_sentry("daemon", transport=sentry, env={})

    def connect(password: str) -> None:
        conninfo = f"host=db user=tw password={password}"
        raise RuntimeError(f"could not connect ({len(conninfo)} characters of conninfo)")

    secret = "-".join(("hunter", str(6 * 7), "frame"))  # not in the source lines Sentry sends
    try:
        connect(secret)
    except RuntimeError:
        logging.getLogger("scheduler.daemon").exception("Sending alerts failed")
    flush_sentry()
    [event] = sentry.events()
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert [frame["function"] for frame in frames][-1] == "connect"
    assert all("vars" not in frame for frame in frames)
    assert secret not in json.dumps(event)


def test_check_ins_go_through_the_same_transport(sentry: CapturingTransport) -> None:
    init_sentry("daemon", transport=sentry, env={})
    check_in = sentry_sdk.crons.capture_checkin(monitor_slug="alpha", status="in_progress")
    sentry_sdk.crons.capture_checkin(monitor_slug="alpha", check_in_id=check_in, status="ok")
    flush_sentry()
    statuses = [(c["monitor_slug"], c["status"], c["check_in_id"]) for c in sentry.check_ins()]
    assert statuses == [("alpha", "in_progress", check_in), ("alpha", "ok", check_in)]


def test_scrapys_lines_about_network_failures_are_debug_lines(stream: io.StringIO) -> None:
    from scrapy.exceptions import CannotResolveHostError

    configure_logging("text", "INFO", stream=stream)
    robots = logging.getLogger("scrapy.downloadermiddlewares.robotstxt")
    retry = logging.getLogger("scrapy.downloadermiddlewares.retry")
    try:
        raise CannotResolveHostError("DNS lookup failed: news.example.invalid")
    except CannotResolveHostError:
        robots.error("Error downloading %(request)s", {"request": "<GET x>"}, exc_info=True)
    retry.error(
        "Gave up retrying %(request)s (failed 3 times): %(reason)s", {"request": "r", "reason": "x"}
    )
    assert lines(stream) == []
    try:
        raise ValueError("a bug")
    except ValueError:
        robots.error("Error downloading %(request)s", {"request": "<GET x>"}, exc_info=True)
    assert re.match(
        r"\S+Z ERROR scrapy\.downloadermiddlewares\.robotstxt Error downloading <GET x>$",
        lines(stream)[0],
    )
    assert lines(stream)[-1] == "ValueError: a bug"


def test_durations_are_numbers_in_json_and_seconds_in_text(stream: io.StringIO) -> None:
    from crawler.observability import Seconds

    configure_logging("json", "INFO", stream=stream)
    log_fields("topicwatch.run", logging.INFO, None, topic="t", duration=Seconds(4.04))
    configure_logging("text", "INFO", stream=stream)
    log_fields("topicwatch.run", logging.INFO, None, topic="t", duration=Seconds(4.04))
    as_json, as_text = lines(stream)
    assert json.loads(as_json)["duration"] == 4.0
    assert '"duration": 4.0' in as_json
    assert as_text.endswith(" INFO topicwatch.run topic=t duration=4.0s")
