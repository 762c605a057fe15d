"""Change-detection accuracy on real pages: do edits alert, and does noise stay quiet?

    .venv/bin/python bench/detection.py [--workers 2] [--limit N] [--half tuning] [--worst 10]
        [--all-versions] [--kinds K,...] [--misses K,...]

For every corpus page, (before, after) pairs go through ``extract()`` and ``fingerprint()``
exactly as a crawl does, and, beside them, through a naive hash of the page's visible text.

**Two halves of the publishers.** Every page falls in one of two fixed halves by a hash of its
publisher's registrable host (``bench.corpus.publisher_half``): the *tuning publishers*, whose
pages and misses may be looked at while choosing rules, and the *unseen publishers*, of which
only the aggregate figures are printed, to say how the rules hold on publishers they were not
chosen on. Failing pages are listed for the tuning half only.

Pairs, one per mutation kind (``KINDS``; the page is parsed once, and both sides of a pair are
serialised the same way, so the only difference between them is the change under test). Kinds
that must alert:

- edit-sentence / edit-word: a short sentence inserted into, or one word changed in, a text
  node whose text belongs to the page's expected body (ground truth; fundus counts the
  summary, i.e. the standfirst, as body), and in every other text node with the same text
  (an edit in the CMS changes every rendering of the paragraph) → the body hash must change,
  or the lead hash when the edited paragraph is the standfirst, which extraction keeps as its
  own field (the count of those is printed). Pages with no such text node are reported as
  skipped, not as successes.
- standfirst: a sentence inserted into the visible standfirst (fundus pages, whose expected
  summary is the standfirst shown between the headline and the body), with the meta and
  JSON-LD descriptions left as they were → the lead or the body hash must change.
- standfirst-box: the visible standfirst (re)set between the headline and the body in one
  of 22 markups publishers use (``p.standfirst``, ``div.dek > p``, ``h2.subtitle``, a bold
  first paragraph, ``header > p``, names in several languages, unnamed ``h2`` and ``div >
  p``; one a page, by its id), the page's own standfirst taken off, its text (else the
  description's, else a sentence of the benchmark's) in it; then a sentence added to it with
  the descriptions left alone → the lead or the body hash must change; reported by markup.
- description: a sentence added to the description in ``<meta>`` tags and JSON-LD, the
  visible page left as it was → the lead hash must change (the lead is the visible
  standfirst with the description as its fallback, and a change to either is a change of
  the lead).
- editors-note: an editor's note or correction notice added after the article's last
  paragraph, in one of several languages → the body hash must change.
- editors-note-box: the same notes set in a box of their own (a ``div``, ``section`` or
  ``aside``, named or not; those in an ``aside`` reported apart) after the last paragraph,
  or an update note before the first → the body hash must change. On a page that sets each
  paragraph in a wrapper of its own, both kinds put the note beside the wrappers, after the
  last paragraph's (or before the first's), not beside the first paragraph found.
- headline: the headline changed everywhere it appears (<title>, og:/twitter:title, JSON-LD
  headline/name, h1, any text node equal to it) → the title hash must change.
- later-page-edit: the article split over two pages (``?page=2``, linked from page 1 as a CMS
  links it), and a sentence inserted on page 2 only → the body hash of the pages read and
  joined as a crawl does (``crawler.reading``: page 1 finds page 2 by its links) must change.
  The naive hash watches page 1, the article's URL, which did not change.

Kinds that must leave the fingerprint alone (each lands outside the expected body): navigation
(link texts of nav/menus changed, a link added), related (a list of related headlines after
the article, rotated), footer (footer text changed), caption (figure caption text changed),
comments (a comment count changed; added near the top of the article when the page shows
none), scripts (script nonces and inline script text, data-* attributes and class order
changed), trending (a "Trending now" block of rotating headlines inside the article between two
paragraphs), link-box (a paragraph inside the body that is a short label and one or two linked
headlines, "Read also: …", in one of many languages and markups, rotated or inserted),
caption-box (a picture and its caption between two paragraphs of the article's container, in
one of eleven markups, reported by markup, the caption rewritten), comments-box (a comment count
in one of seven markups before the first paragraph or after the last, its number changed),
comments-line (a byline with a comment, view or read count before the first paragraph, in
one of eight markups in several languages, the count changed),
template-rewrite and template-rewrite-moved (see below), identical (the same bytes fetched
twice; a page that extraction refuses counts as a failure here, since it would never be
tracked).

template-rewrite is judged on one site's pages together (a :class:`Grouping`: fundus pages,
every version, grouped by site as topicwatch learns templates per site, sites with 3 pages or
more): a block as publishers put them in the article's container (a newsletter line, a "write
to us" line, a "more on this topic" teaser, a photo credit) on every one of its pages, the
site templates learned from them as recording learns them (``storage.templates``), then the
block rewritten on one page at a time and judged by ``storage.changes.classify`` with those
templates → no change. A site on fewer than 3 of whose pages the block can stand (a page whose
HTML holds no paragraph of its article, its text rendered by a script, cannot show it) is no
such case: its pairs are skipped. Its pairs are broken down by whether the block was learned
as template (from the blocks of each page's lead, body and page, as recording learns them),
whether it was learned though it reached the extracted lead or body of fewer than 3 pages,
whether it stands in the lead, whether learning from the extracted leads and bodies alone
would alert, and whether the fingerprint alone (no templates) would alert.

template-rewrite-moved is the same block placed as a site's template places a box inside a
long article and beside a short one: in the article's container (as template-rewrite puts
it) on two of the site's pages, outside it on the others, in one of three markups (an
``aside`` right after the container, a box in a column beside the article's, a strip before
the page's footer); the templates learned from those pages, then the block rewritten on each
page whose extracted lead or body holds it → no change. Pages where extraction left the
block out are not judged (its rewrite is not in their fingerprint). Its pairs are broken
down as template-rewrite's, and by the markup outside.

A kind is a :class:`Kind` in ``KINDS``: a name, whether it must alert (and through which
fields), and a function from the page (:class:`Case`) to a :class:`Mutation`, or None when the
page has nothing to mutate; or, for a kind that needs several pages of one publisher, a
:class:`Grouping` hook instead. A new kind is one more entry.

Targets, on the unseen publishers: edit and headline recall >= 99%, false alerts <= 1% per
noise kind, 0% for identical.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import html as html_lib
import json
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lxml.html

from bench.corpus import (
    HALVES,
    CorpusMissingError,
    CorpusPage,
    aeb_pages,
    fundus_pages,
)
from crawler.article import Fingerprint
from crawler.extraction.extractor import extract
from crawler.extraction.parsing import ExtractionError
from crawler.fingerprint import block_hashes, fingerprint
from crawler.profiles import profile_for
from crawler.reading import read_page, read_pages
from storage.changes import PageRead, Previous, classify
from storage.templates import LEAD_MARK, MIN_PAGES, site_of, templates_of_new_site

_SKIP_TAGS = {"script", "style", "noscript", "template", "title", "head", "meta", "svg"}
_WS = re.compile(r"\s+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_COMMENT_COUNT = re.compile(
    r"^\s*\(?(\d+)\)?\s*(comments?|komentar|kommentare?|commentaires?|comentarios?|reacties)\s*$",
    re.IGNORECASE,
)
_HEADLINES_A = (
    "Central bank holds rates steady as inflation cools",
    "Storm warning issued for the northern coast",
    "Local team clinches title in final minutes",
    "New rail link opens after years of delays",
)
_HEADLINES_B = (
    "Parliament passes budget after marathon session",
    "Scientists map deep-sea vents in record survey",
    "City council approves new housing plan",
    "Airline cancels flights as strike begins",
)


@dataclass(frozen=True)
class PairResult:
    """One (before, after) pair: did the fingerprint react as it should?

    ``outcome`` is ``ok`` (alert when one was due, silence otherwise), ``fail`` or ``skipped``;
    ``naive_ok`` is the same verdict for the naive visible-text hash; ``half`` the half of
    the publishers the page belongs to; ``facets`` the tags a kind gives its pairs for a
    breakdown of its figures (:attr:`Kind.facets`).
    """

    corpus: str
    page_id: str
    kind: str
    outcome: str
    naive_ok: bool
    detail: str = ""
    half: str = ""
    facets: tuple[str, ...] = ()


def _squash(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _serialise(tree: lxml.html.HtmlElement) -> bytes:
    return lxml.html.tostring(tree, encoding="unicode", doctype="<!DOCTYPE html>").encode("utf-8")


def _naive_hash(html: bytes) -> str:
    tree = lxml.html.document_fromstring(html.decode("utf-8", errors="replace"))
    for element in tree.xpath("//script | //style | //noscript | //template"):
        element.drop_tree()
    body = tree.find("body")
    text = (body if body is not None else tree).text_content()
    return hashlib.sha256(_squash(text).encode("utf-8")).hexdigest()


def _ancestors(element: lxml.html.HtmlElement) -> Iterator[lxml.html.HtmlElement]:
    yield element
    yield from element.iterancestors()


def _in_skipped(element: lxml.html.HtmlElement) -> bool:
    return any(isinstance(a.tag, str) and a.tag.lower() in _SKIP_TAGS for a in _ancestors(element))


def _text_nodes(
    tree: lxml.html.HtmlElement,
) -> Iterator[tuple[lxml.html.HtmlElement, str, lxml.html.HtmlElement]]:
    """(element, "text" or "tail", element whose content the node is) for every text node."""
    body = tree.find("body")
    if body is None:
        return
    for element in body.iter():
        if not isinstance(element.tag, str):
            if element.tail and element.getparent() is not None:
                yield element, "tail", element.getparent()
            continue
        if element.text:
            yield element, "text", element
        if element.tail and element is not body and element.getparent() is not None:
            yield element, "tail", element.getparent()


def _body_text_nodes(
    tree: lxml.html.HtmlElement, page: CorpusPage
) -> list[tuple[lxml.html.HtmlElement, str]]:
    """Text nodes whose whole text is part of the expected body (8 words or more)."""
    expected = "\n".join(_squash(p) for p in page.expected_paragraphs)
    found = []
    for element, attr, owner in _text_nodes(tree):
        if _in_skipped(owner):
            continue
        text = _squash(getattr(element, attr) or "")
        long_enough = len(text.split()) >= 8 or len(_CJK.findall(text)) >= 20
        if long_enough and text in expected:
            found.append((element, attr))
    return found


def _edit_pair(
    tree: lxml.html.HtmlElement, page: CorpusPage, rng: random.Random, kind: str
) -> tuple[bytes, bytes] | None:
    nodes = _body_text_nodes(tree, page)
    if not nodes:
        return None
    element, attr = rng.choice(nodes)
    original = getattr(element, attr)
    text = original
    if kind == "edit-sentence":
        match = re.search(r"[.!?。](\s+)", text)
        addition = " The ministry later revised this figure."
        if match:
            text = text[: match.start(1)] + addition + text[match.start(1) :]
        else:
            text = text.rstrip() + addition + " "
    else:
        words = list(re.finditer(r"\w{4,}", text))
        if not words:
            return None
        word = words[len(words) // 2]
        if _CJK.search(word.group()):
            replacement = word.group()[:-1] + ("改" if word.group()[-1] != "改" else "变")
        else:
            replacement = "revised" if word.group().lower() != "revised" else "amended"
        text = text[: word.start()] + replacement + text[word.end() :]
    # An edit made in the CMS changes every rendering of the paragraph on the page (mobile
    # and desktop copies, highlight boxes), so every text node with this text is changed.
    after_tree = copy.deepcopy(tree)
    wanted = _squash(original)
    for node, node_attr, _owner in list(_text_nodes(after_tree)):
        value = getattr(node, node_attr)
        if value == original:
            setattr(node, node_attr, text)
        elif value and _squash(value) == wanted:
            setattr(node, node_attr, text.strip())
    return _serialise(tree), _serialise(after_tree)


def _retitle(headline: str) -> str:
    words = list(re.finditer(r"\w{4,}", headline))
    if not words:
        return headline + " (revised)"
    word = words[-1]
    replacement = "Revised" if word.group() != "Revised" else "Amended"
    return headline[: word.start()] + replacement + headline[word.end() :]


def _swap(text: str, mapping: dict[str, str]) -> str:
    """``text`` with any known spelling of the headline replaced by its changed form."""
    squashed = _squash(html_lib.unescape(text))
    for old, new in mapping.items():
        if old in text:
            return text.replace(old, new)
        if old in squashed:
            return squashed.replace(old, new)
    return text


def _swap_json(value: object, mapping: dict[str, str]) -> object:
    if isinstance(value, str):
        return _swap(value, mapping)
    if isinstance(value, list):
        return [_swap_json(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _swap_json(v, mapping) for k, v in value.items()}
    return value


def _headline_pair(
    tree: lxml.html.HtmlElement, page: CorpusPage, title: str
) -> tuple[bytes, bytes] | None:
    """The headline changed everywhere it appears, in each spelling the page uses for it."""
    spellings = {_squash(t) for t in (page.title, title) if t and len(_squash(t)) >= 8}
    if not spellings:
        return None
    mapping = {h: _retitle(h) for h in sorted(spellings, key=len, reverse=True)}
    after = copy.deepcopy(tree)
    changed = 0
    holders: list[lxml.html.HtmlElement] = []
    for element in after.iter():
        if not isinstance(element.tag, str):
            continue
        tag = element.tag.lower()
        if tag == "meta":
            content = element.get("content") or ""
            swapped = _swap(content, mapping)
            if swapped != content:
                element.set("content", swapped)
                changed += 1
        elif tag == "script":
            if "ld+json" not in (element.get("type") or "").lower():
                continue
            try:
                data = json.loads(element.text or "", strict=False)
            except ValueError:
                continue
            replaced = _swap_json(data, mapping)
            if replaced != data:
                element.text = json.dumps(replaced, ensure_ascii=False)
                changed += 1
        elif tag in _SKIP_TAGS and tag != "title":
            continue
        elif tag in ("title", "h1") or _squash(element.text_content()) in mapping:
            holders.append(element)
    held = set(holders)
    for element in holders:
        if any(d in held for d in element.iterdescendants()):
            continue  # the innermost element holding the headline is rewritten
        whole = _squash(element.text_content())
        swapped = _swap(whole, mapping)
        if swapped != whole:
            for child in list(element):
                element.remove(child)
            element.text = swapped
            changed += 1
    if not changed:
        return None
    return _serialise(tree), _serialise(after)


def _expected_blob(page: CorpusPage) -> str:
    return "\n".join(_squash(p) for p in page.expected_paragraphs)


def _outside_body(element: lxml.html.HtmlElement, blob: str) -> bool:
    """The element's text is not part of the expected body (noise may be changed there)."""
    text = _squash(element.text_content())
    return not text or text not in blob or len(text) < 3


