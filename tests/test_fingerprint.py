"""Normalisation and fingerprints: what counts as a change of the article, and what does not."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest
from fixture_site import generated_paragraphs

from crawler.article import ExtractedArticle
from crawler.fingerprint import (
    _CASE_ODDITIES,
    _LONGER_IN_LOWERCASE,
    _RELATIVE_TIMES,
    _RELATIVE_WORDS,
    FIELDS,
    RULES,
    _drop_relative_times,
    block_hashes,
    fingerprint,
    normalise_text,
)
from storage.changes import rules_of
from storage.templates import LEAD_MARK, lead_and_body

NORMALISE_CASES = [
    # (id, text, ignore_patterns, expected)
    ("whitespace", "  a\n\n b\t c  ", (), "a b c"),
    ("nfkc", "ﬁnance ①", (), "finance 1"),
    ("zero-width", "in\u200bter\u200dna\ufefftional\u00ad", (), "international"),
    ("curly-quotes", "\u201cquoted\u201d and \u2018single\u2019", (), "\"quoted\" and 'single'"),
    ("dashes", "2020\u20132024 \u2014 done \u2212 minus", (), "2020-2024 - done - minus"),
    ("nbsp", "a\u00a0b", (), "a b"),
    ("relative-time-id", "Diperbarui 5 menit lalu oleh redaksi", (), "Diperbarui oleh redaksi"),
    ("relative-time-id-yang", "Terbit 2 jam yang lalu", (), "Terbit"),
    ("relative-time-en", "Updated 2 hours ago by staff", (), "Updated by staff"),
    ("relative-time-an-hour", "Posted an hour ago", (), "Posted"),
    ("relative-time-de", "Aktualisiert vor 3 Minuten", (), "Aktualisiert"),
    ("just-now", "Updated just now", (), "Updated"),
    ("counter-line", "First paragraph.\n12 Comments\nSecond.", (), "First paragraph. Second."),
    (
        "counter-lines-first-and-last",
        "3.4K shares\r\nBody \u2014 text.\n  Komentar (5)  ",
        (),
        "Body - text.",
    ),
    ("counter-line-alone", " 12 comments ", (), ""),
    (
        "view-and-read-counters",
        "Read 12 times\n1.2K reads\nBody.\n3 min read\nDibaca 5 kali\n1.204 Aufrufe\n"
        "Lesezeit: 4 Min.\n3 min de lecture\n12 keer gelezen",
        (),
        "Body.",
    ),
    ("counter-words-without-a-number-kept", "Read more\nminute read", (), "Read more minute read"),
    (
        "read-a-number-of-times-in-a-sentence-kept",
        "He read 12 times a day.",
        (),
        "He read 12 times a day.",
    ),
    ("backtick", "it`s `plain`", (), "it's 'plain'"),
    (
        "counter-inside-sentence-kept",
        "It drew 12 comments overnight.",
        (),
        "It drew 12 comments overnight.",
    ),
    ("ignore-pattern", "Views: 1,204 Body text", (r"Views: [\d,]+",), "Body text"),
    ("ignore-multiline", "Body\nSponsored by Acme\nMore", (r"^Sponsored by .*$",), "Body More"),
    ("absolute-date-kept", "3 Oktober 2025", (), "3 Oktober 2025"),
]


@pytest.mark.parametrize(
    ("text", "patterns", "expected"),
    [c[1:] for c in NORMALISE_CASES],
    ids=[c[0] for c in NORMALISE_CASES],
)
def test_normalise_text(text: str, patterns: tuple[str, ...], expected: str) -> None:
    assert normalise_text(text, patterns) == expected


RELATIVE_TIMES = (
    "5 menit lalu",
    "sekitar 2 jam yang lalu",
    "setahun lalu",
    "2 hours ago",
    "About 3 days ago",
    "an hour ago",
    "vor 5 Minuten",
    "il y a 3 heures",
    "IL Y A 2 JOURS",
    "hace 2 horas",
    "Hace 3 días",
    "just now",
    "baru saja",
    "BARU  SAJA",
    "5menit lalu",
    "sehari yang lalu",
    "3 Days Ago",
)
# Words relative times are made of, in sentences that say something else: kept.
NEAR_MISSES = (
    "Lalu lintas padat sejak pagi.",
    "Kebijakan baru diumumkan.",
    "The agora was full.",
    "Il a dit vor allem hace nada, just in time.",
    "Sekitar 200 orang hadir tahun lalu-lalang.",
    "Pada tahun lalu kami datang, seperti yang lalu.",
    "Itu terjadi baru-baru ini di Chicago, baru kemudian saja.",
)


@pytest.mark.parametrize("seed", range(40))
def test_relative_times_anywhere_in_a_long_body_leave_no_trace(seed: int) -> None:
    rng = random.Random(seed)
    text = " ".join(generated_paragraphs(f"relative:{seed}", 900)).split()
    for sentence in NEAR_MISSES:
        text.insert(rng.randrange(len(text) + 1), sentence)
    with_times = list(text)
    for _ in range(rng.randint(1, 8)):
        spacing = rng.choice((" ", "\n", "  \n ", "\t"))
        time = spacing + rng.choice(RELATIVE_TIMES) + spacing
        with_times.insert(rng.randrange(len(with_times) + 1), time)
    normalised = normalise_text(" ".join(with_times))
    assert normalised == normalise_text(" ".join(text))
    for sentence in NEAR_MISSES:
        assert normalise_text(sentence) in normalised


# Words of relative times, words they are confused with, and what stands between them.
RELATIVE_PIECES = (
    *("5", "12", "a", "an", "one", "se", "sama", "sekitar", "about", "x5", "_a", "-a", "(5"),
    *("tahun", "menit", "jam", "hari", "minggu", "hours", "hour", "mins", "secs", "days"),
    *("ago", "lalu", "yang", "LALU", "Lalu", "AGO", "laluan", "setahun", "5menit", "anhour"),
    *("baru", "saja", "terbaru", "Baru", "SAJA", "sajak", "just", "now", "Just", "NOW"),
    *("vor", "Minuten", "hace", "horas", "il", "y", "minute", "heures", "jour", "días"),
    *("\u201c", "\u00e9", "\u017f", "\u0131", "\u212a", "\u00a0", "\u0130"),
)
RELATIVE_GAPS = (" ", " ", "  ", "\n", "\n\n", "\t", "", ",", ".", "-", "\u00a0")


@pytest.mark.parametrize("seed", range(4))
def test_relative_times_are_found_near_their_words_as_in_the_whole_text(seed: int) -> None:
    """The regex runs only near the words of relative times, and only where one of them
    stands where a relative time has it ("lalu" after a count and a unit): it finds what it
    finds when it runs over the whole text."""
    rng = random.Random(seed)
    for _ in range(2000):
        text = "".join(
            rng.choice(RELATIVE_PIECES) + rng.choice(RELATIVE_GAPS)
            for _ in range(rng.randint(1, 30))
        )
        assert _drop_relative_times(text) == _RELATIVE_TIMES.sub(" ", text), text


def test_what_lowercasing_and_ignoring_case_do_to_the_words_of_relative_times() -> None:
    """The words of relative times are looked for in the lowercased text (and in its UTF-8
    bytes with ASCII letters lowercased), at the positions of the text: only one character
    lowercases to more than one, and only the listed ones match an ASCII letter under
    re.IGNORECASE while they do not lowercase to it."""
    characters = [chr(code) for code in range(0x110000)]
    assert [c for c in characters if len(c.lower()) != 1] == [_LONGER_IN_LOWERCASE]
    ascii_letter = re.compile("[a-z]", re.IGNORECASE)
    oddities = {
        c
        for c in characters
        if not c.isascii() and ascii_letter.fullmatch(c) and not c.lower().isascii()
    }
    assert oddities - {_LONGER_IN_LOWERCASE} == set(_CASE_ODDITIES)
    to_ascii = {c.lower() for c in characters if not c.isascii() and c.lower().isascii()}
    assert to_ascii == {"k"}
    assert not any("k" in word for word in _RELATIVE_WORDS)


def test_invalid_ignore_pattern_is_named() -> None:
    with pytest.raises(ValueError, match=r"The ignore pattern '\(unclosed' is not a valid"):
        normalise_text("text", ["(unclosed"])


BASE = ExtractedArticle(
    url="https://example.com/news/2024/05/17/bridge",
    title="Harbour bridge reopens",
    body="The bridge reopened on Friday.\n\nEngineers replaced four hundred bolts.",
    lead="Traffic flows again.",
    authors=("Ana Lopez", "Tom Reid"),
    published="2024-05-17T08:00:00Z",
    modified="2024-05-17T10:30:00+00:00",
)

SAME_CASES = [
    ("url-is-identity", {"url": "https://example.com/other"}),
    (
        "paragraph-spacing",
        {"body": "The bridge reopened on Friday.\nEngineers replaced four hundred bolts."},
    ),
    ("typography", {"title": "Harbour bridge reopens\u200b"}),
    ("author-order", {"authors": ("Tom Reid", "Ana Lopez")}),
    ("same-instant", {"published": "2024-05-17T15:00:00+07:00"}),
    ("modified-time-alone", {"modified": "2024-05-18T09:00:00Z"}),
]
CHANGED_CASES = [
    ("title", {"title": "Harbour bridge reopens to traffic"}, ["title"]),
    ("body-word", {"body": BASE.body.replace("four", "five")}, ["body"]),
    ("body-sentence", {"body": BASE.body + " Work ends in May."}, ["body"]),
    ("lead", {"lead": "Traffic flows again after repairs."}, ["lead"]),
    ("description", {"description": "The harbour bridge is open again."}, ["lead"]),
    ("authors", {"authors": ("Ana Lopez",)}, ["authors"]),
    ("published", {"published": "2024-05-18T09:00:00Z"}, ["dates"]),
    ("title-and-body", {"title": "Bridge reopens", "body": "New text."}, ["body", "title"]),
]


@pytest.mark.parametrize("change", [c[1] for c in SAME_CASES], ids=[c[0] for c in SAME_CASES])
def test_fingerprint_ignores(change: dict[str, object]) -> None:
    changed, base = fingerprint(dataclasses.replace(BASE, **change)), fingerprint(BASE)  # type: ignore[arg-type]
    # The paragraph hashes follow the paragraphs; they are compared only where bodies differ.
    assert (changed.digest, changed.fields) == (base.digest, base.fields)


@pytest.mark.parametrize(
    ("change", "fields"), [c[1:] for c in CHANGED_CASES], ids=[c[0] for c in CHANGED_CASES]
)
def test_fingerprint_names_changed_fields(change: dict[str, object], fields: list[str]) -> None:
    before, after = fingerprint(BASE), fingerprint(dataclasses.replace(BASE, **change))  # type: ignore[arg-type]
    assert after.digest != before.digest
    assert after.changed_fields(before.fields) == fields


def test_fingerprint_shape() -> None:
    result = fingerprint(BASE)
    assert set(result.fields) == set(FIELDS)
    assert len(result.digest) == 64
    # Each field hash is a SHA-256, marked with its rules' version when that is above 1.
    assert all(len(v.split("~")[0]) == 64 for v in result.fields.values())
    assert {name: rules_of(v) for name, v in result.fields.items()} == RULES


def test_the_description_is_part_of_the_lead() -> None:
    described = dataclasses.replace(BASE, description="The harbour bridge is open again.")
    assert fingerprint(described).changed_fields(fingerprint(BASE).fields) == ["lead"]
    edited = dataclasses.replace(described, description="The bridge is open again.")
    assert fingerprint(edited).changed_fields(fingerprint(described).fields) == ["lead"]
    # A description that says what the visible lead says adds nothing.
    same = dataclasses.replace(BASE, description=" Traffic flows  again.")
    assert fingerprint(same) == fingerprint(BASE)


def test_ignore_patterns_apply_to_every_text_field() -> None:
    noisy = dataclasses.replace(
        BASE, body=BASE.body + "\n\nDibaca 1.204 kali", title="LIVE: " + BASE.title
    )
    patterns = (r"^LIVE: ", r"Dibaca [\d.]+ kali")
    assert fingerprint(noisy, patterns) == fingerprint(BASE, patterns)


def test_the_leads_blocks_are_hashed_apart_and_marked_the_lead_hash_as_one_text() -> None:
    article = dataclasses.replace(
        BASE,
        lead="Traffic flows again.\n\nSign up for our briefing.",
        description="Traffic is back on the bridge.",
    )
    lead, body = lead_and_body(fingerprint(article).blocks)
    assert lead == tuple(
        LEAD_MARK + block_hashes(text)[0]
        for text in ("Traffic flows again.", "Sign up for our briefing.", article.description)
    )
    assert body == block_hashes(BASE.body)
    # How the standfirst's blocks are separated is no change of the lead.
    spaced = dataclasses.replace(article, lead="Traffic flows again. Sign up for our briefing.")
    assert fingerprint(spaced).fields["lead"] == fingerprint(article).fields["lead"]
    # A description that is the lead is no block of its own.
    (alone,) = lead_and_body(fingerprint(dataclasses.replace(BASE, description=BASE.lead)).blocks)[
        0
    ]
    assert alone == LEAD_MARK + block_hashes(BASE.lead)[0]


def test_block_hashes_are_one_per_paragraph_of_normalised_text() -> None:
    body = (
        "Engineers replaced bolts.\n\n\u201cWrite to us\u201d at desk@example.com"
        "\n\n \n\nUpdated 5 minutes ago"
    )
    blocks = block_hashes(body)
    assert len(blocks) == 3  # the blank paragraph has none
    assert all(len(block) == 16 for block in blocks)
    assert blocks[1] == block_hashes('"Write to us" at   desk@example.com')[0]
    assert blocks[2] == block_hashes("Updated 2 hours ago")[0]
    # The lead's blocks come first, marked, then the body's.
    lead = tuple(LEAD_MARK + block for block in block_hashes(BASE.lead))
    assert fingerprint(BASE).blocks == lead + block_hashes(BASE.body)
    assert block_hashes("Dibaca 1.204 kali, tetap", (r"Dibaca [\d.]+ kali",)) == block_hashes(
        ", tetap"
    )
