"""The article's body: its paragraphs in page order.

With a profile that has body selectors and they match, the selected containers with the
profile's noise rules; otherwise trafilatura, in precision and in recall mode, on the page
with generic noise (navigation, share bars, related lists, newsletter boxes, captions and
pictures with their caption, a caption in a paragraph of its own right after its picture,
comment widgets, the counters of short byline or meta lines) pruned first and the text run a
container opens with before a line break set in a paragraph of its own, the two readings
merged, and the blocks of prose that stand in the article's containers beside its paragraphs
but outside a paragraph element (an editor's note or a correction in a ``div``, a
``section`` or an ``aside``) added. Then counters, "read also" pointers and the repeated
headline are dropped.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Container, Iterable
from functools import lru_cache, partial

import lxml.html

from crawler.extraction.text import (
    BLOCK_TAGS,
    PageElements,
    first_of,
    select,
    select_any,
    simple_union,
    squash,
    text_of,
    words_of_names,
)
from crawler.fingerprint import COUNTER_LINE
from crawler.profiles import SiteProfile

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
NOISE_ROLES = frozenset(
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

# Paragraphs that only point to other articles ("Baca juga: ...", "Read more: ...").
_READ_ALSO = re.compile(
    r"^\W*(?:baca\s+juga|baca\s+pula|lihat\s+juga|simak\s+juga|read\s+more|read\s+also|"
    r"also\s+read|see\s+also|related|more\s+on\s+this|lesen\s+sie\s+auch|mehr\s+zum\s+thema|"
    r"lire\s+aussi|lee\s+tambi[eé]n)\b\s*[:：»>|-]",
    re.IGNORECASE,
)
_READ_ALSO_MAX_WORDS = 30


def _blocks(
    element: lxml.html.HtmlElement, skip: Container[lxml.html.HtmlElement] = frozenset()
) -> list[str]:
    """The element's text split into paragraphs at block-level elements, in document order;
    the elements in ``skip`` left out but for their tails, as if dropped
    (:meth:`~lxml.html.HtmlElement.drop_tree`)."""
    paragraphs: list[str] = []
    current: list[str] = []
    if isinstance(element.tag, str):
        _walk_blocks(element, element.tag, skip, current, paragraphs)
    _flush(current, paragraphs)
    return paragraphs


def _flush(current: list[str], paragraphs: list[str]) -> None:
    """End the paragraph being gathered in ``current``, if it holds any text."""
    if current:
        text = squash("".join(current))
        if text:
            paragraphs.append(text)
        current.clear()


def _walk_blocks(
    node: lxml.html.HtmlElement,
    tag: str,
    skip: Container[lxml.html.HtmlElement],
    current: list[str],
    paragraphs: list[str],
) -> None:
    """:func:`_blocks`' walk of one element (a function of the module's, not a closure: a
    recursive closure is a reference cycle that would keep the page's tree until the next
    garbage collection)."""
    block = tag.lower() in BLOCK_TAGS
    if block:
        _flush(current, paragraphs)
    append = current.append
    if node.text:
        append(node.text)
    for child in node:
        # A comment or a processing instruction gives its tail only.
        child_tag = child.tag
        if isinstance(child_tag, str) and child not in skip:
            if len(child):
                _walk_blocks(child, child_tag, skip, current, paragraphs)
            elif child_tag.lower() in BLOCK_TAGS:  # a block with no children: its text
                _flush(current, paragraphs)
                text = squash(child.text or "")
                if text:
                    paragraphs.append(text)
            elif child.text:
                append(child.text)
        if child.tail:
            append(child.tail)
    if block:
        _flush(current, paragraphs)


def _name_parts(element: lxml.html.HtmlElement) -> tuple[tuple[str, ...], ...]:
    """The words of each class name and of the id: ``"shareBar related-box"`` → share, bar…"""
    return words_of_names(element.get("class") or "", element.get("id") or "")


# A caption is named so whatever the word is glued to ("imgcaption", "figcaption-text").
CAPTION = "caption"


def is_noise_name(names: tuple[tuple[str, ...], ...]) -> bool:
    """Whether class or id names (:func:`~crawler.extraction.text.words_of_names`) mark
    boilerplate: a word of :data:`_NOISE_WORDS`, a pair of :data:`_NOISE_PAIRS`, or a word
    that holds :data:`CAPTION`."""
    for parts in names:
        if any(part in _NOISE_WORDS or CAPTION in part for part in parts):
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
        length = len(text_of(paragraph))
        if parent is not None and length >= 25:
            weights[parent] = weights.get(parent, 0) + length
    if not weights:
        return []
    heaviest = max(weights.values())
    return [e for e, w in weights.items() if (w >= heaviest / 5 and w >= 150) or w == heaviest]


# A container of wrappers: at least this share of the paragraphs under it stand each in a
# wrapper of its own among its children (a child that holds several is a section of the
# article or another page part: a story box beside its summary).
_WRAPPED_SHARE = 1.0


def _wrapper_containers(
    scope: lxml.html.HtmlElement,
) -> dict[lxml.html.HtmlElement, list[lxml.html.HtmlElement]]:
    """The article's containers whose paragraphs each stand in a wrapper of their own
    (``<section><div class="content-element"><p>…</p></div>…</section>``, a CMS's content
    elements), so that no element holds two of them directly, with those wrappers in order:
    the parent of two or more wrappers, a wrapper being the outermost element around one
    paragraph of prose (25 characters or more) that holds no other one. A container that
    holds its paragraphs directly is no such one (:func:`_content_blocks`)."""
    paragraphs = [p for p in scope.iter("p") if len(text_of(p)) >= 25]
    held: dict[lxml.html.HtmlElement, int] = {}
    for paragraph in paragraphs:
        for ancestor in paragraph.iterancestors():
            held[ancestor] = held.get(ancestor, 0) + 1
    found: dict[lxml.html.HtmlElement, list[lxml.html.HtmlElement]] = {}
    for paragraph in paragraphs:
        wrapper = paragraph
        parent = wrapper.getparent()
        while parent is not None and parent is not scope and held.get(parent) == 1:
            wrapper, parent = parent, parent.getparent()
        if wrapper is not paragraph and parent is not None:
            found.setdefault(parent, []).append(wrapper)
    return {
        parent: wrappers
        for parent, wrappers in found.items()
        if len(wrappers) >= 2 and len(wrappers) >= _WRAPPED_SHARE * held[parent]
    }


# A link box: a block of at most this many words, at most this many linked headlines, and a
# label of at most this many words outside its links, which must hold at least as many words
# as the label ("Read also: <headline>", "Lesen Sie auch <headline>", in any language).
_LINK_BOX_MAX_WORDS = 40
_LINK_BOX_MAX_LINKS = 3
_LINK_BOX_MAX_LABEL_WORDS = 6
_LINK_BOX_TAGS = frozenset(
    {"p", "div", "li", "ul", "ol", "dl", "blockquote", "section", "aside", "h2", "h3", "h4"}
)


def _starts_lowercase(text: str) -> bool:
    """Whether the first letter of ``text`` is lower case: the words of a sentence linked in
    its middle ("faces <a>a charge of …</a>"), not a headline (scripts without case: no)."""
    first = next((c for c in text if c.isalpha()), "")
    return first.islower()


def _is_link_box(element: lxml.html.HtmlElement) -> bool:
    """A short block whose text is mostly the text of one to three links, after a short
    label: it points to other articles and is no part of this one's text. A link whose text
    starts in lower case is words of a sentence, not a headline: no link box has one."""
    text = text_of(element)
    words = word_count((text,))
    if not words or words > _LINK_BOX_MAX_WORDS:
        return False
    links = [text_of(a) for a in element.iter("a")]
    links = [t for t in links if t]
    if not links or len(links) > _LINK_BOX_MAX_LINKS or any(map(_starts_lowercase, links)):
        return False
    linked = word_count(links)
    label = words - linked
    return label <= _LINK_BOX_MAX_LABEL_WORDS and linked >= max(label, 1) and linked >= 3


def drop_link_boxes(root: lxml.html.HtmlElement) -> None:
    """Remove the link boxes (:func:`_is_link_box`) inside the article's containers
    (:func:`_content_blocks`) in place, the outermost of nested ones."""
    body = root.find("body")
    doomed: list[lxml.html.HtmlElement] = []
    for block in _content_blocks(body if body is not None else root):
        for element in block.iterdescendants(*_LINK_BOX_TAGS):
            if doomed and doomed[-1] in element.iterancestors():
                continue
            if _is_link_box(element):
                doomed.append(element)
    for element in doomed:
        _drop(element)


# Inline elements that may hold one part of a short line ("<span>12 comments</span>").
_PART_TAGS = ("span", "a", "small", "em", "i", "b", "strong", "time", "button")
_PART_MAX_CHARS = 40
_SEPARATORS = "|·•"


def _block_of(element: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    """The nearest block-level ancestor of an element (:data:`BLOCK_TAGS`)."""
    for ancestor in element.iterancestors():
        if isinstance(ancestor.tag, str) and ancestor.tag.lower() in BLOCK_TAGS:
            return ancestor
    return None


def _drop_part(element: lxml.html.HtmlElement) -> None:
    """Remove an inline part of a line with the separator that set it off, if any (the one
    after it, else the one before it)."""
    tail = (element.tail or "").lstrip()
    if tail[:1] and tail[0] in _SEPARATORS:
        element.tail = " " + tail[1:]
    else:
        previous = element.getprevious()
        holder, attr = (previous, "tail") if previous is not None else (element.getparent(), "text")
        before = (getattr(holder, attr) or "").rstrip()
        if before[-1:] and before[-1] in _SEPARATORS:
            setattr(holder, attr, before[:-1] + " ")
    element.drop_tree()


def drop_counter_parts(root: lxml.html.HtmlElement) -> None:
    """Remove, in place, the inline elements that hold nothing but a counter
    (:data:`~crawler.fingerprint.COUNTER_LINE`: "12 comments", "Read 40 times", "3 min read")
    in a short line (at most :data:`_PARTS_MAX_WORDS` words) that holds more than the
    counter, with the separator that set each off: the parts of a byline or meta line that
    the site changes without editing the article, set apart by markup rather than by a
    separator in the text. A line that is a counter alone is left to the body's counter
    rule."""
    body = root.find("body")
    doomed: list[lxml.html.HtmlElement] = []
    for element in (body if body is not None else root).iter(*_PART_TAGS):
        text = text_of(element)
        if not text or len(text) > _PART_MAX_CHARS or not any(c.isdigit() for c in text):
            continue
        if not COUNTER_LINE.fullmatch(text):
            continue
        block = _block_of(element)
        if block is None:
            continue
        line = text_of(block)
        # A counter that is the whole line stays: the body's counter lines go as lines
        # (:func:`_without_counters`), and the page around it stays as the extractor read it.
        if squash(line) == squash(text) or word_count((line,)) > _PARTS_MAX_WORDS:
            continue
        if doomed and doomed[-1] in element.iterancestors():
            continue
        doomed.append(element)
    for element in doomed:
        _drop_part(element)


def _prune_noise(root: lxml.html.HtmlElement, profile: SiteProfile) -> None:
    """Remove boilerplate blocks in place; wrappers around the article text are kept, and
    so are the note boxes set in an ``aside`` of the article's container (a block of prose,
    :func:`_prose_leaf`); the pictures with their captions in the container go
    (:func:`_picture_boxes`)."""
    for element in select_any(root, profile.noise_selectors):
        _drop(element)
    body = root.find("body")
    scope = body if body is not None else root
    for element in list(scope.iter("script", "style", "noscript", "template", "svg", "iframe")):
        _drop(element)
    total = max(len(text_of(scope)), 1)
    protected: set[lxml.html.HtmlElement] = set()
    blocks = _content_blocks(scope)
    for block in blocks:
        protected.add(block)
        protected.update(block.iterancestors())
    doomed = [child for block in blocks for child in _picture_boxes(block)]
    notes = {
        child
        for block in [*blocks, *_wrapper_containers(scope)]
        for child in block.iterchildren("aside")
        if _prose_leaf(child)
    }
    for element in scope.iter():
        if not isinstance(element.tag, str) or element in protected:
            continue
        noisy = (
            (element.tag.lower() in _DROP_TAGS and element not in notes)
            or (element.get("role") or "").lower() in NOISE_ROLES
            or is_noise_name(_name_parts(element))
        )
        if noisy and len(text_of(element)) < _WRAPPER_SHARE * total:
            doomed.append(element)
    for element in doomed:
        _drop(element)


# A picture and at most this many words of text: a figure and its caption, however named.
_CAPTION_MAX_WORDS = 40
_MEDIA_TAGS = frozenset({"img", "picture", "video"})
_BOX_TAGS = frozenset({"div", "p", "span", "section", "center"})


def _is_picture_box(element: lxml.html.HtmlElement) -> bool:
    """Whether an element of the article's container is a picture with its caption, set in
    no ``figure`` and named in no way the noise rules know (``<div class="article-image">``
    with an image and a short line, ``<p><img><br><small>…</small></p>``): a picture first,
    no text before it or running on from it (a paragraph that starts beside a floated
    picture is text), the rest in elements of their own, at most a caption's words."""
    if not isinstance(element.tag, str) or element.tag.lower() not in _BOX_TAGS:
        return False
    if (element.text or "").strip():
        return False
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return False
    holder = children[0]
    if holder.tag.lower() not in _MEDIA_TAGS:
        media = next(holder.iter(*_MEDIA_TAGS), None)
        if media is None or text_of(holder):
            return False
    if any((child.tail or "").strip() for child in children):
        return False
    return word_count((text_of(element),)) <= _CAPTION_MAX_WORDS


