"""The lead (standfirst): as readers see it on the page, else as the metadata describes the
article.

The standfirst is found generically: by its place (between the headline and the body) and by
the names sites give it (standfirst, dek, intro, teaser, summary, vorspann, chapo, entradilla,
…), never per site. Names are a help: an unnamed block of prose after the headline is read by
its place, and what holds the headline (a container named "sidebar" or "img_container" by the
site's template) says nothing against a standfirst beside it. The descriptions (JSON-LD,
``<meta>``) are read too: the fingerprint hashes them with the lead.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Container, Iterator, Sequence
from functools import lru_cache
from typing import Any

import lxml.etree
import lxml.html

from crawler.extraction.body import CAPTION, NOISE_ROLES, is_noise_name, word_count
from crawler.extraction.json_ld import ld_text
from crawler.extraction.metadata import meta_value
from crawler.extraction.text import (
    BLOCK_TAGS,
    UNSEEN_TAGS,
    PageElements,
    block_paragraphs,
    block_text,
    clean,
    first_of,
    select_any,
    selected,
    simple_union_test,
    squash,
    text_of,
    words_of_names,
)
from crawler.profiles import SiteProfile

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
        "lede",
        "preamble",
        "ingress",
        "perex",
        "subheader",
        "hook",
        "leadtext",
        "introtext",
        "teasertext",
        "leadin",
        "vorspann",
        "chapeau",
        "entradilla",
        "bajada",
        "subtitulo",
        "sottotitolo",
        "catenaccio",
    }
)
_LEAD_SKIP = frozenset({"nav", "footer", "aside", "figure", "figcaption", "li", "a"})
_LEAD_SKIP_ALL = _LEAD_SKIP | {"script", "style"}
_UNSEEN_OR_MEDIA = UNSEEN_TAGS | {"figure", "figcaption", "img", "picture", "video"}
# Name parts of media blocks, whose "description" is a caption rather than a standfirst.
_LEAD_MEDIA_WORDS = frozenset(
    {"caption", "credit", "image", "img", "photo", "picture", "media", "figure", "video", "gallery"}
)


def paragraphs_of(element: lxml.html.HtmlElement) -> str:
    """The element's text as :func:`~crawler.extraction.text.block_text` reads it, but its
    blocks (paragraphs, list items, headings, line breaks) separated by blank lines, as the
    body's paragraphs are: the fingerprint knows each block of the lead apart, and a site's
    template block in it (:mod:`storage.templates`) is one of them."""
    return block_paragraphs(element)


def _prose_of(element: lxml.html.HtmlElement) -> str:
    """The element's text without scripts, styles, embedded media and their captions, and
    blocks of links (a list of headlines is no standfirst), its blocks apart
    (:func:`paragraphs_of`: "Summary:" in a heading, then the points of a list)."""
    piece = copy.deepcopy(element)
    doomed = []
    for inner in piece.iterdescendants():
        if not isinstance(inner.tag, str) or any(d in doomed for d in inner.iterancestors()):
            continue
        if (
            inner.tag in _UNSEEN_OR_MEDIA
            or _name_words(inner.get("class") or "", inner.get("id") or "") & _LEAD_MEDIA_WORDS
            or (inner.tag in _INNER_BLOCKS and _mostly_links(inner))
        ):
            doomed.append(inner)
    for inner in doomed:
        inner.drop_tree()
    return paragraphs_of(piece)


def _mostly_links(element: lxml.html.HtmlElement) -> bool:
    """Whether half the element's text or more is the text of links."""
    text = len(text_of(element))
    linked = sum(len(text_of(a)) for a in element.iter("a"))
    return bool(text) and linked >= 0.5 * text


@lru_cache(maxsize=4096)
def _name_words(classes: str, identifier: str) -> frozenset[str]:
    """Every word of the class names and the id, in one set; "caption" too when a word holds
    it ("imgcaption", "photocaption": a caption whatever it is glued to)."""
    words = {part for name in words_of_names(classes, identifier) for part in name}
    if any(CAPTION in word for word in words):
        words.add(CAPTION)
    return frozenset(words)


