"""Site templates: the learning rule and the block comparison (pure), and learning and recording
them on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import storage.templates
from crawler.article import ExtractedArticle
from crawler.fingerprint import fingerprint
from crawler.profiles import profile_for
from crawler.reading import read_page
from storage.changes import PageRead
from storage.models import ArticleVersion, Site, SiteBlock
from storage.recording import ChangeRecord, record_outcomes
from storage.spec import TopicSpec
from storage.templates import body_edited, is_template, site_of, templates_among
from storage.topics import load_topic, sync_topics

# -- the learning rule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pages", "since", "template"),
    [
        pytest.param(2, 2, False, id="two-pages-are-ordinary-news-work"),
        pytest.param(3, 3, True, id="three-of-three"),
        pytest.param(3, 15, True, id="three-of-fifteen-is-a-fifth"),
        pytest.param(3, 16, False, id="three-of-sixteen-is-less"),
        pytest.param(200, 1000, True, id="a-section-box-on-a-fifth"),
        pytest.param(199, 1000, False, id="just-under-a-fifth"),
        pytest.param(40, 400, False, id="a-retired-box-falls-below"),
    ],
)
def test_a_block_is_template_on_three_pages_and_a_fifth_of_those_since(
    pages: int, since: int, template: bool
) -> None:
    assert is_template(pages, since) is template


# p: the article's own paragraphs; t: its site's templates; x, y: text not seen before.
T = frozenset({"t1", "t2", "t3"})


@pytest.mark.parametrize(
    ("old", "new", "edited"),
    [
        pytest.param("p1 t1 p2", "p1 t1 p2", False, id="same"),
        pytest.param("p1 t1 p2", "p1 t2 p2", False, id="template-swapped-for-template"),
        pytest.param("p1 t1 p2", "p1 p2", False, id="template-dropped"),
        pytest.param("p1 p2", "t1 p1 p2 t2", False, id="templates-added"),
        pytest.param("p1 t1 p2", "p1 x p2", False, id="template-rewritten-in-place"),
        pytest.param("p1 t1 t2", "p1 x", False, id="two-templates-become-one-new-block"),
        pytest.param("p1 x p2", "p1 t1 p2", False, id="former-template-replaced-by-template"),
        pytest.param("p1 t1 p2", "p1 x y p2", True, id="template-rewritten-and-text-added"),
        pytest.param("p1 t1 p2", "p1 t1 x p2", True, id="paragraph-added-beside-template"),
        pytest.param("p1 t1 p2", "p1 t1", True, id="paragraph-removed"),
        pytest.param("p1 t1 p2", "p1 x y", True, id="template-and-paragraph-rewritten"),
        pytest.param("p1 t1 p2", "x t1 p2", True, id="paragraph-rewritten"),
        pytest.param("p1 p2", "p1 p2 x", True, id="paragraph-added"),
        pytest.param("p1 p2 t1", "p2 p1 t1", True, id="paragraphs-reordered"),
        pytest.param("p1 x p2", "p1 y p2", True, id="unknown-block-rewritten"),
    ],
)
def test_bodies_are_compared_block_by_block_with_the_same_templates(
    old: str, new: str, edited: bool
) -> None:
    assert body_edited(old.split(), new.split(), T) is edited


def test_a_site_is_its_host_and_port_without_www() -> None:
    assert site_of("https://WWW.Example.org/a/b?c=1") == "example.org"
    assert site_of("http://127.0.0.1:8123/x") == "127.0.0.1:8123"
    assert site_of("https://user@news.example.org/x") == "news.example.org"


# -- learning and recording, on both databases -------------------------------------------------

NOW = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
SITE = "https://news.example.org"
NEWSLETTER = "Sign up for our morning newsletter: the day's news in your inbox."
LETTERS = "Write to us at letters@news.example.org."


def topic(factory: sessionmaker[Session]) -> int:
    sync_topics(
        factory,
        (
            TopicSpec(
                name="news",
                title="News",
                sources=(f"{SITE}/topic/news",),
                alert_to=("desk@example.org",),
                alert_on=("new", "updated", "removed"),
            ),
        ),
    )
    return load_topic(factory, "news")[0]


def own(n: int, k: int = 0) -> str:
    return f"Paragraph {k} of article {n}, which no other article of the site shares."


def read(n: int, *extra: str, site: str = SITE, edit: str = "", lead: str = "") -> PageRead:
    """Article ``n`` of ``site``: two paragraphs of its own (the second with ``edit``), then
    the ``extra`` blocks; ``lead`` its standfirst."""
    paragraphs = [own(n), own(n, 1) + edit, *extra]
    article = ExtractedArticle(
        url=f"{site}/news/{n}",
        title=f"Article {n}",
        body="\n\n".join(paragraphs),
        lead=lead,
    )
    print_ = fingerprint(article)
    return PageRead(
        url=article.url,
        fingerprint=print_.digest,
        field_hashes=print_.fields,
        blocks=print_.blocks,
        title=article.title,
        body=article.body,
    )


class Recorder:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.topic_id = topic(factory)
        self.minutes = 0

    def __call__(self, *pages: PageRead) -> list[ChangeRecord | None]:
        self.minutes += 1
        return record_outcomes(
            self.factory,
            topic_id=self.topic_id,
            run_id=None,
            outcomes=pages,
            now=NOW + timedelta(minutes=self.minutes),
        )

    def changes(self, *pages: PageRead) -> list[tuple[str, tuple[str, ...]]]:
        return [(c.kind, c.fields) for c in self(*pages) if c is not None]

    def templates(self, *texts: str, site: str = SITE) -> set[str]:
        """Which of ``texts`` are the site's templates now."""
        hashes = {fingerprint_of(text): text for text in texts}
        with self.factory() as session:
            found = templates_among(session, {site_of(site): set(hashes)})
        return {hashes[h] for h in found.get(site_of(site), frozenset())}


