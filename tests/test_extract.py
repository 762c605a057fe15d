"""Extraction from pages written for these tests (tests/fixtures/pages), shaped like real ones."""

from __future__ import annotations

import random
import re
import urllib.request
from pathlib import Path

import pytest
from fixture_site import SEED_ARTICLE_ID, SEED_DISCLAIMER, FixtureSite

from crawler.article import ExtractedArticle
from crawler.extraction.extractor import extract
from crawler.extraction.json_ld import (
    _ARTICLE_TYPE_ENDINGS,
    _ARTICLE_TYPES,
    article_object,
    json_ld_objects,
)
from crawler.extraction.multipage import whole_article_url
from crawler.extraction.parsing import ExtractionError, parse
from crawler.extraction.text import squash
from crawler.fingerprint import fingerprint
from crawler.profiles import GENERIC, TRIBUNNEWS, ProfileLookupError, profile_by_name, profile_for

PAGES = Path(__file__).parent / "fixtures" / "pages"
TRIBUN_URL = (
    "http://127.0.0.1:8080/internasional/2025/10/03/"
    "diplomasi-jalur-belakang-as-rusia-soal-ukraina-terungkap"
)
GENERIC_URL = (
    "https://www.coastal-ledger.example/news/2024/05/17/harbour-bridge-reopens-after-repairs"
)


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


@pytest.fixture(scope="module")
def tribun() -> ExtractedArticle:
    return extract(
        page("tribunnews_article.html"), TRIBUN_URL, profile=profile_by_name("tribunnews")
    )


@pytest.fixture(scope="module")
def generic() -> ExtractedArticle:
    return extract(page("generic_article.html"), GENERIC_URL)


# --------------------------------------------------------------------------- reference site


def test_tribun_metadata(tribun: ExtractedArticle) -> None:
    assert tribun.title == "Diplomasi Jalur Belakang AS-Rusia Soal Ukraina Terungkap"
    assert tribun.authors == ("Sari Wulandari",)
    assert tribun.published == "2025-10-03T12:40:00+07:00"
    assert tribun.modified == "2025-10-03T15:05:00+07:00"
    assert (
        tribun.lead
        == "Pembicaraan tidak resmi membuat kedua pihak memahami garis merah masing-masing."
    )


def test_tribun_canonical_is_normalised(tribun: ExtractedArticle) -> None:
    # The page's canonical link carries utm_* parameters and no port; it is resolved and cleaned.
    assert tribun.url == (
        "http://127.0.0.1/internasional/2025/10/03/"
        "diplomasi-jalur-belakang-as-rusia-soal-ukraina-terungkap"
    )


def test_tribun_body_paragraphs_in_order(tribun: ExtractedArticle) -> None:
    paragraphs = tribun.body.split("\n\n")
    assert paragraphs[0].startswith("Sementara perang terus berlangsung")
    assert paragraphs[-1].startswith("Disclaimer: Artikel ini telah diperbarui")
    assert "Peluang Perundingan" in paragraphs
    assert len(paragraphs) == 6


NOISE_TEXTS = [
    ("dateline", "TRIBUNNEWS.COM"),
    ("baca-juga-paragraph", "Baca juga"),
    ("baca-juga-link", "Tank-Tank Baru Tiba"),
    ("summary-box", "Pertemuan tidak resmi berlangsung rutin"),
    ("caption", "Seorang anak berfoto"),
    ("ad-slot", "Advertisement"),
    ("recommendations", "Rekomendasi untuk Anda"),
    ("recommended-link", "Rupiah Menguat"),
    ("latest-news", "Berita Terkini"),
    ("footer", "All Right Reserved"),
    ("share-count", "dibagikan"),
    ("navigation", "Nasional"),
]


@pytest.mark.parametrize("text", [n[1] for n in NOISE_TEXTS], ids=[n[0] for n in NOISE_TEXTS])
def test_tribun_body_has_no_noise(tribun: ExtractedArticle, text: str) -> None:
    assert text not in tribun.body


def _edit(html: bytes, old: str, new: str) -> bytes:
    assert old.encode() in html, f"fixture lacks {old!r}"
    return html.replace(old.encode(), new.encode())


NOISE_EDITS = [
    ("caption", "Seorang anak berfoto", "Dua anak berfoto"),
    ("baca-juga", "Tank-Tank Baru Tiba di Garis Depan", "Jet Tempur Baru Tiba"),
    ("recommendation", "Rupiah Menguat Pagi Ini", "IHSG Dibuka Melemah"),
    ("latest", "Banjir Surut di Pesisir", "Gempa Kecil Guncang Pesisir"),
    ("footer", "© 2025 TribunNews.com", "© 2026 TribunNews.com"),
    ("share-count", "1.204 kali dibagikan", "1.377 kali dibagikan"),
    ("script", '"rid": "a81f"', '"rid": "c93e"'),
    ("summary-box", "Pertemuan tidak resmi berlangsung rutin.", "Pertemuan digelar rutin."),
]


@pytest.mark.parametrize(
    ("old", "new"), [e[1:] for e in NOISE_EDITS], ids=[e[0] for e in NOISE_EDITS]
)
def test_tribun_noise_changes_keep_fingerprint(
    tribun: ExtractedArticle, old: str, new: str
) -> None:
    changed = extract(
        _edit(page("tribunnews_article.html"), old, new), TRIBUN_URL, profile=TRIBUNNEWS
    )
    assert fingerprint(changed) == fingerprint(tribun)