@lru_cache(maxsize=4096)
def _named_like_lead(classes: str, identifier: str) -> bool:
    """Whether class names and id say standfirst (and not a media block's caption)."""
    words = _name_words(classes, identifier)
    return bool(words & _LEAD_WORDS) and not words & _LEAD_MEDIA_WORDS


def _following(
    element: lxml.html.HtmlElement, within: lxml.html.HtmlElement | None = None
) -> Iterator[lxml.html.HtmlElement]:
    """The elements after ``element`` in document order, as ``following::*`` gives them, one
    at a time: the search stops after the first few, and the XPath would first make an
    object of every element to the end of the page. With ``within`` (``element`` or one of
    its ancestors), only those inside it: they come first, up to its end."""
    node: lxml.html.HtmlElement | None = element
    while node is not None and node is not within:
        for sibling in node.itersiblings(lxml.etree.Element):
            yield sibling
            yield from sibling.iterdescendants(lxml.etree.Element)
        node = node.getparent()


class _Selection:
    """The elements the selectors match in a tree, found when first asked about: most
    pages decide their standfirst without asking. Asked about an element of the tree, when
    whether it matches depends on it alone (simple selectors), the element alone is tested."""

    def __init__(self, tree: lxml.html.HtmlElement, selectors: tuple[str, ...]) -> None:
        self.tree = tree
        self.selectors = selectors
        self.test = simple_union_test(selectors)
        self.found: set[lxml.html.HtmlElement] | None = None

    def __contains__(self, element: object) -> bool:
        """Whether ``element``, an element of the tree, is one the selectors match."""
        if self.test is not None:
            return isinstance(element, lxml.html.HtmlElement) and self.test(element)
        if self.found is None:
            self.found = set(select_any(self.tree, self.selectors))
        return element in self.found


# The search for the standfirst stops after this many elements past the headline; an unnamed
# standfirst is one of the first blocks of prose (this long or longer) after it (bylines,
# dates and labels, which are shorter, may come between them).
_LEAD_SEARCH_LIMIT = 400
_PROSE_LENGTH = 40
_POSITION_BLOCKS = 4
_POSITION_MAX = 3
_LEAD_SCOPE_TAGS = frozenset({"article", "main"})
_LEAF_TAGS = frozenset(
    {"p", "div", "span", "h2", "h3", "h4", "h5", "h6", "section", "blockquote", "strong", "em", "b"}
)
_INNER_BLOCKS = BLOCK_TAGS - {"br"}
# An unnamed block after the headline is not a standfirst inside these, or named so.
_POSITION_SKIP_TAGS = frozenset(
    {
        "nav",
        "footer",
        "aside",
        "figure",
        "figcaption",
        "a",
        "button",
        "form",
        "label",
        "time",
        "select",
        "table",
        "script",
        "style",
        "noscript",
        "template",
    }
)
_POSITION_SKIP_WORDS = _LEAD_MEDIA_WORDS | frozenset(
    {
        "byline",
        "author",
        "authors",
        "date",
        "time",
        "timestamp",
        "published",
        "updated",
        "meta",
        "share",
        "social",
        "tags",
        "breadcrumb",
        "breadcrumbs",
        "related",
        "newsletter",
        "ad",
        "ads",
        "advert",
        "promo",
        "sponsor",
        "sponsored",
        "cookie",
        "consent",
        "comment",
        "comments",
        "audio",
        "player",
        "toolbar",
        "label",
    }
)


_WORDS = re.compile(r"\w+")
# A heading shows the headline when at least half of the words of both are shared.
_HEADLINE_LIKENESS = 0.5
_NO_HEADLINE_TAGS = frozenset({"footer", "nav", "aside", "form", "dialog"})
_NO_HEADLINE_WORDS = frozenset({"modal", "popup", "dialog", "footer"})


