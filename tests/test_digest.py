"""The digest email: subject, parts, escaping, diffs, and the committed example."""

from __future__ import annotations

import importlib.util
import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType

import pytest

from alerts.digest import (
    DigestItem,
    Part,
    build_digest,
    digest_subject,
    message_id_for,
    message_size,
    split_digest,
)

ROOT = Path(__file__).resolve().parent.parent
WHEN = datetime(2025, 10, 3, 6, 15, tzinfo=UTC)


def item(kind: str = "new", **fields: object) -> DigestItem:
    values: dict[str, object] = {
        "kind": kind,
        "url": f"https://news.example/{kind}/1",
        "title": f"A {kind} article",
        "detected_at": WHEN,
    }
    values.update(fields)
    return DigestItem(**values)  # type: ignore[arg-type]


def digest(items: list[DigestItem], **overrides: str) -> EmailMessage:
    values = {
        "topic_title": "Konflik Rusia Vs Ukraina",
        "topic_name": "konflik-rusia-ukraina",
        "recipient": "desk@example.org",
        "sender": "topicwatch <alerts@example.org>",
        "digest_key": "alerts:1,2,3",
        "domain": "example.org",
    }
    values.update(overrides)
    return build_digest(items=items, date=WHEN, **values)  # type: ignore[arg-type]


def transmitted(message: EmailMessage) -> EmailMessage:
    """The message as a receiver parses it."""
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


@pytest.mark.parametrize(
    ("kinds", "subject"),
    [
        (["new", "new", "updated"], "[topicwatch] Konflik Rusia Vs Ukraina: 2 new, 1 updated"),
        (
            ["restored", "removed", "updated", "new"],
            "[topicwatch] Konflik Rusia Vs Ukraina: 1 new, 1 updated, 1 removed, 1 restored",
        ),
        (["removed"], "[topicwatch] Konflik Rusia Vs Ukraina: 1 removed"),
    ],
)
def test_subject_counts_in_order_without_zeros(kinds: list[str], subject: str) -> None:
    items = [item(kind, url=f"https://news.example/{i}") for i, kind in enumerate(kinds)]
    assert transmitted(digest(items))["Subject"] == subject


def test_structure_and_headers() -> None:
    message = transmitted(digest([item("new")]))

    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == "topicwatch <alerts@example.org>"
    assert message["From"].addresses[0].addr_spec == "alerts@example.org"
    assert message["To"] == "desk@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Topicwatch-Topic"] == "konflik-rusia-ukraina"
    assert message["Date"].datetime == WHEN
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.org>", message["Message-ID"])


def test_message_id_is_stable_per_digest_key() -> None:
    first = digest([item("new")], digest_key="alerts:4,5")
    again = digest([item("new", title="Other")], digest_key="alerts:4,5")
    other = digest([item("new")], digest_key="alerts:4,6")

    assert first["Message-ID"] == again["Message-ID"] == message_id_for("alerts:4,5", "example.org")
    assert other["Message-ID"] != first["Message-ID"]


def test_new_article_shows_title_link_time_and_lead() -> None:
    new = item(
        "new",
        url="https://news.example/a?id=1&x=2",
        title="Ukraina Terima Sistem Pertahanan Udara",
        published="2025-10-03T12:40:00+07:00",
        lead="Kyiv menyebut sistem itu akan melindungi jaringan listrik.",
    )

    text, html = parts(transmitted(digest([new])))

    for part in (text, html):
        assert "Ukraina Terima Sistem Pertahanan Udara" in part
        assert "Published 2025-10-03 12:40 +07:00" in part
        assert "Kyiv menyebut sistem itu akan melindungi jaringan listrik." in part
    assert "https://news.example/a?id=1&x=2" in text
    assert '<a href="https://news.example/a?id=1&amp;x=2"' in html


