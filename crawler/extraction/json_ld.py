"""JSON-LD: the page's own ``NewsArticle``/``Article`` object and the values in it.

Sites embed several objects (the site, its breadcrumbs, the article), as a list, inside
``@graph`` or under ``mainEntity``; the article is the one of an article type, preferring one
with a headline and a news type.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import lxml.html

from crawler.extraction.text import PageElements, clean, elements_of, split_authors

logger = logging.getLogger(__name__)

_ARTICLE_TYPES = frozenset(
    {
        "article",
        "newsarticle",
        "reportagenewsarticle",
        "analysisnewsarticle",
        "opinionnewsarticle",
        "backgroundnewsarticle",
        "reviewnewsarticle",
        "askpublicnewsarticle",
        "blogposting",
        "liveblogposting",
        "socialmediaposting",
        "report",
        "techarticle",
        "scholarlyarticle",
        "satiricalarticle",
        "advertisercontentarticle",
    }
)

# A JSON-LD block wrapped in a CDATA section or an HTML comment, as some templates do.
_LD_WRAPPERS = re.compile(r"^\s*(?:<!\[CDATA\[|<!--)|(?:\]\]>|-->)\s*$")
_LD_WRAPPER_OPENINGS = ("<![CDATA[", "<!--")
_LD_WRAPPER_CLOSINGS = ("]]>", "-->")


# What the name of every article type ends with: a block whose text, lowercased, holds none
# of these and no escaped character (``\\u…``) holds no article object.
_ARTICLE_TYPE_ENDINGS = ("article", "posting", "report")


def json_ld_objects(
    tree: lxml.html.HtmlElement,
    *,
    articles_only: bool = False,
    elements: PageElements | None = None,
) -> list[dict[str, Any]]:
    """Every object of the page's JSON-LD blocks, nested ones too; broken blocks skipped
    (``articles_only``: blocks that cannot hold an object of an article type too, for
    :func:`article_object`; ``elements``: the page's, when already found)."""
    objects: list[dict[str, Any]] = []
    for script in elements_of(tree, "script", elements):
        if "ld+json" not in (script.get("type") or "").lower():
            continue
        raw = (script.text or "").strip()
        if not raw:
            continue
        if (
            articles_only
            and "\\u" not in raw
            and not any(ending in raw.lower() for ending in _ARTICLE_TYPE_ENDINGS)
        ):
            continue
        if raw.startswith(_LD_WRAPPER_OPENINGS) or raw.endswith(_LD_WRAPPER_CLOSINGS):
            # Only then can the regex match (``raw`` is stripped), which spares it a scan of
            # the whole block.
            raw = _LD_WRAPPERS.sub("", raw)
        try:
            data = json.loads(raw, strict=False)
        except ValueError:
            try:
                data = json.loads(re.sub(r",\s*([}\]])", r"\1", raw), strict=False)
            except ValueError:
                logger.debug("Skipping a JSON-LD block that is not valid JSON")
                continue
        objects.extend(_flatten_json_ld(data))
    return objects


def _flatten_json_ld(data: object) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten_json_ld(item)
    elif isinstance(data, dict):
        yield data
        graph = data.get("@graph")
        if graph is not None:
            yield from _flatten_json_ld(graph)
        for key in ("mainEntity", "mainEntityOfPage"):
            nested = data.get(key)
            if isinstance(nested, dict) and "@type" in nested:
                yield from _flatten_json_ld(nested)


def _types(obj: dict[str, Any]) -> set[str]:
    value = obj.get("@type", ())
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return {str(v).rsplit("/", 1)[-1].lower() for v in values}


def article_object(objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The object that describes the page's article, if there is one."""
    candidates = [o for o in objects if _types(o) & _ARTICLE_TYPES]
    if not candidates:
        return None
    # The page's own article carries a headline; a news type is the most specific claim.
    candidates.sort(
        key=lambda o: (
            not o.get("headline"),
            not any(t.endswith("newsarticle") for t in _types(o)),
        )
    )
    return candidates[0]


def ld_text(value: object) -> str:
    """The text of a value: a string, the first of a list, an object's ``@value`` or name."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list) and value:
        return ld_text(value[0])
    if isinstance(value, dict):
        return ld_text(value.get("@value") or value.get("name"))
    return ""


def ld_names(value: object) -> list[str]:
    """The names of a value: a byline, persons or organisations, or a list of them."""
    if isinstance(value, str):
        return split_authors(clean(value))
    if isinstance(value, list):
        return [name for item in value for name in ld_names(item)]
    if isinstance(value, dict):
        name = value.get("name")
        if isinstance(name, str | list | dict):
            return ld_names(name)
    return []


def ld_url(value: object) -> str:
    """The URL of a value: a string, an object's ``@id`` or ``url``, the first of a list."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return ld_url(value.get("@id") or value.get("url"))
    if isinstance(value, list) and value:
        return ld_url(value[0])
    return ""
