"""Bytes → tree: decoding by BOM, declared charset or a guess, and parsing into elements.

A page that is empty, binary or not HTML at all raises :class:`ExtractionError` here, before
anything looks for an article in it.
"""

from __future__ import annotations

import logging
import re
import threading

import lxml.etree
import lxml.html
from w3lib.encoding import html_body_declared_encoding, html_to_unicode

logger = logging.getLogger(__name__)


class ExtractionError(ValueError):
    """The page holds no article that could be extracted."""


_BINARY_SIGNATURES = (
    b"%PDF",
    b"PK\x03\x04",
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"\x1f\x8b",
    b"RIFF",
    b"OggS",
    b"ID3",
    b"\x00\x00\x00",
)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])


def parse(html: str | bytes, url: str, *, encoding: str | None = None) -> lxml.html.HtmlElement:
    """The page as a tree, which extraction and the search for the whole article read without
    changing it: reading a page parses it once.

    ``html`` may be bytes, decoded with ``encoding`` when given, else by BOM, declared
    charset, or UTF-8 with a windows-1252 fallback. Raises :class:`ExtractionError` for an
    empty, binary or unreadable page.
    """
    return _parse_text(_decode(html, encoding, url), url)


def _decode(html: str | bytes, encoding: str | None, url: str) -> str:
    maybe_control = True
    if isinstance(html, str):
        text = html
    else:
        head = html[:1024]
        if not html.strip():
            raise ExtractionError(f"No article text found at URL: {url} (the page is empty)")
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = html.decode("utf-16", errors="replace")
        elif head.lstrip().startswith(_BINARY_SIGNATURES) or b"\x00" in head:
            raise ExtractionError(
                f"No article text found at URL: {url} (the response is binary, not HTML)"
            )
        else:
            declared = encoding or html_body_declared_encoding(html)
            if declared and _is_legacy(declared) and _is_utf8_text(html):
                # Servers and pages often keep a stale legacy charset for UTF-8 content;
                # real windows-1252 or GBK text is almost never valid UTF-8 as well.
                declared = "utf-8"
            text = (
                _decode_as(html, declared, url)
                if declared
                else html_to_unicode(None, html, auto_detect_fun=_guess_encoding)[1]
            )
            if declared and declared.lower().replace("_", "-") in ("utf-8", "utf8"):
                # UTF-8 text holds a control character only where its bytes hold that byte;
                # looking for the bytes costs far less than the regex.
                maybe_control = len(html.translate(None, _CONTROL_BYTES)) != len(html)
    text = _XML_DECLARATION.sub("", text, count=1)
    return _CONTROL_CHARS.sub("", text) if maybe_control else text


def _decode_as(html: bytes, encoding: str, url: str) -> str:
    try:
        return html_to_unicode(f"text/html; charset={encoding}", html)[1]
    except LookupError:
        logger.warning("Unknown encoding %r for %s; detecting it instead", encoding, url)
        return html_to_unicode(None, html, auto_detect_fun=_guess_encoding)[1]


def _is_legacy(encoding: str) -> bool:
    name = encoding.lower().replace("_", "-")
    return not name.startswith(("utf", "ucs"))


def _is_utf8_text(body: bytes) -> bool:
    if body.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _guess_encoding(body: bytes) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


# Every element of a parsed page an ``HtmlElement``, looked up in C. lxml.html's own lookup
# (special classes for forms and their fields, which reading does not use) is a Python call
# for each element the code touches, a few per cent of the time reading a page takes.
HTML_ELEMENTS = lxml.etree.ElementDefaultClassLookup(
    element=lxml.html.HtmlElement,
    comment=lxml.html.HtmlComment,
    pi=lxml.html.HtmlProcessingInstruction,
    entity=lxml.html.HtmlEntity,
)


def html_parser(**options: bool) -> lxml.html.HTMLParser:
    """An HTML parser (``options`` as :class:`lxml.html.HTMLParser` takes them) whose
    elements are all :class:`lxml.html.HtmlElement`, with their methods."""
    parser = lxml.html.HTMLParser(**options)
    parser.set_element_class_lookup(HTML_ELEMENTS)
    return parser


# One parser for each thread, made once: a parser reads one document at a time, and keeps
# nothing of one for the next.
_parsers = threading.local()


def _parse_text(text: str, url: str) -> lxml.html.HtmlElement:
    if not text.strip():
        raise ExtractionError(f"No article text found at URL: {url} (the page is empty)")
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = html_parser(remove_comments=True, remove_pis=True)
    try:
        tree = lxml.html.document_fromstring(text, parser=parser)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise ExtractionError(
            f"No article text found at URL: {url} (the HTML could not be parsed: {exc})"
        ) from exc
    if tree is None:  # pragma: no cover - lxml raises instead on current releases
        raise ExtractionError(f"No article text found at URL: {url} (the page is empty)")
    return tree
