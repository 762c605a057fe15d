"""Simple CSS selectors matched in Python: one pass over the elements of the tag they name.

lxml matches a CSS selector by translating it to XPath (cssselect) and evaluating that; on a
page of a few hundred elements the evaluation costs tens of microseconds, most of it the
XPath machinery, and a union of selectors walks the tree once for each of them. Most of the
selectors profiles use are simple: a tag, classes, an id, attributes that exist, equal, start
with or hold a value (``div.txt-article``, ``h1#arttitle``, ``[class^=ads]``). For a set of
those, :func:`simple_matcher` writes one Python function that walks the elements once (only
those of the tags named, when every selector names one) and tests each as the XPath does.

A selector counts as simple only when cssselect translates it to exactly the XPath that the
tests below stand for (checked for each selector): anything else (combinators,
pseudo-classes, namespaces, case-insensitive values, names XPath must quote) is left to
XPath.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cssselect
import lxml.etree
import lxml.html
from cssselect.parser import Attrib, Class, Element, Hash
from lxml.cssselect import CSSSelector

Matcher = Callable[[lxml.html.HtmlElement], list[lxml.html.HtmlElement]]

_literal = cssselect.GenericTranslator.xpath_literal
# XPath's whitespace, which normalize-space() collapses: a class attribute's names are
# separated by it.
_XPATH_SPACES = str.maketrans("\t\n\r", "   ")


def _padded(classes: str) -> str:
    """A class attribute with its XPath whitespace made spaces, a space at each end: a class
    name ``x`` (no whitespace in it) is one of its names exactly when " x " is in it, as it
    is in ``concat(' ', normalize-space(@class), ' ')``."""
    if classes.isprintable():  # no tab, line feed or carriage return
        return f" {classes} "
    return f" {classes.translate(_XPATH_SPACES)} "


@dataclass(frozen=True)
class _Simple:
    """One simple selector: a tag (None for any element) and conditions on attributes."""

    tag: str | None
    classes: tuple[str, ...]
    ident: str | None
    attributes: tuple[tuple[str, str, str | None], ...]  # name, operator, value


def _parse(selector: str) -> _Simple | None:
    """The selector as a :class:`_Simple`, or None when it is not one."""
    try:
        parsed = cssselect.parse(selector)
    except cssselect.SelectorError:
        return None
    if len(parsed) != 1 or parsed[0].pseudo_element is not None:
        return None
    classes: list[str] = []
    ident: str | None = None
    attributes: list[tuple[str, str, str | None]] = []
    node = parsed[0].parsed_tree
    while not isinstance(node, Element):
        if isinstance(node, Class):
            classes.append(node.class_name)
        elif isinstance(node, Hash):
            if ident is not None:
                return None
            ident = node.id
        elif isinstance(node, Attrib):
            if node.namespace is not None or getattr(node, "flag", None) is not None:
                return None
            if node.operator not in ("exists", "=", "^=", "*="):
                return None
            value = None if node.value is None else str(node.value.value)
            attributes.append((node.attrib.lower(), node.operator, value))
        else:
            return None
        node = node.selector
    if node.namespace is not None:
        return None
    classes.reverse()
    attributes.reverse()
    simple = _Simple(
        node.element.lower() if node.element else None, tuple(classes), ident, tuple(attributes)
    )
    # Conditions were read innermost last; cssselect nests them in the order written.
    return simple if _xpath_of(parsed[0].parsed_tree) == _translated(selector) else None


def _translated(selector: str) -> str:
    return str(CSSSelector(selector, translator="html").path)


def _xpath_of(node: object) -> str:
    """The XPath that the tests :func:`_conditions` writes stand for: the one cssselect's
    HTML translator gives a simple selector, written out here the same way."""
    element, condition = _parts(node)
    return f"descendant-or-self::{element}" + (f"[{condition}]" if condition else "")


def _parts(node: object) -> tuple[str, str]:
    if isinstance(node, Element):
        return (node.element.lower() if node.element else "*"), ""
    assert isinstance(node, Class | Hash | Attrib)
    element, condition = _parts(node.selector)
    if isinstance(node, Class):
        name = node.class_name
        new = (
            f"@class and contains(@class, {_literal(name)}) and "
            f"contains(concat(' ', normalize-space(@class), ' '), {_literal(' ' + name + ' ')})"
        )
    elif isinstance(node, Hash):
        new = f"@id = {_literal(node.id)}"
    else:
        attribute = "@" + node.attrib.lower()
        value = "" if node.value is None else str(node.value.value)
        if node.operator == "exists":
            new = attribute
        elif node.operator == "=":
            new = f"{attribute} = {_literal(value)}"
        elif node.operator == "^=":
            new = f"{attribute} and starts-with({attribute}, {_literal(value)})"
        else:
            new = f"{attribute} and contains({attribute}, {_literal(value)})"
    return element, f"({condition}) and ({new})" if condition else new


def _conditions(simple: _Simple) -> str:
    """The Python test of one element (``e``, its ``tag``, ``cls`` its class attribute and
    ``ident`` its id) that the selector's XPath makes."""
    tests = []
    if simple.tag is not None:
        tests.append(f"tag == {simple.tag!r}")
    if simple.ident is not None:
        tests.append(f"ident == {simple.ident!r}")
    for name in simple.classes:
        # As the XPath, looked for as a substring first: most elements fail there.
        tests.append(
            f"cls is not None and {name!r} in cls and {' ' + name + ' '!r} in _padded(cls)"
        )
    for name, operator, value in simple.attributes:
        read = {"class": "cls", "id": "ident"}.get(name, f"e.get({name!r})")
        if operator == "exists":
            tests.append(f"{read} is not None")
        elif operator == "=":
            tests.append(f"{read} == {value!r}")
        elif operator == "^=":
            tests.append(f"({read} or '').startswith({value!r})")  # value is not ""
        else:
            tests.append(f"{value!r} in ({read} or '')")  # value is not ""
    return " and ".join(tests) or "True"