def test_lead_falls_back_to_the_start_of_the_body() -> None:
    body = " ".join(["kata"] * 200) + "\n\nSecond paragraph."
    text, _ = parts(digest([item("new", body=body)]))

    lead_lines = [line.strip() for line in text.splitlines() if line.strip().startswith("kata")]
    lead = " ".join(lead_lines)
    assert lead.endswith("kata …")
    assert len(lead) <= 402
    assert "Second paragraph." not in text


def test_updated_article_shows_fields_and_word_diffs() -> None:
    updated = item(
        "updated",
        title="Pembicaraan Rahasia AS dan Rusia",
        old_title="Pembicaraan Rahasia AS-Rusia",
        body="Sumbernya adalah mantan pejabat AS.\n\nParagraf lain.",
        old_body="Sumbernya adalah pejabat AS.\n\nParagraf lain.",
        fields=("body", "title"),
    )

    text, html = parts(transmitted(digest([updated])))

    assert "Changed: body, title" in text
    assert "[-AS-Rusia-]{+AS dan Rusia+}" in text
    assert "Sumbernya adalah {+mantan+} pejabat AS." in text
    assert "Paragraf lain." not in text  # unchanged paragraphs are left out
    assert re.search(
        r"<del style=\"[^\"]+\">AS-Rusia</del><ins style=\"[^\"]+\">AS dan Rusia</ins>", html
    )
    assert re.search(r"Sumbernya adalah <ins style=\"[^\"]+\">mantan</ins> pejabat AS\.", html)


def test_only_changed_fields_are_diffed() -> None:
    updated = item(
        "updated", fields=("authors",), body="same", old_body="same", old_title="A updated article"
    )

    text, html = parts(digest([updated]))

    assert "Changed: authors" in text
    assert "Body:" not in text
    assert "<del" not in html
    assert "<ins" not in html


def test_huge_rewrites_are_cut_short() -> None:
    old = " ".join(f"w{i}" for i in range(600))
    new = " ".join(f"w{i}" if i % 10 else f"X{i}" for i in range(600))

    text, html = parts(digest([item("updated", body=new, old_body=old, fields=("body",))]))

    assert "(20 more changes not shown; see the article.)" in text
    assert "20 more changes not shown; see the article." in html
    assert text.count("{+") == 40


def test_removed_article_shows_its_last_title() -> None:
    removed = item("removed", title="Video: Serangan Drone di Belgorod")

    text, html = parts(digest([removed]))

    assert "Video: Serangan Drone di Belgorod" in text
    assert "No longer on the site" in text
    assert "https://news.example/removed/1" in text
    assert "Video: Serangan Drone di Belgorod" in html


def test_restored_article_is_announced() -> None:
    text, _ = parts(digest([item("restored", lead="It is back.")]))

    assert "RESTORED (1)" in text
    assert "Back on the site after removal" in text
    assert "It is back." in text


def test_scraped_markup_is_escaped_in_html() -> None:
    hostile = item(
        "new",
        title='<script>alert("x")</script> & <b>bold</b>',
        lead="<img src=x onerror=alert(1)>",
        url='https://news.example/"><script>x</script>',
    )

    _, html = parts(transmitted(digest([hostile])))

    assert "<script>" not in html
    assert "<img" not in html
    assert "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert 'href="https://news.example/&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in html


def test_only_http_links_are_linked() -> None:
    sneaky = item("new", url="javascript:alert(1)")

    text, html = parts(digest([sneaky]))

    assert "javascript:alert(1)" in text
    assert 'href="javascript' not in html


def test_line_breaks_in_titles_cannot_add_headers() -> None:
    hostile = "Konflik\r\nBcc: victim@example.org\r\nX-Evil: 1"
    message = digest([item("new", title="Judul\r\nBcc: victim@example.org")], topic_title=hostile)

    received = transmitted(message)

    assert received["Bcc"] is None
    assert received["X-Evil"] is None
    assert received["Subject"] == ("[topicwatch] Konflik Bcc: victim@example.org X-Evil: 1: 1 new")
    assert "\n" not in received["Subject"]
    assert sorted(received.keys()) == sorted(
        [
            "Subject",
            "From",
            "To",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "X-Topicwatch-Topic",
            "MIME-Version",
            "Content-Type",
        ]
    )
    text, _ = parts(received)
    assert "* Judul Bcc: victim@example.org" in text