# Tags of a caption set in an element of its own after its picture; a ``div`` is one only
# when its name says it is about a picture (a named ``div`` after a picture is as often a
# subheading, a pull quote or a correction).
_CAPTION_TAGS = frozenset({"p", "span", "small", "div"})
_CAPTION_NAMED_ONLY = "div"
# The inline element that sets a whole paragraph off as fine print (``<p><small>…</small></p>``).
_CAPTION_EMPHASIS = frozenset({"small"})
# Italics set a whole paragraph off as a caption only in a ``p`` right after the picture, once
# the article's text has begun, when the paragraph before the picture is not set in italics
# too (a run of italic paragraphs is the article's: quotes, an interview's questions) and the
# paragraph is no quotation (it opens with a quotation mark or a dialogue dash): a short
# paragraph set in italics elsewhere is as often the article's (a quote, a note).
_CAPTION_ITALICS = frozenset({"em", "i"})
_QUOTE_OPENERS = "\"'“”„‘’‚«»‹›「『–—-"
# Words of a name that says an element is about a picture: a help where position and style
# are not enough (a ``div``, and the top of a container, where a picture is as often followed
# by the article's first paragraph styled apart).
_PICTURE_WORDS = ("img", "image", "photo", "foto", "pic", "bild", "media", "credit")


