"""Discovery: which articles a listing page, feed or sitemap lists, and where its next page is.

A topic's sources are HTML listing pages, RSS/Atom feeds or news sitemaps; ``discover`` tells
them apart by content type and, since servers often mislabel feeds, by the document's root
element. On HTML pages the site profile's listing selectors choose the links; without them
(or when none of them matches) a generic rule does: links to the same site, with an
article-shaped URL, inside the main listing rather than in navigation, header, footer or
sidebars. Every URL comes back absolute and canonical, in page order, once.
"""

from __future__ import annotations

import codecs
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urldefrag, urlencode, urljoin, urlsplit, urlunsplit

import lxml.etree
import lxml.html
from w3lib.encoding import html_to_unicode

from crawler.extraction.parsing import html_parser
from crawler.profiles import SiteProfile, compiled_selector
from crawler.urls import canonical_url, is_article_url, may_turn_page, same_site

logger = logging.getLogger(__name__)

ListingKind = Literal["html", "feed", "sitemap"]

_SUMMARY_LIMIT = 500
_XML_ROOTS = {"rss", "rdf", "feed", "urlset", "sitemapindex"}
_FEED_ROOTS = {"rss", "rdf", "feed"}
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")

# Page regions that are not the listing: site navigation, sidebars, widgets, footers.
_OUTSIDE_TAGS = {"nav", "aside", "form", "select", "option", "noscript", "script", "style"}
_OUTSIDE_TOKENS = {
    "nav",
    "navbar",
    "navigation",
    "menu",
    "submenu",
    "megamenu",
    "breadcrumb",
    "breadcrumbs",
    "sidebar",
    "widget",
    "widgets",
    "masthead",
    "colophon",
    "footer",
    "topbar",
    "trending",
    "popular",
    "populer",
    "terpopuler",
    "terkini",
    "rekomendasi",
    "recommended",
    "related",
    "relatedposts",
    "share",
    "sharing",
    "sharedaddy",
    "social",
    "ads",
    "advert",
    "advertisement",
    "banner",
    "comments",
    "skip",
    "site-header",
    "site-footer",
    "global-header",
}
_MAIN_XPATHS = (
    "//main",
    "//*[@role='main']",
    "//*[@id='main' or @id='content' or @id='primary' or @id='main-content']",
)
_NEXT_TEXTS = {"next", "next page", "selanjutnya", "berikutnya", "›", "»", "older posts"}
_SUMMARY_SKIP_TAGS = {"a", "time", "script", "style", "noscript", "h1", "h2", "h3", "h4", "figure"}
_SUMMARY_SKIP_TOKENS = {"meta", "byline", "entry-meta", "footer", "entry-footer", "posted-on"}


@dataclass(frozen=True)
class ListedLink:
    """One article a listing names: its canonical URL, the title it gives, a teaser if any."""

    url: str
    title: str
    summary: str = ""


@dataclass(frozen=True)
class Listing:
    """What one listing page, feed or sitemap lists, in its order.

    ``next_page`` is the page to read after this one (the next listing page, or for a sitemap
    index its first child sitemap); ``children`` are all child sitemaps of a sitemap index.
    """

    kind: ListingKind
    links: list[ListedLink] = field(default_factory=list)
    next_page: str | None = None
    children: list[str] = field(default_factory=list)


def discover(body: bytes, url: str, content_type: str | None, profile: SiteProfile) -> Listing:
    """The articles listed on the page ``body`` fetched from ``url``.

    ``content_type`` is the response's Content-Type header (or ``None``). Never raises on bad
    input: an empty or unreadable body gives an empty ``Listing``.
    """
    media_type = (content_type or "").split(";")[0].strip().lower()
    if not body.strip():
        return Listing(kind=_kind_from_media_type(media_type))
    if _looks_like_xml(body, media_type):
        root = _parse_xml(body)
        name = _local_name(root.tag) if root is not None else ""
        if root is not None and name in _FEED_ROOTS:
            return Listing(kind="feed", links=_dedupe(_feed_links(root, url)))
        if root is not None and name == "urlset":
            return Listing(kind="sitemap", links=_dedupe(_sitemap_links(root, url, profile)))
        if root is not None and name == "sitemapindex":
            children = _sitemap_children(root, url)
            return Listing(
                kind="sitemap", next_page=children[0] if children else None, children=children
            )
        if media_type and "html" not in media_type:
            logger.info("Unrecognised XML document at %s (root element %r)", url, name or None)
            return Listing(kind=_kind_from_media_type(media_type))
    return _discover_html(body, url, content_type, profile)


