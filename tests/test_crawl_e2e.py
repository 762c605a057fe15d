"""End to end: ``topicwatch crawl`` against the local reference-like site, as a user runs it.

Each step changes the site the way an editor (or the site's own churn) would, runs one crawl
as a real process, and checks what the database holds afterwards. Runs on SQLite and
PostgreSQL (``db_url``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fixture_site import (
    COPYRIGHT,
    GENERIC_TOPIC,
    LSI_TOPIC,
    MULTIPAGE_ARTICLE_ID,
    REFERENCE_TOPIC,
    REFERENCE_TOPIC_TITLE,
    SEED_ARTICLE_ID,
    FixtureSite,
    generated_paragraphs,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.diff import word_diff
from crawler.fingerprint import block_hashes
from crawler.urls import canonical_url
from storage.db import make_engine, session_factory
from storage.models import Alert, Article, ArticleVersion, Change, CrawlRun, SiteBlock

TOPICWATCH = str(Path(sys.executable).with_name("topicwatch"))
TOPIC = "konflik"
CLARIFICATION = (
    "Artikel ini telah diperbarui untuk mengklarifikasi sumber dan menambahkan pernyataan "
    "Gedung Putih."
)

LATER_PAGE_SENTENCE = "Koreksi: Jerman menjanjikan dua sistem tambahan, bukan satu."

pytestmark = pytest.mark.slow


def inserted_and_deleted(old: str, new: str) -> tuple[list[str], list[str]]:
    """The texts a word diff of two bodies (as a digest shows it) inserts and deletes."""
    ops = word_diff(old, new)
    inserted = [op.text.strip() for op in ops if op.kind == "insert" and op.text.strip()]
    deleted = [op.text.strip() for op in ops if op.kind == "delete" and op.text.strip()]
    return inserted, deleted


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
    topic.setdefault("profile", '"tribunnews"')
    extra = "".join(f"{key} = {value}\n" for key, value in topic.items() if value)
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

    def article_id(self, url: str) -> int | None:
        with self.sessions() as session:
            return session.scalar(select(Article.id).where(Article.url == url))

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
    # answered 304, and so did the view of the whole multi-page article. With nothing new
    # there, the listing's second page is not fetched, and the articles on it, whose pages
    # say they were published long ago, were checked moments ago: they are re-checked
    # hourly, not on every run (news of the last hour would be).
    first_page = site.listed_on_page(REFERENCE_TOPIC, 1)
    assert 0 < len(first_page) < len(listed)
    site.clear_requests()
    run, changes, _ = crawl.run()
    assert changes == []
    assert crawl.count(ArticleVersion) == len(listed)
    assert run.articles_not_modified == len(first_page)
    answered_304 = {r.path for r in site.requests if r.status == 304}
    whole = f"{site.article_path(MULTIPAGE_ARTICLE_ID)}?page=all"
    assert answered_304 == {site.article_path(i) for i in first_page} | {whole}

    # 2b. An edit on the second page of the multi-page article, as an editor fixing a line
    # there: its first page is byte for byte the same, so it answers 304 again; the view of
    # the whole article, asked for with its own ETag, does not, and the edit is an update.
    multipage_url = site.article_url(MULTIPAGE_ARTICLE_ID)
    split = site.article(MULTIPAGE_ARTICLE_ID)
    later = len(split.page_paragraphs(1)) + 1  # a paragraph on page 2
    site.edit_body(
        MULTIPAGE_ARTICLE_ID,
        replace_paragraph=later,
        text=f"{split.paragraphs[later]} {LATER_PAGE_SENTENCE}",
        touch_modified=False,
    )
    site.clear_requests()
    run, changes, _ = crawl.run()
    assert [(c.kind, c.fields) for c in changes] == [("updated", ["body"])]
    assert crawl.alerts_for(changes[0]) == 1
    assert site.article_path(MULTIPAGE_ARTICLE_ID) in {
        r.path for r in site.requests if r.status == 304
    }
    before, after = crawl.versions(multipage_url)
    assert inserted_and_deleted(before.body, after.body) == ([LATER_PAGE_SENTENCE], [])

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


def test_a_big_crawl_records_every_page_once_in_batches(db_url: str, tmp_path: Path) -> None:
    """A crawl of 600 articles is recorded in many batches, several on their way to the
    database at once: every article once, with its alert; a later edit is one update."""
    with FixtureSite.generate(600, topics=[REFERENCE_TOPIC], per_page=50) as site:
        config = write_config(
            tmp_path / "topicwatch.toml",
            db_url,
            [site.listing_url(REFERENCE_TOPIC)],
            crawl="max_articles_per_run = 1000\n",
            max_pages="20",
        )
        crawl = Crawl(config, db_url)
        try:
            run, changes, _ = crawl.run()
            assert run.status == "ok", run.error_details
            assert [c.kind for c in changes] == ["new"] * 600
            assert run.articles_new == run.articles_seen == 600
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


def test_site_templates_are_learned_from_the_articles_and_never_alert_by_themselves(
    db_url: str, tmp_path: Path
) -> None:
    """A block on many of the site's articles is its template: rewritten on one article it is
    no change, also when it became template after that article was stored; an edit of the
    article's own text beside it still is."""
    follow = "Ikuti terus berita terkini Tribunnews.com di Google News dan saluran WhatsApp kami."
    letters = "Punya informasi atau tanggapan? Kirim tulisan Anda ke redaksi@tribunnews.com."
    with FixtureSite.generate(8, topics=[REFERENCE_TOPIC], per_page=50, multipage_every=0) as site:
        ids = site.listing_ids(REFERENCE_TOPIC)
        for n, article_id in enumerate(ids):
            extra = [letters, follow] if n < 2 else [follow]
            site.edit_body(article_id, paragraphs=[*site.article(article_id).paragraphs, *extra])
        config = write_config(
            tmp_path / "topicwatch.toml", db_url, [site.listing_url(REFERENCE_TOPIC)]
        )
        crawl = Crawl(config, db_url)
        try:
            run, changes, _ = crawl.run()
            assert [c.kind for c in changes] == ["new"] * 8, run.error_details
            # The pages' blocks that extraction leaves out are counted too: the copyright
            # line of every page's footer stood on all eight.
            with crawl.sessions() as session:
                (copyright_line,) = block_hashes(COPYRIGHT)
                assert (
                    session.scalar(select(SiteBlock.pages).where(SiteBlock.block == copyright_line))
                    == 8
                )

            # The follow-us line, on every article, is rewritten on one; another is edited.
            rewritten = follow.replace("saluran WhatsApp", "WhatsApp serta Telegram")
            site.edit_body(ids[2], paragraphs=[*site.article(ids[2]).paragraphs[:-1], rewritten])
            site.edit_body(ids[3], insert_sentence=CLARIFICATION, after_paragraph=1)
            run, changes, _ = crawl.run()
            assert [(c.kind, c.fields) for c in changes] == [("updated", ["body"])]
            assert changes[0].article_id == crawl.article_id(site.article_url(ids[3]))
            assert len(crawl.versions(site.article_url(ids[2]))) == 1

            # The letters line, on two articles so far, is not template yet; three new
            # articles carry it, and it becomes template. Then it is rewritten on one of the
            # two articles stored before: no change; a paragraph edited elsewhere: a change.
            for _ in range(3):
                site.add_article(
                    topics=[REFERENCE_TOPIC], paragraphs=["Berita baru hari ini.", letters, follow]
                )
            run, changes, _ = crawl.run()
            assert [c.kind for c in changes] == ["new"] * 3, run.error_details
            paragraphs = site.article(ids[0]).paragraphs
            site.edit_body(
                ids[0],
                paragraphs=[*paragraphs[:-2], "Kirim ke surat@tribunnews.com.", paragraphs[-1]],
            )
            site.edit_body(ids[4], replace_paragraph=1, text="Paragraf ini telah disunting.")
            run, changes, _ = crawl.run()
            assert [(c.kind, c.fields) for c in changes] == [("updated", ["body"])]
            assert changes[0].article_id == crawl.article_id(site.article_url(ids[4]))
            assert run.status == "ok", run.error_details
        finally:
            crawl.close()


