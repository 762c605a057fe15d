"""What the parts of extraction share: text of elements, CSS selection, the words of class
names, and the rule that the first source holding a value wins."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache, partial
from typing import TypeVar, overload

import lxml.etree
import lxml.html
from lxml.cssselect import CSSSelector

from crawler.extraction.selectors import Matcher, simple_matcher, simple_tag, simple_test
from crawler.profiles import compiled_selector

T = TypeVar("T")

_TAGS = re.compile(r"<[^>]+>")
_NAME_PARTS = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


# The first form lets the type checker find ``T`` when every source is a callable.
@overload
def first_of(*sources: Callable[[], T]) -> T | None: ...
@overload
def first_of(*sources: T | Callable[[], T]) -> T | None: ...
def first_of(*sources: T | Callable[[], T]) -> T | None:
    """The first value that is not empty, a callable standing for the value it returns.

    A field may come from several sources (JSON-LD, ``<meta>`` tags, the profile's
    selectors, the markup), in order of trust; a callable is called only when every source
    before it came up empty, so the costlier searches run only when needed.
    """
    for source in sources:
        value = source() if callable(source) else source
        if value:
            return value
    return None


def squash(text: str) -> str:
    """Whitespace collapsed to single spaces, ends stripped (``str.split`` splits on exactly
    the characters ``\\s`` matches, several times faster than a regex substitution).

    A text that holds no whitespace but single spaces between its words is that already,
    and is told so at a fraction of the cost: every whitespace character but the space is
    unprintable (a control character or a separator)."""
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return " ".join(text.split())


def clean(text: str | None) -> str:
    """Text of a metadata value: tags removed, entities unescaped, whitespace squashed."""
    if not text:
        return ""
    return squash(html_lib.unescape(_TAGS.sub(" ", text)))


def text_content(element: lxml.html.HtmlElement) -> str:
    """``element.text_content()``: the text of the element and of everything in it, without
    its tail, as libxml2 writes the element out as text, which costs a fraction of the XPath
    ``string()`` that lxml's method evaluates."""
    text: str = lxml.etree.tostring(element, method="text", encoding=str, with_tail=False)
    return text


def text_of(element: lxml.html.HtmlElement) -> str:
    return squash(text_content(element))


