"""HTML → :class:`~crawler.article.Article`: metadata, lead and main body of one article page.

Where each part comes from, first source that has it wins:

- title: JSON-LD ``headline``, the profile's title selectors, ``og:title`` (minus the site's
  suffix), the page's ``h1``, ``<title>``;
- authors, dates, lead (``description``), canonical URL: JSON-LD ``NewsArticle``/``Article``
  (also inside ``@graph`` and lists), then ``<meta>`` tags, then the markup;
- body: the profile's body selectors with its noise rules when the profile has them and they
  match, otherwise trafilatura on the page with generic noise (navigation, share bars,
  related lists, newsletter boxes, captions, comment widgets) pruned first.

The body is the article's paragraphs in page order, separated by blank lines. A page without
article text (empty, binary, a listing) raises :class:`ExtractionError`.
"""

from __future__ import annotations

import copy
import html as html_lib
import itertools
import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import lxml.etree
import lxml.html
from lxml.cssselect import CSSSelector
from w3lib.encoding import html_body_declared_encoding, html_to_unicode

from crawler.article import Article
from crawler.fingerprint import COUNTER_LINE
from crawler.profiles import SiteProfile, compiled_selector, profile_for
from crawler.urls import canonical_url, may_turn_page, same_site

logger = logging.getLogger(__name__)

__all__ = [
    "ExtractionError",
    "extract",
    "extract_tree",
    "parse",
    "whole_article_url",
    "whole_article_url_of",
]


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
_TAGS = re.compile(r"<[^>]+>")

_ARTICLE_TYPES = frozenset(
    {
        "article",
        "newsarticle",
        "reportagenewsarticle",
        "analysisnewsarticle",
        "opinionnewsarticle",
        "backgroundnewsarticle",
        "reviewnewsarticle",
        "askpublicnewsarticle",
        "blogposting",
        "liveblogposting",
        "socialmediaposting",
        "report",
        "techarticle",
        "scholarlyarticle",
        "satiricalarticle",
        "advertisercontentarticle",
    }
)

# Elements that never hold article text.
_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "iframe",
    "form",
    "button",
    "select",
    "nav",
    "footer",
    "aside",
    "figure",
    "figcaption",
    "dialog",
    "menu",
)
_DROP_ROLES = frozenset(
    {
        "navigation",
        "complementary",
        "contentinfo",
        "banner",
        "search",
        "dialog",
        "alertdialog",
        "menu",
        "menubar",
        "toolbar",
    }
)
# Words in class or id names that mark boilerplate blocks (matched as whole name parts).
_NOISE_WORDS = frozenset(
    {
        "share",
        "sharing",
        "sharebar",
        "social",
        "related",
        "newsletter",
        "subscribe",
        "subscription",
        "trending",
        "popular",
        "promo",
        "promoted",
        "sponsored",
        "advert",
        "advertisement",
        "advertising",
        "ad",
        "ads",
        "adslot",
        "adunit",
        "banner",
        "sidebar",
        "breadcrumb",
        "breadcrumbs",
        "comment",
        "comments",
        "disqus",
        "recommended",
        "recommendation",
        "recommendations",
        "outbrain",
        "taboola",
        "caption",
        "byline",
        "widget",
        "masthead",
        "toolbar",
        "pagination",
        "pager",
        "cookie",
        "consent",
        "modal",
        "popup",
        "readmore",
        "bacajuga",
        "tags",
        "nav",
        "navbar",
        "menu",
        "footer",
    }
)
_NOISE_PAIRS = frozenset(
    {
        ("read", "more"),
        ("read", "also"),
        ("baca", "juga"),
        ("see", "also"),
        ("most", "read"),
        ("most", "popular"),
        ("more", "stories"),
        ("sr", "only"),
        ("visually", "hidden"),
        ("screen", "reader"),
    }
)
# A noise-named element is kept when it holds this share of the page's text or more: it is
# then a wrapper around the article, not a box beside it.
_WRAPPER_SHARE = 0.4
_NAME_PARTS = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")

_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "blockquote",
        "pre",
        "table",
        "tr",
        "td",
        "th",
        "br",
        "hr",
        "figure",
        "header",
        "footer",
        "center",
    }
)

_INDONESIAN_MONTHS = {
    "januari": 1,
    "februari": 2,
    "maret": 3,
    "april": 4,
    "mei": 5,
    "juni": 6,
    "juli": 7,
    "agustus": 8,
    "september": 9,
    "oktober": 10,
    "november": 11,
    "desember": 12,
}
_INDONESIAN_ZONES = {"wib": 7, "wita": 8, "wit": 9}
_INDONESIAN_DATE = re.compile(
    r"(\d{1,2})\s+([a-z]+)\s+(\d{4})(?:[,\s]+(\d{1,2})[:.](\d{2})(?:\s*(wib|wita|wit))?)?",
    re.IGNORECASE,
)
_PAGINATION_TEXT = re.compile(r"\bHalaman\s+\d+\s*/\s*\d+\b|\bPage\s+\d+\s+of\s+\d+\b", re.I)

