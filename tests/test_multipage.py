"""Articles split over several pages, on any site: which links are the article's own pages,
and the pages read as one article."""

from __future__ import annotations

import pytest
from fixture_site import GENERIC_TOPIC, FixtureSite, _Renderer

from crawler.article import ExtractedArticle
from crawler.extraction.multipage import (
    join_pages,
    next_page_url_of,
    page_number,
    view_all_url_of,
)
from crawler.extraction.parsing import parse
from crawler.profiles import GENERIC
from crawler.reading import Reading, read_page, read_pages
from crawler.urls import may_turn_page

ARTICLE = "https://news.example.org/ekonomi/2025/10/03/harga-cabai-naik"

PAGE_NUMBERS = [
    ("itself", ARTICLE, 1),
    ("query", f"{ARTICLE}?page=2", 2),
    ("short-query", f"{ARTICLE}?p=3", 3),
    ("segment", f"{ARTICLE}/2/", 2),
    ("page-segment", f"{ARTICLE}/page/4", 4),
    ("view-all-query", f"{ARTICLE}?page=all", "all"),
    ("show-all", f"{ARTICLE}?showall=1", "all"),
    ("view-all-segment", f"{ARTICLE}/all", "all"),
    ("another-article", "https://news.example.org/ekonomi/2025/10/03/harga-beras?page=2", None),
    ("another-host", "https://evil.example.net/ekonomi/2025/10/03/harga-cabai-naik?page=2", None),
    ("comments-page", f"{ARTICLE}?cpage=2", None),
    ("page-zero", f"{ARTICLE}?page=0", None),
    ("two-parameters", f"{ARTICLE}?page=2&sort=new", None),
    ("not-http", "ftp://news.example.org/ekonomi/2025/10/03/harga-cabai-naik?page=2", None),
]


@pytest.mark.parametrize(
    ("target", "expected"), [c[1:] for c in PAGE_NUMBERS], ids=[c[0] for c in PAGE_NUMBERS]
)
def test_page_number(target: str, expected: object) -> None:
    assert page_number(target, ARTICLE) == expected


def test_page_number_of_file_and_query_articles() -> None:
    assert page_number("https://x.example/a/story-2.html", "https://x.example/a/story.html") == 2
    assert page_number("https://x.example/a/other-2.html", "https://x.example/a/story.html") is None
    assert page_number("https://x.example/?p=12&page=2", "https://x.example/?p=12") == 2
    assert page_number("https://x.example/?p=13", "https://x.example/?p=12") is None


def _page(links: str) -> str:
    return f"<html><head>{links}</head><body><p>Teks.</p>{links}</body></html>"


NEXT_LINKS = [
    ("rel-next", '<link rel="next" href="?page=2">', f"{ARTICLE}?page=2"),
    ("numbered", '<a href="/ekonomi/2025/10/03/harga-cabai-naik/2/">2</a>', f"{ARTICLE}/2/"),
    ("relative", '<a href="harga-cabai-naik/page/2">Berikutnya</a>', f"{ARTICLE}/page/2"),
    ("other-article", '<a href="/ekonomi/2025/10/03/harga-beras?page=2">2</a>', None),
    ("other-host", '<a href="https://evil.example.net/x/harga-cabai-naik?page=2">2</a>', None),
    ("page-3-only", '<a href="?page=3">3</a>', None),
    ("listing-link", '<a href="/ekonomi/2">2</a>', None),
]


@pytest.mark.parametrize(
    ("links", "expected"), [c[1:] for c in NEXT_LINKS], ids=[c[0] for c in NEXT_LINKS]
)
def test_next_page_is_a_link_to_the_next_page_of_the_same_article(
    links: str, expected: str | None
) -> None:
    tree = parse(_page(links), ARTICLE)
    assert next_page_url_of(tree, ARTICLE, ARTICLE, 1) == expected


def test_view_all_link() -> None:
    tree = parse(_page('<a href="?page=2">2</a> <a href="?page=all">Tampilkan Semua</a>'), ARTICLE)
    assert view_all_url_of(tree, ARTICLE, ARTICLE) == f"{ARTICLE}?page=all"
    tree = parse(_page('<a href="/ekonomi/semua?page=all">Semua</a>'), ARTICLE)
    assert view_all_url_of(tree, ARTICLE, ARTICLE) is None


def test_joined_pages_keep_the_first_pages_fields_and_the_site_text_once() -> None:
    first = ExtractedArticle(ARTICLE, "Judul", "Satu.\n\nDua.\n\nIkuti kami.", lead="Lead")
    second = ExtractedArticle(f"{ARTICLE}/2", "Judul", "Tiga.\n\nIkuti kami.")
    joined = join_pages([first, second])
    assert joined == ExtractedArticle(
        ARTICLE, "Judul", "Satu.\n\nDua.\n\nIkuti kami.\n\nTiga.", lead="Lead"
    )


def test_a_post_split_into_pages_is_read_page_by_page_and_joined() -> None:
    site = FixtureSite.reference_site(start=False)
    site.base_url = "http://127.0.0.1:9"
    post = site.add_article(
        "Harga Cabai Naik Tajam Menjelang Akhir Tahun di Pasar Induk",
        topics=[GENERIC_TOPIC],
        pages=3,
    )
    renderer = _Renderer(site._state, site.base_url)
    url = site.article_url(post.id)

    def read(page: int, address: str) -> Reading:
        body = renderer.route(site.article_path(post.id) + ("" if page == 1 else f"{page}/"), {})
        return read_page(
            body.body,
            address,
            encoding="utf-8",
            profile=GENERIC,
            ignore_patterns=(),
            find_whole=page == 1,
            requested=url,
            part=None if page == 1 else page,
            first_url=url,
        )

    first = read(1, url)
    assert first.fingerprint is None  # not before the pages are joined
    assert first.next_url == site.article_url(post.id, page=2)
    second = read(2, first.next_url)
    assert second.next_url == site.article_url(post.id, page=3)
    third = read(3, second.next_url)
    assert third.next_url is None
    whole = read_pages([first, second, third], ())
    assert whole.article is not None
    assert whole.fingerprint is not None
    assert whole.article.body.split("\n\n") == site.article(post.id).paragraphs
    assert whole.identity == url.rstrip("/")


def test_links_passed_over_before_asking_could_not_turn_the_page() -> None:
    hrefs = ("", " ", "#", " #top", "?page=2", "/a?p=2", "/a/2", "page", "/x#y", "a=b", "\t")
    for href in hrefs:
        for param in ("page", "p", "halaman"):
            if may_turn_page(href, param):
                assert "=" in href or "#" in href or not href.strip()