# Elements that start a block of text of their own: their text is not run into its neighbours'.
BLOCK_TAGS = frozenset(
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


# Elements whose text is never shown as text.
UNSEEN_TAGS = frozenset({"script", "style", "noscript", "template"})


def _marked_blocks(element: lxml.html.HtmlElement, mark: str) -> str:
    """The element's text, scripts and styles left out, ``mark`` before and after each of its
    blocks (paragraphs, list items, headings, line breaks)."""
    pieces: list[str] = []

    def walk(node: lxml.html.HtmlElement) -> None:
        tag = node.tag.lower() if isinstance(node.tag, str) else ""
        if tag in UNSEEN_TAGS:
            return
        block = tag in BLOCK_TAGS
        if block:
            pieces.append(mark)
        if tag and node.text:
            pieces.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                pieces.append(child.tail)
        if block:
            pieces.append(mark)

    walk(element)
    return "".join(pieces)


def block_text(element: lxml.html.HtmlElement) -> str:
    """The element's text with its blocks (paragraphs, list items, headings, line breaks)
    separated by a space, not run together as ``text_content()`` runs them; scripts and
    styles left out."""
    return squash(_marked_blocks(element, " "))


def block_paragraphs(element: lxml.html.HtmlElement) -> str:
    """:func:`block_text`, but its blocks separated by blank lines, as a body's paragraphs
    are (empty blocks left out)."""
    mark = "\x00"
    blocks = _marked_blocks(element, mark).split(mark)
    return "\n\n".join(text for text in map(squash, blocks) if text)


class PageElements:
    """The page's elements of :data:`TAGS`, found in one walk of the tree, in document
    order, for the parts of reading that look for them (metadata, JSON-LD, the canonical
    link, the live sign, the multi-page search, the profile's simple selectors of those
    tags, the headline): each would walk the whole tree for its own. The tree must not
    change while they are used."""

    TAGS = (
        *("a", "link", "meta", "script"),
        *("div", "section", "ol", "ul", "article", "main", "h1", "h2"),
    )

    def __init__(self, tree: lxml.html.HtmlElement) -> None:
        # The a and link elements with their tags, in document order.
        self.links_and_anchors: list[tuple[str, lxml.html.HtmlElement]] = []
        self.by_tag: dict[str, list[lxml.html.HtmlElement]] = {tag: [] for tag in self.TAGS}
        for element in tree.iter(*self.TAGS):
            tag = element.tag
            self.by_tag[tag].append(element)
            if tag in ("a", "link"):
                self.links_and_anchors.append((tag, element))

    def of(self, tag: str) -> list[lxml.html.HtmlElement]:
        """The elements of one of :data:`TAGS`, in document order."""
        return self.by_tag[tag]


def elements_of(
    tree: lxml.html.HtmlElement, tag: str, elements: PageElements | None
) -> Iterable[lxml.html.HtmlElement]:
    """``tree.iter(tag)``, from ``elements`` when given (the same tree's)."""
    return tree.iter(tag) if elements is None else elements.of(tag)


def select(
    tree: lxml.html.HtmlElement, selector: str, elements: PageElements | None = None
) -> list[lxml.html.HtmlElement]:
    """The elements ``selector`` matches; none when it is not valid CSS. ``elements``: the
    page's, when already found, ``tree`` being the page's root: a simple selector of one of
    their tags is tested on them alone."""
    compiled = compiled_selector(selector)
    if compiled is None:
        return []
    matcher = simple_matcher((selector,))
    if matcher is None:
        return list(compiled(tree))
    tag = simple_tag(selector)
    if elements is not None and tag in PageElements.TAGS:
        test = simple_test((selector,))
        assert test is not None
        return [element for element in elements.of(tag) if test(element)]
    return matcher(tree)


def selected(
    tree: lxml.html.HtmlElement, selectors: tuple[str, ...]
) -> Iterator[lxml.html.HtmlElement]:
    """The elements each of ``selectors`` matches, selector by selector."""
    for selector in selectors:
        yield from select(tree, selector)


def first_text(elements: Iterable[lxml.html.HtmlElement]) -> str:
    """The first text of ``elements`` that isn't empty."""
    return first_of(*(partial(text_of, element) for element in elements)) or ""


def _nothing(tree: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    return []


@lru_cache(maxsize=256)
def simple_union(selectors: tuple[str, ...]) -> Matcher | None:
    """A matcher of what any of ``selectors`` matches (the invalid ones left out) when each
    of them is simple (:func:`~crawler.extraction.selectors.simple_matcher`: whether an
    element matches depends on its tag and attributes alone), else None."""
    valid = tuple(selector for selector in selectors if compiled_selector(selector) is not None)
    return simple_matcher(valid) if valid else _nothing


@lru_cache(maxsize=256)
def simple_union_test(
    selectors: tuple[str, ...],
) -> Callable[[lxml.html.HtmlElement], bool] | None:
    """Whether any of ``selectors`` (the invalid ones left out) matches an element, told from
    the element alone when each of them is simple (:func:`simple_union`), else None."""
    valid = tuple(selector for selector in selectors if compiled_selector(selector) is not None)
    return simple_test(valid) if valid else _never


def _never(element: lxml.html.HtmlElement) -> bool:
    return False


@lru_cache(maxsize=256)
def _css_union(selectors: tuple[str, ...]) -> Matcher:
    """One matcher of what any of ``selectors`` matches (the invalid ones left out): one pass
    over the tree."""
    matcher = simple_union(selectors)
    if matcher is not None:
        return matcher
    valid = [selector for selector in selectors if compiled_selector(selector) is not None]
    union = CSSSelector(", ".join(valid), translator="html")
    return lambda tree: list(union(tree))


def select_any(
    tree: lxml.html.HtmlElement, selectors: tuple[str, ...]
) -> list[lxml.html.HtmlElement]:
    """The elements any of ``selectors`` matches, in document order."""
    return _css_union(selectors)(tree)


@lru_cache(maxsize=4096)
def words_of_names(classes: str, identifier: str) -> tuple[tuple[str, ...], ...]:
    """The words of each class name and of the id: ``"shareBar related-box"`` → share, bar…"""
    # Sites use a few hundred names over and over: each is split once.
    names = f"{classes} {identifier}".split()
    return tuple(tuple(_NAME_PARTS.findall(_CAMEL.sub("-", name).lower())) for name in names)


def split_authors(text: str) -> list[str]:
    """The names in a byline: "By A, B and C" → A, B, C (links are not names)."""
    text = re.sub(r"^(?:by|oleh|von|par|por|di)\s+", "", text.strip(), flags=re.IGNORECASE)
    parts = re.split(r"\s*(?:,|;|&|\band\b|\bdan\b|\bund\b)\s*", text)
    return [p.strip() for p in parts if p.strip() and not p.strip().startswith("http")]