def _name_has(element: lxml.html.HtmlElement, words: tuple[str, ...]) -> bool:
    names = f"{element.get('class') or ''} {element.get('id') or ''}".lower()
    return any(word in names for word in words)


def _content_anchor(
    tree: lxml.html.HtmlElement, page: CorpusPage, *, wrapped: bool = False
) -> tuple[lxml.html.HtmlElement, list[lxml.html.HtmlElement]] | None:
    """The element that holds most expected-body paragraphs, and those paragraphs in order.

    ``wrapped`` (the editor's-note kinds, which put a note after the article's last paragraph
    or before its first): where the page sets each paragraph in a wrapper of its own, so that
    no element holds two of them, the wrappers of all of them in document order, and the last
    one's parent; else the first element holding one paragraph stands for the container, and
    it may be the header's standfirst, where no publisher puts an editor's note."""
    blob = _expected_blob(page)
    holders: dict[lxml.html.HtmlElement, list[lxml.html.HtmlElement]] = defaultdict(list)
    for paragraph in tree.iter("p"):
        text = _squash(paragraph.text_content())
        if len(text) >= 30 and text in blob and paragraph.getparent() is not None:
            holders[paragraph.getparent()].append(paragraph)
    if not holders:
        return None
    parent = max(holders, key=lambda e: len(holders[e]))
    if wrapped and len(holders[parent]) == 1 and len(holders) > 1:
        # Each paragraph in a wrapper of its own (``<div class="content-element"><p>``), so
        # no element holds two: the wrappers, in document order (the first paragraph's and
        # the last's), the last one's parent as the container.
        found = [p for p in tree.iter("p") if any(p in held for held in holders.values())]
        wrappers = []
        for paragraph in found:
            wrapper = paragraph
            while (up := wrapper.getparent()) is not None and up.tag != "body":
                if any(p is not paragraph and up in p.iterancestors() for p in found):
                    break
                wrapper = up
            wrappers.append(wrapper)
        container = wrappers[-1].getparent()
        if container is not None:
            return container, wrappers
    return parent, holders[parent]


def _slug(text: str) -> str:
    return re.sub(r"\W+", "-", text.lower()).strip("-")


def _link_list(headlines: tuple[str, ...], heading: str, tag: str = "div") -> str:
    items = "".join(
        f'<li><a href="/news/2024/01/0{i + 1}/{_slug(h)}">{h}</a></li>'
        for i, h in enumerate(headlines)
    )
    return f"<{tag} class='x-rail'><h4>{heading}</h4><ol>{items}</ol></{tag}>"