def _plain(text: str) -> str:
    """Text as compared with the headline: words only, case folded."""
    return " ".join(_WORDS.findall(text.casefold()))


def _likeness(text: str, wanted: set[str]) -> float:
    """How much a heading's words are the headline's (shared words over all words)."""
    words = set(_WORDS.findall(text.casefold()))
    return len(words & wanted) / len(words | wanted) if words and wanted else 0.0


def _headline_of(
    body: lxml.html.HtmlElement, title: str, elements: PageElements | None = None
) -> lxml.html.HtmlElement | None:
    """The heading that shows the article's headline: the h1 most like it, else the h2 most
    like it (a page may put its logo, or a carousel of other headlines, in h1s), else the
    first h1; none of them in navigation, a footer, a form or a dialog (``elements``: the
    page's, when already found). Else an h1 like the headline in navigation alone: a page
    whose only h1 is the last step of its breadcrumb shows the article right after it."""
    wanted = set(_WORDS.findall(title.casefold()))
    first: lxml.html.HtmlElement | None = None
    in_navigation: lxml.html.HtmlElement | None = None
    for tag in ("h1", "h2"):
        best, best_score = None, _HEADLINE_LIKENESS
        headings = (
            body.iter(tag)
            if elements is None
            else (h for h in elements.of(tag) if h is body or body in h.iterancestors())
        )
        for heading in headings:
            if _excluded(heading, body, set(), _NO_HEADLINE_TAGS, _NO_HEADLINE_WORDS):
                if (
                    in_navigation is None
                    and tag == "h1"
                    and _likeness(text_of(heading), wanted) > _HEADLINE_LIKENESS
                    and not _excluded(
                        heading, body, set(), _NO_HEADLINE_TAGS - {"nav"}, _NO_HEADLINE_WORDS
                    )
                ):
                    in_navigation = heading
                continue
            if first is None and tag == "h1":
                first = heading
            score = _likeness(text_of(heading), wanted)
            if score > best_score:
                best, best_score = heading, score
        if best is not None:
            return best
    return first if first is not None else in_navigation


