"""End to end: ``topicwatch crawl`` against the local reference-like site, as a user runs it.

Each step changes the site the way an editor (or the site's own churn) would, runs one crawl
as a real process, and checks what the database holds afterwards. Runs on SQLite and
PostgreSQL (``db_url``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixture_site import (
    LSI_TOPIC,
    MULTIPAGE_ARTICLE_ID,
    REFERENCE_TOPIC,
    REFERENCE_TOPIC_TITLE,
    SEED_ARTICLE_ID,
    FixtureSite,
)
from sqlalchemy import func, make_url, select
from sqlalchemy.orm import Session, sessionmaker

from crawler.spiders.topic import WORKERS_AFTER
from scheduler.config import load_config
from storage.db import make_engine, session_factory
from storage.models import Alert, Article, ArticleVersion, Change, CrawlRun
from storage.runs import start_run
from storage.topics import load_topic, sync_topics

TOPICWATCH = str(Path(sys.executable).with_name("topicwatch"))
TOPIC = "konflik"
CLARIFICATION = (
    "Artikel ini telah diperbarui untuk mengklarifikasi sumber dan menambahkan pernyataan "
    "Gedung Putih."
)

pytestmark = pytest.mark.slow


def write_config(
    path: Path,
    db_url: str,
    sources: list[str],
    *,
    crawl: str = "",
    download_timeout: int = 3,
    **topic: str,
) -> Path:
    topic.setdefault("alert_to", '["desk@example.org"]')
    topic.setdefault("max_pages", "2")
    extra = "".join(f"{key} = {value}\n" for key, value in topic.items())
    path.write_text(
        f"""
[database]
url = "{db_url}"

[crawl]
user_agent = "topicwatch-test/1.0 (+http://127.0.0.1/bot)"
download_delay = 0
autothrottle = false
download_timeout = {download_timeout}
retry_times = 0
download_maxsize = "2MB"
{crawl}
[[topic]]
name = "{TOPIC}"
title = "{REFERENCE_TOPIC_TITLE}"
sources = {sources!r}
profile = "tribunnews"
{extra}""".replace("'", '"'),
        encoding="utf-8",
    )
    return path


def topicwatch(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOPICWATCH, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Crawl:
    """One topic's crawls against one database, with the questions the tests ask of it."""

    def __init__(self, config: Path, db_url: str) -> None:
        self.config = config
        self.engine = make_engine(db_url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        done = topicwatch(config, "db", "upgrade")
        assert done.returncode == 0, done.stderr

    def run(self, *, exit_code: int = 0) -> tuple[CrawlRun, list[Change], str]:
        done = topicwatch(self.config, "crawl", TOPIC)
        log = done.stdout + done.stderr
        assert done.returncode == exit_code, log
        with self.sessions() as session:
            run = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
            assert run is not None
            changes = list(
                session.scalars(
                    select(Change).where(Change.crawl_run_id == run.id).order_by(Change.id)
                )
            )
        assert f"topicwatch.run topic={TOPIC} run={run.id} status=" in log, log
        return run, changes, log

    def count(self, model: type[ArticleVersion] | type[Alert] | type[Article]) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0

    def versions(self, url: str) -> list[ArticleVersion]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(ArticleVersion)
                    .join(Article)
                    .where(Article.url == url)
                    .order_by(ArticleVersion.version)
                )
            )

    def alerts_for(self, change: Change) -> int:
        with self.sessions() as session:
            return (
                session.scalar(
                    select(func.count()).select_from(Alert).where(Alert.change_id == change.id)
                )
                or 0
            )

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as site:
        site.start()
        yield site


@pytest.fixture
def crawl(site: FixtureSite, db_url: str, tmp_path: Path) -> Iterator[Crawl]:
    config = write_config(tmp_path / "topicwatch.toml", db_url, [site.listing_url(REFERENCE_TOPIC)])
    crawl = Crawl(config, db_url)
    yield crawl
    crawl.close()


