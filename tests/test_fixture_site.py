"""The fixture news site serves what it says it serves, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
from fixture_site import (
    CP1252_ARTICLE_ID,
    GENERIC_TOPIC,
    LSI_TOPIC,
    MULTIPAGE_ARTICLE_ID,
    REFERENCE_TOPIC,
    SEED_ALT_TITLE,
    SEED_ARTICLE_ID,
    SEED_DISCLAIMER,
    FixtureSite,
)

TIMEOUT = 10.0
FIXTURE_SCRIPT = Path(__file__).with_name("fixture_site.py")


class Fetched:
    def __init__(self, status: int, body: bytes, headers: Message) -> None:
        self.status = status
        self.body = body
        self.headers = headers

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, headers: dict[str, str] | None = None, timeout: float = TIMEOUT) -> Fetched:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _opener.open(request, timeout=timeout) as response:
            return Fetched(response.status, response.read(), response.headers)
    except urllib.error.HTTPError as error:
        return Fetched(error.code, error.read(), error.headers)


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as fixture:
        yield fixture


def listed_urls(html_text: str) -> list[str]:
    """The article URLs of a Tribunnews-like listing's ``li.p2030 h3 a`` links."""
    return re.findall(r'<li class="p2030">.*?<h3><a [^>]*href="([^"]+)"', html_text)


def paragraphs_of(html_text: str) -> list[str]:
    """Plain ``<p>`` elements: the article's paragraphs, not ``p.baca`` or other noise."""
    return re.findall(r"<p>(.*?)</p>", html_text)


# -- pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "content_type"),
    [
        ("listing", "text/html; charset=UTF-8"),
        ("listing2", "text/html; charset=UTF-8"),
        ("article", "text/html; charset=UTF-8"),
        ("wordpress", "text/html; charset=UTF-8"),
        ("rss", "application/rss+xml; charset=UTF-8"),
        ("atom", "application/atom+xml; charset=utf-8"),
        ("sitemap", "application/xml; charset=UTF-8"),
        ("sitemap-index", "application/xml; charset=UTF-8"),
        ("robots", "text/plain; charset=utf-8"),
    ],
)
def test_pages_are_served_with_their_content_type(
    site: FixtureSite, where: str, content_type: str
) -> None:
    url = {
        "listing": site.listing_url(REFERENCE_TOPIC),
        "listing2": site.listing_url(REFERENCE_TOPIC, 2),
        "article": site.article_url(SEED_ARTICLE_ID),
        "wordpress": site.listing_url(GENERIC_TOPIC),
        "rss": site.feed_url(REFERENCE_TOPIC, "rss"),
        "atom": site.feed_url(REFERENCE_TOPIC, "atom"),
        "sitemap": site.sitemap_url("news"),
        "sitemap-index": site.sitemap_url("index"),
        "robots": site.base_url + "/robots.txt",
    }[where]
    page = fetch(url)
    assert page.status == 200
    assert page.headers["Content-Type"] == content_type
    assert int(page.headers["Content-Length"]) == len(page.body)


def test_article_page_has_the_reference_markup(site: FixtureSite) -> None:
    article = site.article(SEED_ARTICLE_ID)
    text = fetch(site.article_url(SEED_ARTICLE_ID)).text
    assert f'<h1 id="arttitle" class="f32 ln40 fbo">{article.title}</h1>' in text
    assert '<div id="penulis">Penulis: <a href="/penulis/hasanudin-aco">Hasanudin Aco</a>' in text
    assert '<time class="grey">Jumat, 3 Oktober 2025 12:40 WIB</time>' in text
    assert f'content="{article.title} - Tribunnews.com"' in text
    assert f'<link rel="canonical" href="{site.article_url(SEED_ARTICLE_ID)}">' in text
    assert '<div class="side-article txt-article multi-fontsize">' in text
    assert "<p><strong>TRIBUNNEWS.COM</strong> - Sementara perang" in text
    for marker in (
        '<p class="baca">Baca juga: <a',
        '<blockquote class="summary-article">',
        "<figcaption>",
        '<div class="ads ads-mid"',
        "Rekomendasi untuk Anda",
        "Berita Terkini",
        "Dibaca ",
        "<script nonce=",
        'id="trending"',
        "© 2025 TribunNews.com, a subsidiary of KG Media. All Right Reserved",
    ):
        assert marker in text, marker
    ld = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', text, re.S)[1])
    assert ld["@type"] == "NewsArticle"
    assert ld["headline"] == article.title
    assert ld["description"] == article.lead
    assert ld["datePublished"] == "2025-10-03T12:40:00+07:00"
    assert ld["author"][0]["name"] == "Hasanudin Aco"
    assert "articleBody" not in ld
    body = paragraphs_of(text)
    assert len(body) == len(article.paragraphs)