def _scope_of(headline: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """Where the standfirst may be: the headline's article (or main) element, else the
    page's body."""
    for ancestor in headline.iterancestors():
        if ancestor.tag in _LEAD_SCOPE_TAGS or ancestor.tag == "body":
            return ancestor
    return headline


def _is_leaf_block(element: lxml.html.HtmlElement) -> bool:
    return element.tag in _LEAF_TAGS and not any(
        isinstance(child.tag, str) and child.tag in _INNER_BLOCKS for child in element
    )


def _with_siblings(element: lxml.html.HtmlElement, text: str) -> str:
    """The standfirst's text and that of the blocks right after it of the same kind (a
    standfirst of several paragraphs)."""
    texts = [text]
    for sibling in element.itersiblings():
        if sibling.tag != element.tag or sibling.get("class") != element.get("class"):
            break
        more = _prose_of(sibling)
        if more:
            texts.append(more)
    return "\n\n".join(texts)


def _positional(element: lxml.html.HtmlElement, text: str, headlines: list[str]) -> bool:
    """Whether an unnamed block after the headline reads as a standfirst: a sentence or a
    few, not the headline again, not a line of links, dates or credits, not a picture with
    its caption."""
    if not _PROSE_LENGTH <= len(text) <= 1000 or word_count((text,)) < 6:
        return False
    if any(h in _plain(text) for h in headlines):
        return False
    if next(element.iter("time", "img", "picture", "video"), None) is not None:
        return False  # a date line, or a picture with its caption
    linked = sum(len(text_of(a)) for a in element.iter("a"))
    return linked < 0.3 * len(text)


def _excluded(
    element: lxml.html.HtmlElement,
    scope: lxml.html.HtmlElement,
    noise: Container[lxml.html.HtmlElement],
    tags: frozenset[str],
    words: frozenset[str],
    *,
    boilerplate: bool = False,
    shared: Container[lxml.html.HtmlElement] = (),
) -> bool:
    """Whether ``element``, or one of its ancestors inside ``scope``, is noise, has one of
    ``tags`` or a name with one of ``words`` (``boilerplate``: or a name or a role that
    marks boilerplate, as the body's rules know them). The ancestors in ``shared`` (those
    of the headline) are not asked: what holds the headline holds the article's header,
    whatever it is called ("sidebar", "img_container", "wp-caption", a widget)."""
    node: lxml.html.HtmlElement | None = element
    while node is not None and node is not scope and node not in shared:
        if node in noise or (isinstance(node.tag, str) and node.tag in tags):
            return True
        classes, identifier = node.get("class") or "", node.get("id") or ""
        if _name_words(classes, identifier) & words:
            return True
        if boilerplate and (
            (node.get("role") or "").lower() in NOISE_ROLES
            or is_noise_name(words_of_names(classes, identifier))
        ):
            return True
        node = node.getparent()
    return False


# A paragraph of the body is known by its first words, this many characters of them.
_START_LENGTH = 40


# How much of a paragraph is read for its start, first: its words as :func:`_plain` gives them
# are the start of the whole paragraph's (case folding and finding words go character by
# character; the last word may be cut short, as the start is).
_START_READ = 2 * _START_LENGTH


def _start(text: str) -> str:
    """How a paragraph starts, as words (case folded): "" when it is too short to tell."""
    plain = _plain(text[:_START_READ])
    if len(plain) < _START_LENGTH and len(text) > _START_READ:
        plain = _plain(text)
    return plain[:_START_LENGTH] if len(plain) >= _START_LENGTH else ""


def _holds_paragraph(text: str, paragraph: str) -> bool:
    """Whether a block of ``text`` (:func:`paragraphs_of`) is, or starts as, ``paragraph``."""
    start = _start(paragraph)
    return len(paragraph) >= 25 and any(
        paragraph in block or (start and _start(block) == start) for block in text.split("\n\n")
    )


def _visible_lead(
    tree: lxml.html.HtmlElement,
    profile: SiteProfile,
    title: str = "",
    paragraphs: Sequence[str] = (),
    *,
    squashed: bool = False,
    elements: PageElements | None = None,
) -> str:
    """The standfirst shown under the headline, before the body (``paragraphs``): an
    element named like a standfirst, else the blocks of prose among the first few of that
    length after the headline (a second headline, then a paragraph: both are what the reader
    sees there), bylines, dates, pictures with their captions, links and boilerplate left
    out. Whether a block is left out for its name, its tag or a role is asked of it and of
    its containers below those that hold the headline.

    The search runs in document order from the headline (:func:`_headline_of`), inside its
    article or main element, and stops where the body begins (the first block whose text
    is a paragraph of the body, or is, starts or starts as one of its first; an element named
    like a standfirst that begins so, after blocks of prose, too): a standfirst stands
    before the body, and what stands after the body's first paragraph (a box after the
    middle or the last one) is never the lead. An element named like a standfirst that
    holds the body's last paragraph holds the article, not its standfirst (a standfirst that
    extraction took into the body too is its first paragraphs). ``squashed``: the
    paragraphs' whitespace is collapsed already (:func:`~crawler.extraction.text.squash`).
    """
    body = tree.find("body")
    headline = _headline_of(body, title, elements) if body is not None else None
    if body is None or headline is None:
        return ""
    scope = _scope_of(headline)
    headlines = [h for h in (_plain(title), _plain(text_of(headline))) if h]
    in_body = set(paragraphs) if squashed else {squash(p) for p in paragraphs}
    # The body's first paragraphs, as they may stand on the page with a dateline before them
    # or a sentence after them that extraction left out.
    first = [p for p in (squash(p) for p in paragraphs[:3]) if len(p) >= 25]
    # How they start, as words: a block of the page that starts so is one of them, whatever
    # extraction left out further on (an inline box, a footnote). Only the first: a
    # standfirst may repeat the start of a paragraph further down.
    starts = {start for start in map(_start, paragraphs[:3]) if start}

    def begins_body(text: str) -> bool:
        return len(text) >= 25 and (
            text in in_body or any(p in text or text in p for p in first) or _start(text) in starts
        )

    noise = _Selection(body, profile.noise_selectors)
    shared = set(headline.iterancestors())
    positional: list[lxml.html.HtmlElement] = []
    texts: list[str] = []
    blocks = 0
    counted: lxml.html.HtmlElement | None = None
    for count, element in enumerate(_following(headline, scope)):
        if count >= _LEAD_SEARCH_LIMIT:
            break
        if not isinstance(element.tag, str) or element.tag in UNSEEN_TAGS:
            continue  # a script's text (JSON-LD holding the article) is not the body begun
        classes, identifier = element.get("class") or "", element.get("id") or ""
        if (
            (classes or identifier)
            and _named_like_lead(classes, identifier)
            and not _excluded(
                element, scope, noise, _LEAD_SKIP_ALL, _LEAD_MEDIA_WORDS, shared=shared
            )
        ):
            text = _prose_of(element)
            if texts and begins_body(text.split("\n\n", 1)[0]):
                break  # the body begins, in a block named like a standfirst after one
            if (
                40 <= len(text) <= 1000
                and not any(h in _plain(text) for h in headlines)
                and not (len(paragraphs) > 1 and _holds_paragraph(text, squash(paragraphs[-1])))
            ):
                return _with_siblings(element, text)
        if element.text and begins_body(squash(element.text)):
            break  # the body begins, in a block that holds more blocks
        if not _is_leaf_block(element):
            continue
        text = block_text(element)
        if not text:
            continue
        if len(text) >= _PROSE_LENGTH and (
            counted is None or counted not in element.iterancestors()
        ):
            blocks, counted = blocks + 1, element
        if begins_body(text):
            break  # the body begins
        if (
            blocks <= _POSITION_BLOCKS
            and len(positional) < _POSITION_MAX
            and not any(p in element.iterancestors() for p in positional)
            and _positional(element, text, headlines)
            and not _excluded(
                element,
                scope,
                noise,
                _POSITION_SKIP_TAGS,
                _POSITION_SKIP_WORDS,
                boilerplate=True,
                shared=shared,
            )
        ):
            positional.append(element)
            texts.append(text)
    return "\n\n".join(texts)


def descriptions_of(ld: dict[str, Any] | None, meta: dict[str, str]) -> list[str]:
    """How the metadata describes the article, each distinct text once, in order of trust:
    JSON-LD ``description`` and ``abstract``, the description ``<meta>`` tags."""
    ld = ld or {}
    found = [
        ld_text(ld.get("description")),
        ld_text(ld.get("abstract")),
        clean(meta_value(meta, ("og:description", "twitter:description", "description"))),
    ]
    return list(dict.fromkeys(text for text in found if text))


def lead_of(
    tree: lxml.html.HtmlElement,
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    profile: SiteProfile,
    description: str | None = None,
    *,
    title: str = "",
    paragraphs: Sequence[str] = (),
    squashed: bool = False,
    elements: PageElements | None = None,
) -> str:
    """The lead (standfirst) as readers see it, else as the metadata describes the article
    (``description``: the first of :func:`descriptions_of`, when already known). ``title`` and
    ``paragraphs`` (the body; ``squashed``: their whitespace collapsed already, as extraction
    leaves them) tell where the standfirst can be: under that headline, before that body
    (``elements``: the page's, when already found).

    The visible standfirst comes first: editors change it on the page, while descriptions
    are often truncated or written for search engines and are not always updated with it.
    """
    return (
        first_of(
            lambda: next(
                (t for t in map(paragraphs_of, selected(tree, profile.lead_selectors)) if t), ""
            ),
            lambda: _visible_lead(
                tree, profile, title, paragraphs, squashed=squashed, elements=elements
            ),
            lambda: (
                next(iter(descriptions_of(ld, meta)), "") if description is None else description
            ),
        )
        or ""
    )