# Paragraphs that only point to other articles ("Baca juga: ...", "Read more: ...").
_READ_ALSO = re.compile(
    r"^\W*(?:baca\s+juga|baca\s+pula|lihat\s+juga|simak\s+juga|read\s+more|read\s+also|"
    r"also\s+read|see\s+also|related|more\s+on\s+this|lesen\s+sie\s+auch|mehr\s+zum\s+thema|"
    r"lire\s+aussi|lee\s+tambi[eé]n)\b\s*[:：»>|-]",
    re.IGNORECASE,
)
_READ_ALSO_MAX_WORDS = 30

# Pages without any sign of being an article need this many words of main text.
_MIN_WORDS_WITHOUT_ARTICLE_SIGNS = 50


# --------------------------------------------------------------------------- decoding


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


def _parse(text: str, url: str) -> lxml.html.HtmlElement:
    if not text.strip():
        raise ExtractionError(f"No article text found at URL: {url} (the page is empty)")
    parser = html_parser(remove_comments=True, remove_pis=True)
    try:
        tree = lxml.html.document_fromstring(text, parser=parser)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise ExtractionError(
            f"No article text found at URL: {url} (the HTML could not be parsed: {exc})"
        ) from exc
    if tree is None:  # pragma: no cover - lxml raises instead on current releases
        raise ExtractionError(f"No article text found at URL: {url} (the page is empty)")
    return tree


# --------------------------------------------------------------------------- text helpers


def _squash(text: str) -> str:
    """Whitespace collapsed to single spaces, ends stripped (``str.split`` splits on exactly
    the characters ``\\s`` matches, several times faster than a regex substitution)."""
    return " ".join(text.split())


def _clean(text: str | None) -> str:
    if not text:
        return ""
    return _squash(html_lib.unescape(_TAGS.sub(" ", text)))


def _text_of(element: lxml.html.HtmlElement) -> str:
    return _squash(element.text_content())


def _select(tree: lxml.html.HtmlElement, selector: str) -> list[lxml.html.HtmlElement]:
    compiled = compiled_selector(selector)
    return [] if compiled is None else list(compiled(tree))


@lru_cache(maxsize=256)
def _css_union(selectors: tuple[str, ...]) -> CSSSelector | None:
    """One selector matching what any of ``selectors`` matches: one pass over the tree."""
    valid = [selector for selector in selectors if compiled_selector(selector) is not None]
    return CSSSelector(", ".join(valid), translator="html") if valid else None


def _select_any(
    tree: lxml.html.HtmlElement, selectors: tuple[str, ...]
) -> list[lxml.html.HtmlElement]:
    """The elements any of ``selectors`` matches, in document order."""
    compiled = _css_union(selectors)
    return [] if compiled is None else list(compiled(tree))


def _blocks(element: lxml.html.HtmlElement) -> list[str]:
    """The element's text split into paragraphs at block-level elements, in document order."""
    paragraphs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        text = _squash("".join(current))
        if text:
            paragraphs.append(text)
        current.clear()

    def walk(node: lxml.html.HtmlElement) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        block = tag.lower() in _BLOCK_TAGS
        if block:
            flush()
        if isinstance(node.tag, str) and node.text:
            current.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                current.append(child.tail)
        if block:
            flush()

    walk(element)
    flush()
    return paragraphs


# --------------------------------------------------------------------------- JSON-LD


# A JSON-LD block wrapped in a CDATA section or an HTML comment, as some templates do.
_LD_WRAPPERS = re.compile(r"^\s*(?:<!\[CDATA\[|<!--)|(?:\]\]>|-->)\s*$")
_LD_WRAPPER_OPENINGS = ("<![CDATA[", "<!--")
_LD_WRAPPER_CLOSINGS = ("]]>", "-->")


def _json_ld_objects(tree: lxml.html.HtmlElement) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for script in tree.iter("script"):
        if "ld+json" not in (script.get("type") or "").lower():
            continue
        raw = (script.text or "").strip()
        if not raw:
            continue
        if raw.startswith(_LD_WRAPPER_OPENINGS) or raw.endswith(_LD_WRAPPER_CLOSINGS):
            # Only then can the regex match (``raw`` is stripped), which spares it a scan of
            # the whole block.
            raw = _LD_WRAPPERS.sub("", raw)
        try:
            data = json.loads(raw, strict=False)
        except ValueError:
            try:
                data = json.loads(re.sub(r",\s*([}\]])", r"\1", raw), strict=False)
            except ValueError:
                logger.debug("Skipping a JSON-LD block that is not valid JSON")
                continue
        objects.extend(_flatten_json_ld(data))
    return objects