def fingerprint_of(text: str) -> str:
    (block,) = fingerprint(ExtractedArticle(url="", title="", body=text)).blocks
    return block


def test_templates_are_learned_per_site_from_articles_read_the_first_time(
    session_factory: sessionmaker[Session],
) -> None:
    record = Recorder(session_factory)
    other = "https://other.example.net"
    assert record.changes(read(1, NEWSLETTER), read(2, NEWSLETTER)) == [("new", ())] * 2
    assert record.changes(read(9, NEWSLETTER, site=other)) == [("new", ())]
    # Re-reading an article does not count it again.
    assert record.changes(read(1, NEWSLETTER), read(2, NEWSLETTER)) == []
    assert record.templates(NEWSLETTER) == set()
    record(read(3, NEWSLETTER, LETTERS))
    assert record.templates(NEWSLETTER, LETTERS, own(3)) == {NEWSLETTER}
    assert record.templates(NEWSLETTER, site=other) == set()
    with session_factory() as session:
        pages = dict(session.execute(select(Site.host, Site.pages)).all())
        assert pages == {"news.example.org": 3, "other.example.net": 1}
        newsletter = session.execute(
            select(SiteBlock.pages, SiteBlock.first_seen)
            .join(Site)
            .where(Site.host == "news.example.org", SiteBlock.block == fingerprint_of(NEWSLETTER))
        ).one()
        assert tuple(newsletter) == (3, 1)
        stored = session.scalars(select(ArticleVersion.blocks).order_by(ArticleVersion.id)).first()
        assert stored == list(read(1, NEWSLETTER).blocks)


def test_a_template_rewritten_on_one_article_is_no_change_while_an_edit_is(
    session_factory: sessionmaker[Session],
) -> None:
    record = Recorder(session_factory)
    record(*(read(n, NEWSLETTER) for n in range(1, 6)))
    record(*(read(n, LETTERS) for n in range(6, 9)))
    rewritten = NEWSLETTER.replace("morning", "evening")
    assert record.changes(
        read(1, rewritten),
        read(2),  # the box dropped
        read(3, LETTERS, NEWSLETTER),  # another of the site's boxes added before it
        read(4, NEWSLETTER, edit=" The ministry later revised this figure."),
    ) == [("updated", ("body",))]
    with session_factory() as session:
        versions = session.scalar(select(func.count()).select_from(ArticleVersion))
    assert versions == 9  # the template churn stored no version
    # And the rewritten box read again is still no change of article 1.
    assert record.changes(read(1, rewritten)) == []


def test_a_template_in_the_lead_is_learned_and_compared_as_in_the_body(
    session_factory: sessionmaker[Session],
) -> None:
    record = Recorder(session_factory)

    def standfirst(n: int, *extra: str) -> str:
        return "\n\n".join((f"What article {n} is about, in a sentence.", *extra))

    # The box stands in the standfirst of three articles, in the body of two more.
    record(*(read(n, lead=standfirst(n, NEWSLETTER)) for n in range(1, 4)))
    record(read(4, NEWSLETTER, lead=standfirst(4)), read(5, NEWSLETTER, lead=standfirst(5)))
    assert record.templates(NEWSLETTER) == {NEWSLETTER}
    rewritten = NEWSLETTER.replace("morning", "evening")
    assert record.changes(
        read(1, lead=standfirst(1, rewritten)),
        read(2, lead=standfirst(2)),  # the box dropped from the standfirst
        read(4, lead=standfirst(4, NEWSLETTER)),  # moved from the body into the standfirst
        read(3, lead=standfirst(3, NEWSLETTER).replace("sentence", "sentence or two")),
    ) == [("updated", ("lead",))]
    # Text of the article's own added to the standfirst beside the box is an edit.
    assert record.changes(read(1, lead=standfirst(1, rewritten, "A new sentence here."))) == [
        ("updated", ("lead",))
    ]


