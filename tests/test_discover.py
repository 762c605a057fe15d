"""Discovery reads listing pages, feeds and sitemaps into the article links they list."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fixture_site import (
    GENERIC_TOPIC,
    LSI_TOPIC,
    REFERENCE_TOPIC,
    FixtureSite,
)

from crawler.discover import ListedLink, Listing, discover, matches_keywords
from crawler.profiles import GENERIC, TRIBUNNEWS, SiteProfile
from crawler.urls import canonical_url

TIMEOUT = 10.0


@dataclass
class Page:
    url: str
    body: bytes
    content_type: str | None


def fetch(url: str) -> Page:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return Page(response.url, response.read(), response.headers["Content-Type"])


def read(page: Page, profile: SiteProfile = GENERIC) -> Listing:
    return discover(page.body, page.url, page.content_type, profile)


@pytest.fixture(scope="module")
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as fixture:
        yield fixture


@pytest.fixture(autouse=True)
def no_faults(site: FixtureSite) -> Iterator[None]:
    yield
    site.clear_faults()


def expected_links(site: FixtureSite, ids: list[int]) -> list[tuple[str, str]]:
    return [(canonical_url(site.article_url(i)), site.article(i).title) for i in ids]


def pairs(listing: Listing) -> list[tuple[str, str]]:
    return [(link.url, link.title) for link in listing.links]


# -- HTML listings of the fixture site ----------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "page", "profile"),
    [
        (REFERENCE_TOPIC, 1, TRIBUNNEWS),
        (REFERENCE_TOPIC, 2, TRIBUNNEWS),
        (REFERENCE_TOPIC, 1, GENERIC),
        (REFERENCE_TOPIC, 2, GENERIC),
        (LSI_TOPIC, 1, TRIBUNNEWS),
        (LSI_TOPIC, 1, GENERIC),
        (GENERIC_TOPIC, 1, GENERIC),
        (GENERIC_TOPIC, 2, GENERIC),
    ],
    ids=lambda value: value.name if isinstance(value, SiteProfile) else str(value),
)
def test_listing_page_gives_exactly_the_listed_articles_in_order(
    site: FixtureSite, topic: str, page: int, profile: SiteProfile
) -> None:
    listing = read(fetch(site.listing_url(topic, page)), profile)
    assert listing.kind == "html"
    assert pairs(listing) == expected_links(site, site.listed_on_page(topic, page))


@pytest.mark.parametrize(
    ("topic", "page", "profile", "next_page"),
    [
        (REFERENCE_TOPIC, 1, TRIBUNNEWS, 2),
        (REFERENCE_TOPIC, 2, TRIBUNNEWS, None),
        (REFERENCE_TOPIC, 1, GENERIC, 2),
        (REFERENCE_TOPIC, 2, GENERIC, None),
        (GENERIC_TOPIC, 1, GENERIC, 2),
        (GENERIC_TOPIC, 2, GENERIC, None),
        (LSI_TOPIC, 1, GENERIC, None),
    ],
)
def test_next_page(
    site: FixtureSite, topic: str, page: int, profile: SiteProfile, next_page: int | None
) -> None:
    listing = read(fetch(site.listing_url(topic, page)), profile)
    expected = None if next_page is None else site.listing_url(topic, next_page)
    assert listing.next_page == expected


def test_a_profile_pagination_parameter_is_followed_without_page_links(site: FixtureSite) -> None:
    # The older layout shows no page links on a single page; the profile's parameter still
    # names the next page, and the page past the end lists nothing and ends the walk.
    first = read(fetch(site.listing_url(LSI_TOPIC)), TRIBUNNEWS)
    assert first.next_page == site.listing_url(LSI_TOPIC) + "?page=2"
    second = read(fetch(first.next_page), TRIBUNNEWS)
    assert second.links == []
    assert second.next_page is None


def test_summary_is_the_teaser_beside_the_link(site: FixtureSite) -> None:
    listing = read(fetch(site.listing_url(REFERENCE_TOPIC)), TRIBUNNEWS)
    ids = site.listed_on_page(REFERENCE_TOPIC)
    assert [link.summary for link in listing.links] == [site.article(i).lead for i in ids]


def test_links_follow_the_listing_after_an_edit_and_noise(site: FixtureSite) -> None:
    site.rotate_noise()
    added = site.add_article("Perundingan Damai Dilanjutkan di Jenewa Pekan Depan")
    try:
        listing = read(fetch(site.listing_url(REFERENCE_TOPIC)), TRIBUNNEWS)
        assert listing.links[0] == ListedLink(
            url=canonical_url(site.article_url(added.id)), title=added.title, summary=added.lead
        )
        assert len(listing.links) == 4
    finally:
        site.remove_from_listing(REFERENCE_TOPIC, added.id)


@pytest.mark.parametrize("topic", [REFERENCE_TOPIC, GENERIC_TOPIC])
def test_malformed_listing_gives_the_same_links(site: FixtureSite, topic: str) -> None:
    clean = read(fetch(site.listing_url(topic)))
    site.set_fault(site.listing_path(topic), "malformed")
    broken_page = fetch(site.listing_url(topic))
    assert b"\x00" in broken_page.body
    broken = read(broken_page)
    assert pairs(broken) == pairs(clean)
    assert broken.next_page == clean.next_page


def test_windows1252_listing_is_decoded_from_its_meta_charset(site: FixtureSite) -> None:
    site.set_fault(site.listing_path(REFERENCE_TOPIC), "windows1252")
    page = fetch(site.listing_url(REFERENCE_TOPIC))
    assert page.content_type == "text/html"
    listing = read(page, TRIBUNNEWS)
    assert pairs(listing) == expected_links(site, site.listed_on_page(REFERENCE_TOPIC))


# -- feeds and sitemaps of the fixture site ---------------------------------------------------


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_feed_gives_every_listed_article(site: FixtureSite, kind: str) -> None:
    listing = read(fetch(site.feed_url(REFERENCE_TOPIC, kind)))
    ids = site.listing_ids(REFERENCE_TOPIC)
    assert listing.kind == "feed"
    assert pairs(listing) == expected_links(site, ids)  # utm_* parameters are gone
    assert [link.summary for link in listing.links] == [site.article(i).lead for i in ids]
    assert listing.next_page is None


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_feed_served_as_html_is_still_a_feed(site: FixtureSite, kind: str) -> None:
    page = fetch(site.feed_url(REFERENCE_TOPIC, kind))
    listing = discover(page.body, page.url, "text/html; charset=utf-8", GENERIC)
    assert listing.kind == "feed"
    assert len(listing.links) == len(site.listing_ids(REFERENCE_TOPIC))


def test_news_sitemap_gives_every_live_article_with_its_title(site: FixtureSite) -> None:
    listing = read(fetch(site.sitemap_url("news")))
    assert listing.kind == "sitemap"
    expected = sorted(
        (a for a in site.articles if a.status == 200),
        key=lambda a: (a.published, a.id),
        reverse=True,
    )
    assert pairs(listing) == expected_links(site, [a.id for a in expected])


def test_sitemap_index_names_its_child_sitemaps(site: FixtureSite) -> None:
    listing = read(fetch(site.sitemap_url("index")))
    assert listing.kind == "sitemap"
    assert listing.links == []
    assert listing.children == [site.sitemap_url("news"), site.sitemap_url("pages")]
    assert listing.next_page == site.sitemap_url("news")


def test_plain_sitemap_keeps_only_article_shaped_urls(site: FixtureSite) -> None:
    listing = read(fetch(site.sitemap_url("pages")))
    assert listing.kind == "sitemap"
    assert listing.links == []


# -- documents written here: one quirk per case -----------------------------------------------

BASE = "https://www.example.co.id/kanal/ekonomi"


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    content_type: str | None
    kind: str
    links: list[tuple[str, str]]
    next_page: str | None = None
    profile: SiteProfile = GENERIC


def _html(main: str, extra: str = "", head: str = "") -> bytes:
    return (
        f"<!DOCTYPE html><html><head><title>t</title>{head}</head><body>"
        '<header><nav><a href="/ekonomi/2025/10/03/tautan-di-menu-navigasi-situs">Menu</a></nav>'
        "</header>"
        f"<main>{main}</main>"
        '<aside class="sidebar"><a href="/ekonomi/2025/10/02/berita-populer-di-samping">Populer</a>'
        "</aside>"
        '<footer><a href="/ekonomi/2025/10/01/tautan-di-kaki-halaman-situs">Kaki</a></footer>'
        f"{extra}</body></html>"
    ).encode()


CASES = [
    Case(
        "relative-links-and-base-href",
        _html(
            '<a href="2025/10/03/harga-cabai-naik-jelang-akhir-tahun">Harga Cabai Naik</a>'
            '<a href="//www.example.co.id/ekonomi/2025/10/02/ekspor-kopi-meningkat">Ekspor</a>',
            head='<base href="https://www.example.co.id/ekonomi/">',
        ),
        "text/html; charset=utf-8",
        "html",
        [
            (
                "https://www.example.co.id/ekonomi/2025/10/03/harga-cabai-naik-jelang-akhir-tahun",
                "Harga Cabai Naik",
            ),
            ("https://www.example.co.id/ekonomi/2025/10/02/ekspor-kopi-meningkat", "Ekspor"),
        ],
    ),
    Case(
        "image-link-then-title-link-deduplicated-keeping-the-title",
        _html(
            '<div class="item"><a href="/ekonomi/2025/10/03/harga-beras-turun?utm_source=x">'
            '<img src="a.jpg" alt=""></a>'
            '<h2><a href="/ekonomi/2025/10/03/harga-beras-turun#top">Harga Beras Turun</a></h2>'
            "</div>"
        ),
        "text/html",
        "html",
        [("https://www.example.co.id/ekonomi/2025/10/03/harga-beras-turun", "Harga Beras Turun")],
    ),
    Case(
        "other-sites-tags-and-non-articles-are-not-listed",
        _html(
            '<a href="https://other.example.org/2025/10/03/berita-situs-lain">Lain</a>'
            '<a href="/tag/ekonomi">Tag</a><a href="/kanal/ekonomi?page=2">2</a>'
            '<a href="mailto:redaksi@example.co.id">Surat</a>'
            '<a href="/ekonomi/2025/10/03/berita-yang-benar-ada-di-daftar">Benar</a>'
            '<a href="https://m.example.co.id/ekonomi/2025/10/03/versi-mobile-tetap-situs-sama">M</a>'
        ),
        None,
        "html",
        [
            (
                "https://www.example.co.id/ekonomi/2025/10/03/berita-yang-benar-ada-di-daftar",
                "Benar",
            ),
            ("https://m.example.co.id/ekonomi/2025/10/03/versi-mobile-tetap-situs-sama", "M"),
        ],
    ),
    Case(
        "rel-next-in-head",
        _html(
            '<a href="/ekonomi/2025/10/03/satu-berita-di-halaman-ini">Satu</a>',
            head='<link rel="next" href="/kanal/ekonomi/page/2">',
        ),
        "text/html",
        "html",
        [("https://www.example.co.id/ekonomi/2025/10/03/satu-berita-di-halaman-ini", "Satu")],
        next_page="https://www.example.co.id/kanal/ekonomi/page/2",
    ),
    Case(
        "profile-selector-on-windows-1252",
        (
            '<html><head><meta charset="windows-1252"></head><body><ul><li class="p2030"><h3>'
            '<a href="/bisnis/7480999/kafe-naikkan-harga">Café “Crème” Naik €2</a></h3>'
            '<div>Harga naik.</div></li></ul><div class="berita-terkini"><ul><li><h3>'
            '<a href="/bisnis/7480998/bukan-daftar">Bukan</a></h3></li></ul></div></body></html>'
        ).encode("cp1252"),
        "text/html",
        "html",
        [("https://www.example.co.id/bisnis/7480999/kafe-naikkan-harga", "Café “Crème” Naik €2")],
        # no page links on the page: the profile's parameter names the next one
        next_page=BASE + "?page=2",
        profile=TRIBUNNEWS,
    ),
    Case(
        "rss-1.0",
        b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        b'xmlns="http://purl.org/rss/1.0/"><channel rdf:about="x"><title>c</title></channel>'
        b'<item rdf:about="https://www.example.co.id/a/2025/10/03/satu-dua-tiga-empat">'
        b"<title>Satu &amp; Dua</title><link>https://www.example.co.id/a/2025/10/03/satu-dua-tiga-empat"
        b"</link></item></rdf:RDF>",
        "application/rdf+xml",
        "feed",
        [("https://www.example.co.id/a/2025/10/03/satu-dua-tiga-empat", "Satu & Dua")],
    ),
    Case(
        "rss-with-guid-only-and-html-title",
        b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>&lt;b&gt;Tebal&lt;/b&gt; '
        b"Judul</title><guid>https://www.example.co.id/a/2025/10/03/hanya-guid-saja-di-sini</guid>"
        b'</item><item><title>Tanpa tautan</title><guid isPermaLink="false">id-1</guid></item>'
        b"</channel></rss>",
        "application/xml",
        "feed",
        [("https://www.example.co.id/a/2025/10/03/hanya-guid-saja-di-sini", "Tebal Judul")],
    ),
    Case(
        "malformed-feed-is-recovered",
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        b"<item><title>Satu\x00</title><link>https://www.example.co.id/a/2025/10/03/satu-berita-rusak"
        b"</link></item><item><title>Dua & tiga</title>"
        b"<link>https://www.example.co.id/a/2025/10/03/dua-berita-rusak</link></item>",
        "application/rss+xml",
        "feed",
        [
            ("https://www.example.co.id/a/2025/10/03/satu-berita-rusak", "Satu"),
            ("https://www.example.co.id/a/2025/10/03/dua-berita-rusak", "Dua tiga"),
        ],
    ),
    Case(
        "atom-relative-to-xml-base",
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://www.example.co.id/a/">'
        b'<entry><title type="html">Judul &amp;amp; Sub</title><link href="2025/10/03/relatif-'
        b'terhadap-basis-xml"/><summary>Ringkas</summary></entry></feed>',
        None,
        "feed",
        [("https://www.example.co.id/a/2025/10/03/relatif-terhadap-basis-xml", "Judul & Sub")],
    ),
    Case(
        "xhtml-page-is-html",
        b'<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><body>'
        b'<main><a href="/ekonomi/2025/10/03/halaman-xhtml-tetap-html">X</a></main></body></html>',
        "application/xhtml+xml",
        "html",
        [("https://www.example.co.id/ekonomi/2025/10/03/halaman-xhtml-tetap-html", "X")],
    ),
    Case("empty-html", b"", "text/html", "html", []),
    Case("whitespace-feed", b"  \n ", "application/rss+xml", "feed", []),
    Case("empty-sitemap", b"", "application/xml", "sitemap", []),
    Case("garbage-bytes", b"\x00\xff\xfe\x81 \x9d", "text/html", "html", []),
    Case("garbage-xml", b"<?xml version='1.0'?>\x00\x00", "application/xml", "sitemap", []),
    Case(
        "xml-neither-feed-nor-sitemap", b"<?xml version='1.0'?><data/>", "text/xml", "sitemap", []
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_documents(case: Case) -> None:
    listing = discover(case.body, BASE, case.content_type, case.profile)
    assert listing.kind == case.kind
    assert pairs(listing) == case.links
    assert listing.next_page == case.next_page


def test_invalid_profile_selector_falls_back_to_the_next() -> None:
    profile = SiteProfile(name="broken", listing_link_selectors=("li[[", "main a"))
    body = _html('<a href="/ekonomi/2025/10/03/berita-lewat-selektor-kedua">Dua</a>')
    listing = discover(body, BASE, "text/html", profile)
    assert [link.title for link in listing.links] == ["Dua"]


# -- keyword filter ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("Konflik Rusia Vs Ukraina", ["ukraina"], True),
        ("Harga Gandum Dunia Naik", ["Ukraina", "Rusia"], False),
        ("Serangan di KYÏV semalam", ["kyiv"], True),
        ("Café Crème di Paris", ["cafe creme"], True),
        ("Konflik  Rusia\nVs Ukraina", ["rusia vs"], True),
        ("Prusia dan sejarahnya", ["Rusia"], False),
        ("Perekonomian Rusianya melemah", ["Rusia"], True),
        ("masalah asing di kota", ["AS"], False),
        ("Pejabat AS dan Rusia bertemu", ["as"], True),
        ("apa saja", [], True),
        ("apa saja", ["", "  "], True),
        ("", ["Rusia"], False),
    ],
)
def test_matches_keywords(text: str, keywords: list[str], expected: bool) -> None:
    assert matches_keywords(text, keywords) is expected


def test_keyword_filter_narrows_a_sitemap(site: FixtureSite) -> None:
    listing = read(fetch(site.sitemap_url("news")))
    kept = [link for link in listing.links if matches_keywords(link.title, ["timnas"])]
    assert len(kept) == len(site.listing_ids(LSI_TOPIC))
    assert all("Timnas" in link.title for link in kept)