def matches_keywords(text: str, keywords: Sequence[str]) -> bool:
    """Whether ``text`` mentions any of ``keywords``; an empty list matches everything.

    Case and accents do not matter ("Kyiv" finds "KYÏV"); a keyword must start at a word
    boundary, so "Rusia" finds "Rusia" and "Rusianya" but not "Prusia"; keywords of three
    characters or fewer must also end at one ("AS" does not find "masalah" or "asing").
    """
    wanted = [k for k in (_fold(keyword) for keyword in keywords) if k]
    if not wanted:
        return True
    haystack = _fold(text)
    for keyword in wanted:
        ending = r"(?!\w)" if len(keyword) <= 3 else ""
        if re.search(rf"(?<!\w){re.escape(keyword)}{ending}", haystack):
            return True
    return False


# -- shared helpers ---------------------------------------------------------------------------


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _WHITESPACE.sub(" ", stripped.casefold()).strip()


def _clean_text(text: str | None) -> str:
    return _WHITESPACE.sub(" ", text or "").strip()


def _kind_from_media_type(media_type: str) -> ListingKind:
    if "rss" in media_type or "atom" in media_type:
        return "feed"
    if "xml" in media_type and "html" not in media_type:
        return "sitemap"
    return "html"


def _looks_like_xml(body: bytes, media_type: str) -> bool:
    if any(t in media_type for t in ("rss", "atom")):
        return True
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<?xml"):
        # XHTML pages start like this too; the root element decides.
        return not re.search(rb"<html[\s>]", head)
    if "xml" in media_type and "html" not in media_type:
        return True
    return any(
        head.startswith(b"<" + root.encode()) for root in ("rss", "feed", "urlset", "sitemapindex")
    )


def _parse_xml(body: bytes) -> Any:
    if not body.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Stray control bytes stop libxml2 even in recovery mode; UTF-8 never contains them.
        body = _CONTROL_BYTES.sub(b"", body)
    parser = lxml.etree.XMLParser(
        recover=True, resolve_entities=False, no_network=True, remove_comments=True
    )
    try:
        return lxml.etree.fromstring(body, parser=parser)
    except lxml.etree.XMLSyntaxError:
        return None


