"""Canonical URLs, article-shaped URLs and same-site checks, as tables of cases."""

from __future__ import annotations

import pytest

from crawler.profiles import GENERIC, TRIBUNNEWS
from crawler.urls import canonical_url, is_article_url, may_turn_page, same_site, site_of

CANONICAL_CASES = [
    ("case", "HTTPS://WWW.Example.COM/News/Story-One", "https://www.example.com/News/Story-One"),
    ("default-https-port", "https://example.com:443/a/b-c-d-e", "https://example.com/a/b-c-d-e"),
    ("default-http-port", "http://example.com:80/x", "http://example.com/x"),
    ("other-port-kept", "http://127.0.0.1:8080/x/", "http://127.0.0.1:8080/x"),
    ("fragment", "https://example.com/a/story#comments", "https://example.com/a/story"),
    (
        "utm-and-click-ids",
        "https://example.com/a?utm_source=x&utm_medium=y&fbclid=1&gclid=2&id=7",
        "https://example.com/a?id=7",
    ),
    ("query-sorted", "https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
    ("trailing-slash", "https://example.com/news/story-one/", "https://example.com/news/story-one"),
    ("root", "https://example.com", "https://example.com/"),
    ("root-slash", "https://example.com/", "https://example.com/"),
    (
        "page-all-on-article",
        "https://www.tribunnews.com/internasional/2025/10/03/judul-berita-panjang?page=all",
        "https://www.tribunnews.com/internasional/2025/10/03/judul-berita-panjang",
    ),
    (
        "page-n-on-article",
        "https://www.tribunnews.com/internasional/2025/10/03/judul-berita-panjang?page=2",
        "https://www.tribunnews.com/internasional/2025/10/03/judul-berita-panjang",
    ),
    (
        "page-kept-on-listing",
        "https://www.tribunnews.com/topic/konflik-rusia-vs-ukraina?page=2",
        "https://www.tribunnews.com/topic/konflik-rusia-vs-ukraina?page=2",
    ),
    (
        "amp-path-segment",
        "https://example.com/amp/news/2024/05/17/bridge-reopens",
        "https://example.com/news/2024/05/17/bridge-reopens",
    ),
    (
        "amp-trailing-segment",
        "https://example.com/news/2024/05/17/bridge-reopens/amp/",
        "https://example.com/news/2024/05/17/bridge-reopens",
    ),
    (
        "amp-suffix",
        "https://example.com/news/bridge-reopens-after-repairs.amp.html",
        "https://example.com/news/bridge-reopens-after-repairs.html",
    ),
    (
        "amp-query",
        "https://example.com/news/bridge-reopens-after-repairs?amp=1",
        "https://example.com/news/bridge-reopens-after-repairs",
    ),
    (
        "percent-encoding",
        "https://example.com/caf%C3%A9/%7Euser",
        "https://example.com/caf%C3%A9/~user",
    ),
    ("user-info-dropped", "https://user:pw@example.com/a", "https://example.com/a"),
    ("double-slashes", "https://example.com//news//a", "https://example.com/news/a"),
]


@pytest.mark.parametrize(
    ("url", "expected"), [c[1:] for c in CANONICAL_CASES], ids=[c[0] for c in CANONICAL_CASES]
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("url", "_expected"), [c[1:] for c in CANONICAL_CASES], ids=[c[0] for c in CANONICAL_CASES]
)
def test_canonical_url_is_idempotent(url: str, _expected: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


ARTICLE_CASES = [
    # (id, url, profile, expected)
    (
        "tribun-dated",
        "https://www.tribunnews.com/internasional/2025/10/03/judul-berita",
        TRIBUNNEWS,
        True,
    ),
    (
        "tribun-subsection",
        "https://www.tribunnews.com/bisnis/ekonomi/2025/10/03/harga-naik",
        TRIBUNNEWS,
        True,
    ),
    (
        "tribun-numeric-id",
        "https://www.tribunnews.com/nasional/123456/judul-berita",
        TRIBUNNEWS,
        True,
    ),
    (
        "tribun-page-all",
        "http://127.0.0.1:8080/internasional/2025/10/03/judul?page=all",
        TRIBUNNEWS,
        True,
    ),
    (
        "tribun-topic",
        "https://www.tribunnews.com/topic/konflik-rusia-vs-ukraina",
        TRIBUNNEWS,
        False,
    ),
    ("tribun-section", "https://www.tribunnews.com/internasional", TRIBUNNEWS, False),
    ("tribun-home", "https://www.tribunnews.com/", TRIBUNNEWS, False),
    ("generic-dated", "https://example.com/news/2024/05/17/bridge-reopens", GENERIC, True),
    (
        "generic-slug",
        "https://example.com/world/harbour-bridge-reopens-after-repairs",
        GENERIC,
        True,
    ),
    ("generic-numeric", "https://example.com/article/1234567", GENERIC, True),
    (
        "generic-slug-html",
        "https://example.com/news/bridge-reopens-after-long-repairs.html",
        GENERIC,
        True,
    ),
    ("generic-tag", "https://example.com/tag/harbour-bridge-repairs-and-more", GENERIC, False),
    ("generic-category", "https://example.com/category/local-news-from-the-coast", GENERIC, False),
    ("generic-author", "https://example.com/author/ana-lopez-the-reporter", GENERIC, False),
    ("generic-search", "https://example.com/search?q=bridge", GENERIC, False),
    ("generic-section", "https://example.com/news", GENERIC, False),
    ("generic-image", "https://example.com/images/2024/05/17/bridge-at-dawn.jpg", GENERIC, False),
    ("generic-mailto", "mailto:desk@example.com", GENERIC, False),
]


@pytest.mark.parametrize(
    ("url", "profile", "expected"),
    [c[1:] for c in ARTICLE_CASES],
    ids=[c[0] for c in ARTICLE_CASES],
)
def test_is_article_url(url: str, profile: object, expected: bool) -> None:
    assert is_article_url(url, profile) is expected  # type: ignore[arg-type]


SAME_SITE_CASES = [
    ("www-vs-bare", "https://www.example.com/a", "https://example.com/b", True),
    ("mobile", "https://m.tribunnews.com/a", "https://www.tribunnews.com/b", True),
    ("subdomain", "https://news.example.com/a", "https://www.example.com/", True),
    ("country-sld", "https://www.bbc.co.uk/news", "https://bbc.co.uk/sport", True),
    ("different-country-sites", "https://a.co.uk/x", "https://b.co.uk/x", False),
    ("different", "https://example.com/", "https://example.org/", False),
    ("localhost-ports", "http://127.0.0.1:8080/a", "http://127.0.0.1:9090/b", True),
    ("ip-vs-name", "http://127.0.0.1/a", "http://example.com/a", False),
]


@pytest.mark.parametrize(
    ("a", "b", "expected"), [c[1:] for c in SAME_SITE_CASES], ids=[c[0] for c in SAME_SITE_CASES]
)
def test_same_site(a: str, b: str, expected: bool) -> None:
    assert same_site(a, b) is expected


def test_site_of_keeps_registrable_part() -> None:
    assert site_of("https://www.tribunnews.com/x") == "tribunnews.com"


@pytest.mark.parametrize(
    ("href", "turns"),
    [
        ("?page=2", True),
        ("/news/story?page=all", True),
        ("https://example.org/topic/x?sort=new&page=3#top", True),
        ("", True),  # the page itself, with its own query
        ("  #comments", True),
        ("/news/other-story", False),
        ("https://example.org/topic/x?p=2", False),
        ("/pages/about", False),
    ],
)
def test_links_that_may_turn_the_page(href: str, *, turns: bool) -> None:
    assert may_turn_page(href, "page") is turns