def test_long_topic_title_is_shortened_in_the_subject() -> None:
    subject = digest_subject("Topik " * 50, [item("new")])
    assert len(subject) < 160
    assert subject.endswith("…: 1 new")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"recipient": "not an address"}, "'not an address' is not a valid email address"),
        ({"sender": "alerts@example.org\nBcc: x@example.org"}, "contains a line break"),
        ({"domain": "example.org>\r\nBcc: x"}, "is not a valid domain for a Message-ID"),
    ],
)
def test_invalid_addresses_are_refused(overrides: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        digest([item("new")], **overrides)


def test_a_digest_needs_changes() -> None:
    with pytest.raises(ValueError, match="needs at least one change"):
        digest([])


def _example_script() -> ModuleType:
    path = ROOT / "docs" / "make_example_digest.py"
    spec = importlib.util.spec_from_file_location("make_example_digest", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_example_digest_is_current() -> None:
    script = _example_script()
    text, html = script.example_parts()

    regenerate = "regenerate it with: .venv/bin/python docs/make_example_digest.py --png"
    assert (ROOT / "docs" / "example-digest.html").read_text(encoding="utf-8") == html, regenerate
    assert (ROOT / "docs" / "example-digest.txt").read_text(encoding="utf-8") == text, regenerate
    assert (
        (script.example_message()["Subject"])
        == "[topicwatch] Konflik Rusia Vs Ukraina: 2 new, 1 updated, 1 removed"
    )


def mixed_items(count: int) -> list[DigestItem]:
    """New articles with non-ASCII leads and updated ones with diffs, alternating."""
    items = []
    for n in range(count):
        if n % 2:
            old = " ".join(f"kata{w}" for w in range(300))
            items.append(
                item(
                    "updated",
                    url=f"https://news.example/berita/{n:04d}",
                    title=f"Berita {n}",
                    fields=("body",),
                    old_body=old,
                    body=old.replace("kata7", "ubah"),
                )
            )
        else:
            items.append(
                item(
                    url=f"https://news.example/berita/{n:04d}",
                    title=f"Новости {n} — «тест»",
                    lead="Ринок зерна зріс після переговорів у Стамбулі. " * 8,
                )
            )
    return items


def build_part(items: Sequence[DigestItem], part: Part | None) -> EmailMessage:
    return digest(list(items), digest_key=",".join(i.url for i in items))


def test_a_digest_over_the_cap_is_split_in_order_with_every_change_once() -> None:
    items = mixed_items(300)
    cap = 64 * 1024
    assert message_size(build_part(items, None)) > 4 * cap

    split = split_digest(items, cap, build_part, lambda i: i)

    assert [i for run, _ in split for i in run] == items
    assert all(message_size(message) <= cap for _, message in split)
    # Packed, not merely halved: no two neighbours would have fitted in one email.
    for (first, _), (second, _) in itertools.pairwise(split):
        assert message_size(build_part([*first, *second], None)) > cap
    assert len({message["Message-ID"] for _, message in split}) == len(split)


def test_a_digest_under_the_cap_or_a_single_huge_change_is_one_email() -> None:
    items = mixed_items(3)
    [(run, message)] = split_digest(items, 1024 * 1024, build_part, lambda i: i)
    assert list(run) == items
    assert "part" not in message["Subject"]

    huge = [item(title="Judul " * 20_000)]
    [(run, message)] = split_digest(huge, 16 * 1024, build_part, lambda i: i)
    assert list(run) == huge
    assert message_size(message) > 16 * 1024


def test_parts_name_their_place_in_the_subject() -> None:
    subject = digest_subject("Konflik", [item()], (2, 3))
    assert subject == "[topicwatch] Konflik: 1 new (part 2 of 3)"