def _class_words(element: lxml.html.HtmlElement) -> set[str]:
    return set((element.get("class") or "").split())


def _is_prose_paragraph(element: lxml.html.HtmlElement) -> bool:
    """A paragraph element of the article's text, as :func:`_content_blocks` weighs them."""
    return element.tag == "p" and len(text_of(element)) >= 25


def _shows_picture_only(element: lxml.html.HtmlElement) -> bool:
    """A picture with no text: the media element itself, or an element holding one."""
    if element.tag.lower() in _MEDIA_TAGS:
        return True
    return next(element.iter(*_MEDIA_TAGS), None) is not None and not text_of(element)


def _set_off(
    element: lxml.html.HtmlElement | None, tags: frozenset[str] = _CAPTION_EMPHASIS
) -> bool:
    """Whether all of the element's text is in one inline element of ``tags``
    (``<p><small>…</small></p>``, ``<p><em>…</em></p>`` for :data:`_CAPTION_ITALICS`)."""
    if element is None:
        return False
    children = [c for c in element if isinstance(c.tag, str)]
    return (
        len(children) == 1
        and children[0].tag.lower() in tags
        and not (element.text or "").strip()
        and not (children[0].tail or "").strip()
    )


def _italic_caption(
    element: lxml.html.HtmlElement, text: str, before_picture: lxml.html.HtmlElement | None
) -> bool:
    """Whether a ``p`` after a picture is set off as its caption by italics
    (:data:`_CAPTION_ITALICS`): all of it in one ``em`` or ``i``, no quotation, and the
    element before the picture not in italics as well."""
    return (
        element.tag.lower() == "p"
        and _set_off(element, _CAPTION_ITALICS)
        and not text.startswith(tuple(_QUOTE_OPENERS))
        and not _set_off(before_picture, _CAPTION_ITALICS)
    )