def _noise_pair(
    tree: lxml.html.HtmlElement, page: CorpusPage, kind: str
) -> tuple[bytes, bytes, str] | None:
    """(before, after, how) for one noise kind, or None when the page has no such element."""
    blob = _expected_blob(page)
    before = copy.deepcopy(tree)
    after = copy.deepcopy(tree)
    how = "changed"

    def pick(
        root: lxml.html.HtmlElement, test: Callable[[lxml.html.HtmlElement], bool]
    ) -> list[lxml.html.HtmlElement]:
        body = root.find("body")
        if body is None:
            return []
        return [
            e
            for e in body.iter()
            if isinstance(e.tag, str) and not _in_skipped(e) and test(e) and _outside_body(e, blob)
        ]

    if kind == "navigation":
        navs = pick(
            after,
            lambda e: (
                e.tag == "nav"
                or e.get("role") == "navigation"
                or (e.tag in ("ul", "div") and _name_has(e, ("menu", "nav")))
            ),
        )
        links = [a for nav in navs for a in nav.iter("a") if _squash(a.text_content())]
        if not links:
            return None
        for link in links[:3]:
            for child in list(link):
                link.remove(child)
            link.text = "Sections " + str(len(link.text or ""))
        parent = links[0].getparent()
        if parent is not None:
            parent.append(lxml.html.fragment_fromstring('<a href="/live">Live coverage</a>'))
    elif kind == "footer":
        footers = pick(
            after,
            lambda e: (
                e.tag == "footer"
                or e.get("role") == "contentinfo"
                or (e.tag == "div" and _name_has(e, ("footer",)))
            ),
        )
        if not footers:
            return None
        footer = footers[0]
        footer.append(
            lxml.html.fragment_fromstring("<p>© 2026 The Publisher. All rights reserved.</p>")
        )
        links = [a for a in footer.iter("a") if _squash(a.text_content())]
        if links:
            links[0].text = "Privacy choices"
    elif kind == "caption":
        captions = pick(
            after,
            lambda e: (
                e.tag == "figcaption"
                or (e.tag in ("div", "p", "span") and _name_has(e, ("caption",)))
            ),
        )
        captions = [c for c in captions if _squash(c.text_content())]
        if not captions:
            return None
        caption = captions[0]
        for child in list(caption):
            caption.remove(child)
        caption.text = "A view of the scene on Tuesday. Photo: Agency staff"
    elif kind == "comments":
        counters = pick(
            after,
            lambda e: (
                e.tag in ("a", "span", "div", "button")
                and bool(_COMMENT_COUNT.match(_squash(e.text_content())))
            ),
        )
        if counters:
            counter = counters[0]
            match = _COMMENT_COUNT.match(_squash(counter.text_content()))
            assert match is not None
            for child in list(counter):
                counter.remove(child)
            counter.text = f"{int(match.group(1)) + 7} {match.group(2)}"
        else:
            anchors = [_content_anchor(t, page) for t in (before, after)]
            if anchors[0] is None or anchors[1] is None:
                return None
            for (_parent, paragraphs), count in zip(anchors, (12, 19), strict=True):
                paragraphs[0].addprevious(
                    lxml.html.fragment_fromstring(f'<a href="#comments">{count} Comments</a>')
                )
            how = "added"
    elif kind == "scripts":
        for side, token in ((before, "n0nceAAAA"), (after, "n0nceBBBB")):
            for script in side.iter("script"):
                script.set("nonce", token)
                if not (script.get("type") or "").endswith("json") and script.get("src") is None:
                    script.text = (script.text or "") + f"\nwindow.__rid='{token}';"
            body = side.find("body")
            if body is not None:
                body.set("data-request-id", token)
                for i, element in enumerate(body.iter("p", "div", "span")):
                    if i % 3 == 0:
                        element.set("data-track", f"{token}-{i}")
        for element in after.iter():
            if isinstance(element.tag, str):
                classes = (element.get("class") or "").split()
                if len(classes) > 1:
                    element.set("class", " ".join(reversed(classes)))
    elif kind in ("related", "trending"):
        anchors = [_content_anchor(t, page) for t in (before, after)]
        if anchors[0] is None or anchors[1] is None:
            return None
        for (parent, paragraphs), headlines in zip(
            anchors, (_HEADLINES_A, _HEADLINES_B), strict=True
        ):
            if kind == "related":
                block = lxml.html.fragment_fromstring(_link_list(headlines, "Related articles"))
                parent.addnext(block)
            else:
                block = lxml.html.fragment_fromstring(
                    _link_list(headlines, "Trending now", "section")
                )
                paragraphs[len(paragraphs) // 2].addnext(block)
        how = "added, rotated"
    else:  # pragma: no cover - kinds are fixed above
        raise ValueError(f"Unknown noise kind {kind!r}")
    return _serialise(before), _serialise(after), how


_STANDFIRST_SENTENCE = " The ministry later revised this figure."
_NOTES = (
    "Editor's note: This article has been updated with a statement from the ministry.",
    "Correction: An earlier version of this article misstated the date of the vote.",
    "Artikel ini telah diperbarui dengan tanggapan dari kementerian.",
    "Anmerkung der Redaktion: Dieser Artikel wurde um eine Stellungnahme ergänzt.",
    "Note de la rédaction : cet article a été mis à jour avec la réaction du ministère.",
    "Nota del editor: este artículo fue actualizado con la respuesta del ministerio.",
    "Nota da redação: este texto foi atualizado com a resposta do ministério.",
    "Noot van de redactie: dit artikel is aangevuld met een reactie van het ministerie.",
)
# Labels of in-body link boxes, in many languages; most are in no list the extractor knows.
_LINK_LABELS = (
    "Read also",
    "You may be interested in",
    "Read here",
    "Don't miss",
    "Baca juga",
    "Lesen Sie auch",
    "Auch interessant",
    "Lire aussi",
    "À lire aussi",
    "Leggi anche",
    "Lee también",
    "Te puede interesar",
    "Leia também",
    "Czytaj także",
    "Læs også",
    "Les også",
    "Läs även",
    "Přečtěte si také",
    "Lees ook",
    "Читайте также",
    "Oku da",
    "Διαβάστε επίσης",
)


@dataclass(frozen=True)
class Case:
    """What a mutation kind is given: the corpus page, its parsed tree (not to be changed:
    work on a copy), the page's random generator, the extracted headline and the page as
    serialised (the "before" of most pairs)."""

    page: CorpusPage
    tree: lxml.html.HtmlElement
    rng: random.Random
    title: str
    raw: bytes
    base: bytes


Pages = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Mutation:
    """One pair: ``before`` (None: the page as serialised) and ``after``; ``encoding`` is
    what extraction is told (None: it finds out, as for raw bytes off the wire).

    ``later_before`` and ``later_after`` are the later pages ((URL, HTML) each, in order) of
    an article split over several pages, whose first page, at the corpus page's URL, is
    ``before`` or ``after``: each side is then read as a crawl reads such an article
    (:func:`_read_article`). The naive hash watches the first page, the article's URL.
    ``facets``: the pair's tags for its kind's breakdown (:attr:`Kind.facets`)."""

    after: bytes
    before: bytes | None = None
    detail: str = ""
    encoding: str | None = "utf-8"
    later_before: Pages = ()
    later_after: Pages = ()
    facets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grouping:
    """The hook of a kind judged on several pages of one publisher at once (site templates
    are learned from a publisher's pages, so one page alone says nothing).

    ``pages`` loads the corpus pages the kind needs; they are grouped by site as topicwatch
    keeps templates per site (:func:`storage.templates.site_of`, the host: a publisher's
    editions in several languages are several sites), which lies inside one registrable host
    and so in one half; groups of fewer than ``min_pages`` pages are left out; ``judge`` gives
    the pairs of one group."""

    pages: Callable[[], list[CorpusPage]]
    judge: Callable[[list[CorpusPage]], list[PairResult]]
    min_pages: int = 3


@dataclass(frozen=True)
class Kind:
    """A mutation kind. ``fields``: those of which one must change (an edit), or empty for
    noise, which must leave the whole fingerprint alone. ``skip`` says why a page without
    a place for the mutation is skipped.

    ``make`` gives a page's pair; a kind judged on a publisher's pages together has none,
    and a ``grouped`` hook instead. ``facets``: (tag, label) of the tags its pairs may carry,
    each reported apart (pairs, their share, and the kind's rate among them)."""

    name: str
    make: Callable[[Case], Mutation | None] | None
    fields: tuple[str, ...] = ()
    skip: str = ""
    grouped: Grouping | None = None
    facets: tuple[tuple[str, str], ...] = ()

    @property
    def must_alert(self) -> bool:
        return bool(self.fields)


def _from_pair(pair: tuple[bytes, bytes] | None, detail: str = "") -> Mutation | None:
    return None if pair is None else Mutation(pair[1], pair[0], detail)


def _summary_nodes(tree: lxml.html.HtmlElement, page: CorpusPage) -> list[tuple[object, str]]:
    """Text nodes of the visible page whose whole text is part of the expected standfirst."""
    summary = "\n".join(_squash(p) for p in page.summary)
    found: list[tuple[object, str]] = []
    for element, attr, owner in _text_nodes(tree):
        if _in_skipped(owner):
            continue
        text = _squash(getattr(element, attr) or "")
        if (len(text.split()) >= 5 or len(_CJK.findall(text)) >= 12) and text in summary:
            found.append((element, attr))
    return found


def _standfirst_edit(case: Case) -> Mutation | None:
    """A sentence added to the visible standfirst; descriptions in <meta> and JSON-LD (not
    text nodes) keep their text."""
    if not case.page.summary:
        return None
    after = copy.deepcopy(case.tree)
    nodes = _summary_nodes(after, case.page)
    if not nodes:
        return None
    element, attr = max(nodes, key=lambda n: len(getattr(n[0], n[1]) or ""))
    original = getattr(element, attr)
    wanted = _squash(original)
    match = re.search(r"[.!?。](\s+)", original)
    if match:
        text = original[: match.start(1)] + _STANDFIRST_SENTENCE + original[match.start(1) :]
    else:
        text = original.rstrip() + _STANDFIRST_SENTENCE + " "
    for node, node_attr, _owner in list(_text_nodes(after)):
        value = getattr(node, node_attr)
        if value == original:
            setattr(node, node_attr, text)
        elif value and _squash(value) == wanted:
            setattr(node, node_attr, text.strip())
    return Mutation(_serialise(after))


def _editors_note(case: Case) -> Mutation | None:
    """An editor's note after the article's last paragraph."""
    after = copy.deepcopy(case.tree)
    anchor = _content_anchor(after, case.page, wrapped=True)
    if anchor is None:
        return None
    note = case.rng.choice(_NOTES)
    markup = case.rng.choice(("<p><em>{}</em></p>", "<p>{}</p>", "<p><i>{}</i></p>"))
    anchor[1][-1].addnext(lxml.html.fragment_fromstring(markup.format(html_lib.escape(note))))
    return Mutation(_serialise(after), detail=note[:24])


# Editor's notes as CMSs set them in a box of their own rather than a paragraph; where: after
# the last paragraph, or before the first (an update note at the top).
_NOTE_BOXES = (
    ('<div class="editor-note">{}</div>', "end"),
    ('<div class="article-note"><em>{}</em></div>', "end"),
    ('<section class="correction">{}</section>', "end"),
    ("<div><i>{}</i></div>", "end"),
    ('<div class="update-note"><strong>Update:</strong> {}</div>', "start"),
    ('<aside class="editor-note"><p>{}</p></aside>', "end"),
    ("<aside><em>{}</em></aside>", "end"),
    ('<aside class="article-update"><strong>Update:</strong> {}</aside>', "start"),
)


def _editors_note_box(case: Case) -> Mutation | None:
    """An editor's note in a ``div`` or ``section`` of the article's container, after its
    last paragraph or before its first (a generator of its own, so that the kinds before
    it draw what they drew before it existed)."""
    after = copy.deepcopy(case.tree)
    anchor = _content_anchor(after, case.page, wrapped=True)
    if anchor is None:
        return None
    rng = random.Random(f"{case.page.page_id}:editors-note-box")
    note = rng.choice(_NOTES)
    markup, where = rng.choice(_NOTE_BOXES)
    box = lxml.html.fragment_fromstring(markup.format(html_lib.escape(note)))
    if where == "start":
        anchor[1][0].addprevious(box)
    else:
        anchor[1][-1].addnext(box)
    facets = ("aside",) if markup.startswith("<aside") else ()
    return Mutation(_serialise(after), detail=f"{where} {note[:24]}", facets=facets)


# Pictures with a caption as CMSs set them inside the article's container (tag, markup; "@"
# stands for the picture).
_PICTURE = "<img src='/media/1.jpg' alt=''>"
_PICTURE_BOXES = (
    ("figcaption", "<figure>@<figcaption>{}</figcaption></figure>"),
    ("figure-p", "<figure>@<p>{}</p></figure>"),
    ("div-p", "<div class='article-image'>@<p class='image-desc'>{}</p></div>"),
    ("div-span", "<div class='photo'>@<span class='credit'>{}</span></div>"),
    ("div-div", "<div class='media'>@<div class='bildunterschrift'>{}</div></div>"),
    ("p-small", "<p>@<br><small>{}</small></p>"),
    ("wp-caption", "<div class='wp-caption'>@<p class='wp-caption-text'>{}</p></div>"),
    (
        "table",
        "<table class='tr-caption-container'><tr><td>@</td></tr>"
        "<tr><td class='tr-caption'>{}</td></tr></table>",
    ),
    ("p-after-picture", "<div class='img-wrap'>@</div><p class='img-text'>{}</p>"),
    ("em-after-picture", "<p>@</p><p><em>{}</em></p>"),
    ("figure-then-p", "<figure>@</figure><div class='photo-text'>{}</div>"),
)
_PICTURE_CAPTIONS = (
    "Firefighters at the scene on Tuesday morning. Photo: Agency staff",
    "Residents return to their homes on Wednesday. Photo: Agency staff",
)


def _caption_box(case: Case) -> Mutation | None:
    """A picture with its caption between two paragraphs of the article's container, in one
    of several markups, its caption rewritten (a generator of its own)."""
    tag, markup = random.Random(f"{case.page.page_id}:caption-box").choice(_PICTURE_BOXES)
    sides = []
    for caption in _PICTURE_CAPTIONS:
        tree = copy.deepcopy(case.tree)
        anchor = _content_anchor(tree, case.page)
        if anchor is None:
            return None
        paragraphs = anchor[1]
        at = paragraphs[len(paragraphs) // 2]
        html = markup.replace("@", _PICTURE).format(caption)
        for element in reversed(lxml.html.fragments_fromstring(html)):
            at.addnext(element)
        sides.append(_serialise(tree))
    return Mutation(sides[1], sides[0], tag, facets=(tag,))


# Comment counts as sites show them in or around the article (tag, markup, where: before the
# first paragraph or after the last).
_COUNTERS = (
    ("link-after", '<p><a href="#comments">{} Comments</a></p>', "end"),
    ("label-first", '<a href="#comments">Kommentare ({})</a>', "start"),
    ("div-number", '<div class="comment-count">{}</div>', "start"),
    ("show-link", '<p><a href="#comments">Show comments ({})</a></p>', "end"),
    ("button", '<button class="comments">{} comentarios</button>', "start"),
    ("icon-number", '<span class="comments-count"><svg></svg> {}</span>', "start"),
    ("sentence-link", '<p><a href="#comments">Join the conversation: {} comments</a></p>', "end"),
)


# A comment count in a line with the byline before the article's first paragraph (tag, markup).
_COUNTER_LINES = (
    ("div-dot", '<div class="meta">By Jane Doe · <a href="#comments">{} Comments</a></div>'),
    ("p-bar", '<p>By Jane Doe | <a href="#comments">{} comments</a></p>'),
    ("spans", "<div><span>Jane Doe</span> <span>{} comments</span></div>"),
    (
        "read-times",
        "<div class='meta'><span>Jane Doe</span> · <span>Read {} times</span> · "
        "<span>3 min read</span></div>",
    ),
    ("dibaca", "<p>Penulis: Jane Doe | Dibaca {} kali</p>"),
    ("aufrufe", "<div><span>Von Jane Doe</span><span>{} Aufrufe</span></div>"),
    ("k-reads", "<div class='byline'>Jane Doe — <span>{}.4K reads</span></div>"),
    ("vues", "<p class='infos'>Par Jane Doe <span class='sep'>•</span> <em>{} vues</em></p>"),
)


def _comment_line(case: Case) -> Mutation | None:
    """A byline with a comment count before the article's first paragraph, in one of several
    markups, the count changed (a generator of its own)."""
    tag, markup = random.Random(f"{case.page.page_id}:comments-line").choice(_COUNTER_LINES)
    sides = []
    for count in (12, 19):
        tree = copy.deepcopy(case.tree)
        anchor = _content_anchor(tree, case.page)
        if anchor is None:
            return None
        anchor[1][0].addprevious(lxml.html.fragment_fromstring(markup.format(count)))
        sides.append(_serialise(tree))
    return Mutation(sides[1], sides[0], tag, facets=(tag,))


def _comment_counter(case: Case) -> Mutation | None:
    """A comment count in one of several markups, before the article's first paragraph or
    after its last, its number changed (a generator of its own)."""
    tag, markup, where = random.Random(f"{case.page.page_id}:comments-box").choice(_COUNTERS)
    sides = []
    for count in (12, 19):
        tree = copy.deepcopy(case.tree)
        anchor = _content_anchor(tree, case.page)
        if anchor is None:
            return None
        counter = lxml.html.fragment_fromstring(markup.format(count))
        if where == "start":
            anchor[1][0].addprevious(counter)
        else:
            anchor[1][-1].addnext(counter)
        sides.append(_serialise(tree))
    return Mutation(sides[1], sides[0], tag, facets=(tag,))


def _link_box_markup(rng: random.Random, label: str, headlines: tuple[str, ...]) -> str:
    links = [f'<a href="/news/2024/02/{_slug(h)}">{html_lib.escape(h)}</a>' for h in headlines]
    shapes = (
        "<p><strong>{label}:</strong> {links}</p>",
        "<p>{label}: {links}</p>",
        "<p><b>{label}</b> {links}</p>",
        "<p><em>{label} »</em> {links}</p>",
        "<div><span>{label}</span><br>{links}</div>",
        "<p><strong>{label}:</strong><br>{links}</p>",
    )
    shape = rng.choice(shapes)
    glue = "<br>" if "<br>" in shape else " | "
    return shape.format(label=html_lib.escape(label), links=glue.join(links))


def _link_box(case: Case) -> Mutation | None:
    """A link box inside the body: rotated (another headline after the same label) or
    inserted where there was none."""
    rng = case.rng
    label = rng.choice(_LINK_LABELS)
    count = rng.choice((1, 1, 2))
    first = tuple(rng.sample(_HEADLINES_A, count))
    second = tuple(rng.sample(_HEADLINES_B, count))
    rotate = rng.random() < 0.5
    shape_seed = rng.random()
    sides = []
    for headlines in (first if rotate else None, second):
        tree = copy.deepcopy(case.tree)
        anchor = _content_anchor(tree, case.page)
        if anchor is None:
            return None
        paragraphs = anchor[1]
        if headlines is not None:
            at = paragraphs[min(len(paragraphs) - 1, max(0, len(paragraphs) // 3))]
            markup = _link_box_markup(random.Random(shape_seed), label, headlines)
            at.addnext(lxml.html.fragment_fromstring(markup))
        sides.append(_serialise(tree))
    return Mutation(sides[1], sides[0], f"{'rotated' if rotate else 'inserted'} {label!r}")


_DESCRIPTION_NAMES = frozenset({"description", "og:description", "twitter:description"})


def _description_edit(case: Case) -> Mutation | None:
    """A sentence added to the description in <meta> tags and JSON-LD; the page's visible
    text left as it was."""
    after = copy.deepcopy(case.tree)
    changed = 0
    for meta in after.iter("meta"):
        name = (meta.get("name") or meta.get("property") or "").lower()
        if name in _DESCRIPTION_NAMES and _squash(meta.get("content") or ""):
            meta.set("content", (meta.get("content") or "").rstrip() + _STANDFIRST_SENTENCE)
            changed += 1
    for script in after.iter("script"):
        if "ld+json" not in (script.get("type") or "").lower():
            continue
        try:
            data = json.loads(script.text or "", strict=False)
        except ValueError:
            continue
        if _append_description(data):
            script.text = json.dumps(data, ensure_ascii=False)
            changed += 1
    return Mutation(_serialise(after)) if changed else None


def _append_description(value: object) -> bool:
    """Add the sentence to every ``description`` string in JSON-LD data, in place."""
    found = False
    if isinstance(value, list):
        for item in value:
            found = _append_description(item) or found
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "description" and isinstance(item, str) and item.strip():
                value[key] = item.rstrip() + _STANDFIRST_SENTENCE
                found = True
            else:
                found = _append_description(item) or found
    return found


def _identical(case: Case) -> Mutation:
    return Mutation(case.raw, case.raw, encoding=None)


def _noise(kind: str) -> Callable[[Case], Mutation | None]:
    def make(case: Case) -> Mutation | None:
        made = _noise_pair(case.tree, case.page, kind)
        return None if made is None else Mutation(made[1], made[0], made[2])

    return make


# -- standfirst box ---------------------------------------------------------------------------

STANDFIRST_BOX_KIND = "standfirst-box"
# Standfirsts as publishers set them between the headline and the body (tag, markup, where:
# right after the headline, in the header, or right before the article's first paragraph).
# "header" wraps the headline in a <header> and puts the standfirst after it there. Names in
# several languages, several of them in no list the extractor knows, and unnamed markups.
_STANDFIRST_BOXES = (
    ("p.standfirst", '<p class="standfirst">{}</p>', "headline"),
    ("div.dek>p", '<div class="dek"><p>{}</p></div>', "headline"),
    ("h2.subtitle", '<h2 class="subtitle">{}</h2>', "headline"),
    ("p.article__intro", '<p class="article__intro">{}</p>', "headline"),
    ("p.lede", '<p class="lede">{}</p>', "first"),
    ("p.summary", '<p class="article-summary">{}</p>', "headline"),
    ("p.teaser", '<p class="teaser-text">{}</p>', "headline"),
    ("p.excerpt", '<p class="entry-excerpt">{}</p>', "headline"),
    ("p.kicker", '<p class="article-kicker">{}</p>', "headline"),
    ("div.intro", '<div class="intro">{}</div>', "headline"),
    ("p>strong", "<p><strong>{}</strong></p>", "first"),
    ("p.lead", '<p class="lead">{}</p>', "first"),
    ("header>p", "<p>{}</p>", "header"),
    ("span.subheadline", '<span class="subheadline">{}</span>', "headline"),
    ("div.vorspann>p", '<div class="vorspann"><p>{}</p></div>', "headline"),
    ("p.chapo", '<p class="chapo">{}</p>', "headline"),
    ("p.entradilla", '<p class="entradilla">{}</p>', "headline"),
    ("h2.sottotitolo", '<h2 class="sottotitolo">{}</h2>', "headline"),
    ("p.bajada", '<p class="bajada">{}</p>', "headline"),
    ("h2", "<h2>{}</h2>", "headline"),
    ("div>p.unnamed", "<div><p>{}</p></div>", "headline"),
    ("div.article-lead>p", '<div class="article-lead"><p>{}</p></div>', "first"),
)
_STANDFIRST_TEXT = (
    "Officials said on Tuesday that the plan would be reviewed before the end of the year, "
    "after weeks of debate over its cost and the delays that have marked it."
)


def _headline_element(tree: lxml.html.HtmlElement, title: str) -> lxml.html.HtmlElement | None:
    """The heading that shows the headline: the h1 most like it, else the h2 most like it,
    else the first h1; none in navigation, a footer or an aside (a breadcrumb's h1)."""
    wanted = set(re.findall(r"\w+", title.casefold()))
    first = None
    for tag in ("h1", "h2"):
        best, best_score = None, 0.5
        for heading in tree.iter(tag):
            if _in_skipped(heading) or any(
                a.tag in ("nav", "footer", "aside") for a in heading.iterancestors()
            ):
                continue
            if first is None and tag == "h1":
                first = heading
            words = set(re.findall(r"\w+", heading.text_content().casefold()))
            score = len(words & wanted) / len(words | wanted) if words and wanted else 0.0
            if score > best_score:
                best, best_score = heading, score
        if best is not None:
            return best
    return first


def _drop_standfirst(tree: lxml.html.HtmlElement, texts: list[str]) -> None:
    """The page's own visible standfirst (``texts``: what it says) taken off the page: the
    innermost elements whose whole text is part of it, else the text nodes alone."""
    known = "\n".join(texts)
    found = []
    for element, attr, owner in _text_nodes(tree):
        text = _squash(getattr(element, attr) or "")
        if _in_skipped(owner) or not text or text not in known:
            continue
        if len(text.split()) >= 5 or len(_CJK.findall(text)) >= 12:
            found.append((element, attr, owner))
    for element, attr, owner in found:
        whole = _squash(owner.text_content())
        if whole and whole in known and owner.tag != "body" and owner.getparent() is not None:
            owner.drop_tree()
        else:
            setattr(element, attr, "")


def _starts_body(text: str, page: CorpusPage) -> bool:
    """Whether ``text`` is part of the expected body, or starts as one of its paragraphs."""
    words = " ".join(re.findall(r"\w+", text.casefold()))[:40]
    return len(words) < 40 or any(
        " ".join(re.findall(r"\w+", p.casefold())).startswith(words) or text.rstrip(".… ") in p
        for p in page.expected_paragraphs
    )


def _standfirst_box(case: Case) -> Mutation | None:
    """The visible standfirst (re)set between the headline and the body in one of several
    markups (the page's own standfirst, or the description's text where the page shows it,
    taken off; that text, else a sentence of the benchmark's), then a sentence added to it;
    the descriptions in ``<meta>`` and JSON-LD left as they were (a generator of its own)."""
    page = case.page
    tag, markup, where = random.Random(f"{page.page_id}:{STANDFIRST_BOX_KIND}").choice(
        _STANDFIRST_BOXES
    )
    meta = {
        (m.get("name") or m.get("property") or "").lower(): _squash(m.get("content") or "")
        for m in case.tree.iter("meta")
    }
    description = meta.get("og:description") or meta.get("description") or ""
    known = [_squash(p) for p in page.summary] or [description]
    text = " ".join(t for t in known if t)
    words = set(re.findall(r"\w+", text.casefold()))
    headline = set(re.findall(r"\w+", (page.title or case.title).casefold()))
    if not page.summary and (
        _starts_body(text, page) or len(headline & words) >= 0.6 * len(headline)
    ):
        # A description cut from the first paragraph, or one that repeats the headline, is
        # no standfirst.
        text = _STANDFIRST_TEXT
    match = re.search(r"[.!?。](\s+)", text)
    edited = (
        text[: match.start(1)] + _STANDFIRST_SENTENCE + text[match.start(1) :]
        if match
        else text + _STANDFIRST_SENTENCE
    )
    sides = []
    for shown in (text, edited):
        tree = copy.deepcopy(case.tree)
        _drop_standfirst(tree, [t for t in known if t])
        anchor = _content_anchor(tree, page)
        headline = _headline_element(tree, page.title or case.title)
        box = lxml.html.fragment_fromstring(markup.format(html_lib.escape(shown)))
        if where == "first" or headline is None or headline.getparent() is None:
            if anchor is None:
                return None
            anchor[1][0].addprevious(box)
        elif where == "header" and headline.getparent().tag != "header":
            header = lxml.html.Element("header")
            headline.addprevious(header)
            header.tail, headline.tail = headline.tail, None
            header.append(headline)
            header.append(box)
        else:
            box.tail, headline.tail = headline.tail, None
            headline.addnext(box)
        sides.append(_serialise(tree))
    return Mutation(sides[1], sides[0], tag, facets=(tag,))


# -- later-page edit ----------------------------------------------------------------------------

LATER_PAGE_KIND = "later-page-edit"


def _later_page_edit(case: Case) -> Mutation | None:
    """The page's article split in two pages as a CMS splits one (the first half of its
    expected-body blocks on page 1, at the page's URL; the rest on page 2, at ``?page=2``;
    numbered links "1 2" after the text of each, ``link rel=next`` on page 1), then a sentence
    inserted on page 2 only. Both sides are read as a crawl reads them (:func:`_read_article`)."""
    tree, page = case.tree, case.page
    # Its own generator, so that the pairs of the kinds after it stay the ones they were.
    rng = random.Random(f"{page.page_id}/{LATER_PAGE_KIND}")
    nodes = _body_text_nodes(tree, page)
    owners = [element if attr == "text" else element.getparent() for element, attr in nodes]
    blocks = list(dict.fromkeys(owners))
    blocks = [b for b in blocks if not any(a in blocks for a in b.iterancestors())]
    if len(blocks) < 4:
        return None
    half = len(blocks) // 2
    root = tree.getroottree()
    paths = [root.getpath(block) for block in blocks]
    later = [
        (root.getpath(element), attr)
        for (element, attr), owner in zip(nodes, owners, strict=True)
        if any(owner is b or b in owner.iterancestors() for b in blocks[half:])
    ]
    if not later:
        return None
    edit_path, edit_attr = rng.choice(later)
    url = page.url.split("#")[0]
    second_url = f"{url}{'&' if '?' in url else '?'}page=2"

    def render(second: bool, edited: bool) -> bytes:
        doc = copy.deepcopy(tree)
        found = [doc.xpath(path)[0] for path in paths]
        if edited:
            node = doc.xpath(edit_path)[0]
            setattr(
                node,
                edit_attr,
                (getattr(node, edit_attr) or "").rstrip() + _STANDFIRST_SENTENCE + " ",
            )
        keep, drop = (found[half:], found[:half]) if second else (found[:half], found[half:])
        links = (
            f'<a href="{html_lib.escape(url)}">1</a> 2'
            if second
            else f'1 <a href="{html_lib.escape(second_url)}">2</a>'
        )
        nav = lxml.html.fragment_fromstring(f'<div class="article-pages">{links}</div>')
        nav.tail = keep[-1].tail
        keep[-1].tail = None
        keep[-1].addnext(nav)
        for element in drop:
            element.drop_tree()
        head = doc.find("head")
        if not second and head is not None:
            head.append(lxml.html.fragment_fromstring(f'<link rel="next" href="{second_url}">'))
        return _serialise(doc)

    first = render(second=False, edited=False)
    return Mutation(
        first,
        first,
        later_before=((second_url, render(second=True, edited=False)),),
        later_after=((second_url, render(second=True, edited=True)),),
    )


def _read_article(first: bytes, url: str, later: Pages) -> tuple[Fingerprint | None, str]:
    """An article of several pages read as a crawl reads it (:mod:`crawler.reading`): its
    first page, at ``url``, must lead to the next page by its links, and so on; the pages are
    joined and fingerprinted. None and why when a page is not found or not read."""
    profile = profile_for(url)
    readings = [
        read_page(
            first, url, encoding="utf-8", profile=profile, ignore_patterns=(), find_whole=True
        )
    ]
    for number, (page_url, html) in enumerate(later, start=2):
        last = readings[-1]
        if last.error:
            return None, f"page {number - 1} not read: {last.error}"
        if last.next_url != page_url:
            found = last.whole_url or last.next_url
            return None, f"page {number} not found from page {number - 1} (found {found})"
        reading = read_page(
            html,
            page_url,
            encoding="utf-8",
            profile=profile,
            ignore_patterns=(),
            requested=url,
            part=number,
            first_url=url,
        )
        if reading.article is None:
            return None, f"page {number} not read: {reading.error}"
        readings.append(reading)
    joined = read_pages(readings, ())
    return (joined.fingerprint, "") if joined.fingerprint else (None, "no text")


# -- template block rewrite ---------------------------------------------------------------------

TEMPLATE_KIND = "template-rewrite"
# Blocks publishers put inside the article container, each with a rewrite of it, and where it
# stands: before the first paragraph, after the middle one, after the last one.
_TEMPLATE_BLOCKS = (
    (
        "Sign up for our morning briefing: the day's most important stories in your inbox.",
        "Sign up for our evening briefing: the day's most important stories in your inbox.",
        "end",
    ),
    (
        "Write to us at letters@publisher.example with your views on this story.",
        "Write to the editors at editors@publisher.example with your views on this story.",
        "end",
    ),
    (
        "More on this topic: Parliament passes budget after marathon session",
        "More on this topic: Airline cancels flights as strike begins",
        "middle",
    ),
    ("Photo: Agency staff / The Publisher", "Photo: Staff photographer / The Publisher", "start"),
)
_TEMPLATE_FACETS = (
    ("learned", "block learned as template"),
    ("few", "not learned: in the lead or body of fewer than 3 of its pages"),
    ("dropped", "not learned: not in the extracted lead or body at all"),
    ("pages", "learned, in the lead or body of fewer than 3 pages (the pages' blocks)"),
    ("lead", "the block stands in the lead"),
    ("kept-only", "learning from the extracted lead and body only alerts"),
    ("alone", "the fingerprint alone (no templates) alerts"),
)


def _with_block(page: CorpusPage, text: str, where: str) -> bytes | None:
    """The page with ``text`` as a paragraph of the article's container at ``where``."""
    tree = lxml.html.document_fromstring(page.read_html().decode("utf-8", errors="replace"))
    anchor = _content_anchor(tree, page)
    if anchor is None:
        return None
    _parent, paragraphs = anchor
    block = lxml.html.fragment_fromstring(f"<p>{html_lib.escape(text)}</p>")
    if where == "start":
        paragraphs[0].addprevious(block)
    else:
        paragraphs[len(paragraphs) // 2 if where == "middle" else -1].addnext(block)
    return _serialise(tree)


def _read_for_templates(html: bytes | None, url: str) -> tuple[Fingerprint | None, tuple[str, ...]]:
    """The page read as a crawl reads an article for the first time
    (:func:`crawler.reading.read_page`): its fingerprint (None when it has no body) and its
    page's blocks, which templates are learned from beside the lead's and the body's."""
    if html is None:
        return None, ()
    reading = read_page(
        html,
        url,
        encoding="utf-8",
        profile=profile_for(url),
        ignore_patterns=(),
        with_page_blocks=True,
    )
    return reading.fingerprint, reading.page_blocks


def _learn(
    reads: list[tuple[Fingerprint | None, tuple[str, ...]]],
) -> tuple[frozenset[str], frozenset[str]]:
    """The templates learned from a site's pages as recording learns them (the blocks of each
    page's lead, body and page), and those the extracted leads and bodies alone would give."""
    read = [(f, blocks) for f, blocks in reads if f is not None]
    return (
        templates_of_new_site((*f.blocks, *blocks) for f, blocks in read),
        templates_of_new_site(f.blocks for f, _blocks in read),
    )


def _template_pair(
    page: CorpusPage,
    kind: str,
    old: Fingerprint,
    new: Fingerprint,
    learned: tuple[frozenset[str], frozenset[str]],
    block: str,
    kept_on: int,
    where: str,
    extra: tuple[str, ...] = (),
) -> PairResult:
    """A template block rewritten on one page, judged by :func:`storage.changes.classify`
    with the site's templates: unchanged is right. ``kept_on``: of how many of the site's
    pages the extracted lead or body held the block."""
    templates, kept_only = learned

    def changed(known: frozenset[str]) -> list[str]:
        decision = classify(
            Previous("live", old.digest, old.fields, current_blocks=old.blocks),
            PageRead(page.url, new.digest, new.fields, blocks=new.blocks),
            known,
        )
        return [] if decision.kind == "unchanged" else list(decision.fields)

    fields = changed(templates)
    in_body = block in old.blocks
    in_lead = LEAD_MARK + block in old.blocks
    facet = "learned" if block in templates else "few" if in_body or in_lead else "dropped"
    alone = old.digest != new.digest
    place = {
        (True, True): "in the lead and the body",
        (True, False): "in the lead",
        (False, True): "in the body",
        (False, False): "not in the lead or body",
    }[in_lead, in_body]
    detail = (
        f"{where} block {place}, in the lead or body of {kept_on} pages, "
        f"{'template' if facet == 'learned' else 'not learned'}; "
        f"fingerprint alone {'alerts' if alone else 'quiet'}"
    )
    if fields:
        detail += f"; changed: {','.join(fields)}"
    return PairResult(
        page.corpus,
        page.page_id,
        kind,
        "fail" if fields else "ok",
        False,  # the page's visible text changed: a naive hash alerts
        detail,
        page.half,
        (
            facet,
            *(("pages",) if facet == "learned" and kept_on < MIN_PAGES else ()),
            *(("lead",) if in_lead else ()),
            *(("kept-only",) if changed(kept_only) else ()),
            *(("alone",) if alone else ()),
            *extra,
        ),
    )


def _template_rewrites(pages: list[CorpusPage]) -> list[PairResult]:
    """One site's pages: each template block on all of them, the templates learned from
    them as recording learns them (:func:`storage.templates.templates_of_new_site`), then the
    block rewritten on one page at a time and judged by :func:`storage.changes.classify`
    with those templates → unchanged (no new version, no alert).

    A page whose HTML has no paragraph of its article (a page whose text a script renders)
    cannot show the block; a site on fewer than :data:`storage.templates.MIN_PAGES` of whose
    pages the block can stand is no case of a block on every page of a site of three pages
    or more, and its pairs are skipped."""
    results: list[PairResult] = []
    for text, rewrite, where in _TEMPLATE_BLOCKS:
        shown = [_with_block(p, text, where) for p in pages]
        before = [_read_for_templates(html, p.url) for p, html in zip(pages, shown, strict=True)]
        learned = _learn(before)
        (block,) = block_hashes(text)
        kept_on = sum(
            f is not None and (block in f.blocks or LEAD_MARK + block in f.blocks)
            for f, _blocks in before
        )
        few_pages = sum(html is not None for html in shown) < MIN_PAGES
        for page, (old, _blocks) in zip(pages, before, strict=True):
            new = None
            if not few_pages:
                new = _read_for_templates(_with_block(page, rewrite, where), page.url)[0]
            if old is None or new is None:
                why = (
                    f"the block stands on fewer than {MIN_PAGES} of the site's pages "
                    "(the others have no article paragraph in their HTML)"
                    if few_pages
                    else "no body on one side"
                )
                results.append(
                    PairResult(
                        page.corpus, page.page_id, TEMPLATE_KIND, "skipped", False, why, page.half
                    )
                )
                continue
            results.append(
                _template_pair(page, TEMPLATE_KIND, old, new, learned, block, kept_on, where)
            )
    return results


MOVED_KIND = "template-rewrite-moved"
# Where a site's template puts a block outside the article's container on the pages where it
# does not put it inside (each with its tag for the kind's facets): right after the container,
# in a box of a column beside the article's, before the page's footer.
_OUTSIDE = (
    ("after", '<aside class="newsletter-signup"><p>{}</p></aside>'),
    ("sidebar", '<div class="sidebar"><div class="box">{}</div></div>'),
    ("footer", '<div class="promo-strip"><p class="promo-text">{}</p></div>'),
)
# On how many of a site's pages the block stands inside the container: two, one fewer than a
# block kept by extraction needs to be learned from the extracted lead and body alone.
_MOVED_INSIDE = 2


def _with_block_outside(page: CorpusPage, text: str, where: str) -> bytes | None:
    """The page with ``text`` in the markup ``where`` names (:data:`_OUTSIDE`), outside the
    article's container."""
    tree = lxml.html.document_fromstring(page.read_html().decode("utf-8", errors="replace"))
    anchor = _content_anchor(tree, page)
    if anchor is None:
        return None
    container = anchor[0]
    box = lxml.html.fragment_fromstring(dict(_OUTSIDE)[where].format(html_lib.escape(text)))
    body = tree.find("body")
    if where == "footer":
        footer = next(tree.iter("footer"), None)
        if footer is not None and footer.getparent() is not None:
            footer.addprevious(box)
        elif body is not None:
            body.append(box)
        else:
            container.addnext(box)
        return _serialise(tree)
    beside = container
    if where == "sidebar":
        parent = container.getparent()
        if parent is not None and parent.tag not in ("body", "html"):
            beside = parent
    if beside.tag in ("body", "html") or beside.getparent() is None:
        (body if body is not None else beside).append(box)
    else:
        beside.addnext(box)
    return _serialise(tree)


def _template_moves(pages: list[CorpusPage]) -> list[PairResult]:
    """One site's pages: each template block in the article's container on two of them (as
    :func:`_template_rewrites` puts it there; which two turns with the block) and outside it
    on the others, in each markup of :data:`_OUTSIDE`, as a site's template places a box
    inside a long article and after a short one; the templates learned from them as
    recording learns them, then the block rewritten on each page whose extracted lead or body
    holds it, judged with those templates → unchanged. Pages where extraction left the
    block out are not judged (its rewrite is not in their fingerprint); a site on fewer than
    :data:`storage.templates.MIN_PAGES` pages that can show the block is skipped."""
    results: list[PairResult] = []
    for number, (text, rewrite, inside) in enumerate(_TEMPLATE_BLOCKS):
        inside_pages = {(number + i) % len(pages) for i in range(_MOVED_INSIDE)}
        for outside, _markup in _OUTSIDE:
            placed = [
                (inside, _with_block(p, text, inside))
                if i in inside_pages
                else (outside, _with_block_outside(p, text, outside))
                for i, p in enumerate(pages)
            ]
            before = [
                _read_for_templates(html, p.url)
                for p, (_where, html) in zip(pages, placed, strict=True)
            ]
            learned = _learn(before)
            (block,) = block_hashes(text)
            kept = [
                f is not None and (block in f.blocks or LEAD_MARK + block in f.blocks)
                for f, _blocks in before
            ]
            few_pages = sum(html is not None for _where, html in placed) < MIN_PAGES
            for page, (where, _html), (old, _blocks), holds in zip(
                pages, placed, before, kept, strict=True
            ):
                if few_pages or old is None or not holds:
                    why = (
                        f"the block stands on fewer than {MIN_PAGES} of the site's pages"
                        if few_pages
                        else "no body"
                        if old is None
                        else "extraction left the block out of this page"
                    )
                    results.append(
                        PairResult(
                            page.corpus, page.page_id, MOVED_KIND, "skipped", False, why, page.half
                        )
                    )
                    continue
                changed = (
                    _with_block(page, rewrite, where)
                    if where == inside
                    else _with_block_outside(page, rewrite, where)
                )
                new = _read_for_templates(changed, page.url)[0]
                if new is None:
                    results.append(
                        PairResult(
                            page.corpus,
                            page.page_id,
                            MOVED_KIND,
                            "skipped",
                            False,
                            "no body after the rewrite",
                            page.half,
                        )
                    )
                    continue
                results.append(
                    _template_pair(
                        page,
                        MOVED_KIND,
                        old,
                        new,
                        learned,
                        block,
                        sum(kept),
                        where,
                        (outside,),
                    )
                )
    return results


KINDS: list[Kind] = [
    Kind(
        "edit-sentence",
        lambda c: _from_pair(_edit_pair(c.tree, c.page, c.rng, "edit-sentence")),
        ("body", "lead"),
        "no expected-body text node found in the HTML",
    ),
    Kind(
        "edit-word",
        lambda c: _from_pair(_edit_pair(c.tree, c.page, c.rng, "edit-word")),
        ("body", "lead"),
        "no expected-body text node found in the HTML",
    ),
    Kind("standfirst", _standfirst_edit, ("lead", "body"), "no visible standfirst known"),
    Kind(
        STANDFIRST_BOX_KIND,
        _standfirst_box,
        ("lead", "body"),
        "no headline or expected-body paragraph found",
        facets=tuple((tag, f"markup {tag}") for tag, _markup, _where in _STANDFIRST_BOXES),
    ),
    Kind("description", _description_edit, ("lead",), "page has no description"),
    Kind("editors-note", _editors_note, ("body",), "no expected-body paragraph found"),
    Kind(
        "editors-note-box",
        _editors_note_box,
        ("body",),
        "no expected-body paragraph found",
        facets=(("aside", "set in an aside"),),
    ),
    Kind(
        "headline",
        lambda c: _from_pair(_headline_pair(c.tree, c.page, c.title)),
        ("title",),
        "headline not found in the page",
    ),
    Kind(
        LATER_PAGE_KIND,
        _later_page_edit,
        ("body",),
        "fewer than 4 expected-body blocks to split over two pages",
    ),
    *(
        Kind(name, _noise(name), skip=f"page has no {name} element")
        for name in ("navigation", "related", "footer", "caption", "comments", "scripts")
    ),
    Kind("trending", _noise("trending"), skip="no expected-body paragraph found"),
    Kind("link-box", _link_box, skip="no expected-body paragraph found"),
    Kind(
        "comments-box",
        _comment_counter,
        skip="no expected-body paragraph found",
        facets=tuple((tag, f"markup {tag}") for tag, _markup, _where in _COUNTERS),
    ),
    Kind(
        "comments-line",
        _comment_line,
        skip="no expected-body paragraph found",
        facets=tuple((tag, f"markup {tag}") for tag, _markup in _COUNTER_LINES),
    ),
    Kind(
        "caption-box",
        _caption_box,
        skip="no expected-body paragraph found",
        facets=tuple((tag, f"markup {tag}") for tag, _markup in _PICTURE_BOXES),
    ),
    Kind(
        TEMPLATE_KIND,
        None,
        skip="no body on one side",
        grouped=Grouping(lambda: fundus_pages(newest_only=False), _template_rewrites),
        facets=_TEMPLATE_FACETS,
    ),
    Kind(
        MOVED_KIND,
        None,
        skip="the block left out by extraction on that page, or no body",
        grouped=Grouping(lambda: fundus_pages(newest_only=False), _template_moves),
        facets=(
            *_TEMPLATE_FACETS,
            *((tag, f"outside the container: {tag}") for tag, _markup in _OUTSIDE),
        ),
    ),
    Kind("identical", _identical),
]
EDIT_KINDS = tuple(k.name for k in KINDS if k.must_alert and k.fields != ("title",))
HEADLINE_KIND = "headline"
NOISE_KINDS = tuple(k.name for k in KINDS if not k.must_alert)


def _reading(
    html: bytes, url: str, encoding: str | None, later: Pages = ()
) -> tuple[Fingerprint | None, str]:
    """The fingerprint of the page (with ``later`` pages: of the article they and the page
    make), or None and why extraction refused it."""
    if later:
        return _read_article(html, url, later)
    try:
        return fingerprint(extract(html, url, encoding=encoding)), ""
    except ExtractionError as exc:
        return None, str(exc).split(" (", 1)[-1].rstrip(")") if " (" in str(exc) else str(exc)


def evaluate_page(page: CorpusPage, kinds: tuple[str, ...] = ()) -> list[PairResult]:
    """Every kind's pair on one page (``kinds``: only these)."""
    raw = page.read_html()
    rng = random.Random(page.page_id)
    tree = lxml.html.document_fromstring(raw.decode("utf-8", errors="replace"))
    base = _serialise(tree)
    base_reading = _reading(base, page.url, "utf-8")
    title = extract(base, page.url, encoding="utf-8").title if base_reading[0] else ""
    naive_base = _naive_hash(base)
    case = Case(page, tree, rng, title, raw, base)
    results: list[PairResult] = []

    facets: tuple[str, ...] = ()

    def result(kind: str, ok: bool, naive_ok: bool, detail: str = "") -> None:
        outcome = "ok" if ok else "fail"
        results.append(
            PairResult(
                page.corpus, page.page_id, kind, outcome, naive_ok, detail, page.half, facets
            )
        )

    for kind in KINDS:
        if kind.make is None or (kinds and kind.name not in kinds):
            continue  # a kind judged on groups of pages is not made from one page
        mutation = kind.make(case)
        if mutation is None:
            results.append(
                PairResult(
                    page.corpus, page.page_id, kind.name, "skipped", False, kind.skip, page.half
                )
            )
            continue
        facets = mutation.facets
        if (mutation.before is None or mutation.before == base) and not mutation.later_before:
            (before_fp, refused), naive_before = base_reading, naive_base
        else:
            before_fp, refused = _reading(
                mutation.before or base, page.url, mutation.encoding, mutation.later_before
            )
            naive_before = _naive_hash(mutation.before or base)
        after_fp, after_refused = _reading(
            mutation.after, page.url, mutation.encoding, mutation.later_after
        )
        naive_changed = _naive_hash(mutation.after) != naive_before
        if before_fp is None or after_fp is None:
            how = "not read as a whole" if mutation.later_after else "refused"
            why = f"{how}: {refused or after_refused}"
            if kind.must_alert or kind.name == "identical":
                result(kind.name, False, naive_changed == kind.must_alert, why)
            else:
                # Refusing one side only would look like a change; refusing both, like none.
                result(kind.name, before_fp is None and after_fp is None, not naive_changed, why)
            continue
        if kind.must_alert:
            changed = [f for f in kind.fields if before_fp.fields[f] != after_fp.fields[f]]
            detail = f"{mutation.detail} via {'+'.join(changed)}".strip()
            missed = f"{mutation.detail} {'/'.join(kind.fields)} unchanged".strip()
            result(kind.name, bool(changed), naive_changed, detail if changed else missed)
        else:
            alerted = before_fp.digest != after_fp.digest
            fields = ",".join(after_fp.changed_fields(before_fp.fields))
            detail = f"{mutation.detail}; changed: {fields}" if alerted else mutation.detail
            result(kind.name, not alerted, not naive_changed, detail)
    return results


def _rate(ok: int, total: int) -> str:
    return f"{100 * ok / total:6.1f}%" if total else "    n/a"


def _report(
    half: str, results: list[PairResult], groups: dict[str, list[list[CorpusPage]]], worst: int
) -> None:
    """Per-kind figures of one half, with the facets of the kinds that have them; for the
    tuning half, its failing pages too. ``groups``: the page groups of each grouped kind."""
    mine = [r for r in results if r.half == half]
    grouped = {k.name for k in KINDS if k.grouped is not None}
    seen = {(r.corpus, r.page_id) for r in mine if r.kind not in grouped}
    by_corpus = Counter(corpus for corpus, _page in seen)
    pages = len(seen)
    corpora = ", ".join(f"{n} {c}" for c, n in sorted(by_corpus.items()))
    print(f"\n{half} publishers: {pages} pages ({corpora})")
    for kind in KINDS:
        if kind.grouped is not None and kind.name in groups:
            own = [g for g in groups[kind.name] if g[0].half == half]
            print(
                f"  {kind.name}: {len(own)} sites with {kind.grouped.min_pages} pages or "
                f"more, {sum(len(g) for g in own)} pages"
            )
    header = f"{'pair kind':<24} {'pairs':>6} {'skipped':>8} {'topicwatch':>11} {'naive hash':>11}"
    print(f"  {header}  target")
    breakdowns: list[str] = []
    for kind in KINDS:
        rows = [r for r in mine if r.kind == kind.name]
        if not rows:
            continue
        done = [r for r in rows if r.outcome != "skipped"]
        skipped = len(rows) - len(done)

        def rate(of: list[PairResult], kind: Kind = kind) -> str:
            good = "ok" if kind.must_alert else "fail"
            return _rate(sum(r.outcome == good for r in of), len(of))

        if kind.must_alert:
            naive = _rate(sum(r.naive_ok for r in done), len(done))
            label, target = f"{kind.name} (recall)", ">= 99%"
        else:
            naive = _rate(sum(not r.naive_ok for r in done), len(done))
            label, target = f"{kind.name} (false)", ("0%" if kind.name == "identical" else "<= 1%")
        print(f"  {label:<24} {len(done):6d} {skipped:8d} {rate(done):>11} {naive:>11}  {target}")
        for tag, text in kind.facets:
            tagged = [r for r in done if tag in r.facets]
            breakdowns.append(
                f"  {kind.name + ': ' + text:<72} {len(tagged):5d} "
                f"{_rate(len(tagged), len(done)):>7} {rate(tagged):>11}"
            )
    edits = [r for r in mine if r.kind in EDIT_KINDS and r.outcome != "skipped"]
    via_lead = sum(r.outcome == "ok" and r.detail.endswith("via lead") for r in edits)
    print(
        f"  {'all edits (recall)':<24} {len(edits):6d} {'':8} "
        f"{_rate(sum(r.outcome == 'ok' for r in edits), len(edits)):>11}"
        f"   ({via_lead} seen in the lead field only)"
    )
    if breakdowns:
        print(f"  {'facets of a kind':<72} {'pairs':>5} {'share':>7} {'topicwatch':>11}")
        print("\n".join(breakdowns))
    refused = {r.page_id for r in mine if r.detail.startswith("refused")}
    print(f"  pages refused by extraction: {len(refused)}")
    if half != "tuning":
        return  # the unseen half is reported in aggregate only
    failures = Counter(r.page_id for r in mine if r.outcome == "fail")
    if failures and worst > 0:
        print(f"  failing pages, worst first (top {worst}):")
        for page_id, count in failures.most_common(worst):
            kinds = "; ".join(
                f"{r.kind}: {r.detail}"
                for r in mine
                if r.page_id == page_id and r.outcome == "fail"
            )
            print(f"    {page_id:<40} {count} failed  [{kinds[:160]}]")


def _misses(results: list[PairResult], kind: str) -> None:
    """Every failing pair of one kind, tuning half only."""
    rows = [r for r in results if r.half == "tuning" and r.kind == kind and r.outcome == "fail"]
    print(f"\n{kind}: {len(rows)} failing pairs of the tuning publishers")
    for r in rows:
        print(f"  {r.corpus}/{r.page_id}: {r.detail[:200]}")


def _groups(grouping: Grouping, half: str, limit: int) -> list[list[CorpusPage]]:
    """The page groups of a grouped kind: its pages by site (of ``half``, or both), the
    groups of ``grouping.min_pages`` pages or more, the first ``limit`` of them."""
    by_host: dict[str, list[CorpusPage]] = defaultdict(list)
    for page in grouping.pages():
        if half in ("both", page.half):
            by_host[site_of(page.url)].append(page)
    found = [group for _host, group in sorted(by_host.items()) if len(group) >= grouping.min_pages]
    return found[:limit] if limit else found


def _judge_group(job: tuple[str, list[CorpusPage]]) -> list[PairResult]:
    """The pairs of one group of pages of the grouped kind named ``job[0]``."""
    name, group = job
    (grouping,) = (k.grouped for k in KINDS if k.name == name and k.grouped is not None)
    return grouping.judge(group)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="only the first N pages per corpus (and publishers, for template-rewrite)",
    )
    parser.add_argument(
        "--all-versions",
        action="store_true",
        help="every fundus page, not only each publisher's newest",
    )
    parser.add_argument(
        "--half",
        choices=("both", *HALVES),
        default="both",
        help="run the pages of one half of the publishers only",
    )
    parser.add_argument(
        "--kinds", default="", help="comma-separated kinds to run (default: all of KINDS)"
    )
    parser.add_argument(
        "--worst", type=int, default=10, help="failing pages listed (tuning half only)"
    )
    parser.add_argument(
        "--misses",
        default="",
        help="comma-separated kinds whose failing pairs are all listed (tuning half only)",
    )
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = set(kinds) - {k.name for k in KINDS}
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    try:
        corpora = {
            "aeb": aeb_pages(),
            "fundus": fundus_pages(newest_only=not args.all_versions),
        }
        chosen = [k for k in KINDS if not kinds or k.name in kinds]
        groups = {
            k.name: _groups(k.grouped, args.half, args.limit)
            for k in chosen
            if k.grouped is not None
        }
    except CorpusMissingError as exc:
        print(f"SKIPPED: {exc}")
        return 0
    pages = [p for ps in corpora.values() for p in (ps[: args.limit] if args.limit else ps)]
    if args.half != "both":
        pages = [p for p in pages if p.half == args.half]
    if all(k.make is None for k in chosen):
        pages = []
    jobs = [(name, group) for name, kind_groups in groups.items() for group in kind_groups]
    started = time.perf_counter()
    with Pool(args.workers) as pool:
        work = partial(evaluate_page, kinds=kinds)
        results = [r for rs in pool.imap(work, pages, chunksize=2) for r in rs]
        results += [r for rs in pool.imap(_judge_group, jobs) for r in rs]
    for half in HALVES:
        if any(r.half == half for r in results):
            _report(half, results, groups, args.worst)
    for kind in (k for k in args.misses.split(",") if k):
        _misses(results, kind)
    print(
        f"\n{len(pages)} pages, {len(results)} pairs in {time.perf_counter() - started:.1f}s "
        f"with {args.workers} workers"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