CONTENT_EDITS = [
    ("body-word", "dua kali sebulan", "tiga kali sebulan", ["body"]),
    (
        "body-sentence",
        "sambungan daring.</p>",
        "sambungan daring. Jadwalnya dirahasiakan.</p>",
        ["body"],
    ),
    (
        "headline-everywhere",
        "Soal Ukraina Terungkap",
        "Soal Ukraina Akhirnya Terungkap",
        ["title"],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "fields"), [e[1:] for e in CONTENT_EDITS], ids=[e[0] for e in CONTENT_EDITS]
)
def test_tribun_content_changes_are_detected(
    tribun: ExtractedArticle, old: str, new: str, fields: list[str]
) -> None:
    changed = extract(
        _edit(page("tribunnews_article.html"), old, new), TRIBUN_URL, profile=TRIBUNNEWS
    )
    assert fingerprint(changed).changed_fields(fingerprint(tribun).fields) == fields


def test_tribun_profile_found_by_host() -> None:
    assert profile_for("https://www.tribunnews.com/internasional/2025/10/03/x") is TRIBUNNEWS
    assert profile_for("https://m.tribunnews.com/x") is TRIBUNNEWS
    assert profile_for("http://127.0.0.1:8080/x") is GENERIC
    assert profile_for("https://nottribunnews.com/x") is GENERIC


def test_unknown_profile_name_is_named() -> None:
    with pytest.raises(ProfileLookupError, match="No site profile by the name of 'kompas'"):
        profile_by_name("kompas")


def test_time_text_gives_date_when_metadata_lacks_it() -> None:
    article = extract(
        page("tribunnews_paged.html"),
        "http://127.0.0.1/bisnis/2025/12/01/harga",
        profile=TRIBUNNEWS,
    )
    assert article.published == "2025-12-01T09:15:00+07:00"
    assert article.authors == ("Bima Pratama",)
    assert "Halaman" not in article.body


# --------------------------------------------------------------------------- multi-page articles


PAGED_URL = "http://127.0.0.1/bisnis/2025/12/01/harga-pangan-naik"
WHOLE_CASES = [
    ("paged", "tribunnews_paged.html", PAGED_URL, TRIBUNNEWS, PAGED_URL + "?page=all"),
    ("already-whole", "tribunnews_paged.html", PAGED_URL + "?page=all", TRIBUNNEWS, None),
    (
        "keeps-query",
        "tribunnews_paged.html",
        PAGED_URL + "?src=x",
        TRIBUNNEWS,
        PAGED_URL + "?src=x&page=all",
    ),
    ("single-page", "tribunnews_article.html", TRIBUN_URL, TRIBUNNEWS, None),
    ("no-whole-query-in-profile", "tribunnews_paged.html", PAGED_URL, GENERIC, None),
]


@pytest.mark.parametrize(
    ("name", "url", "profile", "expected"),
    [c[1:] for c in WHOLE_CASES],
    ids=[c[0] for c in WHOLE_CASES],
)
def test_whole_article_url(name: str, url: str, profile: object, expected: str | None) -> None:
    assert whole_article_url(page(name), url, profile) == expected  # type: ignore[arg-type]


# --------------------------------------------------------------------------- other layouts


def test_generic_metadata_from_json_ld_graph(generic: ExtractedArticle) -> None:
    assert generic.title == "Harbour bridge reopens after repairs"
    assert generic.authors == ("Ana Lopez", "Tom Reid")
    assert generic.published == "2024-05-17T08:00:00Z"
    assert generic.lead == "Traffic is flowing again across the harbour after eight months of work."
    assert generic.url == GENERIC_URL


@pytest.mark.parametrize(
    ("opening", "closing"), [("<!--", "-->"), ("<![CDATA[", "]]>"), ("\n  <!--", "-->\n")]
)
def test_json_ld_wrapped_in_a_comment_or_cdata_is_read(opening: str, closing: str) -> None:
    html = page("generic_article.html")
    start = html.index(b'<script type="application/ld+json">') + len(
        b'<script type="application/ld+json">'
    )
    end = html.index(b"</script>", start)
    wrapped = html[:start] + opening.encode() + html[start:end] + closing.encode() + html[end:]
    article = extract(wrapped, GENERIC_URL)
    assert article.authors == ("Ana Lopez", "Tom Reid")
    assert article.published == "2024-05-17T08:00:00Z"


def test_generic_body_drops_boilerplate(generic: ExtractedArticle) -> None:
    paragraphs = generic.body.split("\n\n")
    assert paragraphs[0].startswith("The harbour bridge reopened")
    assert paragraphs[-1].startswith("The department said")
    assert len(paragraphs) == 4
    for noise in (
        "Share on",
        "Photo: Staff",
        "Ferry timetable",
        "morning briefing",
        "Comments",
        "rights",
    ):
        assert noise not in generic.body


def test_og_title_suffix_stripped_without_json_ld() -> None:
    html = re.sub(
        rb"<script type=\"application/ld\+json\">.*?</script>",
        b"",
        page("generic_article.html"),
        flags=re.S,
    )
    html = html.replace(b"<h1>Harbour bridge reopens after repairs</h1>", b"")
    article = extract(html, GENERIC_URL)
    assert article.title == "Harbour bridge reopens after repairs"