def _is_caption_after(
    element: lxml.html.HtmlElement,
    article_classes: set[str],
    after_text: bool,
    before_picture: lxml.html.HtmlElement | None = None,
) -> bool:
    """Whether an element that directly follows a picture with no text of its own is the
    picture's caption: a short block with no block inside, set apart from the article's
    paragraphs by a class none of them has (``article_classes``: theirs) or by fine print
    that holds all of it. After the article's text has begun (``after_text``) a ``p`` or a
    ``span`` is one by position and style alone, and so is a ``p`` set wholly in italics
    that is no quotation and follows no italic paragraph across the picture
    (``before_picture``: the element before the picture, :func:`_italic_caption`); a
    ``div``, or any at the top of the container, where the article's first paragraph is
    often styled apart, only if its name also says it is about a picture."""
    tag = element.tag.lower()
    if tag not in _CAPTION_TAGS:
        return False
    text = text_of(element)
    if not text or word_count((text,)) > _CAPTION_MAX_WORDS:
        return False
    for inner in element.iterdescendants():
        inner_tag = inner.tag.lower() if isinstance(inner.tag, str) else ""
        if inner_tag in BLOCK_TAGS and inner_tag != "br":
            return False
    own = _class_words(element)
    if after_text and _italic_caption(element, text, before_picture):
        return True
    if not ((own and not own & article_classes) or _set_off(element)):
        return False
    if after_text and tag != _CAPTION_NAMED_ONLY:
        return True
    names = " ".join(own).lower()
    return any(word in names for word in _PICTURE_WORDS)


