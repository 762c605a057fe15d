"""Word-level differences between two versions of an article's text.

:func:`word_diff` compares two texts word by word and returns a list of :class:`DiffOp`;
:func:`diff_text` and :func:`diff_html` render that list for a plain-text email (or a terminal)
and for an HTML email (and the web view's inline diff): both show only the changes with a
little context around them; long unchanged stretches are shortened to "…". :func:`side_html`
renders one side of it whole, for the web view's side-by-side diff.

Whitespace inside a paragraph is not significant: it is normalised to one space; control and
zero-width characters are dropped. Line breaks
(``"\\n"``) and paragraph breaks (a blank line, ``"\\n\\n"``) are kept as tokens of their own,
so splitting or joining paragraphs shows up as a change, and the rendered diff keeps the
article's paragraphs.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

__all__ = ["DiffOp", "diff_html", "diff_text", "has_changes", "side_html", "word_diff"]

OpKind = Literal["equal", "delete", "insert"]

PARAGRAPH = "\n\n"
LINE = "\n"
_BREAKS = (PARAGRAPH, LINE)
_TOKEN = re.compile(r"\S+|\s+")
# Control characters (an escape sequence would reach the terminal) and zero-width characters.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]")
_SEPARATED = re.compile(r"(\n\n|\n| )")

DEL_STYLE = "background:#ffebe9;color:#82071e;text-decoration:line-through"
INS_STYLE = "background:#dafbe1;color:#116329;text-decoration:none;font-weight:600"
# Longest unchanged stretch (in words) that may be folded into the changes around it.
MAX_FOLDED_WORDS = 2
# Above this product of token counts a changed stretch is not compared word by word.
WORD_DIFF_LIMIT = 4_000_000
GAP_STYLE = "color:#8c959f"
PARAGRAPH_STYLE = "margin:0 0 0.7em 0"


@dataclass(frozen=True)
class DiffOp:
    """One stretch of a word diff: text both versions share, or text deleted or inserted.

    ``text`` uses single spaces between words, ``"\\n"`` for a line break and ``"\\n\\n"``
    for a paragraph break.
    """

    kind: OpKind
    text: str


def word_diff(old: str, new: str) -> list[DiffOp]:
    """The word-level difference turning ``old`` into ``new``.

    A replaced stretch comes out as a ``delete`` followed by an ``insert``. Reading only the
    ``equal`` and ``delete`` operations gives ``old``, reading the ``equal`` and ``insert``
    ones gives ``new`` (both with normalised whitespace).
    """
    a = _tokens(old)
    b = _tokens(new)
    if a == b:
        return [DiffOp("equal", _join(b))] if b else []
    chunks = _cleanup(_compare(a, b), a, b)
    items: list[tuple[OpKind, str]] = []
    for is_equal, (i1, i2), (j1, j2) in chunks:
        if is_equal:
            items.extend(("equal", token) for token in b[j1:j2])
        else:
            items.extend(("delete", token) for token in a[i1:i2])
            items.extend(("insert", token) for token in b[j1:j2])
    return _ops(items)


def has_changes(ops: Sequence[DiffOp]) -> bool:
    """Whether ``ops`` contain any deletion or insertion."""
    return any(op.kind != "equal" for op in ops)


def diff_text(ops: Sequence[DiffOp], *, context: int = 12, width: int = 78) -> str:
    """The diff as plain text: ``[-deleted words-]{+inserted words+}`` inline.

    Paragraphs stay paragraphs (separated by a blank line) and are wrapped at ``width``
    columns (0 disables wrapping); only the changes and ``context`` words around each are
    shown, omitted text is marked "…". Returns ``""`` when nothing changed.
    """
    out: list[str] = []
    for kind, piece in _pieces(_hunks(ops, context)):
        if kind == "delete":
            out.append(f"[-{piece}-]")
        elif kind == "insert":
            out.append(f"{{+{piece}+}}")
        else:
            out.append(piece)
    paragraphs = "".join(out).split(PARAGRAPH)
    rendered: list[str] = []
    for paragraph in paragraphs:
        lines = [line.strip(" ") for line in paragraph.split(LINE)]
        if width > 0:
            lines = [
                textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False)
                for line in lines
            ]
        text = LINE.join(lines).strip(LINE)
        if text:
            rendered.append(text)
    return PARAGRAPH.join(rendered)


def diff_html(ops: Sequence[DiffOp], *, context: int = 12) -> str:
    """The diff as an HTML fragment: ``<p>`` paragraphs with inline-styled ``<del>``/``<ins>``.

    Every piece of text is HTML-escaped; styles are inline so that email clients, which drop
    style sheets, show them. Returns ``""`` when nothing changed.
    """
    return _render_html(_pieces(_hunks(ops, context)))


def side_html(ops: Sequence[DiffOp], side: Literal["old", "new"]) -> str:
    """One version's whole text as an HTML fragment, for a side-by-side view: the old text
    with its deleted stretches marked, or the new text with its inserted ones, rendered as
    :func:`diff_html` renders them (escaped, inline styles). Returns ``""`` for an empty text.
    """
    dropped = "insert" if side == "old" else "delete"
    segments: list[Segment] = [(op.kind, op.text) for op in ops if op.kind != dropped]
    return _render_html(_pieces(segments))


def _render_html(pieces: Iterable[Segment]) -> str:
    paragraphs: list[str] = []
    current: list[str] = []
    for kind, piece in pieces:
        if piece == PARAGRAPH:
            if "".join(current).strip():
                paragraphs.append("".join(current).strip())
            current = []
        elif piece == LINE:
            current.append("<br>")
        elif kind == "delete":
            current.append(f'<del style="{DEL_STYLE}">{html.escape(piece)}</del>')
        elif kind == "insert":
            current.append(f'<ins style="{INS_STYLE}">{html.escape(piece)}</ins>')
        elif kind == "gap":
            current.append(piece.replace("…", f'<span style="{GAP_STYLE}">…</span>'))
        else:
            current.append(html.escape(piece))
    if "".join(current).strip():
        paragraphs.append("".join(current).strip())
    return "\n".join(f'<p style="{PARAGRAPH_STYLE}">{p}</p>' for p in paragraphs)


# --- tokens and opcodes ----------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    """Words, ``"\\n"`` and ``"\\n\\n"``; other whitespace only separates words."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(_INVISIBLE.sub("", text).strip()):
        token = match.group()
        if not token.isspace():
            tokens.append(token)
        elif token.count("\n") >= 2:
            tokens.append(PARAGRAPH)
        elif "\n" in token:
            tokens.append(LINE)
    return tokens