def test_windows_1252_page_with_declared_charset() -> None:
    article = extract(page("windows1252.html"), "https://example.org/news/cafe-owners-quiet-street")
    assert article.title == "Café owners welcome the “quiet street” trial"
    assert "naïve worries" in article.body
    assert "résumé of the trial’s results" in article.body
    assert "\ufffd" not in article.body


def test_declared_encoding_overrides_meta() -> None:
    html = page("windows1252.html")
    article = extract(html, "https://example.org/news/cafe-owners-quiet-street", encoding="cp1252")
    assert "cafés" in article.body


@pytest.mark.parametrize("encoding", [None, "utf-8", "cp1252"])
def test_control_characters_are_dropped(encoding: str | None) -> None:
    html = page("generic_article.html").replace(
        b"The harbour bridge reopened", b"The harbour\x0b bridge\x1f reopened\x00"
    )
    article = extract(html, GENERIC_URL, encoding=encoding)
    assert "The harbour bridge reopened to traffic" in article.body
    assert not set("\x00\x0b\x1f") & set(article.body)


def test_malformed_html_is_read() -> None:
    article = extract(
        page("malformed.html"), "https://example.org/news/council-votes-on-new-park-plan"
    )
    assert article.title == "Council votes on new park plan"
    assert article.body.startswith("The city council voted late on Tuesday")
    assert "northern entrance" in article.body


NO_ARTICLE_CASES = [
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n", "binary"),
    ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("nul-bytes", b"<html>\x00\x00\x00\x01\x02</html>", "binary"),
    ("empty", b"", "empty"),
    ("whitespace", b"   \n\t ", "empty"),
    ("empty-str", "", "empty"),
    ("no-text", b"<html><body><div></div></body></html>", ""),
]


@pytest.mark.parametrize(
    ("body", "reason"), [c[1:] for c in NO_ARTICLE_CASES], ids=[c[0] for c in NO_ARTICLE_CASES]
)
def test_no_article_raises(body: bytes | str, reason: str) -> None:
    url = "https://example.org/files/report"
    with pytest.raises(
        ExtractionError, match=rf"^No article text found at URL: {re.escape(url)}.*{reason}"
    ):
        extract(body, url)


def test_listing_page_raises() -> None:
    with pytest.raises(ExtractionError, match="looks like a listing"):
        extract(
            page("tribunnews_listing.html"), "http://127.0.0.1/topic/konflik", profile=TRIBUNNEWS
        )


def test_extraction_error_is_a_value_error() -> None:
    assert issubclass(ExtractionError, ValueError)


def test_str_input_is_accepted() -> None:
    text = page("generic_article.html").decode("utf-8")
    assert extract(text, GENERIC_URL).title == "Harbour bridge reopens after repairs"


def test_a_paragraph_repeated_by_an_editor_is_a_change() -> None:
    once = _edit(
        page("tribunnews_article.html"),
        "sambungan daring.</p>",
        "sambungan daring.</p><p>Kremlin menolak berkomentar.</p>",
    )
    twice = _edit(
        once,
        "<p>Kremlin menolak berkomentar.</p>",
        "<p>Kremlin menolak berkomentar.</p><p>Kremlin menolak berkomentar.</p>",
    )
    first = extract(once, TRIBUN_URL, profile=TRIBUNNEWS)
    second = extract(twice, TRIBUN_URL, profile=TRIBUNNEWS)
    assert second.body.count("Kremlin menolak berkomentar.") == 2
    assert fingerprint(second).changed_fields(fingerprint(first).fields) == ["body"]


# --------------------------------------------------------------------------- any site: the lead


def _generic(html: bytes) -> ExtractedArticle:
    return extract(html, GENERIC_URL)


def _generic_edit(old: str, new: str) -> ExtractedArticle:
    return _generic(_edit(page("generic_article.html"), old, new))


def test_visible_standfirst_edit_changes_the_lead_with_the_description_unchanged() -> None:
    before = _generic(page("generic_article.html"))
    after = _generic_edit(
        "eight months of work.</p>", "eight months of work and a bitter dispute.</p>"
    )
    assert after.lead == (
        "Traffic is flowing again across the harbour after eight months of work "
        "and a bitter dispute."
    )
    assert after.description == before.description
    assert fingerprint(after).changed_fields(fingerprint(before).fields) == ["lead"]


def test_a_description_edit_is_a_change_of_the_lead() -> None:
    before = _generic(page("generic_article.html"))
    after = _generic_edit(
        '"description": "Traffic is flowing again',
        '"description": "Cars and buses are flowing again',
    )
    assert after.lead == before.lead  # what the page shows did not change
    assert fingerprint(after).changed_fields(fingerprint(before).fields) == ["lead"]


def test_the_standfirst_is_found_by_position_and_name_in_the_article_header() -> None:
    html = (
        b"<html><body><article><div class='top'><div class='kicker'>Energy</div>"
        b"<h1>Grid operator warns of winter shortfall</h1></div>"
        b"<div class='meta'><span>By Kim Lee</span></div>"
        b"<div class='article-lede'><p>Reserves could run short in a cold snap, the operator "
        b"said, urging suppliers to bring idle plants back.</p></div>"
        b"<p>"
        + b"The national grid operator said on Monday that reserves were thin. " * 8
        + b"</p></article></body></html>"
    )
    article = extract(html, "https://news.example/energy/grid-warning")
    assert article.lead.startswith("Reserves could run short in a cold snap")


