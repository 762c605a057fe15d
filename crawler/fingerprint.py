"""Fingerprints: SHA-256 over an article's normalised content, overall and per field.

Two fetches of an unchanged article must give the same fingerprint even when the site
re-renders it: Unicode forms, invisible characters, whitespace, typographic quotes and dashes,
relative times ("5 menit lalu", "2 hours ago") and the topic's own ignore patterns are
normalised away first. The URL is the article's identity, not its content, and is left out.

Each field hash carries the version of the rules that read and normalised the field
(``RULES``): when a release changes what a field holds for an unchanged page, its version goes
up, and a stored version read by the earlier rules is not taken for an edited one
(:func:`storage.changes.classify` compares only fields read by the same rules).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache

from crawler.article import ExtractedArticle, Fingerprint
from crawler.extraction.text import squash
from storage.changes import with_rules
from storage.templates import LEAD_MARK

__all__ = ["FIELDS", "RULES", "block_hashes", "compile_patterns", "fingerprint", "normalise_text"]

FIELDS = ("title", "lead", "body", "authors", "dates")
# The version of the rules each field is read and normalised by. Raised for a field when a
# release changes what the field holds for a page that did not change. Lead 2: the visible
# standfirst first, its blocks separated by spaces, and the description hashed with it.
# Body 2: link boxes (a short label with one or two linked headlines) are left out.
# Body 3: a name that holds "caption" marks a caption ("imgcaption"), and a block whose link
# starts in lower case (a sentence linked in its middle) is no link box.
# Lead 3: the standfirst ends where the body's first paragraphs begin, by how they start too,
# an element named like a standfirst that holds the body's last paragraph is not one, and the
# lead's blocks have hashes of their own (site templates apply to them).
# Body 4: a block of prose set in a div or section of the article's container, beside the
# paragraphs read (an editor's note, a correction), is body text; a picture with a caption
# in the container, however named (a picture first, then a caption's words), is not; a
# counter set off by separators in a short line ("By Jane Doe | 12 comments") is left out.
# Lead 4: the standfirst search does not stop at a script's text (JSON-LD that holds the
# article's body after the headline), which no reader sees.
# Body 5: a caption set in an element of its own right after a picture with no text (apart
# from the article's paragraphs by its class or an emphasis that holds it all) is not body
# text; a note set in an aside of the article's container is; an inline element of a short
# line that holds only a counter is left out, and view, read and reading-time counters ("Read
# 12 times", "1.2K reads", "3 min read") are counters.
# Lead 5: what holds the headline does not rule a standfirst out by its name ("sidebar",
# "img_container"), a block named like a standfirst that begins the body after a block of
# prose ends the search, a block with a picture or named "sponsor" is no standfirst and one
# named "kicker" may be, more languages' names (vorspann, entradilla, bajada, …), and an h1
# in a breadcrumb is the headline when there is no other; a lead's view, read and
# reading-time counters are counters too (body 5).
# Body 6: a paragraph set wholly in italics right after a picture with no text, once the
# article's text has begun, is the picture's caption unless it is a quotation or the block
# before the picture is set in italics too; a block of prose beside paragraphs that each stand
# in a wrapper of their own (a CMS's content elements) is body text, as one beside paragraphs.
# Body 7: the text run a container opens with, up to its first line break, is read as a
# paragraph (an article whose paragraphs are runs set apart by ``<br>`` opens with one).
# Body 8: an inline counter is left out of a short line only where the line holds more than
# the counter (a counter alone in its line is the body's counter rule's).
RULES = {"title": 1, "lead": 5, "body": 8, "authors": 1, "dates": 1}
# How extraction separates the paragraphs of a body.
BLOCK_SEPARATOR = "\n\n"

_ZERO_WIDTH = dict.fromkeys(
    map(ord, "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"),
    None,
)
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u00b4": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
    }
)
_RELATIVE_TIMES = re.compile(
    r"""
    \b(?:about\s+|around\s+|sekitar\s+)?
    (?:\d+|an?|one|se)\s*
    (?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?
      |detik|menit|jam|hari|minggu|bulan|tahun)
    \s+(?:ago|yang\s+lalu|lalu)\b
    | \bvor\s+\d+\s+(?:Sekunden|Minuten|Stunden|Tagen|Wochen|Monaten|Jahren)\b
    | \bil\s+y\s+a\s+\d+\s+(?:secondes?|minutes?|heures?|jours?)\b
    | \bhace\s+\d+\s+(?:segundos?|minutos?|horas?|d[ií]as?)\b
    | \b(?:just\s+now|baru\s+saja)\b
    """,
    re.IGNORECASE | re.VERBOSE,
)
# A line that is nothing but a counter ("12 Comments", "3.4K shares", "Komentar (5)", "Read
# 12 times", "1.2K reads", "Dibaca 5 kali", "3 min read", "Lesezeit: 4 Min."): the site changes
# it without editing the article (a reading time moves with the article's length, whose edit
# the body shows already).
COUNTER_LINE = re.compile(
    r"""^[^\S\n]*(?:
      \(?\d[\d.,]*[kKmM]?\)?[^\S\n]*
      (?:comments?|replies|responses|shares?|views?|likes?|reactions?|reads?
        |komentar|kommentare?|commentaires?|comentarios?|reacties|kali[^\S\n]+dibaca
        |x[^\S\n]+dibaca|times[^\S\n]+read|aufrufe|mal[^\S\n]+gelesen|vues|lectures?
        |lecturas?|leituras?|letture|visualizaciones|visualiza[cç][oõ]es|visualizzazioni
        |visites|visitas|weergaven|keer[^\S\n]+gelezen|kez[^\S\n]+okundu|okunma
        |min(?:ute)?s?\.?[^\S\n]+(?:read|de[^\S\n]+lecture|de[^\S\n]+lectura
          |de[^\S\n]+leitura|di[^\S\n]+lettura|lesezeit|leestijd|baca)
        |minuten[^\S\n]+lesezeit|menit[^\S\n]+baca)
    | (?:comments?|komentar|kommentare?|shares?|views?|dibaca|aufrufe|vues|visualizaciones)
      [^\S\n]*:?[^\S\n]*\(?\d[\d.,]*[kKmM]?\)?(?:[^\S\n]+kali)?
    | (?:read|viewed|gelesen|lu|le[ií]do|visto)[^\S\n]+\d[\d.,]*[kKmM]?[^\S\n]+
      (?:times|mal|fois|veces|vezes|volte|kali)
    | (?:reading[^\S\n]+time|lesezeit|temps[^\S\n]+de[^\S\n]+lecture
        |tiempo[^\S\n]+de[^\S\n]+lectura|tempo[^\S\n]+de[^\S\n]+leitura|leestijd
        |waktu[^\S\n]+baca)[^\S\n]*:?[^\S\n]*\d+[^\S\n]*
      (?:min(?:ute)?s?|minuten|minutos?|menit)\.?
    )[^\S\n]*$""",
    re.IGNORECASE | re.MULTILINE | re.VERBOSE,
)
# Both tables as (character, replacement) pairs. str.translate looks every character up in a
# dict, which costs more than the rest of normalisation on a long body; looking for each
# character (a fast search) and replacing the few that are there costs a fraction of it, and
# less than half of one regex substitution with a function per match. No replacement is a
# character of the table, so replacing one character after another gives what replacing them
# all at once would.
_REPLACEMENTS = (
    *((chr(code), "") for code in _ZERO_WIDTH),
    *((chr(code), str(value)) for code, value in _TYPOGRAPHY.items()),
)
# ASCII text is already in NFKC; of the replacements only these can apply to it.
_ASCII_REPLACEMENTS = tuple((old, new) for old, new in _REPLACEMENTS if old.isascii())
# COUNTER_LINE for one line at a time: tried at the line's start only, where with
# re.MULTILINE the engine tries ``^`` at every character of the text.
_COUNTER_ALONE = re.compile(COUNTER_LINE.pattern, re.IGNORECASE | re.VERBOSE)


# Every relative time holds one of these words, at most this far (characters before it, after
# it) from the time's ends. Looking for them first (str.find) and running the regex only around
# them is far cheaper than running it over a whole body.
_RELATIVE_WORDS = {
    "ago": (80, 1),
    "lalu": (80, 1),
    "vor": (1, 80),
    "hace": (1, 80),
    "seconde": (80, 2),
    "minute": (80, 2),
    "heure": (80, 2),
    "jour": (80, 2),
    "just": (1, 40),
    "baru": (1, 40),
}


# Words that end a relative time ("5 menit lalu", "2 hours ago") come right after a unit;
# "baru" and "just" start one ("baru saja", "just now").
_ENGLISH_UNITS = ("second", "sec", "minute", "min", "hour", "hr", "day", "week", "month", "year")
_UNITS = (
    *(unit + plural for unit in _ENGLISH_UNITS for plural in ("", "s")),
    *("detik", "menit", "jam", "hari", "minggu", "bulan", "tahun"),
)
_ENDING_WORDS = {"ago", "lalu"}
_STARTING_WORDS = {"baru": "saja", "just": "now"}
# What counts the units of a relative time, besides digits ("se" as in "setahun").
_COUNT_WORDS = ("a", "an", "one", "se")
# The only character whose lowercase is longer than itself (U+0130, "İ" → "i̇"); no other
# lowercases to an ASCII letter but the Kelvin sign (to "k", a letter of none of the words).
_LONGER_IN_LOWERCASE = "\u0130"
# Characters re.IGNORECASE takes for an ASCII letter that they do not lowercase to (but
# "İ"): dotless i and long s ("juſt now" is a relative time whose word is not found).
_CASE_ODDITIES = ("\u0131", "\u017f")
_RELATIVE_WORDS_ASCII = tuple(
    (word, word.encode("ascii"), before, after) for word, (before, after) in _RELATIVE_WORDS.items()
)
# How far before an ending word its unit and count are looked for, after a starting word its
# pair: further away, the regex decides.
_REACH = 80


def _may_hold_relative_time(lowered: str, word: str, at: int, start: int, end: int) -> bool:
    """Whether the occurrence of ``word`` at ``at`` can be part of a relative time in the
    window ``start:end`` of the lowercased text: False only when it plainly cannot (an
    ending word not after a unit, a starting word not before its pair), which spares the
    regex many windows of Indonesian text, where "lalu" and "baru" are common words."""
    window = lowered[start:end]
    if not window.isascii():  # case folding beyond ASCII: let the regex decide
        return True
    if word in _ENDING_WORDS:
        if at == 0 or not lowered[at - 1].isspace():
            return False
        tokens = lowered[start:at].split()
        if word == "lalu" and tokens and tokens[-1] == "yang":
            tokens.pop()
        return bool(tokens) and tokens[-1].endswith(_UNITS)
    pair = _STARTING_WORDS.get(word)
    if pair is not None:
        rest = lowered[at + len(word) : end]
        return rest[:1].isspace() and rest.lstrip().startswith(pair)
    return True


def _is_word_character(character: str) -> bool:
    """What ``\\w`` matches."""
    return character.isalnum() or character == "_"


# A word that ends with a unit, and which unit (no unit ends another); a word that ends with
# what counts a unit (``\\d``, or a word of _COUNT_WORDS that is no end of a longer word).
_UNIT_LENGTHS = sorted({len(unit) for unit in _UNITS})
_UNIT_SET = frozenset(_UNITS)
_ENDS_WITH_COUNT = re.compile(r"(?:\d|(?<!\w)(?:" + "|".join(_COUNT_WORDS) + r"))\Z")


def _may_match_at(text: str, lowered: str, word: str, at: int) -> bool:
    """Whether a match of ``_RELATIVE_TIMES`` may hold the occurrence of ``word`` at ``at``
    where the regex puts it: an ending word after a unit that follows a count ("5 menit
    lalu", "setahun lalu", "a day ago"; not "sama tahun lalu"), a starting word that starts
    a word and is followed by its pair ("baru saja"; not "terbaru saja"). False only when no
    match can, looking no further than :data:`_REACH` characters from it, in a text that
    holds none of :data:`_CASE_ODDITIES` and lowercases to ``lowered``, of the same length."""
    after = at + len(word)
    if word in _ENDING_WORDS:
        if at == 0 or not text[at - 1].isspace():
            return False
        if after < len(text) and _is_word_character(text[after]):
            return False
        start = at - _REACH if at > _REACH else 0
        # The last three words before it; one that starts the reach may be the end of a
        # longer word: only the words after it are whole.
        tokens = lowered[start:at].rsplit(None, 3)
        whole = len(tokens) if start == 0 or text[start - 1].isspace() else len(tokens) - 1
        whole = min(whole, 3)
        if word == "lalu" and tokens and tokens[-1] == "yang":
            tokens.pop()
            whole -= 1
        if whole < 1:
            return bool(tokens) or start > 0
        unit = tokens[-1]
        if not unit.endswith(_UNITS):
            return False
        for length in _UNIT_LENGTHS:
            if unit[-length:] in _UNIT_SET:
                count = unit[:-length]
                if count:
                    return _ENDS_WITH_COUNT.search(count) is not None
                return whole < 2 or _ENDS_WITH_COUNT.search(tokens[-2]) is not None
        return True  # not reached: the word ends with a unit
    pair = _STARTING_WORDS.get(word)
    if pair is not None:
        if at > 0 and _is_word_character(text[at - 1]):
            return False
        rest = lowered[after : after + _REACH]
        if not rest[:1].isspace():
            return False
        following = rest.lstrip()
        if len(following) <= len(pair) and after + _REACH < len(text):
            return True
        if not following.startswith(pair):
            return False
        end = after + len(rest) - len(following) + len(pair)
        return end >= len(text) or not _is_word_character(text[end])
    return True


def _drop_relative_times(text: str) -> str:
    """``_RELATIVE_TIMES`` replaced by a space, the regex run only near its words, and only
    when one of them is where the regex would put it."""
    if _LONGER_IN_LOWERCASE in text:  # lowercasing changes the length: positions would not match
        return _RELATIVE_TIMES.sub(" ", text)
    # Which words the text holds, looked for in its UTF-8 bytes with ASCII letters lowercased:
    # no other character lowercases to a letter of these words, so they are there exactly
    # when they are in the lowercased text, and lowercasing bytes costs far less.
    folded = text.encode("utf-8", "surrogatepass").lower()
    words = [
        (word, before, after)
        for word, ascii_word, before, after in _RELATIVE_WORDS_ASCII
        if ascii_word in folded
    ]
    if not words:
        return text
    lowered = text.lower()
    plain = not any(oddity in text for oddity in _CASE_ODDITIES)
    if plain and not _may_match_anywhere(text, lowered, words):
        return text
    # The windows around the words, merged as they always were; the regex searches those
    # that hold a word a match may hold.
    windows: list[tuple[int, int, bool]] = []
    for word, before, after in words:
        for at in _occurrences(lowered, word):
            start, end = max(0, at - before), min(len(text), at + len(word) + after)
            if _may_hold_relative_time(lowered, word, at, start, end):
                windows.append((start, end, not plain or _may_match_at(text, lowered, word, at)))
    if not windows:
        return text
    windows.sort()
    merged = [windows[0]]
    for start, end, holds in windows[1:]:
        last_start, last_end, last_holds = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end), last_holds or holds)
        else:
            merged.append((start, end, holds))
    pieces: list[str] = []
    done = 0
    for start, end, holds in merged:
        if not holds:
            continue
        for match in _RELATIVE_TIMES.finditer(text, max(start, done), end):
            # A match that runs into the window's end may be cut short by it; the next
            # window (which then overlaps this one, merged) or the text's end decides.
            if match.end() == end and end != len(text):
                continue
            pieces.append(text[done : match.start()])
            pieces.append(" ")
            done = match.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _may_match_anywhere(text: str, lowered: str, words: list[tuple[str, int, int]]) -> bool:
    """Whether a match may hold one of the occurrences of ``words`` (:func:`_may_match_at`)."""
    for word, _before, _after in words:
        at = lowered.find(word)
        while at != -1:
            if _may_match_at(text, lowered, word, at):
                return True
            at = lowered.find(word, at + 1)
    return False


def _occurrences(lowered: str, word: str) -> Iterator[int]:
    """Where ``word`` starts in ``lowered``, overlapping occurrences too."""
    at = lowered.find(word)
    while at != -1:
        yield at
        at = lowered.find(word, at + 1)


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise ValueError(
            f"The ignore pattern {pattern!r} is not a valid regular expression: {exc}"
        ) from exc


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """Compile ignore patterns, saying which one is invalid (ValueError) if any is."""
    return [_compile(p) for p in patterns]


def normalise_text(text: str, ignore_patterns: Sequence[str] = ()) -> str:
    """Text as the fingerprint sees it.

    Unicode NFKC, zero-width characters and soft hyphens dropped, typographic quotes and
    dashes made plain, lines that are only a counter ("12 Comments") and relative times
    removed, ``ignore_patterns`` (regexes) removed, and
    whitespace collapsed to single spaces.
    """
    return " ".join(_normalise_in_lines(text, ignore_patterns).split())


def _normalise_in_lines(text: str, ignore_patterns: Sequence[str]) -> str:
    """:func:`normalise_text` but for collapsing whitespace: line breaks are still there."""
    ascii_only = text.isascii()
    if not ascii_only:
        text = unicodedata.normalize("NFKC", text)
    for old, new in _ASCII_REPLACEMENTS if ascii_only else _REPLACEMENTS:
        if old in text:
            text = text.replace(old, new)
    # An empty line is no counter (the blank lines between paragraphs are not tried).
    text = "\n".join(
        [" " if line and _COUNTER_ALONE.match(line) else line for line in text.split("\n")]
    )
    text = _drop_relative_times(text)
    for pattern in compile_patterns(ignore_patterns):
        text = pattern.sub(" ", text)
    return text


def _normalise_date(value: str | None) -> str:
    if not value:
        return ""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return normalise_text(text)
    if moment.tzinfo is None:
        return moment.isoformat()
    return moment.astimezone(UTC).isoformat()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def block_hashes(body: str, ignore_patterns: Sequence[str] = ()) -> tuple[str, ...]:
    """One hash per paragraph of ``body`` (paragraphs are separated by blank lines), of its
    text as the fingerprint sees it: the first 16 hex digits of its SHA-256. Paragraphs that
    normalise to nothing have none.

    Sixteen digits (64 bits) keep a version's list and a site's table small; two different
    paragraphs of one site share a hash with odds far below one in a billion.
    """
    return _collapsed_blocks(_normalise_in_lines(body, ignore_patterns))[1]


def _block_hashes(normalised: str) -> tuple[str, ...]:
    """:func:`block_hashes` of a body normalised but for collapsing whitespace."""
    return _collapsed_blocks(normalised)[1]


def _collapsed_blocks(normalised: str) -> tuple[str, tuple[str, ...]]:
    """A body normalised but for collapsing whitespace, collapsed (what ``\\s+`` → " " and
    strip() give), and :func:`block_hashes` of it: the body is normalised once for its hash
    and its paragraphs' (a relative time or an ignore pattern that spans two paragraphs joins
    them, alike on every read). The paragraphs are separated by whitespace, so the collapsed
    body is their collapsed texts joined by spaces."""
    texts = []
    hashes = []
    for paragraph in normalised.split(BLOCK_SEPARATOR):
        text = squash(paragraph)
        if text:
            texts.append(text)
            hashes.append(_sha256(text)[:16])
    return " ".join(texts), tuple(hashes)


def fingerprint(article: ExtractedArticle, ignore_patterns: Sequence[str] = ()) -> Fingerprint:
    """SHA-256 fingerprint of the article's content, with one hash per field, and one per
    block of the lead and paragraph of the body (:func:`block_hashes`; the lead's first,
    marked with :data:`storage.templates.LEAD_MARK`: the paragraphs of the visible
    standfirst, then the description when it is hashed with them).

    Fields: ``title``, ``lead`` (the visible standfirst and the description, when they
    differ: a change to either is a change of the lead), ``body``, ``authors``
    (order-insensitive), ``dates`` (the publication time, compared as an instant when it is
    ISO 8601). The modification time is
    kept with each version but left out: sites move it without editing the article (a
    re-save, a republish), and with an edit it says nothing the edit itself does not.

    The body's hash is over the whole body normalised at once, as it always was, so that
    versions stored earlier compare equal to an unchanged page; the paragraph hashes come
    from the same normalisation, cut at the paragraphs.
    """
    authors = sorted({normalise_text(a) for a in article.authors} - {""})
    body, body_blocks = _collapsed_blocks(_normalise_in_lines(article.body, ignore_patterns))
    lead, lead_blocks = _collapsed_blocks(_normalise_in_lines(article.lead, ignore_patterns))
    description = normalise_text(article.description, ignore_patterns)
    if description and description != lead:
        lead = f"{lead}\n{description}"
        lead_blocks += (_sha256(description)[:16],)
    values = {
        "title": normalise_text(article.title, ignore_patterns),
        "lead": lead,
        "body": body,
        "authors": "\n".join(authors),
        "dates": _normalise_date(article.published),
    }
    fields = {
        name: with_rules(_sha256(f"{name}\x1f{values[name]}"), RULES[name]) for name in FIELDS
    }
    digest = _sha256("\x1e".join(f"{name}\x1f{fields[name]}" for name in FIELDS))
    blocks = tuple(LEAD_MARK + block for block in lead_blocks) + body_blocks
    return Fingerprint(digest=digest, fields=fields, blocks=blocks)