def _join(tokens: Sequence[str]) -> str:
    out: list[str] = []
    previous = ""
    for token in tokens:
        if out and previous not in _BREAKS and token not in _BREAKS:
            out.append(" ")
        out.append(token)
        previous = token
    return "".join(out)


Chunk = tuple[bool, tuple[int, int], tuple[int, int]]


def _compare(a: Sequence[str], b: Sequence[str]) -> list[Chunk]:
    """Equal and changed stretches of two token lists.

    Paragraphs are compared first, then words within the paragraphs that differ: cheaper on
    long articles, and a word never matches one in an unrelated paragraph. A changed stretch
    too large to compare word by word (a rewritten article) stays one change.
    """
    units_a, units_b = _paragraphs(a), _paragraphs(b)
    matcher = SequenceMatcher(
        None,
        [tuple(a[s:e]) for s, e, _ in units_a],
        [tuple(b[s:e]) for s, e, _ in units_b],
        autojunk=False,
    )
    pieces: list[Chunk] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            pieces.append((False, _span(units_a, i1, i2, len(a)), _span(units_b, j1, j2, len(b))))
            continue
        for (sa, ea, pa), (sb, eb, pb) in zip(units_a[i1:i2], units_b[j1:j2], strict=True):
            pieces.append((True, (sa, ea), (sb, eb)))
            # The paragraph break after it: the last paragraph of one text has none.
            if (ea == pa) != (eb == pb):
                pieces.append((False, (ea, pa), (eb, pb)))
            elif pa > ea:
                pieces.append((True, (ea, pa), (eb, pb)))
    chunks: list[Chunk] = []
    for is_equal, (i1, i2), (j1, j2) in _merge(pieces):
        if is_equal or (i2 - i1) * (j2 - j1) > WORD_DIFF_LIMIT:
            chunks.append((is_equal, (i1, i2), (j1, j2)))
            continue
        words = SequenceMatcher(None, a[i1:i2], b[j1:j2], autojunk=False)
        chunks += [
            (tag == "equal", (i1 + k1, i1 + k2), (j1 + l1, j1 + l2))
            for tag, k1, k2, l1, l2 in words.get_opcodes()
        ]
    return _merge(chunks)