def _article_classes(children: list[lxml.html.HtmlElement]) -> set[str]:
    """The class words of a container's paragraphs of prose but those right after a
    picture with no text (which may be captions)."""
    words: set[str] = set()
    previous: lxml.html.HtmlElement | None = None
    for child in children:
        if _is_prose_paragraph(child) and not (
            previous is not None
            and not (previous.tail or "").strip()
            and _shows_picture_only(previous)
        ):
            words |= _class_words(child)
        previous = child
    return words


def _picture_boxes(block: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    """The children of an article's container that are a picture with its caption
    (:func:`_is_picture_box`), and the caption in an element of its own right after a
    picture with no text (:func:`_is_caption_after`)."""
    found: list[lxml.html.HtmlElement] = []
    children = [c for c in block if isinstance(c.tag, str)]
    article_classes: set[str] | None = None
    after_text = False
    previous: lxml.html.HtmlElement | None = None
    before: lxml.html.HtmlElement | None = None
    for child in children:
        if _is_picture_box(child):
            found.append(child)
        elif (
            previous is not None
            and not (previous.tail or "").strip()
            and _shows_picture_only(previous)
        ):
            if article_classes is None:
                article_classes = _article_classes(children)
            if _is_caption_after(child, article_classes, after_text, before):
                found.append(child)
        if not after_text and child not in found and _is_prose_paragraph(child):
            after_text = True
        before, previous = previous, child
    return found


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


def _apply_patterns(
    paragraphs: Iterable[str], patterns: tuple[str, ...], *, squashed: bool = False
) -> list[str]:
    """The paragraphs with ``patterns`` removed, collapsed (``squashed``: they already are,
    and one that no pattern changed is kept as it is), empty ones left out."""
    for_lines, for_line = _compile_patterns(patterns)
    result = []
    for paragraph in paragraphs:
        text = paragraph
        for pattern in for_lines if "\n" in text else for_line:
            text = pattern.sub("", text)
        if not squashed or text != paragraph:
            text = squash(text)
        if text:
            result.append(text)
    return result


def profile_body(
    tree: lxml.html.HtmlElement, profile: SiteProfile, elements: PageElements | None = None
) -> list[str] | None:
    """The paragraphs of the first of the profile's body selectors that gives any, else None
    (``elements``: the page's, when already found)."""
    return first_of(
        *(partial(_selected_body, tree, s, profile, elements) for s in profile.body_selectors)
    )


def _selected_body(
    tree: lxml.html.HtmlElement,
    selector: str,
    profile: SiteProfile,
    elements: PageElements | None = None,
) -> list[str]:
    """The paragraphs of the outermost elements ``selector`` matches, noise removed."""
    containers = select(tree, selector, elements)
    paragraphs: list[str] = []
    noise = simple_union(profile.noise_selectors)
    for container in containers:
        if any(c is not container and container in c.iterancestors() for c in containers):
            continue
        if noise is not None:
            # Whether an element is noise depends on it alone: the container is read as
            # it stands, its noise passed over (the container itself is kept, as a copy's
            # root, which has no parent to drop it from, is).
            skip = set(noise(container))
            skip.discard(container)
            paragraphs.extend(_blocks(container, skip))
            continue
        piece = copy.deepcopy(container)
        for element in select_any(piece, profile.noise_selectors):
            _drop(element)
        paragraphs.extend(_blocks(piece))
    return _apply_patterns(paragraphs, profile.noise_patterns, squashed=True)


def _trafilatura_paragraphs(
    tree: lxml.html.HtmlElement,
    url: str,
    *,
    favor_precision: bool = False,
    favor_recall: bool = False,
) -> list[str]:
    # Imported when first needed: pages that a profile reads never need it, and importing it
    # is a good part of a crawl process's start-up.
    import trafilatura

    read = copy.deepcopy(tree)
    wrap_leading_runs(read)
    text = trafilatura.extract(
        read,
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


def word_count(paragraphs: Iterable[str]) -> int:
    """Words, counting two CJK characters as one (those scripts do not separate words)."""
    return sum(len(_WORD.findall(p)) + len(_CJK.findall(p)) // 2 for p in paragraphs)


def _merge_span(precise: list[str], recalled: list[str]) -> list[str]:
    """Precision-mode paragraphs plus those recall mode found between them.

    Precision mode drops borderline paragraphs inside the article; recall mode keeps them but
    adds boilerplate around it. Recall's paragraphs from the first to the last one that
    precision also found are the article, in page order.
    """
    kept = {squash(p) for p in precise}
    positions = [i for i, p in enumerate(recalled) if squash(p) in kept]
    if not positions:
        return precise
    span = recalled[positions[0] : positions[-1] + 1]
    if word_count(span) < word_count(precise):
        return precise
    return span


def _add_missing_chunks(blocks: list[lxml.html.HtmlElement], paragraphs: list[str]) -> list[str]:
    """Add article chunks the extractor skipped.

    Some layouts split the article into several containers of the same kind (same tag and
    class) with widgets between them; the extractor may read only the first. A chunk of the
    same kind as one that was read, with none of its paragraphs in the result, is added in
    page order. ``blocks``: the page's article containers (:func:`_content_blocks`).
    """
    if len(blocks) < 2:
        return paragraphs
    present = {squash(p): i for i, p in enumerate(paragraphs)}
    chunks = []
    for block in blocks:
        texts = [text_of(p) for p in block if isinstance(p.tag, str) and p.tag == "p"]
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


# A block of prose: at least this many words and characters, at most this share link text.
_PROSE_MIN_WORDS = 6
_PROSE_MIN_CHARS = 40
_PROSE_MAX_LINK_SHARE = 0.3
# Tags of the elements that hold prose in an article's container beside its paragraphs; an
# ``aside`` (a note box) may set its prose in paragraphs.
_PROSE_TAGS = frozenset({"div", "section", "aside"})
_NOTE_TAG = "aside"
# What a block of prose does not hold: a date or time (an "updated 5 minutes ago" line), media
# (a caption beside its picture).
_NOT_PROSE_TAGS = frozenset({"time", "img", "picture", "video", "audio", "iframe", "svg"})


def _prose_leaf(element: lxml.html.HtmlElement) -> str:
    """The element's text when it is a block of prose with no block inside it (an
    ``aside``, a note box: none but paragraphs), else ""."""
    if not isinstance(element.tag, str) or element.tag.lower() not in _PROSE_TAGS:
        return ""
    paragraphs_allowed = element.tag.lower() == _NOTE_TAG
    for inner in element.iterdescendants():
        tag = inner.tag.lower() if isinstance(inner.tag, str) else ""
        if tag in _NOT_PROSE_TAGS:
            return ""
        if tag in BLOCK_TAGS and tag != "br" and not (paragraphs_allowed and tag == "p"):
            return ""
    text = text_of(element)
    if len(text) < _PROSE_MIN_CHARS or word_count((text,)) < _PROSE_MIN_WORDS:
        return ""
    linked = sum(len(text_of(a)) for a in element.iter("a"))
    return text if linked <= _PROSE_MAX_LINK_SHARE * len(text) else ""


def _read_in(wrapper: lxml.html.HtmlElement, index: dict[str, int]) -> int | None:
    """The place in the body of the paragraph a wrapper holds, if it was read."""
    for paragraph in wrapper.iter("p"):
        at = index.get(text_of(paragraph))
        if at is not None:
            return at
    return None


def _add_container_prose(
    scope: lxml.html.HtmlElement, blocks: list[lxml.html.HtmlElement], paragraphs: list[str]
) -> list[str]:
    """Add the blocks of prose that stand in the article's containers beside the paragraphs
    read, set in a ``div``, ``section`` or ``aside`` rather than a paragraph (an editor's
    note, a correction, an update line), which the extractor skips: each after the paragraph
    read before it in its container, or before the first one read. A container is one that
    holds paragraphs (``blocks``, :func:`_content_blocks` of ``scope``) or their wrappers,
    one around each (:func:`_wrapper_containers`)."""
    index = {p: i for i, p in reversed(list(enumerate(paragraphs)))}
    joined = "\n".join(paragraphs)
    before: dict[int, list[str]] = {}
    after: dict[int, list[str]] = {}
    wrapped = _wrapper_containers(scope)
    seen: set[str] = set()
    for block in [*blocks, *wrapped]:
        children = [c for c in block if isinstance(c.tag, str)]
        wrappers = set(wrapped.get(block, ()))
        read = [
            index.get(text_of(c)) if c.tag == "p" else _read_in(c, index) if c in wrappers else None
            for c in children
        ]
        if all(r is None for r in read):
            continue
        last: int | None = None
        waiting: list[str] = []
        for child, at in zip(children, read, strict=True):
            if at is not None:
                before.setdefault(at, []).extend(waiting)
                waiting = []
                last = at
                continue
            text = _prose_leaf(child)
            if not text or text in joined or text in seen:
                continue
            seen.add(text)
            if last is None:
                waiting.append(text)
            else:
                after.setdefault(last, []).append(text)
    if not before and not after:
        return paragraphs
    result: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        result.extend(before.get(i, ()))
        result.append(paragraph)
        result.extend(after.get(i, ()))
    return result


# Tags of the containers whose text may run in paragraphs set apart by line breaks, with no
# paragraph elements (``<div>First paragraph…<br><br>Second…</div>``).
_RUN_TAGS = ("div", "td")


def wrap_leading_runs(root: lxml.html.HtmlElement) -> None:
    """Set, in place, the text a container opens with into a paragraph element of its own when
    a line break ends it and it is a block of prose (:data:`_PROSE_MIN_WORDS`,
    :data:`_PROSE_MIN_CHARS`): an article whose paragraphs are text runs set apart by ``<br>``
    opens with one, and the extractor, which reads the runs after line breaks, passes over
    the text before the first break of a container nested in the one it reads."""
    body = root.find("body")
    for element in list((body if body is not None else root).iter(*_RUN_TAGS)):
        if not (element.text or "").strip():
            continue
        run: list[lxml.html.HtmlElement] = []
        ended = False
        for child in element:
            tag = child.tag.lower() if isinstance(child.tag, str) else ""
            if tag in BLOCK_TAGS:
                ended = tag == "br"
                break
            run.append(child)
        if not ended:
            continue
        paragraph = lxml.html.Element("p")
        paragraph.text, element.text = element.text, None
        for child in run:
            paragraph.append(child)  # with its tail: text of the run
        text = text_of(paragraph)
        if len(text) < _PROSE_MIN_CHARS or word_count((text,)) < _PROSE_MIN_WORDS:
            element.text = paragraph.text
            for child in reversed(run):
                element.insert(0, child)
            continue
        element.insert(0, paragraph)


def general_body(tree: lxml.html.HtmlElement, url: str, profile: SiteProfile) -> list[str]:
    """The paragraphs trafilatura finds on the page with its noise pruned (see the module)."""
    ordered = copy.deepcopy(tree)
    _sort_classes(ordered)
    drop_link_boxes(ordered)
    drop_counter_parts(ordered)
    pruned = copy.deepcopy(ordered)
    _prune_noise(pruned, profile)
    precise = _trafilatura_paragraphs(pruned, url, favor_precision=True)
    recalled = _trafilatura_paragraphs(pruned, url, favor_recall=True)
    best = _merge_span(precise, recalled)
    # Pruning can take away what the extractor anchors on, and precision mode sometimes
    # stops at the first block of an article split by widgets: the other readings are taken
    # when they hold far more text.
    if word_count(best) < 150:
        for other in (recalled, _trafilatura_paragraphs(ordered, url)):
            if word_count(other) > 2 * word_count(best):
                best = other
    body = pruned.find("body")
    scope = body if body is not None else pruned
    containers = _content_blocks(scope)
    best = _add_missing_chunks(containers, best)
    best = _add_container_prose(scope, containers, best)
    return _apply_patterns(best, profile.noise_patterns)


# A short line of parts set off by separators ("By Jane Doe | 12 comments | 3 min read").
_PARTS = re.compile(r"(\s+[|·•]\s+)")
_PARTS_MAX_WORDS = 15


def _without_counters(paragraph: str) -> str:
    """A short line of parts set off by separators without its parts that are counters
    ("By Jane Doe | 12 comments" → "By Jane Doe"): the site changes them without editing the
    article."""
    if not any(mark in paragraph for mark in "|·•"):
        return paragraph  # most paragraphs: a substring search, no split and no regex
    if len(paragraph.split()) > _PARTS_MAX_WORDS or not _PARTS.search(paragraph):
        return paragraph
    pieces = _PARTS.split(paragraph)  # part, separator, part, …
    parts = pieces[0::2]
    kept = [i for i, part in enumerate(parts) if not COUNTER_LINE.fullmatch(part)]
    if len(kept) == len(parts):
        return paragraph
    # Each part kept after the first keeps the separator that stood before it.
    return "".join((pieces[2 * i - 1] if n else "") + parts[i] for n, i in enumerate(kept))


def tidy(paragraphs: list[str], title: str, *, drop_repeats: bool) -> list[str]:
    """Paragraphs without bare counters ("12 Comments", also as a part of a short line set
    off by separators), "read also" pointers, the headline
    repeated at the top, and (``drop_repeats``) immediate repeats.

    A general extractor can return one block twice from nested containers; a profile's
    selectors cannot, so there a repeated paragraph is the article's own and is kept.
    """
    result: list[str] = []
    squashed_title = squash(title).casefold()
    for paragraph in map(_without_counters, paragraphs):
        if not paragraph or COUNTER_LINE.fullmatch(paragraph):
            continue
        if _READ_ALSO.match(paragraph) and len(paragraph.split()) <= _READ_ALSO_MAX_WORDS:
            continue
        if not result and squashed_title and paragraph.casefold() == squashed_title:
            continue
        if not drop_repeats or not result or result[-1] != paragraph:
            result.append(paragraph)
    return result