def test_a_standfirst_of_several_blocks_keeps_them_apart() -> None:
    html = (
        b"<html><body><article><h1>Diplomasi jalur belakang terungkap</h1>"
        b"<blockquote class='summary-article'><strong>Ringkasan Berita:</strong><ul>"
        b"<li>Mantan pejabat membuka pertemuan rahasia.</li>"
        b"<li>Diplomasi berjalan dua kali sebulan.</li></ul></blockquote>"
        b"<p>"
        + b"Pembicaraan tidak resmi itu berlangsung selama berbulan-bulan. " * 8
        + b"</p></article></body></html>"
    )
    article = extract(html, "https://news.example/internasional/diplomasi")
    # Blank lines between the blocks, as between the body's paragraphs: the fingerprint
    # knows each apart (a site's template block in a standfirst is one of them).
    assert article.lead == (
        "Ringkasan Berita:\n\nMantan pejabat membuka pertemuan rahasia.\n\n"
        "Diplomasi berjalan dua kali sebulan."
    )


def test_a_script_holding_the_article_does_not_end_the_standfirst_search() -> None:
    # JSON-LD after the headline holds the whole article: its text is not where the body
    # begins, and the visible standfirst after it is the lead, a change to it a change.
    body = "The national grid operator said on Monday that reserves were thin. " * 6
    standfirst = "Reserves could run short in a cold snap, the operator said on Monday."

    def html(lead: str) -> bytes:
        return (
            "<html><head><meta name='description' content='Grid reserves are thin.'></head>"
            "<body><article><h1>Grid operator warns of winter shortfall</h1>"
            "<script type='application/ld+json'>"
            f'{{"@type": "NewsArticle", "articleBody": "{body}"}}</script>'
            f"<div class='c-summary'><div class='c-summary__intro'>{lead}</div></div>"
            f"<p>{body}</p></article></body></html>"
        ).encode()

    before = extract(html(standfirst), "https://news.example/energy/grid-warning")
    after = extract(
        html(standfirst + " Suppliers were asked to help."),
        "https://news.example/energy/grid-warning",
    )
    assert before.lead == standfirst
    assert after.lead == standfirst + " Suppliers were asked to help."


_GRID_BODY = "The national grid operator said on Monday that reserves were thin. " * 8
_GRID_LEAD = "Reserves could run short in a cold snap, the operator said, urging suppliers on."
_GRID_URL = "https://news.example/energy/grid-warning"
_GRID_NEXT = "Suppliers have until Friday to answer the operator's request. " * 6


def _grid_page(header: str) -> bytes:
    return (
        "<html><head><meta name='description' content='Grid reserves are thin.'></head>"
        f"<body><article><header>{header}</header><p>{_GRID_BODY}</p></article></body></html>"
    ).encode()


def test_what_holds_the_headline_does_not_rule_out_the_standfirst_by_its_name() -> None:
    # The headline and its standfirst in a container named like a sidebar, an image's or a
    # widget's: it holds the article's header, whatever it is called. (Extraction may take
    # the standfirst into the body too; then it is the body's first paragraph.)
    for name in ("sidebar", "img_container", "wp-caption", "elementor-widget-container"):
        for standfirst in (f"<h2>{_GRID_LEAD}</h2>", f"<p class='article-kicker'>{_GRID_LEAD}</p>"):
            html = _grid_page(
                f"<div class='{name}'><h1>Grid operator warns of winter shortfall</h1>"
                f"{standfirst}</div>"
            )
            before = extract(html, _GRID_URL)
            after = extract(html.replace(b"suppliers on.", b"all suppliers on."), _GRID_URL)
            assert _GRID_LEAD in (before.lead, before.body.split("\n\n")[0]), (name, standfirst)
            changed = fingerprint(after).changed_fields(fingerprint(before).fields)
            assert changed in (["lead"], ["body"]), (name, standfirst)


def test_a_picture_with_its_caption_or_a_sponsor_line_under_the_headline_is_no_standfirst() -> None:
    caption = "Firefighters at the scene on Tuesday morning. Photo: Agency staff"
    for block in (
        f"<p><img src='/1.jpg' alt=''><br><small>{caption}</small></p>",
        "<div class='c-sponsor'>In partnership with The Regional Energy Agency</div>",
    ):
        html = _grid_page(
            f"<h1>Grid operator warns of winter shortfall</h1>{block}"
            f"<p class='article-summary'>{_GRID_LEAD}</p>"
        )
        assert extract(html, _GRID_URL).lead == _GRID_LEAD, block


def test_a_named_block_that_begins_the_body_after_the_standfirst_ends_the_search() -> None:
    html = (
        "<html><body><article><header><h1>Grid operator warns of winter shortfall</h1>"
        f"<h2>{_GRID_LEAD}</h2></header><div class='text-description'><p>{_GRID_BODY}</p></div>"
        f"<div class='text-description'><p>{_GRID_NEXT}</p></div>"
        "</article></body></html>"
    ).encode()
    assert extract(html, _GRID_URL).lead == _GRID_LEAD


def test_a_breadcrumbs_h1_is_the_headline_when_there_is_no_other() -> None:
    html = _grid_page(
        "<nav class='breadcrumbs'><a href='/'>Home</a> <a href='/energy'>Energy</a>"
        "<h1>Grid operator warns of winter shortfall</h1></nav>"
        f"<p class='vorspann'>{_GRID_LEAD}</p>"
    )
    before = extract(html, _GRID_URL)
    after = extract(html.replace(b"urging suppliers on.", b"urging all suppliers on."), _GRID_URL)
    assert before.lead == _GRID_LEAD
    assert fingerprint(after).changed_fields(fingerprint(before).fields) == ["lead"]


