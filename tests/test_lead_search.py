"""The standfirst search's walk through the page: the elements after the headline, in
document order, taken one at a time as the search needs them."""

from __future__ import annotations

import random

import lxml.etree
import lxml.html
import pytest

from crawler.extraction.lead import _following, _headline_of, _plain, _start
from crawler.extraction.parsing import parse
from crawler.extraction.text import PageElements, text_content

PAGE = """<!doctype html><html><head><title>T</title></head><body>
<header><nav><a href="/">Home</a><!-- menu --></nav></header>
<main><article><h1>Headline <em>here</em></h1><p class="dek">A standfirst.</p>
<div><span>12 May</span> <b>by A</b><?pi x?></div><p>Body <a href="/x">one</a>.</p></article>
<aside><ul><li>Other</li><li>More</li></ul></aside></main><footer><p>Footer</p></footer>
</body></html>"""


@pytest.mark.parametrize("keep_comments", [False, True])
def test_the_walk_gives_what_the_following_axis_gives_from_every_element(
    keep_comments: bool,
) -> None:
    # Comments and processing instructions, which the following axis leaves out, only in
    # a tree parsed with them kept.
    tree = lxml.html.document_fromstring(PAGE) if keep_comments else parse(PAGE, "https://x.org/")
    assert any(isinstance(node, lxml.etree._Comment) for node in tree.iter()) == keep_comments
    following = lxml.etree.XPath("following::*")
    elements = list(tree.iter(lxml.etree.Element))
    assert len(elements) > 15
    for element in elements:
        assert list(_following(element)) == following(element), element.tag


def test_the_walk_is_lazy() -> None:
    tree = parse(PAGE, "https://example.org/a")
    headline = next(tree.iter("h1"))
    walk = _following(headline)
    assert next(walk).get("class") == "dek"
    assert next(walk).tag == "div"


@pytest.mark.parametrize("keep_comments", [False, True])
def test_text_content_is_the_elements_text_content(keep_comments: bool) -> None:
    tree = lxml.html.document_fromstring(PAGE) if keep_comments else parse(PAGE, "https://x.org/")
    for element in tree.iter(lxml.etree.Element):
        assert text_content(element) == element.text_content(), element.tag


def test_a_paragraph_is_known_by_how_its_start_reads() -> None:
    """How a paragraph starts is read from its first characters when they hold enough
    words: what reading the whole paragraph gives."""
    rng = random.Random(7)
    pieces = (
        "Kata",
        "STRASSE",
        "straße",
        "e\u0301t\u00e9",
        "\u0130",
        "\u03a3",
        "1.5",
        "--",
        " ",
        "  ",
    )
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        plain = _plain(text)
        assert _start(text) == (plain[:40] if len(plain) >= 40 else ""), repr(text)


def test_the_walk_within_an_ancestor_gives_what_follows_inside_it() -> None:
    tree = parse(PAGE, "https://x.org/")
    following = lxml.etree.XPath("following::*")
    for element in tree.iter(lxml.etree.Element):
        for within in (element, *element.iterancestors()):
            inside = [e for e in following(element) if within in e.iterancestors()]
            assert list(_following(element, within)) == inside, (element.tag, within.tag)


def test_the_headline_found_among_the_pages_elements_is_the_one_found_in_its_body() -> None:
    page = PAGE.replace("<main>", "<main><h2>Headline here too</h2><h1>Logo</h1>")
    tree = parse(page, "https://x.org/")
    body = tree.find("body")
    for title in ("Headline here", "Logo", "Nothing like it", "", "Headline here too"):
        found = _headline_of(body, title, PageElements(tree))
        assert found is _headline_of(body, title), title