def test_multi_page_article_has_pages_and_a_whole_view(site: FixtureSite) -> None:
    article = site.article(MULTIPAGE_ARTICLE_ID)
    first = fetch(site.article_url(MULTIPAGE_ARTICLE_ID)).text
    second = fetch(site.article_url(MULTIPAGE_ARTICLE_ID, page=2)).text
    whole = fetch(site.article_url(MULTIPAGE_ARTICLE_ID, page="all")).text
    assert '<div class="paging">' in first
    assert "Halaman 1/2" in first
    assert "Halaman 2/2" in second
    assert '<div class="paging">' not in whole
    assert "?page=all" in first
    count_first, count_second = len(paragraphs_of(first)), len(paragraphs_of(second))
    assert count_first + count_second == len(article.paragraphs)
    assert len(paragraphs_of(whole)) == len(article.paragraphs)
    assert fetch(site.article_url(MULTIPAGE_ARTICLE_ID, page=3)).status == 404


def test_listing_pages_split_the_topic(site: FixtureSite) -> None:
    ids = site.listing_ids(REFERENCE_TOPIC)
    assert len(ids) == 6
    assert site.page_count(REFERENCE_TOPIC) == 2
    first = fetch(site.listing_url(REFERENCE_TOPIC)).text
    second = fetch(site.listing_url(REFERENCE_TOPIC, 2)).text
    assert first.count('<li class="p2030">') == 4
    assert second.count('<li class="p2030">') == 2
    assert listed_urls(first) == [site.article_url(i) for i in ids[:4]]
    assert listed_urls(second) == [site.article_url(i) for i in ids[4:]]
    lsi = fetch(site.listing_url(LSI_TOPIC)).text
    assert '<ul class="lsi">' in lsi
    assert "p2030" not in lsi
    past_the_end = fetch(site.listing_url(REFERENCE_TOPIC, 3))
    assert past_the_end.status == 200
    assert '<li class="p2030">' not in past_the_end.text


def test_generic_layout_is_wordpress_like(site: FixtureSite) -> None:
    listing = fetch(site.listing_url(GENERIC_TOPIC)).text
    assert '<link rel="next"' in listing
    article_id = site.listing_ids(GENERIC_TOPIC)[0]
    text = fetch(site.article_url(article_id)).text
    for marker in (
        '<h1 class="entry-title">',
        '<div class="entry-content">',
        "sharedaddy",
        "jp-relatedposts",
        "Komentar",
        "newsletter",
        "<article id=",
    ):
        assert marker in text, marker
    no_slash = site.article_url(article_id).rstrip("/")
    assert fetch(no_slash).status == 200


# -- validators ------------------------------------------------------------------------------


def test_etag_and_last_modified_answer_304(site: FixtureSite) -> None:
    url = site.article_url(SEED_ARTICLE_ID)
    first = fetch(url)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag
    assert last_modified
    assert fetch(url).headers["ETag"] == etag  # same state, same bytes
    not_modified = fetch(url, {"If-None-Match": etag})
    assert not_modified.status == 304
    assert not_modified.body == b""
    assert not_modified.headers["ETag"] == etag
    assert fetch(url, {"If-Modified-Since": last_modified}).status == 304
    # If-None-Match wins over If-Modified-Since (RFC 9110)
    assert (
        fetch(url, {"If-None-Match": '"other"', "If-Modified-Since": last_modified}).status == 200
    )
    assert fetch(url, {"If-None-Match": f'W/{etag}, "x"'}).status == 304