def test_an_editors_note_at_the_end_is_body_text() -> None:
    note = "Editor's note: This article was updated with the department's inspection dates."
    after = _generic_edit("limit disruption.</p>", f"limit disruption.</p><p><em>{note}</em></p>")
    assert after.body.endswith(note)


@pytest.mark.parametrize(
    ("markup", "spot"),
    [
        ("<div class='editor-note'>{}</div>", "after"),
        ("<section class='correction'><strong>Correction:</strong> {}</section>", "after"),
        ("<div><i>{}</i></div>", "after"),
        ("<div class='update-note'>{}</div>", "before"),
    ],
    ids=["div-after", "section-after", "plain-div-after", "div-before"],
)
def test_a_note_set_in_a_div_beside_the_paragraphs_is_body_text(markup: str, spot: str) -> None:
    note = "This article was updated with the department's inspection dates."
    first, last = "<p>The harbour bridge reopened", "limit disruption.</p>"
    block = markup.format(note)
    if spot == "after":
        edited = _generic_edit(last, last + block)
    else:
        edited = _generic_edit(first, block + first)
    before = _generic(page("generic_article.html"))
    paragraphs = edited.body.split("\n\n")
    assert note in edited.body
    assert [p for p in paragraphs if note not in p] == before.body.split("\n\n")
    if spot == "after":
        assert note in paragraphs[-1]
    else:
        assert note in paragraphs[0]
    assert fingerprint(edited).changed_fields(fingerprint(before).fields) == ["body"]


@pytest.mark.parametrize(
    "markup",
    [
        "<div class='stamp'>Updated <time datetime='2024-05-01'>5 minutes ago</time> by the "
        "news desk of the harbour</div>",
        "<div class='photo'><img src='/p.jpg'>Workers on the bridge deck on Tuesday. Photo: "
        "Agency staff</div>",
        "<div>Follow <a href='/a'>our live coverage of the harbour works</a> today</div>",
        "<div>Harbour news</div>",
    ],
    ids=["with-a-time", "beside-a-picture", "mostly-a-link", "too-short"],
)
def test_a_div_beside_the_paragraphs_that_is_not_prose_is_left_out(markup: str) -> None:
    last = "limit disruption.</p>"
    before = _generic(page("generic_article.html"))
    assert _generic_edit(last, last + markup).body == before.body


@pytest.mark.parametrize(
    "markup",
    [
        "<div class='article-image'><img src='/p.jpg'><p class='image-desc'>{}</p></div>",
        "<div class='photo'><a href='/p.jpg'><img src='/p.jpg'></a><span>{}</span></div>",
        "<p><img src='/p.jpg'><br><small>{}</small></p>",
        # The caption in an element of its own right after the picture.
        "<div class='img-wrap'><img src='/p.jpg'></div><p class='img-text'>{}</p>",
        "<figure><img src='/p.jpg'></figure><div class='photo-text'>{}</div>",
        "<picture><img src='/p.jpg'></picture><p><small>{}</small></p>",
        "<p><img src='/p.jpg'></p><p><em>{}</em></p>",
    ],
    ids=[
        "div-p",
        "div-linked-picture-span",
        "p-small",
        "named-p",
        "figure-then-div",
        "picture-then-small",
        "italics-after-picture",
    ],
)
def test_a_picture_with_its_caption_in_the_article_is_not_body_text(markup: str) -> None:
    spot = "during the closure.</p>"
    first = "Workers on the bridge deck on Tuesday. Photo: Agency staff"
    second = "The bridge at dusk after the reopening. Photo: Agency staff"
    before = _generic_edit(spot, spot + markup.format(first))
    after = _generic_edit(spot, spot + markup.format(second))
    assert "Workers on the bridge" not in before.body
    assert (
        fingerprint(after)
        == fingerprint(before)
        == fingerprint(_generic(page("generic_article.html")))
    )


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("By Ana Lopez | <a href='#c'>{} comments</a>", "By Ana Lopez"),
        ("By Ana Lopez · {} Kommentare · 3 min", "By Ana Lopez · 3 min"),
    ],
)
def test_a_counter_set_off_in_a_short_line_is_left_out(line: str, kept: str) -> None:
    first = "<p>The harbour bridge reopened"
    before = _generic_edit(first, f"<p>{line.format(12)}</p>{first}")
    after = _generic_edit(first, f"<p>{line.format(19)}</p>{first}")
    assert before.body.startswith(kept + "\n\n")
    assert fingerprint(after) == fingerprint(before)