def test_a_block_that_becomes_template_after_articles_are_stored_raises_no_alert(
    session_factory: sessionmaker[Session],
) -> None:
    record = Recorder(session_factory)
    record(read(1, LETTERS), read(2, LETTERS))
    record(*(read(n) for n in range(3, 9)))
    assert record.templates(LETTERS) == set()
    rewritten = LETTERS.replace("letters@", "editors@")
    # Not template yet: its rewrite is an edit of article 2.
    assert record.changes(read(2, rewritten)) == [("updated", ("body",))]
    record(read(9, LETTERS), read(10, LETTERS))  # 4 of the 10 pages read since it appeared
    assert record.templates(LETTERS) == {LETTERS}
    # Article 1 was stored while the block was not template: read unchanged, or with the block
    # rewritten, it is no change.
    assert record.changes(read(1, LETTERS)) == []
    assert record.changes(read(1, rewritten)) == []
    assert record.changes(read(1, rewritten, edit=" Revised.")) == [("updated", ("body",))]


def test_a_block_that_stops_being_template_raises_no_alert(
    session_factory: sessionmaker[Session],
) -> None:
    record = Recorder(session_factory)
    record(*(read(n, NEWSLETTER) for n in range(1, 4)))
    assert record.templates(NEWSLETTER) == {NEWSLETTER}
    # The site replaces its box: the new one is on every article read since, the old one on
    # fewer than a fifth of the articles read since it first appeared.
    record(*(read(n, LETTERS) for n in range(4, 20)))
    assert record.templates(NEWSLETTER, LETTERS) == {LETTERS}
    # Unchanged pages stay unchanged, and the old box replaced by the new one is no edit.
    assert record.changes(read(1, NEWSLETTER), read(2, LETTERS), read(3, NEWSLETTER)) == []
    assert record.changes(read(1, NEWSLETTER, edit=" Revised.")) == [("updated", ("body",))]


def test_versions_stored_without_block_hashes_compare_their_body_hash(
    session_factory: sessionmaker[Session],
) -> None:
    record = Recorder(session_factory)
    record(*(read(n, NEWSLETTER) for n in range(1, 5)))
    legacy = read(5, NEWSLETTER)
    record(PageRead(**{**legacy.__dict__, "blocks": ()}))
    rewritten = NEWSLETTER.replace("morning", "evening")
    assert record.changes(read(5, rewritten)) == [("updated", ("body",))]
    # The new version has its block hashes: from now on templates apply.
    assert record.changes(read(5, NEWSLETTER)) == []


def test_blocks_seen_rarely_long_ago_are_forgotten_and_templates_kept(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.templates, "FORGET_AFTER", 10)
    monkeypatch.setattr(storage.templates, "FORGET_EVERY", 10)
    record = Recorder(session_factory)
    for start in range(1, 41, 5):
        record(*(read(n, NEWSLETTER) for n in range(start, start + 5)))

    def rows() -> Sequence[tuple[str, int]]:
        with session_factory() as session:
            return [
                (b, f) for b, f in session.execute(select(SiteBlock.block, SiteBlock.first_seen))
            ]

    kept = rows()
    # At the 40th page, blocks of one page first seen at page 30 or before were dropped.
    assert sorted({first for _, first in kept}) == [1, *range(31, 41)]
    assert len(kept) == 1 + 2 * 10
    assert record.templates(NEWSLETTER) == {NEWSLETTER}


# -- a block extraction leaves out on one page ---------------------------------------------------


def page_html(n: int, box: str, *, inside: bool) -> bytes:
    """Article ``n`` of the site as its page: a headline, paragraphs of its own, and the
    site's ``box`` as a paragraph of the article (``inside``) or in an aside after it."""
    from fixture_site import generated_paragraphs

    paragraphs = "".join(f"<p>{text}</p>" for text in generated_paragraphs(n, 300))
    box_html = f"<p>{box}</p>"
    return (
        "<!DOCTYPE html><html><head><title>Article {n}</title></head><body>"
        "<header><nav><a href='/'>Home</a></nav></header><main>"
        f"<article><h1>Article {n}</h1>{paragraphs}{box_html if inside else ''}</article>"
        f"{'' if inside else f'<aside class=newsletter-signup>{box_html}</aside>'}"
        "</main><footer><p>Copyright News Example</p></footer></body></html>"
    ).encode()