def _flatten_json_ld(data: object) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten_json_ld(item)
    elif isinstance(data, dict):
        yield data
        graph = data.get("@graph")
        if graph is not None:
            yield from _flatten_json_ld(graph)
        for key in ("mainEntity", "mainEntityOfPage"):
            nested = data.get(key)
            if isinstance(nested, dict) and "@type" in nested:
                yield from _flatten_json_ld(nested)


def _types(obj: dict[str, Any]) -> set[str]:
    value = obj.get("@type", ())
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return {str(v).rsplit("/", 1)[-1].lower() for v in values}


def _article_object(objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    candidates = [o for o in objects if _types(o) & _ARTICLE_TYPES]
    if not candidates:
        return None
    # The page's own article carries a headline; a news type is the most specific claim.
    candidates.sort(
        key=lambda o: (
            not o.get("headline"),
            not any(t.endswith("newsarticle") for t in _types(o)),
        )
    )
    return candidates[0]


def _ld_text(value: object) -> str:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, list) and value:
        return _ld_text(value[0])
    if isinstance(value, dict):
        return _ld_text(value.get("@value") or value.get("name"))
    return ""


def _ld_names(value: object) -> list[str]:
    if isinstance(value, str):
        return _split_authors(_clean(value))
    if isinstance(value, list):
        return [name for item in value for name in _ld_names(item)]
    if isinstance(value, dict):
        name = value.get("name")
        if isinstance(name, str | list | dict):
            return _ld_names(name)
    return []