def _paragraphs(tokens: Sequence[str]) -> list[tuple[int, int, int]]:
    """(start, end, end with the following paragraph break) of each paragraph."""
    units: list[tuple[int, int, int]] = []
    start = 0
    for i, token in enumerate(tokens):
        if token == PARAGRAPH:
            units.append((start, i, i + 1))
            start = i + 1
    if start < len(tokens):
        units.append((start, len(tokens), len(tokens)))
    return units


def _span(
    units: Sequence[tuple[int, int, int]], first: int, last: int, size: int
) -> tuple[int, int]:
    """The token range of paragraphs ``first`` to ``last`` (exclusive), breaks included."""
    if first == last:
        return (units[first][0], units[first][0]) if first < len(units) else (size, size)
    return units[first][0], units[last - 1][2]


def _merge(chunks: Sequence[Chunk]) -> list[Chunk]:
    """Adjacent chunks of the same kind joined, empty ones dropped."""
    merged: list[Chunk] = []
    for is_equal, (i1, i2), (j1, j2) in chunks:
        if i1 == i2 and j1 == j2:
            continue
        if merged and merged[-1][0] == is_equal:
            _, (a1, _), (b1, _) = merged[-1]
            merged[-1] = (is_equal, (a1, i2), (b1, j2))
        else:
            merged.append((is_equal, (i1, i2), (j1, j2)))
    return merged


def _cleanup(chunks: list[Chunk], a: Sequence[str], b: Sequence[str]) -> list[Chunk]:
    """Fold short coincidental matches into the changes around them.

    "[-the cat sat-]{+a dog lay+} on [-the mat-]{+a rug+}" reads worse than one replaced
    phrase. As in diff-match-patch's semantic cleanup, an unchanged stretch between two
    changes is absorbed when it is no longer (in characters) than the change on either side
    of it; here only stretches of one or two words, so that an unchanged sentence or
    paragraph between two edits stays visible. Line and paragraph breaks are never absorbed.
    """

    def size(chunk: Chunk) -> int:
        _, (i1, i2), (j1, j2) = chunk
        return max(_length(a[i1:i2]), _length(b[j1:j2]))

    i = 1
    while i < len(chunks) - 1:
        before, middle, after = chunks[i - 1], chunks[i], chunks[i + 1]
        i1, i2 = middle[1]
        absorb = (
            middle[0]
            and not before[0]
            and not after[0]
            and i2 - i1 <= MAX_FOLDED_WORDS
            and not any(t in _BREAKS for t in a[i1:i2])
            and size(middle) <= min(size(before), size(after))
        )
        if absorb:
            chunks[i - 1 : i + 2] = [
                (False, (before[1][0], after[1][1]), (before[2][0], after[2][1]))
            ]
            i = max(1, i - 1)
        else:
            i += 1
    return chunks


def _length(tokens: Sequence[str]) -> int:
    return len(_join(tokens))


def _ops(items: Sequence[tuple[OpKind, str]]) -> list[DiffOp]:
    """Tokens tagged with their kind, joined into operations with the spaces between them."""
    kinds: list[OpKind] = []
    texts: list[list[str]] = []

    def add(kind: OpKind, text: str) -> None:
        if kinds and kinds[-1] == kind:
            texts[-1].append(text)
        else:
            kinds.append(kind)
            texts.append([text])

    previous: tuple[OpKind, str] | None = None
    for kind, token in items:
        if previous is not None:
            previous_kind, previous_token = previous
            spaced = previous_token not in _BREAKS and token not in _BREAKS
            if spaced and previous_kind == kind:
                add(kind, " ")
            elif spaced and {previous_kind, kind} != {"delete", "insert"}:
                add("equal", " ")
        add(kind, token)
        previous = (kind, token)
    ops = [DiffOp(kind, "".join(text)) for kind, text in zip(kinds, texts, strict=True)]
    return _space_around_breaks(ops)


def _space_around_breaks(ops: list[DiffOp]) -> list[DiffOp]:
    """Keep the words around an inserted or deleted break apart in the other version.

    "end. Next" → "end.\n\nNext" is an inserted paragraph break between two unchanged words;
    the old text still needs the space between them.
    """
    out: list[DiffOp] = []
    for i, op in enumerate(ops):
        out.append(op)
        between_words = (
            op.kind != "equal"
            and op.text.strip() == ""
            and 0 < i < len(ops) - 1
            and ops[i - 1].kind == "equal"
            and ops[i + 1].kind == "equal"
            and not ops[i - 1].text.endswith(_BREAKS)
            and not ops[i + 1].text.startswith(_BREAKS)
        )
        if between_words:
            out.append(DiffOp("equal", " "))
    merged: list[DiffOp] = []
    for op in out:
        if merged and merged[-1].kind == op.kind == "equal":
            merged[-1] = DiffOp("equal", merged[-1].text + op.text)
        else:
            merged.append(op)
    return merged


