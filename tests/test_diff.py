"""Word diffs of article text and their plain-text and HTML renderings."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from alerts.diff import DiffOp, diff_html, diff_text, has_changes, word_diff

# (old, new, expected diff_text with the default context); one case per behaviour.
CASES = [
    pytest.param("", "", "", id="both-empty"),
    pytest.param("Same text.", "Same   text. ", "", id="whitespace-only"),
    pytest.param("a b c", "a c", "a [-b-] c", id="delete-word"),
    pytest.param("a c", "a b c", "a {+b+} c", id="insert-word"),
    pytest.param("a b c", "a x c", "a [-b-]{+x+} c", id="replace-word"),
    pytest.param("a b c", "x a b c", "{+x+} a b c", id="insert-at-start"),
    pytest.param("a b c", "a b", "a b [-c-]", id="delete-at-end"),
    pytest.param("", "new text", "{+new text+}", id="from-empty"),
    pytest.param(
        "the cat sat on the mat",
        "a dog lay on a rug",
        "[-the cat sat on the mat-]{+a dog lay on a rug+}",
        id="coincidental-matches-folded",
    ),
    pytest.param(
        "Sumbernya adalah pejabat AS yang terlibat langsung.",
        "Sumbernya adalah mantan pejabat AS yang terlibat langsung.",
        "Sumbernya adalah {+mantan+} pejabat AS yang terlibat langsung.",
        id="reference-edit",
    ),
    pytest.param(
        "First paragraph.\n\nSecond one.",
        "First paragraph.\n\nSecond one, edited.",
        "…\n\nSecond [-one.-]{+one, edited.+}",
        id="paragraphs-kept",
    ),
    pytest.param(
        "P1 ends.\n\nP3 here.",
        "P1 ends.\n\nP2 is new.\n\nP3 here.",
        "P1 ends.\n\n{+P2 is new.+}\n\nP3 here.",
        id="inserted-paragraph",
    ),
    pytest.param(
        "One sentence. Another sentence.",
        "One sentence.\n\nAnother sentence.",
        "One sentence.{+¶+}\n\nAnother sentence.",
        id="paragraph-split",
    ),
    pytest.param(
        "One sentence.\n\nAnother sentence.",
        "One sentence. Another sentence.",
        "One sentence.[-¶-] Another sentence.",
        id="paragraphs-joined",
    ),
    pytest.param(
        "line one\nline two", "line one\nline 2", "line one\nline [-two-]{+2+}", id="line"
    ),
    pytest.param(
        "Text with \x1b[31mred\x1b[0m and zero\u200bwidth.",
        "Text with red and zerowidth!",
        "Text with [-[31mred[0m and zerowidth.-]{+red and zerowidth!+}",
        id="control-characters-dropped",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_diff_text(old: str, new: str, expected: str) -> None:
    assert diff_text(word_diff(old, new)) == expected


def _side(ops: list[DiffOp], skip: str) -> str:
    return " ".join("".join(op.text for op in ops if op.kind != skip).split())


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_ops_rebuild_both_versions(old: str, new: str, expected: str) -> None:
    ops = word_diff(old, new)
    clean = re.compile(r"[\x00-\x08\x0e-\x1f\u200b]")
    assert _side(ops, "insert") == " ".join(clean.sub("", old).split())
    assert _side(ops, "delete") == " ".join(clean.sub("", new).split())
    assert has_changes(ops) == bool(expected)


def long_text(paragraphs: int = 6, words: int = 40) -> str:
    return "\n\n".join(" ".join(f"p{p}w{w}" for w in range(words)) for p in range(paragraphs))


def test_long_unchanged_stretches_are_shortened() -> None:
    old = long_text()
    new = old.replace("p2w20", "CHANGED").replace("p4w1 ", "").replace("p5w0", "p5w0 added")

    text = diff_text(word_diff(old, new), context=3, width=0)

    assert text == (
        "…\n\n"
        "… p2w17 p2w18 p2w19 [-p2w20-]{+CHANGED+} p2w21 p2w22 p2w23 …\n\n"
        "…\n\n"
        "p4w0 [-p4w1-] p4w2 p4w3 p4w4 …\n\n"
        "p5w0 {+added+} p5w1 p5w2 p5w3 …"
    )


def test_changes_close_together_share_their_context() -> None:
    old = " ".join(f"w{i}" for i in range(30))
    new = old.replace("w10", "X").replace("w14", "Y")

    text = diff_text(word_diff(old, new), context=4, width=0)

    assert text == "… w6 w7 w8 w9 [-w10-]{+X+} w11 w12 w13 [-w14-]{+Y+} w15 w16 w17 w18 …"


def test_text_is_wrapped_for_email() -> None:
    old = " ".join(["word"] * 60)
    new = old + " end"

    text = diff_text(word_diff(old, new), width=40)

    assert all(len(line) <= 40 for line in text.splitlines())
    assert text.endswith("{+end+}")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_everything_and_styles_inline() -> None:
    ops = word_diff("Title <b>bold</b> & more", 'Title <script>alert("x")</script> & more')

    html = diff_html(ops)

    parsed = _Collector()
    parsed.feed(html)
    assert set(parsed.tags) == {"p", "del", "ins"}
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&amp; more" in html
    assert '<del style="' in html
    assert '<ins style="' in html
    assert "".join(parsed.text) == 'Title <b>bold</b><script>alert("x")</script> & more'


def test_html_keeps_paragraphs_and_marks_gaps() -> None:
    old = long_text()
    new = old.replace("p3w39", "p3w39 appended")

    html = diff_html(word_diff(old, new), context=2)

    paragraphs = re.findall(r"<p [^>]*>(.*?)</p>", html)
    assert len(paragraphs) == 3
    assert paragraphs[0] == paragraphs[2] == '<span style="color:#8c959f">…</span>'
    assert "p3w38 p3w39 <ins" in paragraphs[1]
    assert '<ins style="' in paragraphs[1]


def test_no_change_renders_nothing() -> None:
    ops = word_diff("same words", "same words")
    assert not has_changes(ops)
    assert diff_text(ops) == ""
    assert diff_html(ops) == ""


def test_rewritten_article_is_diffed_in_reasonable_time() -> None:
    # Not a timing assertion: a quadratic blow-up would hit the test timeout instead.
    old = " ".join(f"w{i % 300}" for i in range(8000))
    new = " ".join(f"w{(i * 7) % 300}" for i in range(8000))

    ops = word_diff(old, new)

    assert _side(ops, "insert") == old
    assert _side(ops, "delete") == new