def test_rotate_noise_changes_every_noise_element_but_not_the_article(site: FixtureSite) -> None:
    url = site.article_url(SEED_ARTICLE_ID)
    before = fetch(url)
    site.rotate_noise()
    after = fetch(url)
    assert before.body != after.body
    assert before.headers["ETag"] != after.headers["ETag"]
    assert before.headers["Last-Modified"] == after.headers["Last-Modified"]
    assert fetch(url, {"If-None-Match": before.headers["ETag"]}).status == 200
    assert fetch(url, {"If-Modified-Since": before.headers["Last-Modified"]}).status == 304
    old, new = before.text, after.text
    assert paragraphs_of(old) == paragraphs_of(new)
    for pattern in (
        r'nonce="([^"]+)"',
        r"Dibaca ([\d.]+) kali",
        r'id="(div-gpt-ad-\d+)',
        r'<p class="baca">(.*?)</p>',
        r'<div class="rekomendasi">(.*?)</div>',
        r'<div class="berita-terkini">(.*?)</div>',
        r'<div class="trending" id="trending">(.*?)</div>',
        r"<figcaption>(.*?)</figcaption>",
    ):
        assert re.findall(pattern, old, re.S) != re.findall(pattern, new, re.S), pattern
    for pattern in (r'<h1 id="arttitle"[^>]*>(.*?)</h1>', r"<time[^>]*>(.*?)</time>"):
        assert re.findall(pattern, old) == re.findall(pattern, new)


def test_edits_change_the_article_and_its_validators(site: FixtureSite) -> None:
    url = site.article_url(SEED_ARTICLE_ID)
    before = fetch(url)
    site.edit_body(
        SEED_ARTICLE_ID, insert_sentence="Kalimat yang baru ditambahkan.", after_paragraph=1
    )
    after = fetch(url)
    assert fetch(url, {"If-Modified-Since": before.headers["Last-Modified"]}).status == 200
    assert paragraphs_of(after.text)[2] == "Kalimat yang baru ditambahkan."
    assert "2025-10-03T12:40:00+07:00" not in re.findall(r'"dateModified": "([^"]+)"', after.text)
    site.set_title(SEED_ARTICLE_ID, SEED_ALT_TITLE)
    assert SEED_ALT_TITLE in fetch(url).text
    edited = site.apply_seed_edit()
    assert edited.paragraphs[-1] == SEED_DISCLAIMER
    assert SEED_DISCLAIMER in fetch(url).text


@pytest.mark.parametrize(
    ("status", "expected", "location"),
    [
        (404, 404, None),
        (410, 410, None),
        ("redirect_home", 301, "/"),
        ("redirect_topic", 302, "/topic/"),
    ],
)
def test_article_status(
    site: FixtureSite, status: int | str, expected: int, location: str | None
) -> None:
    site.set_status(SEED_ARTICLE_ID, status)
    page = fetch(site.article_url(SEED_ARTICLE_ID))
    assert page.status == expected
    if location is not None:
        assert page.headers["Location"].startswith(site.base_url + location)
    site.set_status(SEED_ARTICLE_ID, 200)
    assert fetch(site.article_url(SEED_ARTICLE_ID)).status == 200


def test_listing_membership_and_new_articles(site: FixtureSite) -> None:
    site.remove_from_listing(REFERENCE_TOPIC, SEED_ARTICLE_ID)
    assert site.article_url(SEED_ARTICLE_ID) not in listed_urls(
        fetch(site.listing_url(REFERENCE_TOPIC)).text
    )
    assert fetch(site.article_url(SEED_ARTICLE_ID)).status == 200
    added = site.add_article("Artikel Baru tentang Perundingan Damai di Jenewa")
    assert site.listing_ids(REFERENCE_TOPIC)[0] == added.id
    assert added.published > site.article(MULTIPAGE_ARTICLE_ID).published
    assert listed_urls(fetch(site.listing_url(REFERENCE_TOPIC)).text)[0] == site.article_url(
        added.id
    )
    assert fetch(site.article_url(added.id)).status == 200


def test_robots_txt_is_configurable(site: FixtureSite) -> None:
    assert f"Sitemap: {site.base_url}/sitemap.xml" in fetch(site.base_url + "/robots.txt").text
    site.set_robots("User-agent: *\nDisallow: /topic/\n")
    assert fetch(site.base_url + "/robots.txt").text == "User-agent: *\nDisallow: /topic/\n"
    site.set_robots(None)
    assert fetch(site.base_url + "/robots.txt").status == 404


def test_validators_can_be_switched_off(site: FixtureSite) -> None:
    site.set_validators(etag=False, last_modified=False)
    page = fetch(site.article_url(SEED_ARTICLE_ID))
    assert page.headers["ETag"] is None
    assert page.headers["Last-Modified"] is None


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 503, 403, 429, 404, 410])
def test_status_fault(site: FixtureSite, code: int) -> None:
    path = site.article_path(SEED_ARTICLE_ID)
    site.set_fault(path, "status", code=code, retry_after=7 if code in (429, 503) else None)
    page = fetch(site.article_url(SEED_ARTICLE_ID))
    assert page.status == code
    if code in (429, 503):
        assert page.headers["Retry-After"] == "7"
    site.clear_fault(path)
    assert fetch(site.article_url(SEED_ARTICLE_ID)).status == 200