# --- shortening to hunks ---------------------------------------------------------------------

Segment = tuple[Literal["equal", "delete", "insert", "gap"], str]


def _hunks(ops: Sequence[DiffOp], context: int) -> list[Segment]:
    """The operations with long unchanged stretches cut down to ``context`` words.

    Omitted text becomes a ``gap`` segment whose text is what to print instead: "…" within a
    paragraph, or "…" and paragraph breaks where whole paragraphs were left out.
    """
    if not has_changes(ops):
        return []
    segments: list[Segment] = []
    last = len(ops) - 1
    for index, op in enumerate(ops):
        if op.kind != "equal":
            segments.append((op.kind, op.text))
            continue
        parts = [p for p in _SEPARATED.split(op.text) if p]
        head = _head(parts, context) if index > 0 else 0
        tail = _tail(parts, context) if index < last else len(parts)
        if head >= tail or not any(p not in (" ", *_BREAKS) for p in parts[head:tail]):
            segments.append(("equal", op.text))
            continue
        if head:
            segments.append(("equal", "".join(parts[:head]).rstrip(" ")))
        segments.append(("gap", _gap(parts[head:tail], at_start=index == 0, at_end=index == last)))
        if tail < len(parts):
            segments.append(("equal", "".join(parts[tail:]).lstrip(" ")))
    return segments


def _head(parts: Sequence[str], context: int) -> int:
    """End of the context shown after a change: up to ``context`` words, not past its paragraph."""
    words = 0
    for i, part in enumerate(parts):
        if part == PARAGRAPH:
            return i
        if part not in (" ", LINE):
            if words == context:
                return i
            words += 1
    return len(parts)


def _tail(parts: Sequence[str], context: int) -> int:
    """Start of the context shown before a change.

    Up to ``context`` words of the change's own paragraph; when the change starts a paragraph,
    the end of the previous one instead, so that the reader sees where it is.
    """
    words = 0
    crossed = False
    for i in range(len(parts) - 1, -1, -1):
        part = parts[i]
        if part == PARAGRAPH:
            if words or crossed:
                return i + 1
            crossed = True
        elif part not in (" ", LINE):
            if words == context:
                return i + 1
            words += 1
    return 0


def _gap(omitted: Sequence[str], *, at_start: bool, at_end: bool) -> str:
    """What stands for omitted text: "…" and the paragraph breaks the reader needs.

    Within a paragraph it is " … ". Across paragraphs, a paragraph cut short on the left ends
    in " …", one cut short on the right starts with "… ", and whole paragraphs left out
    become a paragraph of their own reading "…".
    """
    if PARAGRAPH not in omitted:
        return "… " if at_start else " …" if at_end else " … "
    first = omitted.index(PARAGRAPH)
    last = len(omitted) - 1 - omitted[::-1].index(PARAGRAPH)

    def has_words(parts: Sequence[str]) -> bool:
        return any(p not in (" ", *_BREAKS) for p in parts)

    left = "" if at_start or first == 0 else " …"
    right = "" if at_end or last == len(omitted) - 1 else "… "
    if at_start:
        return ("…" + PARAGRAPH if has_words(omitted[:last]) else "") + right
    if at_end:
        return left + (PARAGRAPH + "…" if has_words(omitted[first:]) else "")
    skipped = "…" + PARAGRAPH if has_words(omitted[first:last]) else ""
    return left + PARAGRAPH + skipped + right


def _pieces(segments: Sequence[Segment]) -> Iterator[Segment]:
    """Segments split at line and paragraph breaks, which come out as ``equal`` pieces.

    A deletion or insertion that is nothing but a break is shown as a "¶" (or "↵") mark; an
    inserted break is also kept, a deleted one is not.
    """
    for kind, text in segments:
        if kind in ("equal", "gap"):
            for part in re.split(r"(\n\n|\n)", text):
                if part:
                    yield kind, part
            continue
        if text in _BREAKS:
            yield kind, "¶" if text == PARAGRAPH else "↵"
            if kind == "insert":
                yield "equal", text
            continue
        for part in re.split(r"(\n\n|\n)", text):
            if part in _BREAKS:
                yield "equal", part
            elif part.strip():
                yield kind, part.strip(" ")