def test_reference_topic_through_its_life(site: FixtureSite, crawl: Crawl) -> None:
    listed = site.listing_ids(REFERENCE_TOPIC)
    seed_url = site.article_url(SEED_ARTICLE_ID)
    assert len(listed) == 6
    assert MULTIPAGE_ARTICLE_ID in listed

    # 1. First run: every listed article is new, with one version each; nothing to warn of.
    run, changes, log = crawl.run()
    assert run.status == "ok", run.error_details
    assert " WARNING " not in log, log
    assert [c.kind for c in changes] == ["new"] * len(listed)
    assert crawl.count(ArticleVersion) == len(listed)
    assert all(crawl.alerts_for(c) == 1 for c in changes)
    multipage = crawl.versions(site.article_url(MULTIPAGE_ARTICLE_ID))[0]
    for paragraph in site.article(MULTIPAGE_ARTICLE_ID).paragraphs:
        assert paragraph in multipage.body  # both pages were read (?page=all)

    # 2. Nothing changed: no changes, no versions; the articles of the listing's first page
    # answered 304. With nothing new there, its second page is not fetched, and the articles
    # on it, whose pages say they were published long ago, were checked moments ago: they
    # are re-checked hourly, not on every run (news of the last hour would be).
    first_page = site.listed_on_page(REFERENCE_TOPIC, 1)
    assert 0 < len(first_page) < len(listed)
    site.clear_requests()
    run, changes, _ = crawl.run()
    assert changes == []
    assert crawl.count(ArticleVersion) == len(listed)
    assert run.articles_not_modified == len(first_page)
    answered_304 = {r.path for r in site.requests if r.status == 304}
    assert answered_304 == {site.article_path(i) for i in first_page}

    # 3. A sentence added to one body, like the seed's clarification: one update of the body.
    site.edit_body(SEED_ARTICLE_ID, insert_sentence=CLARIFICATION, after_paragraph=3)
    run, changes, _ = crawl.run()
    assert [(c.kind, c.fields) for c in changes] == [("updated", ["body"])]
    before, after = crawl.versions(seed_url)
    assert CLARIFICATION not in before.body
    assert CLARIFICATION in after.body
    assert after.body.replace(CLARIFICATION, "").split() == before.body.split()

    # 4. A headline edit: one update of the title.
    title_a = site.article(SEED_ARTICLE_ID).title
    title_b = title_a.replace("Rahasia", "Tertutup")
    assert title_b != title_a
    site.set_title(SEED_ARTICLE_ID, title_b)
    run, changes, _ = crawl.run()
    assert [(c.kind, c.fields) for c in changes] == [("updated", ["title"])]
    assert crawl.alerts_for(changes[0]) == 1

    # 5. Noise only: other "Baca juga" links, recommendations, counters, nonces, ads, trends.
    site.rotate_noise()
    site.clear_requests()
    run, changes, _ = crawl.run()
    assert changes == []
    assert run.articles_unchanged + run.articles_not_modified == len(first_page)
    assert any(
        r.status == 200 and r.path == site.article_path(SEED_ARTICLE_ID) for r in site.requests
    )

    # 6. The headline flips back (B -> A): recorded as a version, but no second alert for A.
    site.set_title(SEED_ARTICLE_ID, title_a)
    run, changes, _ = crawl.run()
    assert [(c.kind, c.fields) for c in changes] == [("updated", ["title"])]
    assert crawl.alerts_for(changes[0]) == 0
    assert [v.title for v in crawl.versions(seed_url)][-3:] == [title_a, title_b, title_a]

    # 7. A 404 is a removal; the page coming back is a restore.
    victim = first_page[-1]
    site.set_status(victim, 404)
    run, changes, _ = crawl.run()
    assert [(c.kind, c.from_version) for c in changes] == [("removed", 1)]
    site.set_status(victim, 200)
    run, changes, _ = crawl.run()
    assert [c.kind for c in changes] == ["restored"]

    # 8. An article that drops off the listing is not removed: news ages out.
    site.remove_from_listing(REFERENCE_TOPIC, listed[0])
    run, changes, _ = crawl.run()
    assert changes == []
    with crawl.sessions() as session:
        statuses = set(session.scalars(select(Article.status)))
    assert statuses == {"live"}