@pytest.mark.parametrize(
    ("markup", "spot"),
    [
        ("<p><img src='/p.jpg'></p><p>{}</p>", "during the closure.</p>"),
        ("<div class='photo'><img src='/p.jpg'></div><p>{}</p>", "during the closure.</p>"),
        # A paragraph set in italics after a picture is the article's when it is a
        # quotation, or when the paragraph before the picture is set in italics too (a run
        # of quotes, an interview's questions); a named div after a picture is as often a
        # subheading.
        ("<p><img src='/p.jpg'></p><p><em>“{}”</em></p>", "during the closure.</p>"),
        ("<p><img src='/p.jpg'></p><p><i>– {}</i></p>", "during the closure.</p>"),
        (
            "<p><em>Was the closure worth it?</em></p><p><img src='/p.jpg'></p><p><em>{}</em></p>",
            "during the closure.</p>",
        ),
        (
            "<div class='photo'><img src='/p.jpg'></div><div class='subheadline'>{}</div>",
            "during the closure.</p>",
        ),
        # At the top of the container a picture is often followed by the article's first
        # paragraph, styled apart: its name does not say it is about the picture.
        (
            "<div class='hero'><img src='/p.jpg'></div><p class='intro'>{}</p>",
            "<p>The harbour bridge reopened",
        ),
    ],
    ids=[
        "unnamed-after-picture-in-a-p",
        "unnamed-after-picture-in-a-div",
        "quoted-italics-after-picture",
        "dialogue-italics-after-picture",
        "italics-before-and-after-picture",
        "named-div-after-picture",
        "intro-at-the-top",
    ],
)
def test_a_paragraph_of_the_article_after_a_picture_is_body_text(markup: str, spot: str) -> None:
    text = "Really, has the harbour ever looked so good?"
    block = markup.format(text)
    edited = _generic_edit(spot, spot + block if spot.endswith("</p>") else block + spot)
    assert text in edited.body
    changed = _generic_edit(
        spot,
        (spot + block if spot.endswith("</p>") else block + spot).replace("good?", "bright?"),
    )
    assert fingerprint(changed).changed_fields(fingerprint(edited).fields) == ["body"]


@pytest.mark.parametrize(
    ("line", "counter"),
    [
        ("<div><span>Ana Lopez</span> <span>{} comments</span></div>", "{} comments"),
        (
            "<div class='meta'><span>Ana Lopez</span> · <span>Read {} times</span> · "
            "<span>3 min read</span></div>",
            "Read {} times",
        ),
        ("<div><span>Von Ana Lopez</span><span>{} Aufrufe</span></div>", "{} Aufrufe"),
        ("<p>Par Ana Lopez <span>•</span> <em>{}.4K vues</em></p>", "{}.4K vues"),
    ],
    ids=["spans", "read-times", "aufrufe", "k-views"],
)
def test_a_counter_set_apart_by_markup_in_a_short_line_is_left_out(line: str, counter: str) -> None:
    first = "<p>The harbour bridge reopened"
    before = _generic_edit(first, line.format(12) + first)
    after = _generic_edit(first, line.format(19) + first)
    assert counter.format(12) not in before.body
    assert fingerprint(after) == fingerprint(before)


@pytest.mark.parametrize(
    ("markup", "spot"),
    [
        ("<aside class='editor-note'><p>{}</p></aside>", "after"),
        ("<aside><em>{}</em></aside>", "after"),
        ("<aside class='article-update'><strong>Update:</strong> {}</aside>", "before"),
    ],
    ids=["aside-p-after", "aside-em-after", "aside-before"],
)
def test_a_note_set_in_an_aside_of_the_article_is_body_text(markup: str, spot: str) -> None:
    note = "This article was updated with the department's inspection dates."
    first, last = "<p>The harbour bridge reopened", "limit disruption.</p>"
    block = markup.format(note)
    edited = (
        _generic_edit(last, last + block)
        if spot == "after"
        else _generic_edit(first, block + first)
    )
    before = _generic(page("generic_article.html"))
    paragraphs = edited.body.split("\n\n")
    assert [p for p in paragraphs if note not in p] == before.body.split("\n\n")
    assert note in (paragraphs[-1] if spot == "after" else paragraphs[0])
    assert fingerprint(edited).changed_fields(fingerprint(before).fields) == ["body"]


def _wrapped(html: bytes) -> bytes:
    """The generic article with each of its paragraphs in a wrapper of its own, as a CMS
    sets its content elements (``<div class="content-element"><p>…</p></div>``)."""
    text = html.decode()
    for paragraph in re.findall(r"<p>The .*?</p>|<p>Engineers .*?</p>|<p>Commuters .*?</p>", text):
        text = text.replace(paragraph, f"<div class='content-element'>{paragraph}</div>")
    return text.encode()


@pytest.mark.parametrize(
    "markup",
    [
        "<div class='editor-note'>{}</div>",
        "<div><i>{}</i></div>",
        "<section class='correction'>{}</section>",
        "<aside class='editor-note'><p>{}</p></aside>",
    ],
    ids=["div", "div-i", "section", "aside"],
)
def test_a_note_beside_paragraphs_in_wrappers_of_their_own_is_body_text(markup: str) -> None:
    note = "This article was updated with the department's inspection dates."
    last = "limit disruption.</p></div>"
    wrapped = _wrapped(page("generic_article.html"))
    assert wrapped.count(b"content-element") == 4
    before = _generic(wrapped)
    edited = _generic(_edit(wrapped, last, last + markup.format(note)))
    paragraphs = edited.body.split("\n\n")
    assert paragraphs[:-1] == before.body.split("\n\n")
    assert note in paragraphs[-1]
    assert fingerprint(edited).changed_fields(fingerprint(before).fields) == ["body"]


def test_an_aside_of_links_in_the_article_is_left_out() -> None:
    last = "limit disruption.</p>"
    box = (
        "<aside><p><a href='/a'>Ferry timetable changes for the summer season</a> and "
        "<a href='/b'>Harbour lights to be replaced next year</a></p></aside>"
    )
    assert _generic_edit(last, last + box).body == _generic(page("generic_article.html")).body