def page_read(n: int, box: str, *, inside: bool, with_page_blocks: bool = True) -> PageRead:
    """The page as a crawl reads it (:func:`crawler.reading.read_page`) and hands it to
    recording."""
    url = f"{SITE}/news/{n}"
    reading = read_page(
        page_html(n, box, inside=inside),
        url,
        encoding="utf-8",
        profile=profile_for(url),
        ignore_patterns=(),
        with_page_blocks=with_page_blocks,
    )
    assert reading.article is not None
    assert reading.fingerprint is not None
    return PageRead(
        url=url,
        fingerprint=reading.fingerprint.digest,
        field_hashes=reading.fingerprint.fields,
        blocks=reading.fingerprint.blocks,
        page_blocks=reading.page_blocks,
        title=reading.article.title,
        body=reading.article.body,
    )


@pytest.mark.parametrize("with_page_blocks", [True, False], ids=["page-blocks", "extracted-only"])
def test_a_block_extraction_leaves_out_on_one_page_still_counts_there(
    session_factory: sessionmaker[Session], with_page_blocks: bool
) -> None:
    record = Recorder(session_factory)
    first = [
        page_read(n, NEWSLETTER, inside=n != 3, with_page_blocks=with_page_blocks)
        for n in (1, 2, 3)
    ]
    # Extraction keeps the box in the article on two pages and leaves the aside out.
    box = fingerprint_of(NEWSLETTER)
    assert [box in read.blocks for read in first] == [True, True, False]
    assert box in first[2].page_blocks or not with_page_blocks
    assert record.changes(*first) == [("new", ())] * 3
    learned = {NEWSLETTER} if with_page_blocks else set()
    assert record.templates(NEWSLETTER) == learned
    # The site rewrites its box: on the pages whose article holds it that is no edit, once
    # the site's pages, not only what extraction kept of them, made it template.
    rewritten = NEWSLETTER.replace("morning", "evening")
    changes = record.changes(page_read(1, rewritten, inside=True))
    assert changes == ([] if with_page_blocks else [("updated", ("body",))])
    # A re-read learns nothing more: the site has still read three articles.
    with session_factory() as session:
        assert session.scalar(select(Site.pages)) == 3


def test_the_migration_keeps_the_block_counts_and_goes_back(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect, text

    from storage.db import _connect, alembic_config, make_engine, upgrade

    upgrade(db_url, "0010")
    counts = [(1, f"{n:016x}", n % 5 + 1, n) for n in range(1, 200)]
    engine = make_engine(db_url, foreign_keys=False)

    def stored() -> list[tuple[int, str, int, int]]:
        with engine.connect() as connection:
            return [
                tuple(row)
                for row in connection.execute(
                    text(
                        "SELECT site_id, block, pages, first_seen FROM site_blocks "
                        "ORDER BY site_id, block"
                    )
                )
            ]

    def table_sql() -> str:
        with engine.connect() as connection:
            return str(
                connection.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'site_blocks'")
                ).scalar_one()
            )

    try:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO sites (id, host, pages) VALUES (1, 'news.example.org', 200)")
            )
            connection.execute(
                text(
                    "INSERT INTO site_blocks (site_id, block, pages, first_seen) "
                    "VALUES (:site_id, :block, :pages, :first_seen)"
                ),
                [
                    {"site_id": site_id, "block": block, "pages": pages, "first_seen": first}
                    for site_id, block, pages, first in counts
                ],
            )
        upgrade(db_url)
        assert stored() == counts
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            assert table_sql().rstrip().endswith("WITHOUT ROWID")
        # The upgraded table counts as recording counts, and a site's rows still go with it.
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO site_blocks (site_id, block, pages, first_seen) "
                    "VALUES (1, :block, 1, 201) ON CONFLICT (site_id, block) "
                    "DO UPDATE SET pages = site_blocks.pages + excluded.pages"
                ),
                [{"block": counts[0][1]}, {"block": "f" * 16}],
            )
        assert stored()[0] == (1, counts[0][1], counts[0][2] + 1, counts[0][3])
        assert stored()[-1] == (1, "f" * 16, 1, 201)
        with _connect(engine) as connection:
            config = alembic_config(db_url)
            config.attributes["connection"] = connection
            command.downgrade(config, "0010")
        assert len(stored()) == len(counts) + 1
        if sqlite:
            assert "WITHOUT ROWID" not in table_sql()
        with engine.connect() as connection:
            indexes = {index["name"] for index in inspect(connection).get_indexes("site_blocks")}
        assert "ix_site_blocks_site_first_seen" in indexes
    finally:
        engine.dispose()