def test_every_page_of_an_article_split_into_pages_is_compared_on_any_site(
    site: FixtureSite, db_url: str, tmp_path: Path
) -> None:
    """A WordPress-like post split into pages, on a site without a profile: the pages are
    found by the post's own links, read whole, and each is re-checked with its own ETag."""
    paragraphs = list(dict.fromkeys(generated_paragraphs("split post", 700)))
    split = site.add_article(
        "Harga Cabai Naik Tajam Menjelang Akhir Tahun di Pasar Induk",
        topics=[GENERIC_TOPIC],
        pages=2,
        # An odd number: one more paragraph on page 1 moves its last one onto page 2.
        paragraphs=paragraphs[: len(paragraphs) // 2 * 2 - 1],
    )
    url = canonical_url(site.article_url(split.id))
    page_1 = urlsplit(url).path  # a known article is asked for at its canonical URL
    page_2 = site.article_path(split.id) + "2/"
    config = write_config(
        tmp_path / "topicwatch.toml", db_url, [site.listing_url(GENERIC_TOPIC)], profile=""
    )
    crawl = Crawl(config, db_url)
    try:
        # 1. Read whole: every paragraph of both pages, the links between pages left out.
        run, changes, _ = crawl.run()
        assert run.status == "ok", run.error_details
        (first,) = crawl.versions(url)
        assert first.body.split("\n\n") == split.paragraphs

        # 2. Nothing changed: no change, and the post costs two conditional requests.
        site.clear_requests()
        run, changes, _ = crawl.run()
        assert changes == []
        asked = [(r.path, r.status) for r in site.requests if split.slug in r.path]
        assert sorted(asked) == [(page_1, 304), (page_2, 304)]

        # 3. An edit on page 2 only: page 1 answers 304, page 2 does not; one update.
        later = len(split.page_paragraphs(1)) + 2
        site.edit_body(
            split.id,
            replace_paragraph=later,
            text=f"{split.paragraphs[later]} {LATER_PAGE_SENTENCE}",
            touch_modified=False,
        )
        site.clear_requests()
        run, changes, _ = crawl.run()
        assert [(c.kind, c.fields) for c in changes] == [("updated", ["body"])]
        assert (page_1, 304) in {(r.path, r.status) for r in site.requests}
        before, after = crawl.versions(url)
        assert inserted_and_deleted(before.body, after.body) == ([LATER_PAGE_SENTENCE], [])

        # 4. A paragraph added on page 1 pushes page 1's last paragraph onto page 2: the
        # article gained one paragraph and lost none.
        moved = site.article(split.id).page_paragraphs(1)[-1]
        added = "Pedagang berharap pasokan dari daerah sentra kembali normal pekan depan."
        site.edit_body(split.id, insert_sentence=added, after_paragraph=0, touch_modified=False)
        assert moved in site.article(split.id).page_paragraphs(2)
        run, changes, _ = crawl.run()
        assert [(c.kind, c.fields) for c in changes] == [("updated", ["body"])]
        before, after = crawl.versions(url)[-2:]
        assert inserted_and_deleted(before.body, after.body) == ([added], [])
        assert after.body.split("\n\n") == site.article(split.id).paragraphs
    finally:
        crawl.close()