def test_news_of_the_last_hour_is_rechecked_on_every_run_and_older_news_is_not(
    site: FixtureSite, crawl: Crawl
) -> None:
    crawl.run()  # the listing's articles, published in October 2025
    fresh = site.add_article(
        "Gencatan Senjata Diumumkan Sore Ini",
        published=datetime.now(UTC) - timedelta(minutes=5),
        topics=[REFERENCE_TOPIC],
    )
    _, changes, _ = crawl.run()
    assert [c.kind for c in changes] == ["new"]
    # It leaves the listing; the listing's first page has nothing new, so its second page,
    # with older articles, is not fetched either.
    site.remove_from_listing(REFERENCE_TOPIC, fresh.id)
    beyond_first_page = set(site.listing_ids(REFERENCE_TOPIC)) - set(
        site.listed_on_page(REFERENCE_TOPIC, 1)
    )
    assert beyond_first_page
    site.clear_requests()
    run, changes, _ = crawl.run()
    assert changes == []
    asked_again = {r.path for r in site.requests}
    assert site.article_path(fresh.id) in asked_again
    assert not asked_again & {site.article_path(i) for i in beyond_first_page}
    first_page = len(site.listed_on_page(REFERENCE_TOPIC, 1))
    assert run.articles_not_modified + run.articles_unchanged == first_page + 1


def test_redirect_to_home_is_a_removal(site: FixtureSite, crawl: Crawl) -> None:
    crawl.run()
    victim = site.listing_ids(REFERENCE_TOPIC)[1]
    site.set_status(victim, "redirect_home")
    _, changes, log = crawl.run()
    assert [c.kind for c in changes] == ["removed"]
    assert "kind=removed" in log


@pytest.mark.parametrize(
    ("sources", "keywords", "expected"),
    [
        pytest.param(["rss"], "[]", "reference", id="rss-feed"),
        pytest.param(["atom"], "[]", "reference", id="atom-feed"),
        pytest.param(["rss", "sitemap"], '["Timnas"]', "timnas", id="keywords-over-sitemap"),
        pytest.param(["sitemap-index"], '["Timnas"]', "timnas", id="sitemap-index"),
    ],
)
def test_feeds_and_news_sitemaps_as_sources(
    site: FixtureSite, db_url: str, tmp_path: Path, sources: list[str], keywords: str, expected: str
) -> None:
    urls = [
        site.sitemap_url("index")
        if kind == "sitemap-index"
        else site.sitemap_url("news")
        if kind == "sitemap"
        else site.feed_url(REFERENCE_TOPIC, kind)
        for kind in sources
    ]
    config = write_config(tmp_path / "topicwatch.toml", db_url, urls, keywords=keywords)
    crawl = Crawl(config, db_url)
    try:
        run, changes, _ = crawl.run()
        assert run.status == "ok", run.error_details
        topic = REFERENCE_TOPIC if expected == "reference" else LSI_TOPIC
        wanted = {site.article_url(i) for i in site.listing_ids(topic)}
        # Feed links carry utm_* parameters; the articles are recorded by canonical URL.
        with crawl.sessions() as session:
            assert set(session.scalars(select(Article.url))) == wanted
        assert [c.kind for c in changes] == ["new"] * len(wanted)
    finally:
        crawl.close()


def crawl_with_workers(
    site: FixtureSite, db_url: str, tmp_path: Path, *, download_timeout: int = 3
) -> Crawl:
    """Crawls of the site's reference topic by two reading workers and a writer process."""
    config = write_config(
        tmp_path / "topicwatch.toml",
        db_url,
        [site.listing_url(REFERENCE_TOPIC)],
        crawl="workers = 2",
        download_timeout=download_timeout,
        max_pages="20",
    )
    return Crawl(config, db_url)


