"""The configuration file: what a valid file becomes, and the exact message of each mistake."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scheduler.config import (
    CONFIG_KEYS,
    SECTIONS,
    Config,
    ConfigError,
    TopicNotConfigured,
    config_path,
    load_config,
    parse_duration,
    parse_size,
)
from storage.spec import CrawlSettings, TopicSpec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "topicwatch.example.toml"

TOPIC = """
[[topic]]
name = "alpha"
sources = ["https://news.example.org/topic/alpha"]
"""


def write(tmp_path: Path, text: str, name: str = "topicwatch.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), env=env or {})


def test_the_example_file_loads() -> None:
    # As shipped it needs no environment at all: the daemon starts on it as it is.
    config = load_config(EXAMPLE, env={})
    [topic] = config.topic_specs()
    assert topic.name == "konflik-rusia-ukraina"
    assert topic.title == "Konflik Rusia Vs Ukraina"
    assert topic.sources == ("https://www.tribunnews.com/topic/konflik-rusia-vs-ukraina",)
    assert topic.every == 900.0
    assert topic.recheck_for == 7 * 86400.0
    assert topic.profile == "tribunnews"
    assert topic.alert_on == ("new", "updated", "removed")
    assert config.crawl.run_timeout == 600.0
    assert config.crawl.download_maxsize == 10 * 1024 * 1024
    assert config.smtp_settings() is None
    assert config.database.url == f"sqlite:///{EXAMPLE.parent / 'data' / 'topicwatch.db'}"


def test_the_example_smtp_and_web_sections_load_once_uncommented(tmp_path: Path) -> None:
    text = EXAMPLE.read_text("utf-8")
    uncommented = re.sub(r"(?m)^# (\[smtp\]|\[web\]|[a-z_]+ = )", r"\1", text)
    assert "\n[smtp]\n" in uncommented
    assert "\n[web]\n" in uncommented
    config = load(tmp_path, uncommented, env={"TOPICWATCH_SMTP_PASSWORD": "secret"})
    settings = config.smtp_settings()
    assert settings is not None
    assert settings.host == "smtp.example.org"
    assert settings.password == "secret"
    assert settings.security == "starttls"
    assert config.web.listen == "127.0.0.1:8080"


def test_the_packaged_example_is_the_deploy_example() -> None:
    packaged = ROOT / "scheduler" / "topicwatch.example.toml"
    assert packaged.read_text("utf-8") == EXAMPLE.read_text("utf-8")


def test_a_minimal_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, TOPIC)
    [topic] = config.topics
    assert topic.title == "alpha"
    assert topic.every == 900.0
    assert topic.cron is None
    assert topic.jitter == 30.0
    assert topic.max_pages == 2
    assert topic.crawl == CrawlSettings()
    assert config.smtp is None
    assert config.smtp_settings() is None
    assert config.crawl.max_concurrent_runs == 2
    assert config.crawl.shutdown_grace == 30.0
    assert config.alerts.dispatch_every == 60.0
    assert config.logging.format == "text"
    assert config.database.url == f"sqlite:///{tmp_path / 'data' / 'topicwatch.db'}"


def test_every_documented_default_is_the_default(tmp_path: Path) -> None:
    """Writing each key's documented default gives the same config as leaving it out."""
    required = 'host = "smtp.example.org"\nsender = "a@example.org"'
    sections: dict[str, list[str]] = {"smtp": [required]}
    for key in CONFIG_KEYS:
        if key.default is not None:
            sections.setdefault(key.section, []).append(f"{key.name} = {key.default}")
    topic_lines = sections.pop("topic")
    explicit = "\n".join(f"[{section}]\n" + "\n".join(lines) for section, lines in sections.items())
    explicit += TOPIC.replace("[[topic]]", "[[topic]]\n" + "\n".join(topic_lines))
    implicit = f"[smtp]\n{required}\n{TOPIC}"
    assert load(tmp_path, explicit) == load(tmp_path, implicit)
    assert {key.section for key in CONFIG_KEYS} == set(SECTIONS)