def test_fault_can_be_limited_to_some_requests(site: FixtureSite) -> None:
    site.set_fault(site.article_path(SEED_ARTICLE_ID), "status", code=503, times=2)
    statuses = [fetch(site.article_url(SEED_ARTICLE_ID)).status for _ in range(3)]
    assert statuses == [503, 503, 200]


@pytest.mark.parametrize(
    ("kind", "content_type", "prefix"),
    [("pdf", "application/pdf", b"%PDF-"), ("image", "image/png", b"\x89PNG\r\n\x1a\n")],
)
def test_binary_faults(site: FixtureSite, kind: str, content_type: str, prefix: bytes) -> None:
    site.set_fault(site.article_path(SEED_ARTICLE_ID), kind)
    page = fetch(site.article_url(SEED_ARTICLE_ID))
    assert page.status == 200
    assert page.headers["Content-Type"] == content_type
    assert page.body.startswith(prefix)


def test_huge_fault(site: FixtureSite) -> None:
    site.set_fault(site.article_path(SEED_ARTICLE_ID), "huge", mb=3)
    page = fetch(site.article_url(SEED_ARTICLE_ID))
    assert len(page.body) == 3 * 1024 * 1024
    assert page.body.startswith(b"<!DOCTYPE html>")
    assert page.body.endswith(b"</html>\n")


def test_windows1252_fault(site: FixtureSite) -> None:
    site.set_fault(site.article_path(CP1252_ARTICLE_ID), "windows1252")
    page = fetch(site.article_url(CP1252_ARTICLE_ID))
    assert page.headers["Content-Type"] == "text/html"
    assert b'<meta charset="windows-1252">' in page.body
    text = page.body.decode("cp1252")
    for word in ("€245", "André Müller", "Café Crème", "“Kami"):
        assert word in text
    with pytest.raises(UnicodeDecodeError):
        page.body.decode("utf-8")


def test_malformed_fault_keeps_the_text(site: FixtureSite) -> None:
    clean = fetch(site.article_url(SEED_ARTICLE_ID)).body
    site.set_fault(site.article_path(SEED_ARTICLE_ID), "malformed")
    broken = fetch(site.article_url(SEED_ARTICLE_ID)).body
    assert broken != clean
    assert b"\x00" in broken
    assert b"</p>" not in broken
    with pytest.raises(UnicodeDecodeError):
        broken.decode("utf-8")
    assert site.article(SEED_ARTICLE_ID).paragraphs[5].encode() in broken


def test_redirect_faults(site: FixtureSite) -> None:
    path = site.article_path(SEED_ARTICLE_ID)
    site.set_fault(path, "redirect_loop")
    first = fetch(site.article_url(SEED_ARTICLE_ID))
    assert first.status == 302
    second = fetch(first.headers["Location"])
    assert second.status == 302
    assert second.headers["Location"] == site.article_url(SEED_ARTICLE_ID)
    site.set_fault(path, "redirect_home")
    home = fetch(site.article_url(SEED_ARTICLE_ID))
    assert (home.status, home.headers["Location"]) == (301, site.home_url)


def test_reset_fault_closes_without_an_answer(site: FixtureSite) -> None:
    site.set_fault(site.article_path(SEED_ARTICLE_ID), "reset")
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected, urllib.error.URLError)):
        fetch(site.article_url(SEED_ARTICLE_ID))
    assert site.requests[-1].status == 0


def test_hang_fault_delays_then_answers(site: FixtureSite) -> None:
    site.set_fault(site.article_path(SEED_ARTICLE_ID), "hang", seconds=0.2)
    assert fetch(site.article_url(SEED_ARTICLE_ID)).status == 200
    site.set_fault(site.article_path(SEED_ARTICLE_ID), "hang", seconds=60)
    with pytest.raises(TimeoutError):
        fetch(site.article_url(SEED_ARTICLE_ID), timeout=0.5)


