"""The web view over HTTP, on SQLite and PostgreSQL, after a scripted crawl of the local
reference site: two ``topicwatch crawl`` runs (every article new; then the reference article
edited, another retitled with markup, one taken down and one turned into live coverage), then
``topicwatch web`` as a real process, asked for every page and endpoint. Also: the token that
any address but a loopback one needs, the daemon serving the view from its own loop, the plans
of the view's queries (no full scan of a large table, by EXPLAIN on both databases), and a
version whose text the retention policy removed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from conftest import POSTGRES_SERVER, _postgres_admin
from fixture_site import REFERENCE_TOPIC, SEED_ARTICLE_ID, SEED_DISCLAIMER, FixtureSite
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, event, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from test_crawl_e2e import TOPIC, TOPICWATCH, topicwatch, write_config

from alerts.diff import diff_html, side_html, word_diff
from scheduler.cli import main
from scheduler.config import ConfigError, parse_config
from storage.browse import (
    alert_counts,
    article_view,
    finished_runs,
    last_successes,
    recent_changes,
    recent_runs,
    topics_overview,
)
from storage.db import make_engine, session_factory, upgrade
from storage.models import Alert, Article, ArticleVersion, Change, CrawlRun
from web.address import ExposureRefused, check_exposure, parse_listen
from web.app import CSP
from web.metrics import Metrics

pytestmark = pytest.mark.slow

HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
TOKEN = "s3cret-token-for-the-web-view"
RUNS = 2  # the scripted crawl's runs
START_TIMEOUT = 30.0


@dataclass
class Crawled:
    """A database after the scripted crawl, and the web view serving it."""

    kind: str
    url: str
    config: Path
    site: FixtureSite
    sessions: sessionmaker[Session]
    engine: Engine
    base: str
    seed_id: int
    hostile_id: int
    removed_id: int
    live_id: int


def _web_process(config: Path, log: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [TOPICWATCH, "--config", str(config), *args],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )


def _served_at(process: subprocess.Popen[bytes], log: Path) -> str:
    """The base URL the web view logged, once it serves (fails on exit or timeout)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = re.search(r"Web view on (http://\S+)/", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            pytest.fail(f"the web view exited with {process.returncode}: {log.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"the web view did not start within {START_TIMEOUT}s: {log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8")


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def crawled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Crawled]:
    tmp = tmp_path_factory.mktemp(f"web-{request.param}")
    admin = None
    name = f"topicwatch_test_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'topicwatch.db'}"
    else:
        admin = _postgres_admin()
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = f"{POSTGRES_SERVER}/{name}"
    site = FixtureSite.reference_site()
    site.start()
    engine = make_engine(url)
    process = None
    try:
        config = write_config(tmp / "topicwatch.toml", url, [site.listing_url(REFERENCE_TOPIC)])
        upgrade(url)
        done = topicwatch(config, "crawl", TOPIC)
        assert done.returncode == 0, done.stdout + done.stderr
        site.apply_seed_edit()
        hostile = [i for i in site.listing_ids(REFERENCE_TOPIC) if i != SEED_ARTICLE_ID]
        site.set_title(hostile[0], HOSTILE_TITLE)
        site.set_status(hostile[1], 404)
        site.set_live(hostile[2], "markup")
        done = topicwatch(config, "crawl", TOPIC)
        assert done.returncode == 0, done.stdout + done.stderr
        sessions = session_factory(engine)
        with sessions() as session:

            def article_id(fixture_id: int) -> int:
                found = session.scalar(
                    select(Article.id).where(Article.url == site.article_url(fixture_id))
                )
                assert found is not None
                return found

            ids = tuple(map(article_id, (SEED_ARTICLE_ID, *hostile[:3])))
        log = tmp / "web.log"
        process = _web_process(config, log, "web", "--listen", "127.0.0.1:0")
        base = _served_at(process, log)
        yield Crawled(request.param, url, config, site, sessions, engine, base, *ids)
        assert _stop(process) == 0, log.read_text()
        process = None
    finally:
        if process is not None:
            process.kill()
            process.wait(timeout=10)
        engine.dispose()
        site.close()
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def _count(sessions: sessionmaker[Session], query: Any) -> int:
    with sessions() as session:
        return int(session.scalar(query) or 0)


# -- pages ------------------------------------------------------------------------------------


def test_every_response_carries_a_policy_that_allows_no_script(crawled: Crawled) -> None:
    for path in ("/", "/changes", "/runs", f"/articles/{crawled.seed_id}", "/metrics", "/nope"):
        _, headers, _ = get(crawled.base + path)
        assert headers["content-security-policy"] == CSP
        assert "script-src 'none'" in CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_the_topics_page_shows_each_topic_with_its_last_run(crawled: Crawled) -> None:
    status, _, page = get(crawled.base + "/")
    assert status == 200
    assert "Konflik Rusia Vs Ukraina" in page
    assert 'href="/topics/konflik"' in page
    assert 'class="status status-ok"' in page
    articles = _count(crawled.sessions, select(func.count()).select_from(Article))
    assert re.search(rf'data-label="Articles" class="num">{articles}</td>', page)
    assert "daemon not running" in page  # served by topicwatch web, no daemon on this database


def test_a_topic_page_lists_its_changes_and_filters_them_by_kind(crawled: Crawled) -> None:
    status, _, page = get(crawled.base + "/topics/konflik")
    assert status == 200
    kinds = re.findall(r'data-label="Kind"><span class="kind kind-(\w+)"', page)
    # The article that turned into live coverage: its update is recorded, held, and reported
    # by a change of its own that says it went live.
    assert sorted(kinds) == sorted(["new"] * 6 + ["updated"] * 3 + ["removed", "live"])
    assert (
        len(re.findall(r'kind-updated">updated</span> <span class="muted small">held', page)) == 1
    )
    assert "status=ok pages=" in page  # its runs, with their log summary

    _, _, updated = get(crawled.base + "/topics/konflik?kind=updated")
    kinds = re.findall(r'data-label="Kind"><span class="kind kind-(\w+)"', updated)
    assert kinds == ["updated"] * 3
    assert f'href="/articles/{crawled.seed_id}?from=1&amp;to=2"' in updated

    status, _, _ = get(crawled.base + "/topics/no-such-topic")
    assert status == 404


def test_the_article_page_shows_the_diff_the_emails_show(crawled: Crawled) -> None:
    status, _, page = get(crawled.base + f"/articles/{crawled.seed_id}?from=1&to=2")
    assert status == 200
    with crawled.sessions() as session:
        old, new = session.scalars(
            select(ArticleVersion)
            .where(ArticleVersion.article_id == crawled.seed_id)
            .order_by(ArticleVersion.version)
        ).all()
    ops = word_diff(old.body, new.body)
    assert diff_html(ops) in page  # inline: the digest's own diff
    assert side_html(ops, "old") in page  # and both versions whole, side by side
    assert side_html(ops, "new") in page
    assert SEED_DISCLAIMER.split(":")[0] in page
    assert crawled.site.article_url(SEED_ARTICLE_ID) in page
    for author in new.authors:
        assert author in page

    _, _, side = get(crawled.base + f"/articles/{crawled.seed_id}?from=1&to=2&view=side")
    assert diff_html(ops) not in side
    assert side_html(ops, "new") in side

    status, _, _ = get(crawled.base + "/articles/999999")
    assert status == 404


def test_scraped_markup_is_shown_as_text(crawled: Crawled) -> None:
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    for path in ("/changes", "/topics/konflik", f"/articles/{crawled.hostile_id}"):
        status, _, page = get(crawled.base + path)
        assert status == 200
        assert escaped in page, path
        assert "<img" not in page, path
    _, _, feed = get(crawled.base + "/feeds/konflik.atom")
    titles = [entry.title for entry in feedparser.parse(feed).entries]
    assert f"updated: {HOSTILE_TITLE}" in titles


def test_the_runs_page_lists_runs_newest_first(crawled: Crawled) -> None:
    status, _, page = get(crawled.base + "/runs")
    assert status == 200
    with crawled.sessions() as session:
        run_ids = session.scalars(select(CrawlRun.id).order_by(CrawlRun.id.desc())).all()
    assert [int(i) for i in re.findall(r"<td data-label=\"Run\">#(\d+)", page)] == run_ids
    assert "new=6" in page
    status, _, page = get(crawled.base + "/runs?topic=konflik")
    assert status == 200
    assert len(re.findall(r'data-label="Run">#', page)) == len(run_ids)


def test_lists_page_by_keyset_without_losing_or_repeating_a_row(crawled: Crawled) -> None:
    seen: list[int] = []
    older = None
    for _ in range(10):
        page = recent_changes(crawled.sessions, older_than=older, limit=2)
        seen += [change.id for change in page.items]
        older = page.older
        if older is None:
            break
    with crawled.sessions() as session:
        expected = session.scalars(
            select(Change.id).order_by(Change.detected_at.desc(), Change.id.desc())
        ).all()
    assert seen == expected
    runs = recent_runs(crawled.sessions, limit=1)
    assert len(runs.items) == 1
    assert runs.older is not None
    rest = recent_runs(crawled.sessions, older_than=runs.older, limit=1)
    assert rest.older is None
    assert runs.items[0].id > rest.items[0].id
    _, _, page = get(crawled.base + f"/changes?older={expected[3]}")
    assert len(re.findall(r'data-label="Kind"><span class="kind', page)) == len(expected) - 4


def test_the_feeds_are_served_at_stable_urls(crawled: Crawled) -> None:
    # Every change is an entry: the held update and the one that says it went live too.
    for path, count in (("/feeds/all.atom", 11), ("/feeds/konflik.atom", 11)):
        status, headers, body = get(crawled.base + path)
        assert status == 200
        assert headers["content-type"].startswith("application/atom+xml")
        feed = feedparser.parse(body)
        assert not feed.bozo, feed.bozo_exception
        assert len(feed.entries) == count
    status, _, _ = get(crawled.base + "/feeds/no-such-topic.atom")
    assert status == 404


def test_metrics_parse_and_match_the_database(crawled: Crawled) -> None:
    status, headers, body = get(crawled.base + "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    topic = ("topic", TOPIC)
    assert samples[("topicwatch_runs_total", (("status", "ok"), topic))] == RUNS
    # The runs count the update that made an article live coverage among the updated.
    for kind, count in (("new", 6), ("updated", 3), ("removed", 1), ("restored", 0)):
        assert samples[("topicwatch_changes_total", (("kind", kind), topic))] == count
    with crawled.sessions() as session:
        pages = session.scalar(select(func.sum(CrawlRun.pages_fetched)))
        pending = session.scalar(
            select(func.count()).select_from(Alert).where(Alert.status == "pending")
        )
        last_ok = session.scalar(select(func.max(CrawlRun.finished_at)))
    assert samples[("topicwatch_pages_fetched_total", (topic,))] == pages
    # No [smtp]: they wait (6 new, 2 updated, 1 removed, 1 went live; the held update none).
    assert samples[("topicwatch_alerts_pending", ())] == pending == 10
    assert samples[("topicwatch_alerts_failed", ())] == 0
    assert last_ok is not None
    assert samples[("topicwatch_last_success_timestamp_seconds", (topic,))] == pytest.approx(
        last_ok.timestamp()
    )
    assert samples[("topicwatch_run_duration_seconds_count", (topic,))] == RUNS
    assert samples[("topicwatch_run_duration_seconds_bucket", (("le", "+Inf"), topic))] == RUNS

    # A second scrape reads only the runs since the first, and counts none twice.
    _, _, again = get(crawled.base + "/metrics")
    assert "topicwatch_runs_total{" in again
    assert f'topicwatch_runs_total{{status="ok",topic="konflik"}} {RUNS}.0' in again


def test_healthz_answers_while_the_database_does(crawled: Crawled) -> None:
    status, headers, body = get(crawled.base + "/healthz")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"database": "ok", "scheduler": "not running", "status": "ok"}


# -- query plans ------------------------------------------------------------------------------

WATCHED_TABLES = {
    "articles",
    "article_versions",
    "topic_articles",
    "changes",
    "alerts",
    "crawl_runs",
}


def _postgres_scans(plan: dict[str, Any], limited: bool = False) -> Iterator[str]:
    """The scans of watched tables in a PostgreSQL plan (JSON) that read them whole: a
    sequential scan, or an index scan with no condition on the index that is not an ordered
    walk cut short by a LIMIT above it."""
    limited = limited or plan["Node Type"] == "Limit"
    table = plan.get("Relation Name")
    if table in WATCHED_TABLES:
        kind = plan["Node Type"]
        bounded = "Index Cond" in plan or "Recheck Cond" in plan  # the latter: a bitmap scan
        if kind == "Seq Scan" or not (bounded or limited):
            yield f"{kind} on {table}"
    for child in plan.get("Plans", ()):
        yield from _postgres_scans(child, limited)


def _full_scans(engine: Engine, statements: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """(statement, plan line) for each scan of a watched table that reads it whole, by
    EXPLAIN: on PostgreSQL with sequential scans priced out, so that the planner takes any
    index it can use; on SQLite a SCAN (of the table or of a whole index), but for an ordered
    walk that a LIMIT cuts short."""
    scans = []
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        if postgres:
            cursor.execute("SET enable_seqscan = off")
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            if postgres:
                cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
                plan = cursor.fetchone()[0][0]["Plan"]
                scans += [(statement, line) for line in _postgres_scans(plan)]
                continue
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            for row in cursor.fetchall():
                line = str(row[-1])
                match = re.match(r"SCAN (\w+)", line.strip())
                if match and match.group(1) in WATCHED_TABLES and "\n LIMIT" not in statement:
                    scans.append((statement, line))
        cursor.close()
        connection.rollback()
    return scans


def test_the_pages_and_metrics_read_through_indexes(crawled: Crawled) -> None:
    engine = make_engine(crawled.url)
    statements: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    try:
        sessions = session_factory(engine)
        topics_overview(sessions)
        first = recent_changes(sessions, limit=2)
        recent_changes(sessions, older_than=first.older, limit=2)
        topic = topics_overview(sessions)[0].status.topic_id
        recent_changes(sessions, topic=topic, kinds=["updated"], limit=2)
        recent_changes(sessions, topic=topic, older_than=first.older, limit=2)
        runs = recent_runs(sessions, limit=1)
        recent_runs(sessions, older_than=runs.older, limit=1)
        recent_runs(sessions, topic=topic, older_than=runs.older, limit=1)
        article_view(sessions, crawled.seed_id, old=1, new=2)
        finished_runs(sessions, 0)
        alert_counts(sessions)
        last_successes(sessions)
        Metrics(sessions, version="test").render()
        event.remove(engine, "before_cursor_execute", capture)
        assert len(statements) > 20
        assert _full_scans(engine, statements) == []
    finally:
        engine.dispose()


# -- the token, and the daemon ----------------------------------------------------------------


def _config(tmp_path: Path, web: str) -> Path:
    config = tmp_path / "topicwatch.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "topicwatch.db"}"\n\n[web]\n{web}\n',
        encoding="utf-8",
    )
    upgrade(f"sqlite:///{tmp_path / 'topicwatch.db'}")
    return config


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TOPICWATCH_WEB_TOKEN"}
    env.update(extra)
    return env


def test_any_address_but_loopback_is_refused_without_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, 'listen = "0.0.0.0:0"')
    monkeypatch.delenv("TOPICWATCH_WEB_TOKEN", raising=False)
    assert main(["--config", str(config), "web"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "topicwatch: error: refusing to serve the web view on 0.0.0.0:0 without a token"
    )
    assert "Set the environment variable TOPICWATCH_WEB_TOKEN" in err

    assert main(["--config", str(config), "run"]) == 1
    err = capsys.readouterr().err
    assert "Cannot start: refusing to serve the web view on 0.0.0.0:0 without a token" in err

    monkeypatch.setenv("TOPICWATCH_WEB_TOKEN", "short")
    assert main(["--config", str(config), "web"]) == 1
    assert "shorter than 16 characters" in capsys.readouterr().err


def test_an_address_in_use_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--config", str(config), "web", "--listen", f"127.0.0.1:{port}"]) == 1
    assert capsys.readouterr().err == (
        f"topicwatch: error: Cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def test_with_a_token_every_page_but_healthz_asks_for_it(tmp_path: Path) -> None:
    config = _config(tmp_path, 'listen = "0.0.0.0:0"')
    log = tmp_path / "web.log"
    process = _web_process(config, log, "web", env=_environment(TOPICWATCH_WEB_TOKEN=TOKEN))
    try:
        base = _served_at(process, log).replace("0.0.0.0", "127.0.0.1")
        status, headers, _ = get(base + "/")
        assert status == 401
        assert headers["www-authenticate"].startswith("Basic")
        assert get(base + "/metrics")[0] == 401
        assert get(base + "/", {"Authorization": "Bearer wrong-token-of-some-length"})[0] == 401
        assert get(base + "/", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        basic = base64.b64encode(f"editor:{TOKEN}".encode()).decode()
        assert get(base + "/metrics", {"Authorization": f"Basic {basic}"})[0] == 200
        assert get(base + "/healthz")[0] == 200
    finally:
        assert _stop(process) == 0, log.read_text()


def test_the_daemon_serves_the_view_from_its_loop(tmp_path: Path) -> None:
    config = _config(tmp_path, 'listen = "127.0.0.1:0"')
    log = tmp_path / "daemon.log"
    process = _web_process(config, log, "run", env=_environment())
    try:
        base = _served_at(process, log)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            status, _, body = get(base + "/healthz")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200, body
        assert json.loads(body)["scheduler"] == "running"
        status, _, page = get(base + "/")
        assert status == 200
        assert "daemon running since" in page
        assert f"pid {process.pid}" in page
    finally:
        code = _stop(process)
    assert code == 0, log.read_text()
    assert "topicwatch daemon stopped" in log.read_text()


# -- a real browser ---------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# What Chromium needs here: no sandbox as root, and none of its own connections to the
# internet (refused on a closed network, they slow every start).
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1400",
)


def browser() -> Any:
    """Headless Chromium under ChromeDriver (Debian's chromium and chromium-driver), or a
    skip that says how to install them."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip(
            f"headless Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}): "
            "apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


def test_a_browser_goes_from_the_topics_page_to_a_diff(crawled: Crawled) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(crawled.base + "/")
        driver.find_element(By.CSS_SELECTOR, "a.topic-link").click()
        wait.until(expected_conditions.title_contains("Topic konflik"))

        # The retitled article's markup is text on the page, and ran nothing.
        links = driver.find_elements(By.CSS_SELECTOR, "a.article-link")
        assert HOSTILE_TITLE in [link.text for link in links]
        with pytest.raises(NoAlertPresentException):
            _ = driver.switch_to.alert.text

        driver.find_element(
            By.CSS_SELECTOR, f'a.article-link[href^="/articles/{crawled.seed_id}?from=1"]'
        ).click()
        body = wait.until(
            expected_conditions.visibility_of_element_located(
                (By.CSS_SELECTOR, 'section.field-diff[data-field="body"]')
            )
        )
        inserted = body.find_elements(By.CSS_SELECTOR, ".diff.inline ins")
        assert any("Disclaimer The Moscow Times" in ins.text for ins in inserted)
        # The side-by-side columns are laid out by the view's own style sheet (allowed by
        # its Content-Security-Policy), the inserted words marked by the diff's own styles.
        columns = body.find_element(By.CSS_SELECTOR, ".side-by-side")
        assert columns.value_of_css_property("display") == "grid"
        new_side = body.find_element(By.CSS_SELECTOR, ".side.new ins")
        assert new_side.value_of_css_property("background-color") == "rgba(218, 251, 225, 1)"
        assert body.find_elements(By.CSS_SELECTOR, ".side.old ins") == []

        # Choosing two versions in the form shows their diff, side by side only.
        driver.find_element(By.CSS_SELECTOR, 'select[name="view"] option[value="side"]').click()
        driver.find_element(By.CSS_SELECTOR, "form.compare button").click()
        wait.until(expected_conditions.url_contains("view=side"))
        assert driver.find_elements(By.CSS_SELECTOR, ".diff.inline") == []
        assert driver.find_elements(By.CSS_SELECTOR, ".side.new ins")
    finally:
        driver.quit()


# -- addresses and the configuration ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9100", ("::1", 9100)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_listen_addresses_are_read_as_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "127.0.0.1", ":8080", "::1:8080", "host:http", "h:70000"])
def test_a_wrong_listen_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_listen(text)


@pytest.mark.parametrize(
    ("host", "token", "refused"),
    [
        ("127.0.0.1", None, False),
        ("127.0.0.2", None, False),
        ("::1", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("192.168.1.20", None, True),
        ("web.example.org", None, True),
        ("0.0.0.0", TOKEN, False),
        ("127.0.0.1", "too-short", True),
    ],
)
def test_only_loopback_addresses_go_without_a_token(
    host: str, token: str | None, refused: bool
) -> None:
    if refused:
        with pytest.raises(ExposureRefused):
            check_exposure(host, 8080, token, "TOPICWATCH_WEB_TOKEN")
    else:
        check_exposure(host, 8080, token, "TOPICWATCH_WEB_TOKEN")


def test_the_web_section_is_checked_and_its_token_read_from_the_environment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "topicwatch.toml"
    with pytest.raises(ConfigError) as caught:
        parse_config('[web]\nlisten = "8080"\n', path, env={})
    assert caught.value.errors == (
        f'{path}: web.listen: expected HOST:PORT like "127.0.0.1:8080", got "8080"',
    )
    config = parse_config(
        '[web]\nlisten = "0.0.0.0:8080"\ntoken_env = "VIEW_TOKEN"\n',
        path,
        env={"VIEW_TOKEN": TOKEN},
    )
    assert config.web.listen == "0.0.0.0:8080"
    assert config.web.token == TOKEN
    assert TOKEN not in repr(config)
    assert "VIEW_TOKEN" in config.secret_variables()  # crawl processes are not given it
    assert parse_config("", path, env={}).web.listen is None  # off by default


def test_without_a_token_only_requests_for_a_loopback_name_are_answered(
    crawled: Crawled,
) -> None:
    port = crawled.base.rpartition(":")[2]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert get(crawled.base + "/", {"Host": host})[0] == 200
    status, _, body = get(crawled.base + "/", {"Host": f"attacker.example:{port}"})
    assert status == 421
    assert "localhost" in body
    assert get(crawled.base + "/metrics", {"Host": "attacker.example"})[0] == 421
    assert get(crawled.base + "/healthz", {"Host": "attacker.example"})[0] == 200


def test_an_article_shows_its_last_change_unless_told_otherwise(crawled: Crawled) -> None:
    view = article_view(crawled.sessions, crawled.seed_id)
    assert (view.old and view.old.version, view.new and view.new.version) == (1, 2)
    view = article_view(crawled.sessions, crawled.seed_id, old=2, new=2)
    assert (view.old and view.old.version, view.new and view.new.version) == (1, 2)
    view = article_view(crawled.sessions, crawled.removed_id, old=1)
    assert (view.old, view.new and view.new.version) == (None, 1)
    status, _, page = get(crawled.base + f"/articles/{crawled.removed_id}?from=1")
    assert status == 200
    assert "Text of v1" in page


def test_live_coverage_is_marked_in_the_lists_and_on_the_article(crawled: Crawled) -> None:
    status, _, page = get(crawled.base + "/changes")
    assert status == 200
    rows = re.findall(r'<tr class="change">.*?</tr>', page, re.S)
    live_rows = [row for row in rows if f'href="/articles/{crawled.live_id}?' in row]
    assert live_rows
    assert all('<span class="kind kind-live">live</span> <a' in row for row in live_rows)
    assert not any(
        "kind kind-live" in row for row in rows if f"/articles/{crawled.seed_id}?" in row
    )
    status, _, page = get(crawled.base + f"/articles/{crawled.live_id}")
    assert status == 200
    assert re.search(
        r"<dt>Live</dt><dd class=\"live-coverage\">.*coverage since .* UTC "
        r"\(recognised by markup\)</dd>",
        page,
    )
    status, _, page = get(crawled.base + f"/articles/{crawled.seed_id}")
    assert "<dt>Live</dt>" not in page


def test_a_version_whose_text_was_pruned_says_so_instead_of_a_diff(tmp_path: Path) -> None:
    from record_one import observation

    from storage.recording import record_outcomes
    from storage.retention import prune
    from storage.spec import TopicSpec
    from storage.topics import load_topic, sync_topics

    config = _config(tmp_path, "")
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'topicwatch.db'}"))
    sync_topics(
        sessions,
        [TopicSpec(name="t", title="t", sources=("https://news.example.org/topic/t",))],
    )
    topic_id = load_topic(sessions, "t")[0]
    url = "https://news.example.org/2026/10/01/gencatan-senjata"
    day = datetime(2026, 10, 1, 8, tzinfo=UTC)
    for number in (1, 2, 3):  # the first and the last of the day keep their text
        page = observation(url, "Gencatan senjata", f"Versi {number}: " + "kata " * 50)
        moment = day + timedelta(hours=number)
        record_outcomes(sessions, topic_id=topic_id, run_id=None, outcomes=[page], now=moment)
    with sessions.begin() as session:
        session.execute(update(Alert).values(status="sent"))
    assert prune(sessions, now=day + timedelta(days=200)).texts == 1
    with sessions() as session:
        article = session.scalar(select(Article.id))
    log = tmp_path / "web.log"
    process = _web_process(config, log, "web", "--listen", "127.0.0.1:0")
    try:
        base = _served_at(process, log)
        status, _, page = get(base + f"/articles/{article}?from=1&to=2")
        assert status == 200
        assert "The text of v2 is gone: the retention policy removed its lead and body on" in page
        assert 'data-field="body"' not in page
        assert "v2</a> · 2026-10-01 10:00:00 UTC · Gencatan senjata <span" in page
        status, _, page = get(base + f"/articles/{article}?from=1&to=3")
        assert "is gone" not in page
        assert 'data-field="body"' in page
    finally:
        assert _stop(process) == 0, log.read_text()