def test_a_number_of_comments_in_a_sentence_is_text() -> None:
    text = "The notice drew 12 comments from residents in its first week, the council said."
    spot = "during the closure.</p>"
    before = _generic_edit(spot, f"{spot}<p>{text}</p>")
    after = _generic_edit(spot, f"{spot}<p>{text.replace('12', '19')}</p>")
    assert fingerprint(after).changed_fields(fingerprint(before).fields) == ["body"]


def test_a_paragraph_that_starts_beside_a_floated_picture_is_body_text() -> None:
    text = "The new lighting was paid for by the port authority and local businesses."
    spot = "during the closure.</p>"
    after = _generic_edit(spot, f"{spot}<p><a href='/p.jpg'><img src='/p.jpg'></a>{text}</p>")
    assert text in after.body


# --------------------------------------------------------------------------- any site: link boxes

LINK_BOXES = [
    ("read-also", "<p><strong>Read also:</strong> <a href='/a'>{}</a></p>"),
    ("no-colon", "<p>Vous pourriez aimer <a href='/a'>{}</a></p>"),
    ("two-links", "<p><b>Přečtěte si také</b><br><a href='/a'>{}</a><br><a href='/b'>{}</a></p>"),
    ("div-span", "<div><span>Les også</span> <a href='/a'>{}</a></div>"),
]


@pytest.mark.parametrize("markup", [b[1] for b in LINK_BOXES], ids=[b[0] for b in LINK_BOXES])
def test_a_link_box_in_the_body_is_not_article_text(markup: str) -> None:
    spot = "during the closure.</p>"
    first = ("Ferry timetable changes for the summer", "Council approves new cycle lanes")
    second = ("Fishing fleet returns with a record catch", "School roof repairs start in June")
    before = _generic_edit(spot, spot + markup.format(*first))
    after = _generic_edit(spot, spot + markup.format(*second))
    without = _generic(page("generic_article.html"))
    assert "Ferry" not in before.body
    assert "Fishing" not in after.body
    assert fingerprint(after) == fingerprint(before) == fingerprint(without)


def test_a_paragraph_with_a_link_in_its_text_stays() -> None:
    text = (
        "The department published <a href='/r'>its inspection report</a> on its website, "
        "listing every bolt that was replaced."
    )
    after = _generic_edit("during the closure.</p>", f"during the closure.</p><p>{text}</p>")
    assert "listing every bolt that was replaced" in after.body


def test_a_sentence_mostly_linked_in_its_middle_is_no_link_box() -> None:
    text = (
        "Australian-born Assange faces <a href='/c'>a charge of conspiracy to commit computer "
        "intrusion in the US</a>."
    )
    after = _generic_edit("during the closure.</p>", f"during the closure.</p><p>{text}</p>")
    assert "Australian-born Assange faces a charge of conspiracy" in after.body


# --------------------------------------------------------------------------- short articles

SHORT_ITEM = (
    "<html><head><title>Ferry service resumes after storm</title></head><body>"
    "<div class='menu'><a href='/'>Home</a> <a href='/news'>News</a> <a href='/sport'>Sport</a>"
    "</div><div class='content'><h1>Ferry service resumes after storm</h1>"
    "<p>The ferry between the harbour and the island resumed on Sunday morning after two days "
    "of cancellations caused by the storm, the operator said.</p>"
    "<p>Passengers with tickets for the cancelled crossings can use them until the end of the "
    "month, and extra sailings have been added on Monday.</p>"
    "</div><div class='rail'><h3><a href='/n/1'>Council approves new cycle lanes</a></h3>"
    "<h3><a href='/n/2'>School roof repairs start in June</a></h3></div></body></html>"
)


def test_a_short_article_without_article_markup_is_read() -> None:
    article = extract(SHORT_ITEM.encode(), "https://news.example/local/ferry-resumes")
    assert article.body.startswith("The ferry between the harbour")
    assert "extra sailings" in article.body


def test_a_listing_is_refused_and_the_reason_is_named() -> None:
    with pytest.raises(ExtractionError, match=r"looks like a listing: \d+ of its \d+ paragraphs"):
        extract(
            page("tribunnews_listing.html"), "http://127.0.0.1/topic/konflik", profile=TRIBUNNEWS
        )


def test_the_reference_sites_seed_article_read_by_the_generic_rules() -> None:
    """The seed article as the fixture site serves it, read without its site profile: the
    summary box is the lead with its blocks apart, and the editor's note is body text."""
    with FixtureSite.reference_site() as site:
        site.apply_seed_edit()
        url = site.article_url(SEED_ARTICLE_ID)
        with urllib.request.urlopen(url, timeout=10) as response:
            html = response.read()
    article = extract(html, url, profile=GENERIC)
    assert article.body.endswith(SEED_DISCLAIMER)
    assert article.lead.startswith("Ringkasan Berita:\n\n")
    assert "rahasia.\n\nDiplomasi" in article.lead  # not "rahasia.Diplomasi"
    assert not re.search(r"[a-z][.:][A-Z]", article.lead)


