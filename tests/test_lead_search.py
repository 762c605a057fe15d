"""The standfirst search's walk through the page: the elements after the headline, in
document order, taken one at a time as the search needs them."""

from __future__ import annotations

import lxml.etree
import lxml.html
import pytest

from crawler.extraction.lead import _following
from crawler.extraction.parsing import parse

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