def _local_name(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def _children(element: Any, name: str) -> Iterable[Any]:
    return (child for child in element if _local_name(child.tag) == name)


def _child(element: Any, name: str) -> Any:
    return next(iter(_children(element, name)), None)


def _element_text(element: Any) -> str:
    if element is None:
        return ""
    return _clean_text("".join(element.itertext()))


def _markup_text(text: str) -> str:
    """Text of a string that may hold HTML (feed titles and descriptions often do)."""
    text = _clean_text(text)
    if "<" not in text and "&" not in text:
        return text
    try:
        fragment = lxml.html.fragment_fromstring(_CONTROL_CHARS.sub("", text), create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return text
    return _clean_text(fragment.text_content())


def _absolute(href: str, base: str) -> str | None:
    href = href.strip()
    if not href:
        return None
    joined = urldefrag(urljoin(base, href))[0]
    if urlsplit(joined).scheme.lower() not in ("http", "https"):
        return None
    return joined


def _dedupe(links: Iterable[ListedLink]) -> list[ListedLink]:
    """One link per URL, at its first position; a later title or summary fills a blank one."""
    found: dict[str, ListedLink] = {}
    for link in links:
        previous = found.get(link.url)
        if previous is None:
            found[link.url] = link
        elif (not previous.title and link.title) or (not previous.summary and link.summary):
            found[link.url] = ListedLink(
                url=link.url,
                title=previous.title or link.title,
                summary=previous.summary or link.summary,
            )
    return list(found.values())


def _truncate(text: str) -> str:
    if len(text) <= _SUMMARY_LIMIT:
        return text
    return text[:_SUMMARY_LIMIT].rsplit(" ", 1)[0] + "…"


# -- feeds and sitemaps -----------------------------------------------------------------------


def _feed_links(root: Any, url: str) -> Iterable[ListedLink]:
    base = url
    if _local_name(root.tag) == "feed":
        base = urljoin(url, root.get("{http://www.w3.org/XML/1998/namespace}base") or "")
        for entry in root.iter():
            if _local_name(entry.tag) == "entry":
                link = _atom_entry(entry, base)
                if link is not None:
                    yield link
        return
    for item in root.iter():
        if _local_name(item.tag) == "item":
            link = _rss_item(item, base)
            if link is not None:
                yield link


def _rss_item(item: Any, base: str) -> ListedLink | None:
    href = _element_text(_child(item, "link"))
    if not href:
        guid = _child(item, "guid")
        if guid is not None and (guid.get("isPermaLink") or "true").lower() != "false":
            href = _element_text(guid)
    if not href:
        href = item.get("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about") or ""
    absolute = _absolute(href, base)
    if absolute is None:
        return None
    title = _markup_text(_element_text(_child(item, "title")))
    summary = _markup_text(_element_text(_child(item, "description")))
    return ListedLink(url=canonical_url(absolute), title=title, summary=_truncate(summary))


def _atom_entry(entry: Any, base: str) -> ListedLink | None:
    entry_base = urljoin(base, entry.get("{http://www.w3.org/XML/1998/namespace}base") or "")
    chosen: str | None = None
    for link in _children(entry, "link"):
        rel = (link.get("rel") or "alternate").lower()
        if rel == "alternate" and link.get("href"):
            kind = (link.get("type") or "text/html").lower()
            if chosen is None or "html" in kind:
                chosen = link.get("href")
                if "html" in kind:
                    break
    if chosen is None:
        return None
    absolute = _absolute(chosen, entry_base)
    if absolute is None:
        return None
    title = _markup_text(_element_text(_child(entry, "title")))
    summary_element = _child(entry, "summary")
    if summary_element is None:
        summary_element = _child(entry, "content")
    summary = _markup_text(_element_text(summary_element))
    return ListedLink(url=canonical_url(absolute), title=title, summary=_truncate(summary))


def _sitemap_links(root: Any, url: str, profile: SiteProfile) -> Iterable[ListedLink]:
    """A news sitemap's entries; of a plain sitemap, only the article-shaped ones."""
    for entry in _children(root, "url"):
        absolute = _absolute(_element_text(_child(entry, "loc")), url)
        if absolute is None:
            continue
        news = _child(entry, "news")
        if news is None:
            if is_article_url(absolute, profile):
                yield ListedLink(url=canonical_url(absolute), title="")
            continue
        title = _element_text(_child(news, "title"))
        yield ListedLink(url=canonical_url(absolute), title=title)


def _sitemap_children(root: Any, url: str) -> list[str]:
    children: list[str] = []
    for entry in _children(root, "sitemap"):
        absolute = _absolute(_element_text(_child(entry, "loc")), url)
        if absolute is not None and absolute not in children:
            children.append(absolute)
    return children


# -- HTML ------------------------------------------------------------------------------------


def _parse_html(body: bytes, content_type: str | None) -> Any:
    header = content_type or ""
    charset = re.search(r"charset=([\w.:-]+)", header, re.IGNORECASE)
    if charset is not None:
        try:
            codecs.lookup(charset.group(1))
        except LookupError:
            header = header[: charset.start()]
    _encoding, text = html_to_unicode(header or None, body)
    text = _CONTROL_CHARS.sub("", _XML_DECLARATION.sub("", text, count=1))
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text, parser=html_parser())
    except (lxml.etree.ParserError, ValueError):
        return None


def _discover_html(
    body: bytes, url: str, content_type: str | None, profile: SiteProfile
) -> Listing:
    document = _parse_html(body, content_type)
    if document is None:
        return Listing(kind="html")
    base_href = document.xpath("string(//base/@href)")
    base = urljoin(url, base_href) if base_href else url
    links: list[ListedLink] = []
    if profile.listing_link_selectors:
        links = _selector_links(document, base, profile)
        if not links:
            logger.warning(
                "No link on %s matched the listing selectors of profile %s (%s); "
                "reading it with the generic rule instead",
                url,
                profile.name,
                ", ".join(profile.listing_link_selectors),
            )
    if not links:
        links = _generic_links(document, base, url, profile)
    return Listing(
        kind="html", links=links, next_page=_next_page(document, base, url, profile, links)
    )


def _link_of(anchor: Any, base: str) -> tuple[str, str] | None:
    absolute = _absolute(anchor.get("href") or "", base)
    if absolute is None:
        return None
    title = _clean_text(anchor.text_content()) or _clean_text(anchor.get("title"))
    if not title:
        title = _clean_text(" ".join(anchor.xpath(".//img/@alt")))
    return absolute, title


def _selector_links(document: Any, base: str, profile: SiteProfile) -> list[ListedLink]:
    for selector in profile.listing_link_selectors:
        compiled = compiled_selector(selector)
        if compiled is None:
            continue
        matched = compiled(document)
        found: list[ListedLink] = []
        for element in matched:
            anchors = [element] if element.tag == "a" else element.xpath(".//a[@href]")
            for anchor in anchors[:1]:
                link = _link_of(anchor, base)
                if link is not None:
                    found.append(
                        ListedLink(
                            url=canonical_url(link[0]),
                            title=link[1],
                            summary=_item_summary(anchor),
                        )
                    )
        if found:
            return _dedupe(found)
    return []


def _tokens(element: Any) -> set[str]:
    words = f"{element.get('class') or ''} {element.get('id') or ''}".lower()
    tokens = set(re.split(r"[\s_-]+", words))
    tokens.update(words.split())
    return tokens


def _outside_listing(anchor: Any) -> bool:
    """Whether the link sits in navigation, a sidebar, a footer or a widget."""
    ancestors = list(anchor.iterancestors())
    for index, ancestor in enumerate(ancestors):
        tag = ancestor.tag if isinstance(ancestor.tag, str) else ""
        if tag in _OUTSIDE_TAGS:
            return True
        if tag in ("header", "footer") and not any(
            outer.tag in ("article", "main") for outer in ancestors[index + 1 :]
        ):
            # the page's masthead or footer; an article's own header holds its title link
            return True
        if (ancestor.get("role") or "").lower() in ("navigation", "banner", "contentinfo"):
            return True
        if _tokens(ancestor) & _OUTSIDE_TOKENS:
            return True
    return False


def _main_region(document: Any) -> Any:
    for xpath in _MAIN_XPATHS:
        found = document.xpath(xpath)
        if found:
            return found[0]
    return None


def _generic_links(document: Any, base: str, url: str, profile: SiteProfile) -> list[ListedLink]:
    page = canonical_url(url)

    def candidates(scope: Any) -> list[ListedLink]:
        found: list[ListedLink] = []
        for anchor in scope.iter("a"):
            if not anchor.get("href") or _outside_listing(anchor):
                continue
            link = _link_of(anchor, base)
            if link is None:
                continue
            absolute, title = link
            if not same_site(absolute, url) or not is_article_url(absolute, profile):
                continue
            canonical = canonical_url(absolute)
            if canonical == page:
                continue
            found.append(ListedLink(url=canonical, title=title, summary=_item_summary(anchor)))
        return _dedupe(found)

    main = _main_region(document)
    if main is not None:
        inside = candidates(main)
        if inside:
            return inside
    return candidates(document)


def _item_summary(anchor: Any) -> str:
    """The teaser beside a listed link: its list item's text without titles, dates, bylines."""
    item = None
    for depth, ancestor in enumerate(anchor.iterancestors()):
        if depth >= 6:
            break
        if ancestor.tag in ("li", "article"):
            item = ancestor
            break
    if item is None:
        return ""
    pieces: list[str] = []

    def walk(element: Any) -> None:
        if element.text:
            pieces.append(element.text)
        for child in element:
            if (
                isinstance(child.tag, str)
                and child.tag not in _SUMMARY_SKIP_TAGS
                and not (_tokens(child) & _SUMMARY_SKIP_TOKENS)
            ):
                walk(child)
            if child.tail:
                pieces.append(child.tail)

    walk(item)
    return _truncate(_clean_text(" ".join(pieces)))


def _page_number(url: str, param: str) -> int:
    for key, value in parse_qsl(urlsplit(url).query):
        if key == param and value.isdigit():
            return int(value)
    return 1


def _with_param(url: str, param: str, value: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != param]
    query.append((param, str(value)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def _next_page(
    document: Any, base: str, url: str, profile: SiteProfile, links: list[ListedLink]
) -> str | None:
    if not links:
        return None
    current = urlsplit(url)
    here = canonical_url(url)

    def acceptable(candidate: str | None) -> str | None:
        if candidate is None or canonical_url(candidate) == here or not same_site(candidate, url):
            return None
        return candidate

    param = profile.pagination_param
    paging_links: list[str] = []
    if param:
        wanted = _page_number(url, param) + 1
        for href in document.xpath("//a/@href"):
            if not may_turn_page(href, param):
                continue
            absolute = _absolute(href, base)
            if absolute is None or urlsplit(absolute).path != current.path:
                continue
            if any(k == param for k, _v in parse_qsl(urlsplit(absolute).query)):
                paging_links.append(absolute)
                if _page_number(absolute, param) == wanted and acceptable(absolute):
                    return absolute
    for href in document.xpath("//link[@rel='next']/@href | //a[@rel='next']/@href"):
        found = acceptable(_absolute(href, base))
        if found:
            return found
    for anchor in document.xpath("//a[@href]"):
        classes = set((anchor.get("class") or "").lower().split())
        parent_classes = set((anchor.getparent().get("class") or "").lower().split())
        text = _clean_text(anchor.text_content()).lower()
        if "next" in classes or "next" in parent_classes or text in _NEXT_TEXTS:
            found = acceptable(_absolute(anchor.get("href") or "", base))
            if found:
                return found
    if param and not paging_links:
        # The site paginates by a parameter but the page shows no numbered links (many load
        # more by script): ask for the next number; a page past the end lists nothing.
        return _with_param(url, param, _page_number(url, param) + 1)
    return None