def _descendants(root: int) -> list[int]:
    """The processes below ``root``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _name(pid: int) -> str:
    """The name ps shows for process ``pid`` (the crawl's workers name themselves)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""  # ended meanwhile


def _holds_database(pid: int, db_url: str) -> bool:
    """Whether process ``pid`` has the database open: the SQLite file, or a TCP connection
    to the PostgreSQL server's port."""
    url = make_url(db_url)
    try:
        targets = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    if url.get_backend_name() == "sqlite":
        return str(Path(url.database or "").resolve()) in targets
    port = f":{url.port or 5432:04X}"
    inodes = {t[len("socket:[") : -1] for t in targets if t.startswith("socket:[")}
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():  # no IPv6 on this machine
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].endswith(port) and fields[9] in inodes:
                return True
    return False


def test_a_writer_process_that_dies_loses_and_doubles_nothing(db_url: str, tmp_path: Path) -> None:
    """The writer process is killed in the middle of a run: the batches it held and those
    after are recorded by the crawl process, each outcome once."""
    with FixtureSite.generate(300, topics=[REFERENCE_TOPIC], per_page=50) as site:
        # A few articles answer only after a while, some later than others: whenever the
        # writer is found and killed, batches are still to come.
        slow = site.listed_on_page(REFERENCE_TOPIC, 6)[-5:]
        for n, article_id in enumerate(slow):
            site.set_fault(site.article_path(article_id), "hang", seconds=2 if n < 2 else 4)
        crawl = crawl_with_workers(site, db_url, tmp_path, download_timeout=15)
        output = tmp_path / "crawl.log"
        try:
            # The output goes to a file: a pipe nobody reads while the test watches the
            # processes would fill up and stall the crawl's logging.
            with output.open("wb") as sink:
                process = subprocess.Popen(
                    [TOPICWATCH, "--config", str(crawl.config), "crawl", TOPIC],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            try:
                writer = None
                deadline = time.monotonic() + 60
                while writer is None and process.poll() is None:
                    if time.monotonic() > deadline:
                        pytest.fail(
                            "no writer process holds the database after 60 s:\n"
                            + output.read_text(errors="replace")
                        )
                    writer = next(
                        (
                            pid
                            for pid in _descendants(process.pid)
                            if _name(pid) == "tw-writer" and _holds_database(pid, db_url)
                        ),
                        None,
                    )
                    time.sleep(0.05)
                assert writer is not None, "the crawl ended before its writer process started"
                os.kill(writer, signal.SIGKILL)
                process.wait(timeout=120)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=30)
            log = output.read_text(errors="replace")
            assert process.returncode == 0, log
            assert "The writer process of topic" in log, log
            with crawl.sessions() as session:
                run = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
                assert run is not None
                assert run.status == "ok", run.error_details
                kinds = session.scalars(
                    select(Change.kind).where(Change.crawl_run_id == run.id)
                ).all()
            assert kinds == ["new"] * 300
            assert crawl.count(ArticleVersion) == 300
            assert crawl.count(Alert) == 300
            slow_versions = [crawl.versions(site.article_url(i)) for i in slow]
            assert [len(v) for v in slow_versions] == [1] * len(slow)
        finally:
            crawl.close()


def test_a_run_forks_its_workers_at_its_start_and_they_take_every_page(
    db_url: str, tmp_path: Path
) -> None:
    """With ``workers``, the workers are forked at the start of the run: even a small run's
    pages, listings and batches all go to them, none is done in the crawl process."""
    articles = WORKERS_AFTER - 2
    with FixtureSite.generate(articles, topics=[REFERENCE_TOPIC], per_page=50) as site:
        crawl = crawl_with_workers(site, db_url, tmp_path)
        try:
            run, changes, _ = crawl.run()
            assert run.status == "ok", run.error_details
            multipage = sum(1 for a in site.articles if a.pages > 1)
            assert run.stats["topicwatch/pages_read_by_workers"] == articles + multipage
            assert run.stats.get("topicwatch/pages_read_in_process", 0) == 0
            assert (
                run.stats["topicwatch/listings_read_by_workers"]
                == run.stats["topicwatch/listing_pages"]
            )
            assert run.stats["topicwatch/batches_recorded_by_writer"] >= 1
            assert [c.kind for c in changes] == ["new"] * articles
            assert crawl.count(ArticleVersion) == articles
        finally:
            crawl.close()


