"""Whether an article page is live coverage: a page the site keeps adding entries to.

Two signs a page can carry (a third, how often the article changes, is the repository's to
see: :mod:`storage.live`):

- ``markup``: a JSON-LD ``LiveBlogPosting`` (schema.org's type for live coverage, usually with
  ``liveBlogUpdate`` entries). Its ``coverageEndTime``, once past, says the coverage ended.
- ``marker``: the usual marks of a live page that a generic rule can see, in any language:
  a headline that starts with "LIVE" (as in "LIVE: …", "Live updates: …", "LIVE UPDATE …"),
  or a container named as a live blog (``class``/``id`` ``liveblog``, ``live-blog``,
  ``live-updates``, ``live-coverage``…) that holds paragraphs (a "live" ticker in the
  navigation holds none).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import lxml.html

from crawler.extraction.text import PageElements, elements_of

LiveKind = Literal["markup", "marker"]

_LIVE_TITLE = re.compile(
    r"^\s*(?:\W\s*)?live\b(?:\s*(?:updates?|blog|report|coverage))?\s*[:|\-–—]", re.I
)
_LIVE_TITLE_UPPER = re.compile(r"^\s*(?:\W\s*)?LIVE\b")
_LIVE_NAMES = frozenset(
    {
        "liveblog",
        "live-blog",
        "live_blog",
        "liveblog-body",
        "live-blog-body",
        "live-updates",
        "live_updates",
        "liveupdates",
        "live-coverage",
        "livecoverage",
        "live-feed",
        "live-ticker-entries",
    }
)
_NAME_TOKENS = re.compile(r"[\s]+")
_CONTAINER_TAGS = ("div", "section", "ol", "ul", "article", "main")


@dataclass(frozen=True)
class LiveSignal:
    """The page is live coverage, recognised by ``kind``; ``ended`` when the markup says the
    coverage is over (its ``coverageEndTime`` has passed)."""

    kind: LiveKind
    ended: bool = False


def live_signal(
    tree: lxml.html.HtmlElement,
    title: str = "",
    *,
    now: datetime | None = None,
    elements: PageElements | None = None,
) -> LiveSignal | None:
    """The sign that the parsed page is live coverage, if it carries one (``title`` is the
    article's headline as extracted; ``elements``: the page's, when already found)."""
    moment = now or datetime.now(UTC)
    for obj in _live_blog_objects(tree, elements):
        end = _moment(obj.get("coverageEndTime"))
        return LiveSignal("markup", ended=end is not None and end <= moment)
    if _LIVE_TITLE.match(title) or _LIVE_TITLE_UPPER.match(title):
        return LiveSignal("marker")
    containers: Iterable[lxml.html.HtmlElement] = (
        tree.iter(*_CONTAINER_TAGS)
        if elements is None
        # Tag by tag: in whichever order they are looked at, the first that qualifies
        # gives the same sign.
        else itertools.chain.from_iterable(elements.of(tag) for tag in _CONTAINER_TAGS)
    )
    for element in containers:
        # "live" in the class and the id, lowercased, joined by a space (which no letter
        # of "live" is): in one of them.
        classes, identifier = element.get("class"), element.get("id")
        if not (
            (classes is not None and "live" in classes.lower())
            or (identifier is not None and "live" in identifier.lower())
        ):
            continue
        names = {
            token.lower()
            for attribute in ("class", "id")
            for token in _NAME_TOKENS.split(element.get(attribute) or "")
            if token
        }
        if names & _LIVE_NAMES and len(element.findall(".//p")) >= 2:
            return LiveSignal("marker")
    return None


def _live_blog_objects(
    tree: lxml.html.HtmlElement, elements: PageElements | None
) -> list[dict[str, Any]]:
    """The page's JSON-LD objects of type LiveBlogPosting (blocks without the word are not
    parsed at all: most pages have none)."""
    found: list[dict[str, Any]] = []
    for script in elements_of(tree, "script", elements):
        if "ld+json" not in (script.get("type") or "").lower():
            continue
        raw = script.text or ""
        if "LiveBlogPosting" not in raw:  # schema.org names are case-sensitive
            continue
        try:
            data = json.loads(raw.strip().removeprefix("<!--").removesuffix("-->"), strict=False)
        except ValueError:
            continue
        found.extend(_of_type(data))
    return found


def _of_type(data: object) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return [obj for item in data for obj in _of_type(item)]
    if not isinstance(data, dict):
        return []
    found: list[dict[str, Any]] = []
    kinds = data.get("@type")
    names = [kinds] if isinstance(kinds, str) else kinds if isinstance(kinds, list) else []
    if any(str(name).rsplit("/", 1)[-1].lower() == "liveblogposting" for name in names):
        found.append(data)
    for key in ("@graph", "mainEntity", "mainEntityOfPage"):
        if key in data:
            found.extend(_of_type(data[key]))
    return found


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
