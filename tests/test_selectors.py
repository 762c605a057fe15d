"""Simple CSS selectors matched in Python give what lxml's CSS (XPath) matching gives."""

from __future__ import annotations

import copy
import dataclasses
import random
import urllib.request

import lxml.etree
import lxml.html
import pytest
from fixture_site import FixtureSite
from lxml.cssselect import CSSSelector

from crawler.extraction.body import _blocks
from crawler.extraction.parsing import parse
from crawler.extraction.selectors import simple_matcher, simple_test
from crawler.extraction.text import BLOCK_TAGS, PageElements, select, select_any
from crawler.profiles import PROFILES

CLASSES = (
    "ads",
    "ads-top",
    "x ads",
    "paging",
    "Paging",
    "pagingx",
    "side-article txt-article",
    "txt-article\tside-article",
    "txt-article\nside-article  extra",
    "side-article\u00a0txt-article",
    "side-article\x0btxt-article",
    " baca ",
    "baca\r",
    "",
    "a-b c_d",
)
IDS = ("ads", "adsense", "div-gpt-ad-1", "arttitle", "penulis", "", "x y")
TAGS = ("div", "p", "span", "h1", "section", "blockquote", "figure", "a", "time")
SELECTORS = (
    "div",
    "*",
    "p.baca",
    ".paging",
    "div.paging",
    "div.side-article.txt-article",
    "div.txt-article",
    ".side-article.extra",
    "h1#arttitle",
    "#ads",
    "[class^=ads]",
    "[class*=' ads']",
    "[class*=paging]",
    "[id^=ads]",
    "[id^=div-gpt-ad]",
    "[id]",
    "[class]",
    "div[id]",
    "[id='']",
    "[class=paging]",
    "DIV.paging",
    "[CLASS^=ads]",
    "span.a-b.c_d",
    "p#penulis.baca",
    "[data-kind=live]",
    "[data-kind^=li]",
    "time",
    # not simple: left to XPath
    "div a",
    "#x y",
    "div > p",
    "p:first-child",
    "[class^='']",
    "[class~=ads]",
    "[class$=ads]",
    "[class=ads i]",
    ".",
    "div.paging, p.baca",
)


def random_page(rng: random.Random) -> str:
    def element(depth: int) -> str:
        tag = rng.choice(TAGS)
        attributes = ""
        if rng.random() < 0.6:
            attributes += f' class="{rng.choice(CLASSES)}"'
        if rng.random() < 0.4:
            attributes += f' id="{rng.choice(IDS)}"'
        if rng.random() < 0.2:
            attributes += f' data-kind="{rng.choice(("live", "lively", "", "x"))}"'
        inner = "".join(element(depth + 1) for _ in range(rng.randint(0, 3) if depth < 4 else 0))
        return f"<{tag}{attributes}>t{inner}</{tag}>"

    return f"<html><body>{''.join(element(0) for _ in range(8))}</body></html>"


def xpath_matches(selectors: tuple[str, ...], tree: lxml.html.HtmlElement) -> list[object]:
    return list(CSSSelector(", ".join(selectors), translator="html")(tree))


def test_what_is_simple() -> None:
    simple = {s for s in SELECTORS if simple_matcher((s,)) is not None}
    assert simple == set(SELECTORS[: SELECTORS.index("div a")])


@pytest.mark.parametrize("seed", range(6))
def test_simple_selectors_match_as_their_xpath(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20):
        tree = parse(random_page(rng), "https://example.org/")
        roots = [tree, *rng.sample(list(tree.iter("div", "p", "section")), 2)]
        for selector in SELECTORS:
            matcher = simple_matcher((selector,))
            if matcher is None:
                continue
            for root in roots:
                assert matcher(root) == xpath_matches((selector,), root), selector


def test_unions_of_simple_selectors_match_as_their_xpath_union() -> None:
    rng = random.Random(21)
    simple = [s for s in SELECTORS if simple_matcher((s,)) is not None]
    unions = [tuple(rng.sample(simple, rng.randint(2, 8))) for _ in range(40)]
    unions += [tuple(p.noise_selectors) for p in PROFILES if p.noise_selectors]
    for _ in range(10):
        tree = parse(random_page(rng), "https://example.org/")
        for union in unions:
            matcher = simple_matcher(union)
            assert matcher is not None
            assert matcher(tree) == xpath_matches(union, tree), union
    assert simple_matcher(("div", "div a")) is None


def test_the_profiles_selectors_on_the_fixture_sites_pages() -> None:
    with FixtureSite.reference_site() as site:
        pages = []
        for article in site.articles:
            with urllib.request.urlopen(site.base_url + article.path, timeout=10) as response:
                pages.append(response.read())
    selectors = {
        selector
        for profile in PROFILES
        for field in dataclasses.fields(profile)
        if field.name.endswith("_selectors")
        for selector in getattr(profile, field.name)
    }
    unions = [p.noise_selectors for p in PROFILES if p.noise_selectors]
    checked = 0
    for html in pages:
        tree = parse(html, "https://example.org/")
        for selector in sorted(selectors):
            matcher = simple_matcher((selector,))
            if matcher is not None:
                assert matcher(tree) == xpath_matches((selector,), tree), selector
                checked += 1
        for union in unions:
            matcher = simple_matcher(union)
            assert matcher is not None
            assert matcher(tree) == xpath_matches(union, tree)
    assert checked > 10 * len(pages)


def walked_blocks(element: lxml.html.HtmlElement) -> list[str]:
    """The paragraphs of an element as extraction has always split them (a walk of a copy
    with its noise dropped)."""
    paragraphs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        text = " ".join("".join(current).split())
        if text:
            paragraphs.append(text)
        current.clear()

    def walk(node: lxml.html.HtmlElement) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        block = tag.lower() in BLOCK_TAGS
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


@pytest.mark.parametrize("seed", range(3))
def test_a_container_read_past_its_noise_reads_as_a_copy_with_the_noise_dropped(
    seed: int,
) -> None:
    rng = random.Random(seed)
    simple = [s for s in SELECTORS if simple_matcher((s,)) is not None]
    for _ in range(30):
        page = random_page(rng).replace("t<", "t <b>x</b> y<br>z<", rng.randint(0, 5))
        tree = parse(page, "https://example.org/")
        noise = tuple(rng.sample(simple, rng.randint(1, 4)))
        matcher = simple_matcher(noise)
        assert matcher is not None
        for container in [tree, *tree.iter("div", "section")]:
            piece = copy.deepcopy(container)
            for element in select_any(piece, noise):
                if element.getparent() is not None:
                    element.drop_tree()
            skip = set(matcher(container)) - {container}
            assert _blocks(container, skip) == walked_blocks(piece), noise


def test_an_element_is_told_from_itself_what_the_matcher_finds() -> None:
    rng = random.Random(5)
    simple = [s for s in SELECTORS if simple_matcher((s,)) is not None]
    for _ in range(20):
        tree = parse(random_page(rng), "https://example.org/")
        union = tuple(rng.sample(simple, rng.randint(1, 5)))
        test = simple_test(union)
        matcher = simple_matcher(union)
        assert test is not None
        assert matcher is not None
        found = set(matcher(tree))
        for element in tree.iter(lxml.etree.Element):
            assert test(element) == (element in found), union


def test_a_selector_of_the_pages_elements_found_once_matches_as_over_the_tree() -> None:
    rng = random.Random(8)
    for _ in range(15):
        tree = parse(random_page(rng), "https://example.org/")
        elements = PageElements(tree)
        for selector in SELECTORS:
            assert select(tree, selector, elements) == select(tree, selector), selector