def test_crawl_settings_are_merged_into_each_topic(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[crawl]
user_agent = "bot/1 (+https://example.org)"
obey_robots = true
download_maxsize = "512KB"
download_delay = "2s"
"""
        + TOPIC
        + """
[[topic]]
name = "beta"
sources = ["http://127.0.0.1:8000/listing"]
cron = "*/5 * * * *"
obey_robots = false
""",
    )
    alpha, beta = config.topic_specs()
    assert alpha.crawl.user_agent == beta.crawl.user_agent == "bot/1 (+https://example.org)"
    assert alpha.crawl.download_maxsize == 512 * 1024
    assert alpha.crawl.download_delay == 2.0
    assert alpha.crawl.obey_robots is True
    assert beta.crawl.obey_robots is False
    assert beta.every is None
    assert beta.cron == "*/5 * * * *"
    assert config.topic("beta") is beta


def test_short_intervals_get_a_quarter_of_the_interval_as_jitter(tmp_path: Path) -> None:
    [topic] = load(tmp_path, TOPIC.replace("[[topic]]", '[[topic]]\nevery = "20s"')).topics
    assert topic.jitter == 5.0


def test_a_topic_stored_with_the_removed_workers_setting_still_loads(tmp_path: Path) -> None:
    """Topics stored by versions that had ``crawl.workers`` keep it in their definition."""
    [topic] = load(tmp_path, TOPIC).topics
    stored = json.loads(topic.to_json())
    stored["crawl"]["workers"] = 2
    assert TopicSpec.from_json(json.dumps(stored)) == topic


def test_an_unknown_topic_names_the_known_ones(tmp_path: Path) -> None:
    config = load(tmp_path, TOPIC)
    with pytest.raises(TopicNotConfigured) as caught:
        config.topic("gamma")
    assert str(caught.value) == (
        f"No topic by the name of 'gamma' is defined in {config.path} (topics: alpha)"
    )


# Each case: the file's text and the exact message, where {path} is the file.
BAD_FILES = {
    "duration": (
        "".join(TOPIC.replace("alpha", name) for name in ("a", "b", "c"))
        + 'every = "fortnightly"\n',
        '{path}: topic[2].every: expected a duration like "15m" or "2h", got "fortnightly"',
    ),
    "negative duration": (
        "[crawl]\nrun_timeout = -5\n",
        '{path}: crawl.run_timeout: expected a duration like "15m" or "2h", got -5',
    ),
    "zero timeout": (
        '[crawl]\nrun_timeout = "0s"\n',
        '{path}: crawl.run_timeout: expected a duration like "15m" or "2h" longer than zero, '
        'got "0s"',
    ),
    "typo in a key": (
        "[crawl]\nmax_concurent_runs = 3\n",
        "{path}: crawl.max_concurent_runs: unknown key; did you mean max_concurrent_runs? "
        "(known: user_agent, obey_robots, concurrent_per_domain, download_delay, autothrottle, "
        "download_timeout, download_maxsize, retry_times, store_raw_html, max_articles_per_run, "
        "progress_every, max_pages_per_article, max_concurrent_runs, run_timeout, "
        "shutdown_grace, process_max_runs, "
        "process_max_memory)",
    ),
    "typo in a section": (
        '[databse]\nurl = "sqlite:///x.db"\n',
        "{path}: databse: unknown section; did you mean database? "
        "(known: database, smtp, crawl, alerts, logging, web, executor, topic)",
    ),
    "topic key typo": (
        TOPIC + 'alert_too = ["a@example.org"]\n',
        "{path}: topic[0].alert_too: unknown key; did you mean alert_to? (known: name, title, "
        "sources, every, cron, jitter, max_pages, recheck_for, keywords, ignore_patterns, "
        "alert_to, alert_on, notify, notify_env, health_to, health_failures, profile, "
        "obey_robots, allow_private_addresses, live_after, live_window, live_summary_every, "
        "live_ends_after, alert_cap, alert_cap_period, keep_text_for, keep_raw_html_for)",
    ),
    "topic as a table": (
        '[topic]\nname = "alpha"\n',
        "{path}: topic: expected [[topic]] tables, got a table",
    ),
    "every and cron": (
        TOPIC + 'every = "5m"\ncron = "*/5 * * * *"\n',
        "{path}: topic[0].cron: give either every or cron, not both",
    ),
    "bad cron": (
        TOPIC + 'cron = "*/15 * * *"\n',
        '{path}: topic[0].cron: expected a crontab schedule like "*/15 * * * *", '
        'got "*/15 * * *" (wrong number of fields; got 4, expected 5)',
    ),
    "no name": (
        '[[topic]]\nsources = ["https://example.org/"]\n',
        "{path}: topic[0].name: required, expected a string",
    ),
    "bad name": (
        '[[topic]]\nname = "Konflik Rusia"\nsources = ["https://example.org/"]\n',
        "{path}: topic[0].name: expected lowercase letters, digits, '-' and '_' (at most 50 "
        'characters, like "konflik-rusia-ukraina"), got "Konflik Rusia"',
    ),
    "duplicate name": (
        TOPIC + TOPIC,
        "{path}: topic[1].name: the name 'alpha' is already used by topic[0]",
    ),
    "no sources": (
        '[[topic]]\nname = "alpha"\nsources = []\n',
        "{path}: topic[0].sources: expected at least one http(s) URL",
    ),
    "source not a URL": (
        '[[topic]]\nname = "alpha"\nsources = ["https://example.org/a", "ftp://example.org/"]\n',
        '{path}: topic[0].sources[1]: expected an http(s) URL, got "ftp://example.org/"',
    ),
    "source an unclosed IPv6 address": (
        '[[topic]]\nname = "alpha"\nsources = ["http://[::1"]\n',
        '{path}: topic[0].sources[0]: expected an http(s) URL, got "http://[::1"',
    ),
    "source port out of range": (
        '[[topic]]\nname = "alpha"\nsources = ["http://example.org:99999/"]\n',
        '{path}: topic[0].sources[0]: expected an http(s) URL, got "http://example.org:99999/"',
    ),
    "every overflowing as a number": (
        TOPIC + "every = 1e400\n",
        '{path}: topic[0].every: expected a duration like "15m" or "2h" of at most 366d, got inf',
    ),
    "every overflowing in days": (
        TOPIC + 'every = "99999999999d"\n',
        '{path}: topic[0].every: expected a duration like "15m" or "2h" of at most 366d, '
        'got "99999999999d"',
    ),
    "not a number": (
        TOPIC + "recheck_for = nan\n",
        '{path}: topic[0].recheck_for: expected a duration like "15m" or "2h", got nan',
    ),
    "duration over a year": (
        '[alerts]\nretry_backoff = "367d"\n',
        '{path}: alerts.retry_backoff: expected a duration like "15m" or "2h" of at most 366d, '
        'got "367d"',
    ),
    "sources not a list": (
        '[[topic]]\nname = "alpha"\nsources = "https://example.org/"\n',
        '{path}: topic[0].sources: expected a list of strings, got "https://example.org/"',
    ),
    "bad regex": (
        TOPIC + 'ignore_patterns = ["Baca juga.*", "(unclosed"]\n',
        '{path}: topic[0].ignore_patterns[1]: expected a regular expression, got "(unclosed" '
        "(missing ), unterminated subpattern at position 0)",
    ),
    "bad email": (
        TOPIC + 'alert_to = ["desk at example.org"]\n',
        '{path}: topic[0].alert_to[0]: expected an email address like "desk@example.org", '
        'got "desk at example.org"',
    ),
    "bad change kind": (
        TOPIC + 'alert_on = ["new", "edited"]\n',
        "{path}: topic[0].alert_on[1]: expected one of new, updated, removed, restored, "
        'got "edited"',
    ),
    "unknown profile": (
        TOPIC + 'profile = "kompas"\n',
        '{path}: topic[0].profile: expected one of generic, tribunnews, got "kompas"',
    ),
    "wrong type": (
        TOPIC + 'max_pages = "2"\n',
        '{path}: topic[0].max_pages: expected a whole number, got "2"',
    ),
    "zero pages": (
        TOPIC + "max_pages = 0\n",
        "{path}: topic[0].max_pages: expected a number of at least 1, got 0",
    ),
    "removed workers": (
        "[crawl]\nworkers = 2\n",
        "{path}: crawl.workers: removed, delete the line: a crawl run reads and records its "
        "pages in one process (worker processes cost more CPU per page than they saved); to use "
        "more cores, let more crawl runs go at once with crawl.max_concurrent_runs",
    ),
    "negative integer": (
        "[crawl]\nretry_times = -1\n",
        "{path}: crawl.retry_times: expected a number of at least 0, got -1",
    ),
    "boolean": (
        '[crawl]\nobey_robots = "no"\n',
        '{path}: crawl.obey_robots: expected true or false, got "no"',
    ),
    "size": (
        '[crawl]\ndownload_maxsize = "10 megabytes"\n',
        '{path}: crawl.download_maxsize: expected a size like "10MB" or "512KB", '
        'got "10 megabytes"',
    ),
    "smtp security": (
        '[smtp]\nhost = "smtp.example.org"\nsender = "a@example.org"\nsecurity = "ssl"\n',
        '{path}: smtp.security: expected one of starttls, tls, none, got "ssl"',
    ),
    "smtp without host": (
        '[smtp]\nsender = "a@example.org"\n',
        "{path}: smtp.host: required, expected a string",
    ),
    "smtp sender": (
        '[smtp]\nhost = "smtp.example.org"\nsender = "topicwatch"\n',
        '{path}: smtp.sender: expected an address like "topicwatch <alerts@example.org>", '
        'got "topicwatch"',
    ),
    "smtp password in the file": (
        '[smtp]\nhost = "smtp.example.org"\nsender = "a@example.org"\npassword = "hunter2"\n',
        "{path}: smtp.password: unknown key; did you mean password_env? (known: host, port, "
        "security, username, password_env, sender, timeout)",
    ),
    "log format": (
        '[logging]\nformat = "xml"\n',
        '{path}: logging.format: expected one of text, json, got "xml"',
    ),
    "database url": (
        '[database]\nurl = "mysql://db.example.org/topicwatch"\n',
        "{path}: database.url: expected a SQLite or PostgreSQL URL like "
        '"sqlite:///data/topicwatch.db" or "postgresql+psycopg://user@host/db", '
        'got "mysql://db.example.org/topicwatch"',
    ),
    "toml syntax": (
        "[crawl]\nrun_timeout = \n",
        "{path}: line 2, column 15: invalid TOML: Invalid value",
    ),
    "toml duplicate key": (
        '[[topic]]\nname = "a"\nname = "b"\n',
        "{path}: line 3, column 11: invalid TOML: Cannot overwrite a value",
    ),
}


@pytest.mark.parametrize(("text", "message"), list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_a_bad_file_is_refused_with_a_message_naming_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value) == message.format(path=path)


def test_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value) == (
        f"{path}: no such configuration file; write one with `topicwatch init {path}` or "
        "name another with --config or TOPICWATCH_CONFIG"
    )


def test_the_file_is_found_by_argument_then_environment_then_default(tmp_path: Path) -> None:
    env = {"TOPICWATCH_CONFIG": str(tmp_path / "env.toml")}
    assert config_path("given.toml", env) == Path("given.toml")
    assert config_path(None, env) == tmp_path / "env.toml"
    assert config_path(None, {}) == Path("topicwatch.toml")
    write(tmp_path, TOPIC, "env.toml")
    assert load_config(env=env).path == tmp_path / "env.toml"


def test_the_database_url_comes_from_the_environment_first(tmp_path: Path) -> None:
    text = '[database]\nurl = "sqlite:///relative/db.sqlite"\n' + TOPIC
    assert load(tmp_path, text).database.url == f"sqlite:///{tmp_path / 'relative/db.sqlite'}"
    override = "postgresql+psycopg://postgres@127.0.0.1:5432/topicwatch"
    config = load(tmp_path, text, env={"TOPICWATCH_DATABASE_URL": override})
    assert config.database.url == override
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env={"TOPICWATCH_DATABASE_URL": "nonsense"})
    assert str(caught.value) == (
        "TOPICWATCH_DATABASE_URL: expected a SQLite or PostgreSQL URL like "
        '"sqlite:///data/topicwatch.db", got "nonsense"'
    )


def test_absolute_and_memory_sqlite_urls_are_kept(tmp_path: Path) -> None:
    for url in ("sqlite:////var/lib/topicwatch/db.sqlite", "sqlite://", "sqlite:///:memory:"):
        text = f'[database]\nurl = "{url}"\n'
        assert load(tmp_path, text).database.url == url


def test_the_smtp_password_comes_only_from_the_named_variable(tmp_path: Path) -> None:
    text = (
        '[smtp]\nhost = "127.0.0.1"\nport = 2525\nsecurity = "none"\nusername = "u"\n'
        'password_env = "TW_PASSWORD"\nsender = "topicwatch <tw@example.org>"\ntimeout = "5s"\n'
    )
    settings = load(tmp_path, text, env={"TW_PASSWORD": "s3cret"}).smtp_settings()
    assert settings is not None
    assert (settings.host, settings.port, settings.security) == ("127.0.0.1", 2525, "none")
    assert (settings.username, settings.password, settings.timeout) == ("u", "s3cret", 5.0)
    assert "s3cret" not in repr(load(tmp_path, text, env={"TW_PASSWORD": "s3cret"}))
    config = load(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.smtp_settings()
    assert str(caught.value) == (
        f"{config.path}: smtp.password_env: the environment variable TW_PASSWORD is not set"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1.5h", 5400.0),
        (30, 30.0),
        (0.5, 0.5),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("10MB", 10 * 1024**2), ("512KB", 512 * 1024), ("1GB", 1024**3), (4096, 4096)],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_no_duration_key_accepts_more_than_366_days(tmp_path: Path) -> None:
    """Every duration key is capped, and the cap itself is accepted."""
    durations = [key for key in CONFIG_KEYS if key.type == "duration"]
    assert len(durations) >= 10
    for key in durations:
        body = f"{key.name} = " + '"366d"\n'
        text = TOPIC + body if key.section == "topic" else f"[{key.section}]\n{body}"
        if key.section == "smtp":
            text += 'host = "smtp.example.org"\nsender = "a@example.org"\n'
        load(tmp_path, text)
        with pytest.raises(ConfigError, match=r"of at most 366d, got 1e\+20$"):
            load(tmp_path, text.replace('"366d"', "1e20"))


def test_every_key_is_documented_with_its_meaning() -> None:
    paths = [key.path for key in CONFIG_KEYS]
    assert len(paths) == len(set(paths))
    for key in CONFIG_KEYS:
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", key.path)
        assert key.section in SECTIONS
        assert key.meaning.endswith(".")
        assert key.type


def test_the_digest_size_cap_is_a_size_of_at_least_16kb(tmp_path: Path) -> None:
    assert load(tmp_path, TOPIC).alerts.max_digest_bytes == 1024 * 1024
    config = load(tmp_path, f'[alerts]\nmax_digest_bytes = "5MB"\n{TOPIC}')
    assert config.alerts.max_digest_bytes == 5 * 1024 * 1024
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f'[alerts]\nmax_digest_bytes = "4KB"\n{TOPIC}')
    assert str(caught.value) == (
        f"{tmp_path / 'topicwatch.toml'}: alerts.max_digest_bytes: expected a size of at least "
        "16KB, got 4096 bytes"
    )