@lru_cache(maxsize=256)
def simple_matcher(selectors: tuple[str, ...]) -> Matcher | None:
    """A function giving the elements of a tree (itself included) that any of ``selectors``
    (valid CSS) matches, in document order, as their XPath union gives them; None when one
    of them is not simple."""
    functions = _generated(selectors)
    return None if functions is None else functions[0]


@lru_cache(maxsize=256)
def simple_tag(selector: str) -> str | None:
    """The tag a simple selector names (None for any element, or when it is not simple)."""
    simple = _parse(selector)
    return None if simple is None else simple.tag


@lru_cache(maxsize=256)
def simple_test(selectors: tuple[str, ...]) -> Callable[[lxml.html.HtmlElement], bool] | None:
    """A function telling whether any of ``selectors`` (valid CSS) matches an element, as
    its :func:`simple_matcher` would find it; None when one of them is not simple."""
    functions = _generated(selectors)
    return None if functions is None else functions[1]


@lru_cache(maxsize=256)
def _generated(
    selectors: tuple[str, ...],
) -> tuple[Matcher, Callable[[lxml.html.HtmlElement], bool]] | None:
    simple = [_parse(selector) for selector in selectors]
    if not simple or any(s is None for s in simple):
        return None
    known = [s for s in simple if s is not None]
    tags = sorted({s.tag for s in known if s.tag is not None})
    walk = (
        "root.iter(_ELEMENT)"
        if any(s.tag is None for s in known)
        else f"root.iter({', '.join(map(repr, tags))})"
    )
    test = " or ".join(f"({_conditions(s)})" for s in known)
    source = "\n".join(
        (
            "def match(root):",
            "    found = []",
            f"    for e in {walk}:",
            "        tag = e.tag",
            "        cls = e.get('class')",
            "        ident = e.get('id')",
            f"        if {test}:",
            "            found.append(e)",
            "    return found",
            "",
            "def test(e):",
            "    tag = e.tag",
            "    cls = e.get('class')",
            "    ident = e.get('id')",
            f"    return bool({test})",
        )
    )
    namespace: dict[str, object] = {"_ELEMENT": lxml.etree.Element, "_padded": _padded}
    exec(compile(source, f"<selectors {selectors!r}>", "exec"), namespace)  # noqa: S102
    match, test_one = namespace["match"], namespace["test"]
    assert callable(match)
    assert callable(test_one)
    return match, test_one