def _ld_url(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return _ld_url(value.get("@id") or value.get("url"))
    if isinstance(value, list) and value:
        return _ld_url(value[0])
    return ""


# --------------------------------------------------------------------------- metadata


def _meta_tags(tree: lxml.html.HtmlElement) -> dict[str, str]:
    found: dict[str, str] = {}
    for meta in tree.iter("meta"):
        key = meta.get("property") or meta.get("name") or meta.get("itemprop")
        content = meta.get("content")
        if key and content and content.strip():
            found.setdefault(key.strip().lower(), content.strip())
    return found


def _strip_suffix(title: str, suffixes: Iterable[str]) -> str:
    for suffix in suffixes:
        if suffix and title.lower().endswith(suffix.lower()) and len(title) > len(suffix):
            return title[: -len(suffix)].strip()
    return title


_TITLE_SEPARATORS = (" - ", " | ", " – ", " — ", " :: ", " · ")


def _site_suffixes(
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    profile: SiteProfile,
) -> list[str]:
    """Endings that name the site rather than the article: " - Tribunnews.com", " | Site"."""
    suffixes = list(profile.title_suffixes)
    names = [meta.get("og:site_name"), meta.get("application-name")]
    if ld:
        names.append(_ld_text(ld.get("publisher")))
    for name in names:
        if name and len(name) <= 60:
            suffixes.extend(f"{separator}{name.strip()}" for separator in _TITLE_SEPARATORS)
    return suffixes


def _title(
    tree: lxml.html.HtmlElement,
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    profile: SiteProfile,
) -> str:
    suffixes = _site_suffixes(ld, meta, profile)
    if ld:
        headline = _ld_text(ld.get("headline")) or _ld_text(ld.get("name"))
        if headline:
            return _strip_suffix(headline, suffixes)
    for selector in profile.title_selectors:
        for element in _select(tree, selector):
            text = _text_of(element)
            if text:
                return text
    for key in ("og:title", "twitter:title"):
        if meta.get(key):
            return _strip_suffix(_clean(meta[key]), suffixes)
    for h1 in tree.iter("h1"):
        text = _text_of(h1)
        if text:
            return text
    titles = tree.xpath("//title")
    if titles:
        return _strip_suffix(_text_of(titles[0]), suffixes)
    return ""


def _split_authors(text: str) -> list[str]:
    text = re.sub(r"^(?:by|oleh|von|par|por|di)\s+", "", text.strip(), flags=re.IGNORECASE)
    parts = re.split(r"\s*(?:,|;|&|\band\b|\bdan\b|\bund\b)\s*", text)
    return [p.strip() for p in parts if p.strip() and not p.strip().startswith("http")]


def _authors(
    tree: lxml.html.HtmlElement,
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    profile: SiteProfile,
) -> tuple[str, ...]:
    names: list[str] = []
    if ld:
        names = _ld_names(ld.get("author") or ld.get("creator"))
    if not names:
        for selector in profile.author_selectors:
            names = [t for t in (_text_of(e) for e in _select(tree, selector)) if t]
            if names:
                break
    if not names:
        for key in ("author", "article:author", "dc.creator", "parsely-author", "sailthru.author"):
            value = meta.get(key)
            if value and not value.startswith("http"):
                names = _split_authors(value)
                break
    unique: list[str] = []
    for name in names:
        if name not in unique:
            unique.append(name)
    return tuple(unique)


_PUBLISHED_META = (
    "article:published_time",
    "og:article:published_time",
    "datepublished",
    "article.published",
    "published_time",
    "pubdate",
    "publishdate",
    "publish-date",
    "parsely-pub-date",
    "sailthru.date",
    "dc.date",
    "dc.date.issued",
    "dcterms.created",
    "date",
)
_MODIFIED_META = (
    "article:modified_time",
    "og:article:modified_time",
    "og:updated_time",
    "datemodified",
    "article.updated",
    "last-modified",
    "dcterms.modified",
)


def _indonesian_date(text: str) -> str | None:
    match = _INDONESIAN_DATE.search(text)
    if not match or match.group(2).lower() not in _INDONESIAN_MONTHS:
        return None
    day, month_name, year, hour, minute, zone = match.groups()
    month = _INDONESIAN_MONTHS[month_name.lower()]
    try:
        if hour is None:
            return datetime(int(year), month, int(day), tzinfo=UTC).date().isoformat()
        offset = timezone(timedelta(hours=_INDONESIAN_ZONES.get((zone or "wib").lower(), 7)))
        return datetime(
            int(year), month, int(day), int(hour), int(minute), tzinfo=offset
        ).isoformat()
    except ValueError:
        return None


def _dates(
    tree: lxml.html.HtmlElement,
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    profile: SiteProfile,
) -> tuple[str | None, str | None]:
    published = _ld_text(ld.get("datePublished") or ld.get("dateCreated")) if ld else ""
    modified = _ld_text(ld.get("dateModified")) if ld else ""
    published = published or next((meta[k] for k in _PUBLISHED_META if meta.get(k)), "")
    modified = modified or next((meta[k] for k in _MODIFIED_META if meta.get(k)), "")
    if not published:
        for selector in profile.published_selectors:
            for element in _select(tree, selector):
                published = element.get("datetime") or _indonesian_date(_text_of(element)) or ""
                if published:
                    break
            if published:
                break
    if not published:
        for element in tree.xpath("//time[@datetime] | //*[@itemprop='datePublished']"):
            published = (element.get("datetime") or element.get("content") or "").strip()
            if published:
                break
    return published or None, modified or None


_LEAD_WORDS = frozenset(
    {
        "lead",
        "standfirst",
        "summary",
        "teaser",
        "intro",
        "excerpt",
        "dek",
        "deck",
        "subtitle",
        "subheadline",
        "subhead",
        "sapo",
        "chapo",
        "abstract",
        "description",
        "strapline",
    }
)
_LEAD_SKIP = frozenset({"nav", "footer", "aside", "figure", "figcaption", "li", "a"})
# Name parts of media blocks, whose "description" is a caption rather than a standfirst.
_LEAD_MEDIA_WORDS = frozenset(
    {"caption", "credit", "image", "img", "photo", "picture", "media", "figure", "video", "gallery"}
)


def _prose_of(element: lxml.html.HtmlElement) -> str:
    """The element's text without scripts, styles and embedded media captions."""
    piece = copy.deepcopy(element)
    for inner in list(
        piece.iter("script", "style", "noscript", "template", "figure", "figcaption")
    ):
        if inner is not piece:
            inner.drop_tree()
    return _text_of(piece)


@lru_cache(maxsize=4096)
def _name_words(classes: str, identifier: str) -> frozenset[str]:
    """Every word of the class names and the id, in one set."""
    return frozenset(part for name in _words_of_names(classes, identifier) for part in name)


@lru_cache(maxsize=4096)
def _named_like_lead(classes: str, identifier: str) -> bool:
    """Whether class names and id say standfirst (and not a media block's caption)."""
    words = _name_words(classes, identifier)
    return bool(words & _LEAD_WORDS) and not words & _LEAD_MEDIA_WORDS


_NAMED_BELOW = lxml.etree.XPath("descendant::*[@class or @id]")
_NAMED_AFTER = lxml.etree.XPath("following-sibling::*/descendant-or-self::*[@class or @id]")


def _named_after(
    headline: lxml.html.HtmlElement, scope: lxml.html.HtmlElement
) -> Iterator[lxml.html.HtmlElement]:
    """The elements with a class or an id that come after ``headline`` in document order
    and inside ``scope`` (its descendants, then what follows it and each of its ancestors
    below ``scope``): the only ones that can be named like a standfirst."""
    yield from _NAMED_BELOW(headline)
    node = headline
    while node is not scope and node is not None:
        yield from _NAMED_AFTER(node)  # in document order: one query for all its siblings
        node = node.getparent()


def _visible_lead(tree: lxml.html.HtmlElement, profile: SiteProfile) -> str:
    """The standfirst shown under the headline: an element named like one, in the headline's
    block (the h1's grandparent) and after the h1."""
    body = tree.find("body")
    headline = next(iter(body.iter("h1")), None) if body is not None else None
    if body is None or headline is None:
        return ""
    parent = headline.getparent()
    scope = parent.getparent() if parent is not None and parent.getparent() is not None else parent
    if scope is None:
        return ""
    noise: set[lxml.html.HtmlElement] | None = None
    for element in _named_after(headline, scope):
        if not _named_like_lead(element.get("class") or "", element.get("id") or ""):
            continue
        if element.tag.lower() in _LEAD_SKIP or element.tag.lower() in ("script", "style"):
            continue
        if noise is None:
            noise = set(_select_any(body, profile.noise_selectors))
        if element in noise or any(
            a in noise
            or (isinstance(a.tag, str) and a.tag.lower() in _LEAD_SKIP)
            or _name_words(a.get("class") or "", a.get("id") or "") & _LEAD_MEDIA_WORDS
            for a in element.iterancestors()
        ):
            continue
        text = _prose_of(element)
        if 40 <= len(text) <= 1000:
            return text
    return ""


def _lead(
    tree: lxml.html.HtmlElement,
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    profile: SiteProfile,
) -> str:
    """The lead (standfirst) as readers see it, else as the metadata describes the article.

    The visible standfirst comes first: editors change it on the page, while descriptions
    are often truncated or written for search engines and are not always updated with it.
    """
    for selector in profile.lead_selectors:
        for element in _select(tree, selector):
            text = _text_of(element)
            if text:
                return text
    visible = _visible_lead(tree, profile)
    if visible:
        return visible
    if ld:
        description = _ld_text(ld.get("description")) or _ld_text(ld.get("abstract"))
        if description:
            return description
    for key in ("og:description", "twitter:description", "description"):
        if meta.get(key):
            return _clean(meta[key])
    return ""


def _canonical(
    tree: lxml.html.HtmlElement, ld: dict[str, Any] | None, meta: dict[str, str], url: str
) -> str:
    candidates: list[str] = [
        link.get("href", "")
        for link in tree.iter("link")
        if link.get("href") is not None and "canonical" in (link.get("rel") or "").lower().split()
    ]
    candidates.append(meta.get("og:url", ""))
    if ld:
        candidates.extend((_ld_url(ld.get("url")), _ld_url(ld.get("mainEntityOfPage"))))
    page_path = urlsplit(url).path.strip("/")
    for candidate in candidates:
        if not candidate:
            continue
        resolved = urljoin(url, candidate.strip())
        parts = urlsplit(resolved)
        if parts.scheme not in ("http", "https") or not same_site(resolved, url):
            continue
        # A canonical pointing at the home page of an article is a site template bug.
        if page_path and not parts.path.strip("/"):
            continue
        return canonical_url(resolved)
    return canonical_url(url)


# --------------------------------------------------------------------------- body


def _name_parts(element: lxml.html.HtmlElement) -> tuple[tuple[str, ...], ...]:
    """The words of each class name and of the id: ``"shareBar related-box"`` → share, bar…"""
    return _words_of_names(element.get("class") or "", element.get("id") or "")


@lru_cache(maxsize=4096)
def _words_of_names(classes: str, identifier: str) -> tuple[tuple[str, ...], ...]:
    # Sites use a few hundred names over and over: each is split once.
    names = f"{classes} {identifier}".split()
    return tuple(tuple(_NAME_PARTS.findall(_CAMEL.sub("-", name).lower())) for name in names)


def _is_noise_name(names: tuple[tuple[str, ...], ...]) -> bool:
    for parts in names:
        if any(part in _NOISE_WORDS for part in parts):
            return True
        if any(pair in _NOISE_PAIRS for pair in itertools.pairwise(parts)):
            return True
    return False


def _sort_classes(root: lxml.html.HtmlElement) -> None:
    """Put class names in one order: the extractor's class tests must not depend on it."""
    for element in root.iter():
        if isinstance(element.tag, str):
            classes = element.get("class")
            if classes and " " in classes.strip():
                element.set("class", " ".join(sorted(classes.split())))


def _content_blocks(scope: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    """Elements holding much paragraph text directly: the article's containers.

    An article is often split into several containers by ads and widgets, so every element
    with at least a fifth of the heaviest container's paragraph text counts.
    """
    weights: dict[lxml.html.HtmlElement, int] = {}
    for paragraph in scope.iter("p"):
        parent = paragraph.getparent()
        length = len(_text_of(paragraph))
        if parent is not None and length >= 25:
            weights[parent] = weights.get(parent, 0) + length
    if not weights:
        return []
    heaviest = max(weights.values())
    return [e for e, w in weights.items() if (w >= heaviest / 5 and w >= 150) or w == heaviest]


def _prune_noise(root: lxml.html.HtmlElement, profile: SiteProfile) -> None:
    """Remove boilerplate blocks in place; wrappers around the article text are kept."""
    for element in _select_any(root, profile.noise_selectors):
        _drop(element)
    body = root.find("body")
    scope = body if body is not None else root
    for element in list(scope.iter("script", "style", "noscript", "template", "svg", "iframe")):
        _drop(element)
    total = max(len(_text_of(scope)), 1)
    protected: set[lxml.html.HtmlElement] = set()
    for block in _content_blocks(scope):
        protected.add(block)
        protected.update(block.iterancestors())
    doomed: list[lxml.html.HtmlElement] = []
    for element in scope.iter():
        if not isinstance(element.tag, str) or element in protected:
            continue
        noisy = (
            element.tag.lower() in _DROP_TAGS
            or (element.get("role") or "").lower() in _DROP_ROLES
            or _is_noise_name(_name_parts(element))
        )
        if noisy and len(_text_of(element)) < _WRAPPER_SHARE * total:
            doomed.append(element)
    for element in doomed:
        _drop(element)


def _drop(element: lxml.html.HtmlElement) -> None:
    parent = element.getparent()
    if parent is None:
        return
    # Keep the tail: it is text of the parent that follows the removed element.
    element.drop_tree()


@lru_cache(maxsize=64)
def _compile_patterns(
    patterns: tuple[str, ...],
) -> tuple[list[re.Pattern[str]], list[re.Pattern[str]]]:
    """The patterns for text with line breaks (``^`` and ``$`` at every line), and the same
    for a single line, where they mean the same without ``re.MULTILINE``: the regex engine
    then tries ``^`` at the start only, not at every character."""
    lines = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in patterns]
    line = [re.compile(p, re.IGNORECASE) for p in patterns]
    return lines, line


def _apply_patterns(paragraphs: Iterable[str], patterns: tuple[str, ...]) -> list[str]:
    for_lines, for_line = _compile_patterns(patterns)
    result = []
    for paragraph in paragraphs:
        text = paragraph
        for pattern in for_lines if "\n" in text else for_line:
            text = pattern.sub("", text)
        text = _squash(text)
        if text:
            result.append(text)
    return result


def _profile_body(tree: lxml.html.HtmlElement, profile: SiteProfile) -> list[str] | None:
    for selector in profile.body_selectors:
        containers = _select(tree, selector)
        if not containers:
            continue
        paragraphs: list[str] = []
        for container in containers:
            if any(c is not container and container in c.iterancestors() for c in containers):
                continue
            piece = copy.deepcopy(container)
            for element in _select_any(piece, profile.noise_selectors):
                _drop(element)
            paragraphs.extend(_blocks(piece))
        paragraphs = _apply_patterns(paragraphs, profile.noise_patterns)
        if paragraphs:
            return paragraphs
    return None


def _trafilatura_paragraphs(
    tree: lxml.html.HtmlElement,
    url: str,
    *,
    favor_precision: bool = False,
    favor_recall: bool = False,
) -> list[str]:
    # Imported when first needed: pages that a profile reads never need it, and it is a good
    # part of a reading worker's start-up.
    import trafilatura

    text = trafilatura.extract(
        copy.deepcopy(tree),
        url=url,
        output_format="txt",
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        deduplicate=False,
        with_metadata=False,
        favor_precision=favor_precision,
        favor_recall=favor_recall,
    )
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def _word_count(paragraphs: Iterable[str]) -> int:
    """Words, counting two CJK characters as one (those scripts do not separate words)."""
    return sum(len(_WORD.findall(p)) + len(_CJK.findall(p)) // 2 for p in paragraphs)


def _merge_span(precise: list[str], recalled: list[str]) -> list[str]:
    """Precision-mode paragraphs plus those recall mode found between them.

    Precision mode drops borderline paragraphs inside the article; recall mode keeps them but
    adds boilerplate around it. Recall's paragraphs from the first to the last one that
    precision also found are the article, in page order.
    """
    kept = {_squash(p) for p in precise}
    positions = [i for i, p in enumerate(recalled) if _squash(p) in kept]
    if not positions:
        return precise
    span = recalled[positions[0] : positions[-1] + 1]
    if _word_count(span) < _word_count(precise):
        return precise
    return span


def _add_missing_chunks(root: lxml.html.HtmlElement, paragraphs: list[str]) -> list[str]:
    """Add article chunks the extractor skipped.

    Some layouts split the article into several containers of the same kind (same tag and
    class) with widgets between them; the extractor may read only the first. A chunk of the
    same kind as one that was read, with none of its paragraphs in the result, is added in
    page order.
    """
    body = root.find("body")
    blocks = _content_blocks(body if body is not None else root)
    if len(blocks) < 2:
        return paragraphs
    present = {_squash(p): i for i, p in enumerate(paragraphs)}
    chunks = []
    for block in blocks:
        texts = [_text_of(p) for p in block if isinstance(p.tag, str) and p.tag == "p"]
        texts = [t for t in texts if len(t) >= 25]
        found = [present[t] for t in texts if t in present]
        chunks.append(((block.tag, block.get("class")), texts, found))
    read_kinds = {kind for kind, _texts, found in chunks if found}
    result = list(paragraphs)
    offset = 0
    last_index = -1
    for kind, texts, found in chunks:
        if found:
            last_index = max(found) + offset
            continue
        if kind not in read_kinds or not texts:
            continue
        insert_at = last_index + 1
        result[insert_at:insert_at] = texts
        offset += len(texts)
        last_index = insert_at + len(texts) - 1
    return result


def _general_body(tree: lxml.html.HtmlElement, url: str, profile: SiteProfile) -> list[str]:
    ordered = copy.deepcopy(tree)
    _sort_classes(ordered)
    pruned = copy.deepcopy(ordered)
    _prune_noise(pruned, profile)
    precise = _trafilatura_paragraphs(pruned, url, favor_precision=True)
    recalled = _trafilatura_paragraphs(pruned, url, favor_recall=True)
    best = _merge_span(precise, recalled)
    # Pruning can take away what the extractor anchors on, and precision mode sometimes
    # stops at the first block of an article split by widgets: the other readings are taken
    # when they hold far more text.
    if _word_count(best) < 150:
        for other in (recalled, _trafilatura_paragraphs(ordered, url)):
            if _word_count(other) > 2 * _word_count(best):
                best = other
    best = _add_missing_chunks(pruned, best)
    return _apply_patterns(best, profile.noise_patterns)


def _tidy(paragraphs: list[str], title: str, *, drop_repeats: bool) -> list[str]:
    """Paragraphs without bare counters ("12 Comments"), "read also" pointers, the headline
    repeated at the top, and (``drop_repeats``) immediate repeats.

    A general extractor can return one block twice from nested containers; a profile's
    selectors cannot, so there a repeated paragraph is the article's own and is kept.
    """
    result: list[str] = []
    squashed_title = _squash(title).casefold()
    for paragraph in paragraphs:
        if COUNTER_LINE.fullmatch(paragraph):
            continue
        if _READ_ALSO.match(paragraph) and len(paragraph.split()) <= _READ_ALSO_MAX_WORDS:
            continue
        if not result and squashed_title and paragraph.casefold() == squashed_title:
            continue
        if not drop_repeats or not result or result[-1] != paragraph:
            result.append(paragraph)
    return result


def _has_article_signs(
    tree: lxml.html.HtmlElement, ld: dict[str, Any] | None, meta: dict[str, str]
) -> bool:
    if ld is not None or "article" in meta.get("og:type", "").lower():
        return True
    return bool(tree.xpath("//article[.//p]"))


# --------------------------------------------------------------------------- public API


def extract(
    html: str | bytes,
    url: str,
    *,
    profile: SiteProfile | None = None,
    encoding: str | None = None,
) -> Article:
    """Extract the article on one page.

    ``html`` may be bytes, decoded with ``encoding`` when given, else by BOM, declared
    charset, or UTF-8 with a windows-1252 fallback. ``profile`` defaults to the profile for the
    URL's host. Raises :class:`ExtractionError` when the page holds no article text.
    """
    return extract_tree(parse(html, url, encoding=encoding), url, profile=profile)


def parse(html: str | bytes, url: str, *, encoding: str | None = None) -> lxml.html.HtmlElement:
    """The page as a tree, for :func:`extract_tree` and :func:`whole_article_url_of`, which
    do not change it: reading a page parses it once. ``html`` is decoded as :func:`extract`
    says; raises :class:`ExtractionError` for an empty, binary or unreadable page."""
    return _parse(_decode(html, encoding, url), url)


def extract_tree(
    tree: lxml.html.HtmlElement, url: str, *, profile: SiteProfile | None = None
) -> Article:
    """:func:`extract` of a page already parsed (:func:`parse`); the tree is not changed."""
    profile = profile or profile_for(url)
    meta = _meta_tags(tree)
    ld = _article_object(_json_ld_objects(tree))

    paragraphs = _profile_body(tree, profile) if profile.body_selectors else None
    from_profile = paragraphs is not None
    if paragraphs is None:
        if profile.body_selectors:
            logger.debug("No body selector of profile %s matched at %s", profile.name, url)
        paragraphs = _general_body(tree, url, profile)
    title = _title(tree, ld, meta, profile)
    paragraphs = _tidy(paragraphs, title, drop_repeats=not from_profile)

    if not paragraphs:
        raise ExtractionError(f"No article text found at URL: {url}")
    if (
        not from_profile
        and not _has_article_signs(tree, ld, meta)
        and _word_count(paragraphs) < _MIN_WORDS_WITHOUT_ARTICLE_SIGNS
    ):
        raise ExtractionError(
            f"No article text found at URL: {url} (the page has no article markup and only "
            f"{_word_count(paragraphs)} words of main text; it looks like a listing)"
        )

    published, modified = _dates(tree, ld, meta, profile)
    return Article(
        url=_canonical(tree, ld, meta, url),
        title=title,
        body="\n\n".join(paragraphs),
        lead=_lead(tree, ld, meta, profile),
        authors=_authors(tree, ld, meta, profile),
        published=published,
        modified=modified,
    )


def whole_article_url(
    html: str | bytes, url: str, profile: SiteProfile | None = None
) -> str | None:
    """The URL that shows the whole article when this page shows only part of it, else None.

    Needs a profile with ``whole_article_query`` (e.g. ``page=all``) and a page that shows
    pagination (the profile's pagination selectors, "Halaman 1/2", or a link to ``?page=2`` of
    the same path). Returns None when the URL already asks for the whole article.
    """
    profile = profile or profile_for(url)
    if _whole_article_query(url, profile) is None:
        return None
    try:
        tree = parse(html, url)
    except ExtractionError:
        return None
    return whole_article_url_of(tree, url, profile)


def whole_article_url_of(
    tree: lxml.html.HtmlElement, url: str, profile: SiteProfile | None = None
) -> str | None:
    """:func:`whole_article_url` of a page already parsed (:func:`parse`)."""
    profile = profile or profile_for(url)
    query = _whole_article_query(url, profile)
    if query is None or not _is_paginated(tree, url, profile):
        return None
    parts = urlsplit(url)
    wanted = parse_qsl(query, keep_blank_values=True)
    current = parse_qsl(parts.query, keep_blank_values=True)
    keys = {key for key, _ in wanted}
    merged = [(k, v) for k, v in current if k not in keys] + wanted
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(merged), ""))


