"""The lead (standfirst): as readers see it on the page, else as the metadata describes the
article."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import lxml.etree
import lxml.html

from crawler.extraction.json_ld import ld_text
from crawler.extraction.metadata import meta_value
from crawler.extraction.text import (
    clean,
    first_of,
    first_text,
    select_any,
    selected,
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
    return text_of(piece)


@lru_cache(maxsize=4096)
def _name_words(classes: str, identifier: str) -> frozenset[str]:
    """Every word of the class names and the id, in one set."""
    return frozenset(part for name in words_of_names(classes, identifier) for part in name)


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
            noise = set(select_any(body, profile.noise_selectors))
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


def lead_of(
    tree: lxml.html.HtmlElement,
    ld: dict[str, Any] | None,
    meta: dict[str, str],
    profile: SiteProfile,
) -> str:
    """The lead (standfirst) as readers see it, else as the metadata describes the article.

    The visible standfirst comes first: editors change it on the page, while descriptions
    are often truncated or written for search engines and are not always updated with it.
    """
    ld = ld or {}
    return (
        first_of(
            lambda: first_text(selected(tree, profile.lead_selectors)),
            lambda: _visible_lead(tree, profile),
            lambda: ld_text(ld.get("description")) or ld_text(ld.get("abstract")),
            lambda: clean(
                meta_value(meta, ("og:description", "twitter:description", "description"))
            ),
        )
        or ""
    )