# A crawl child with a thread of its own running before the run starts: it cannot fork.
THREADED_CRAWL_CHILD = (
    "import sys, threading; "
    "threading.Thread(target=threading.Event().wait, daemon=True).start(); "
    "from crawler.__main__ import main; sys.exit(main(sys.argv[1:]))"
)


def test_a_crawl_process_that_cannot_fork_starts_its_workers_afresh(
    db_url: str, tmp_path: Path
) -> None:
    """Where the crawl process runs another thread at its start, forking could copy a lock
    that thread holds: the run reads its first ``WORKERS_AFTER`` pages itself, then starts
    the workers afresh (and the writer once a batch has gone out, recording in the crawl
    process until it is ready); it records what a run with forked workers records."""
    articles = 150
    with FixtureSite.generate(articles, topics=[REFERENCE_TOPIC], per_page=50) as site:
        crawl = crawl_with_workers(site, db_url, tmp_path)
        try:
            config = load_config(crawl.config)
            with crawl.sessions() as session:
                assert session.scalar(select(func.count()).select_from(CrawlRun)) == 0
            sync_topics(crawl.sessions, config.topic_specs())
            topic_id, _ = load_topic(crawl.sessions, TOPIC)
            run_id = start_run(crawl.sessions, topic_id)
            arguments = ["--topic", TOPIC, "--run-id", str(run_id)]
            done = subprocess.run(
                [sys.executable, "-c", THREADED_CRAWL_CHILD, *arguments],
                env={**os.environ, "TOPICWATCH_DATABASE_URL": db_url},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            with crawl.sessions() as session:
                run = session.get(CrawlRun, run_id)
                assert run is not None
                assert run.status == "ok", run.error_details
                kinds = session.scalars(select(Change.kind).where(Change.crawl_run_id == run_id))
                assert list(kinds) == ["new"] * articles
            assert run.stats["topicwatch/pages_read_in_process"] == WORKERS_AFTER
            assert run.stats["topicwatch/pages_read_by_workers"] > 0
            assert crawl.count(ArticleVersion) == articles
            assert crawl.count(Alert) == articles
        finally:
            crawl.close()


def test_workers_read_and_record_a_big_crawl_as_the_crawl_process_does(
    db_url: str, tmp_path: Path
) -> None:
    """With ``workers``, pages are read by worker processes and batches recorded by a writer
    process; what the database holds is what a crawl without them records."""
    with FixtureSite.generate(600, topics=[REFERENCE_TOPIC], per_page=50) as site:
        crawl = crawl_with_workers(site, db_url, tmp_path)
        try:
            run, changes, _ = crawl.run()
            assert run.status == "ok", run.error_details
            assert run.stats["topicwatch/pages_read_by_workers"] > 0
            assert run.stats["topicwatch/batches_recorded_by_writer"] > 0
            assert [c.kind for c in changes] == ["new"] * 600
            assert crawl.count(ArticleVersion) == 600
            assert crawl.count(Alert) == 600
            two_pages = site.article(7500025)  # every 25th article has two pages
            assert two_pages.pages == 2
            (version,) = crawl.versions(site.article_url(two_pages.id))
            assert two_pages.paragraphs[0][:60] in version.body
            assert two_pages.paragraphs[-1][:60] in version.body

            site.edit_body(7500001, insert_sentence=CLARIFICATION, after_paragraph=3)
            run, changes, _ = crawl.run()
            assert run.status == "ok", run.error_details
            assert [(c.kind, c.fields) for c in changes] == [("updated", ["body"])]
            assert crawl.count(ArticleVersion) == 601
        finally:
            crawl.close()