def _whole_article_query(url: str, profile: SiteProfile) -> str | None:
    """The profile's query for the whole article, unless there is none or ``url`` has it."""
    query = profile.whole_article_query
    if not query:
        return None
    wanted = parse_qsl(query, keep_blank_values=True)
    current = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    return None if all(pair in current for pair in wanted) else query


def _is_paginated(tree: lxml.html.HtmlElement, url: str, profile: SiteProfile) -> bool:
    for selector in profile.pagination_selectors:
        if _select(tree, selector):
            return True
    body = tree.find("body")
    if body is not None:
        text = body.text_content()
        # Only a page holding its words is searched with the regex, which costs more. The
        # words are looked for in the text's UTF-8 bytes with ASCII letters lowercased, many
        # times cheaper than lowercasing a text that is not all ASCII; no other character
        # lowercases to, or matches case-insensitively, a letter of these words.
        folded = text.encode("utf-8", "ignore").lower()
        if (b"halaman" in folded or b"page" in folded) and _PAGINATION_TEXT.search(text):
            return True
    path = urlsplit(url).path.rstrip("/")
    param = profile.pagination_param or "page"
    for link in tree.iter("a"):
        href = link.get("href")
        if not href or not may_turn_page(href, param):
            continue
        target = urlsplit(urljoin(url, href))
        if target.path.rstrip("/") == path and any(
            k == param and v.isdigit() and v != "1" for k, v in parse_qsl(target.query)
        ):
            return True
    return False