def test_what_stands_after_the_bodys_first_paragraphs_is_never_the_lead() -> None:
    """The body's paragraphs carry inline text extraction leaves out, so none is found word
    for word on the page: the body still begins where a block starts as its first paragraph
    does, and a box after the last paragraph is not the standfirst."""
    box = "Sign up for our morning briefing: the day's most important stories in your inbox."
    paragraphs = [
        "The harbour bridge reopened to traffic on Friday after eight months of repairs, the "
        "city's transport office said in a statement.",
        "Engineers replaced four hundred bolts and resurfaced the deck, and the work finished "
        "two weeks ahead of the schedule agreed with the contractor.",
    ]
    html = (
        "<html><body><article><h1>Harbour bridge reopens after repairs</h1><div class='text'>"
        + "".join(
            f"<p>{text[:60]}<span class='caption-inline'>Photo: City archive</span>{text[60:]}</p>"
            for text in paragraphs
        )
        + f"<p>{box}</p></div></article></body></html>"
    ).encode()
    article = extract(html, "https://news.example/city/bridge-reopens")
    assert "Sign up" not in article.lead
    assert "harbour bridge reopened" not in article.lead.lower()


def test_an_element_named_like_a_standfirst_that_holds_the_article_is_not_one() -> None:
    html = (
        b"<html><head><meta name='description' content='The bridge is open again.'></head>"
        b"<body><article><h1>Harbour bridge reopens after repairs</h1>"
        b"<div class='article-summary'>"
        b"<p>The harbour bridge reopened to traffic on Friday after eight months of repairs.</p>"
        b"<p>Engineers replaced four hundred bolts and resurfaced the whole deck.</p>"
        b"<p>Write to us at letters@news.example with your views on this story.</p>"
        b"</div></article></body></html>"
    )
    article = extract(html, "https://news.example/city/bridge-reopens")
    assert "Write to us" not in article.lead


def test_squash_is_what_collapsing_whitespace_gives() -> None:
    """A text already collapsed is known by being printable: every whitespace character but
    the space is unprintable."""
    whitespace = [chr(code) for code in range(0x110000) if chr(code).isspace()]
    assert [c for c in whitespace if c.isprintable()] == [" "]
    rng = random.Random(21)
    pieces = ("a", "Kata", "\u00e9t\u00e9", "\u201c", "\u200b", "\u00ad", "", *whitespace)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert squash(text) == " ".join(text.split()), repr(text)


def test_json_ld_blocks_that_cannot_hold_an_article_are_not_read_for_it() -> None:
    assert all(name.endswith(_ARTICLE_TYPE_ENDINGS) for name in _ARTICLE_TYPES)
    tree = parse(
        "<html><head>"
        '<script type="application/ld+json">{"@type": "BreadcrumbList", "name": "x"}</script>'
        '<script type="application/ld+json">{"@type": "News\\u0041rticle", "headline": "A"}'
        "</script>"
        '<script type="application/ld+json">[{"@type": "WebPage"}, {"@type": "REPORT"}]</script>'
        "</head><body><p>x</p></body></html>",
        "https://example.org/a",
    )
    every = json_ld_objects(tree)
    assert len(every) == 4
    articles = json_ld_objects(tree, articles_only=True)
    assert [o["@type"] for o in articles] == ["NewsArticle", "WebPage", "REPORT"]
    assert article_object(articles) == article_object(every) == every[1]


_RUNS_URL = "https://news.example/2024/laptop-keyboard"
_RUNS = (
    "Following the larger model, the maker plans to release a new small laptop with a new "
    "keyboard in the first half of next year, according to industry sources cited by "
    "<em><a href='https://trade.example/'>a trade paper</a></em>. A preview of the report was "
    "shared with paying subscribers.",
    "The report claims the display size will stay the same, although given the source we "
    "would not completely rule out hopes of a larger display at some point next year.",
    "The new larger model features a redesigned keyboard, largely based on the standalone "
    "keyboard for the desktop. Given the tried-and-tested design, it should prove far more "
    "reliable than the keyboards of recent years.",
    "The entry-level small laptop was last updated in July, while higher-end models were "
    "refreshed in May.",
)
_RUNS_GUIDE = (
    "Night mode is an automatic setting which takes advantage of the new wide-angle camera on "
    "the latest phones, and it turns itself on in dim light without any setting to change.",
    "Our guide to the camera explains every setting of the phones released this autumn, from "
    "portrait lighting to the new ultra wide lens and its field of view.",
)


def _runs_page(runs: tuple[str, ...]) -> bytes:
    """An article whose paragraphs are text runs set apart by line breaks, with a picture and
    its caption after the first, in a container nested in the page's content frame."""
    caption = (
        "<img src='/k.jpg' alt=''><center><em>The new keyboard, via "
        "<a href='https://repair.example/'>a repair site</a></em></center> <br>"
    )
    text = runs[0] + "\n<br> <br>" + caption + "\n<br> <br>".join(runs[1:])
    guide = "".join(f"<p>{p}</p>" for p in _RUNS_GUIDE)
    return (
        "<html><head><title>Small laptop with a new keyboard expected next year</title></head>"
        "<body><h1>Small laptop with a new keyboard expected next year</h1>"
        f"<div id='content'><div class='article'><div class='content'>{text}</div></div>"
        f"<div class='guide'>{guide}</div></div></body></html>"
    ).encode()


def test_the_text_run_before_the_first_line_break_is_body_text() -> None:
    before = extract(_runs_page(_RUNS), _RUNS_URL)
    paragraphs = before.body.split("\n\n")
    assert paragraphs[0].startswith("Following the larger model")
    assert paragraphs[0].endswith("shared with paying subscribers.")
    assert "The new keyboard, via" not in before.body
    edited = (_RUNS[0].replace("paying subscribers", "paying readers"), *_RUNS[1:])
    after = extract(_runs_page(edited), _RUNS_URL)
    assert fingerprint(after).changed_fields(fingerprint(before).fields) == ["body"]