def test_close_interrupts_a_hanging_answer_and_leaks_no_thread() -> None:
    before = set(threading.enumerate())
    site = FixtureSite.reference_site()
    site.set_fault(site.article_path(SEED_ARTICLE_ID), "hang", seconds=120)
    outcome: list[object] = []

    def client() -> None:
        try:
            outcome.append(fetch(site.article_url(SEED_ARTICLE_ID), timeout=60).status)
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not site.requests and time.monotonic() < deadline and not site._connections:
        time.sleep(0.02)
    site.close()
    thread.join(timeout=TIMEOUT)
    assert not thread.is_alive()
    assert outcome
    assert isinstance(outcome[0], Exception)
    assert set(threading.enumerate()) == before


# -- request log -----------------------------------------------------------------------------


def test_request_log_counts_304s_and_bytes(site: FixtureSite) -> None:
    url = site.article_url(SEED_ARTICLE_ID)
    page = fetch(url, {"User-Agent": "topicwatch-test/1.0"})
    fetch(url, {"If-None-Match": page.headers["ETag"]})
    fetch(url, {"If-None-Match": page.headers["ETag"]})
    records = site.requests_for(site.article_path(SEED_ARTICLE_ID))
    assert [r.status for r in records] == [200, 304, 304]
    assert records[0].bytes_sent == len(page.body)
    assert records[0].user_agent == "topicwatch-test/1.0"
    assert records[1].bytes_sent == 0
    assert records[1].if_none_match == page.headers["ETag"]
    site.clear_requests()
    assert site.requests == []


# -- generated sites and state ----------------------------------------------------------------


def test_generate_is_deterministic_and_realistic() -> None:
    one = FixtureSite.generate(60, start=False)
    two = FixtureSite.generate(60, start=False)
    assert one.state_json() == two.state_json()
    words = [len(a.body_text.split()) for a in one.articles]
    assert min(words) >= 500
    assert max(words) <= 1000
    assert any(a.pages == 2 for a in one.articles)
    assert sum(len(one.listing_ids(t)) for t in one.topics) >= 60


def test_generated_site_serves_every_article() -> None:
    with FixtureSite.generate(30, per_page=10) as site:
        ids = site.listing_ids(REFERENCE_TOPIC)
        assert len(ids) > 0
        for article_id in ids:
            assert fetch(site.article_url(article_id)).status == 200
        assert fetch(site.listing_url(REFERENCE_TOPIC)).text.count('<li class="p2030">') == len(
            site.listed_on_page(REFERENCE_TOPIC)
        )


def test_state_file_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    writer = FixtureSite.reference_site(start=False, state_file=state)
    with FixtureSite(state_file=state) as reader:
        assert reader.state_json() == writer.state_json()
        writer.set_title(SEED_ARTICLE_ID, SEED_ALT_TITLE)
        url = reader.base_url + writer.article_path(SEED_ARTICLE_ID)
        assert SEED_ALT_TITLE in fetch(url).text
    again = FixtureSite.reference_site(start=False, state_file=state)  # starts afresh
    assert again.article(SEED_ARTICLE_ID).title != SEED_ALT_TITLE


# -- as a process ----------------------------------------------------------------------------


@pytest.mark.slow
def test_spawned_site_follows_the_state_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    site = FixtureSite.reference_site(start=False)
    with site.spawn(tmp_path / "site.json") as process:
        url = site.article_url(SEED_ARTICLE_ID)
        first = fetch(url)
        assert first.status == 200
        site.set_title(SEED_ARTICLE_ID, SEED_ALT_TITLE)
        assert SEED_ALT_TITLE in fetch(url).text
        site.set_fault(site.article_path(SEED_ARTICLE_ID), "status", code=503)
        assert fetch(url).status == 503
        site.clear_faults()
        fetch(url, {"If-None-Match": fetch(url).headers["ETag"]})
        statuses = [r.status for r in site.requests_for(site.article_path(SEED_ARTICLE_ID))]
        assert statuses == [200, 200, 503, 200, 304]
        assert process.stop() == 0


@pytest.mark.slow
def test_command_line_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, str(FIXTURE_SCRIPT), "--port", "0", "--articles", "40"]
    state = tmp_path / "state.json"
    with subprocess.Popen(
        [*command, "--state-file", str(state)], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            holder: list[str] = []
            reader = threading.Thread(target=lambda: holder.append(process.stdout.readline()))
            reader.start()
            reader.join(timeout=30)
            assert holder, "the fixture site printed no URL"
            base_url = holder[0].strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
            listing = fetch(base_url + f"/topic/{REFERENCE_TOPIC}")
            assert listing.status == 200
            assert listing.text.count('<li class="p2030">') >= 10
            assert state.exists()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=TIMEOUT) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=TIMEOUT)
