"""Change-detection accuracy on real pages: do edits alert, and does noise stay quiet?

    .venv/bin/python bench/detection.py [--workers 2] [--limit N] [--worst 10]

For every corpus page, (before, after) pairs go through ``extract()`` and ``fingerprint()``
exactly as a crawl does, and, beside them, through a naive hash of the page's visible text.

Pairs (the page is parsed once, and both sides of a pair are serialised the same way, so the
only difference between them is the change under test):

- edit-sentence / edit-word: a short sentence inserted into, or one word changed in, a text
  node whose text belongs to the page's expected body (ground truth; fundus counts the
  summary, i.e. the standfirst, as body), and in every other text node with the same text
  (an edit in the CMS changes every rendering of the paragraph) → the body hash must change,
  or the lead hash when the edited paragraph is the standfirst, which extraction keeps as its
  own field (the count of those is printed). Pages with no such text node are reported as
  skipped, not as successes.
- later-page-edit: the article split over two pages (``?page=2``, linked from page 1 as a CMS
  links it), and a sentence inserted on page 2 only → the body hash of the pages read and
  joined as a crawl does must change (the naive hash watches page 1 alone).
- headline: the headline changed everywhere it appears (<title>, og:/twitter:title, JSON-LD
  headline/name, h1, any text node equal to it) → the title hash must change.
- noise, which must leave the fingerprint alone (each lands outside the expected body):
  navigation (link texts of nav/menus changed, a link added), related (a list of related
  headlines after the article, rotated), footer (footer text changed), caption (figure
  caption text changed), comments (a comment count changed; added near the top of the
  article when the page shows none), scripts (script nonces and inline script text, data-*
  attributes and class order changed), trending (a "Trending now" block of rotating headlines
  inside the article between two paragraphs), identical (the same bytes fetched twice).
- template-rewrite (:func:`template_rewrite_results`): a block the publisher puts on every
  article, rewritten on one of them → no alert once the publisher's templates are learned.

Targets: edit and headline recall >= 98%, false alerts <= 2% per noise kind, 0% for identical.
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
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lxml.html

from bench.corpus import CorpusMissingError, CorpusPage, aeb_pages, fundus_pages
from crawler.article import Fingerprint
from crawler.extraction.extractor import extract
from crawler.extraction.parsing import ExtractionError
from crawler.fingerprint import block_hashes, fingerprint
from crawler.profiles import profile_for
from crawler.reading import read_page, read_pages
from storage.changes import PageRead, Previous, classify
from storage.templates import templates_of_new_site

EDIT_KINDS = ("edit-sentence", "edit-word")
LATER_PAGE_KIND = "later-page-edit"
HEADLINE_KIND = "headline"
NOISE_KINDS = (
    "navigation",
    "related",
    "footer",
    "caption",
    "comments",
    "scripts",
    "trending",
    "identical",
)
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
    ``naive_ok`` is the same verdict for the naive visible-text hash.
    """

    corpus: str
    page_id: str
    kind: str
    outcome: str
    naive_ok: bool
    detail: str = ""


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


def _fingerprint_of(html: bytes, url: str, encoding: str | None) -> Fingerprint | None:
    try:
        return fingerprint(extract(html, url, encoding=encoding))
    except ExtractionError:
        return None


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
    tree: lxml.html.HtmlElement, page: CorpusPage
) -> tuple[lxml.html.HtmlElement, list[lxml.html.HtmlElement]] | None:
    """The element that holds most expected-body paragraphs, and those paragraphs in order."""
    blob = _expected_blob(page)
    holders: dict[lxml.html.HtmlElement, list[lxml.html.HtmlElement]] = defaultdict(list)
    for paragraph in tree.iter("p"):
        text = _squash(paragraph.text_content())
        if len(text) >= 30 and text in blob and paragraph.getparent() is not None:
            holders[paragraph.getparent()].append(paragraph)
    if not holders:
        return None
    parent = max(holders, key=lambda e: len(holders[e]))
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


def _later_page_edit(
    tree: lxml.html.HtmlElement, page: CorpusPage, rng: random.Random
) -> PairResult:
    """later-page-edit: the page's article split in two pages as a CMS splits one (the
    first half of its expected-body blocks on page 1, at the page's URL; the rest on page 2,
    at ``?page=2``; numbered links "1 2" after the text of each, ``link rel=next`` on page 1),
    then a sentence inserted on page 2 only. Both pages go through the crawl's reading (page
    1 finds page 2 by its links; the pages are joined) → the body hash must change. The naive
    hash watches page 1, the article's URL, which did not change."""

    def result(outcome: str, detail: str) -> PairResult:
        return PairResult(page.corpus, page.page_id, LATER_PAGE_KIND, outcome, False, detail)

    nodes = _body_text_nodes(tree, page)
    owners = [element if attr == "text" else element.getparent() for element, attr in nodes]
    blocks = list(dict.fromkeys(owners))
    blocks = [b for b in blocks if not any(a in blocks for a in b.iterancestors())]
    if len(blocks) < 4:
        return result("skipped", "fewer than 4 expected-body blocks to split over two pages")
    half = len(blocks) // 2
    root = tree.getroottree()
    paths = [root.getpath(block) for block in blocks]
    later = [
        (root.getpath(element), attr)
        for (element, attr), owner in zip(nodes, owners, strict=True)
        if any(owner is b or b in owner.iterancestors() for b in blocks[half:])
    ]
    if not later:
        return result("skipped", "no expected-body text node on page 2")
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
                (getattr(node, edit_attr) or "").rstrip()
                + " The ministry later revised this figure. ",
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

    def whole(first: bytes, second: bytes) -> Fingerprint | str:
        profile = profile_for(url)
        one = read_page(
            first, url, encoding="utf-8", profile=profile, ignore_patterns=(), find_whole=True
        )
        if one.next_url != second_url:
            return f"page 2 not found from page 1 (found {one.whole_url or one.next_url})"
        two = read_page(
            second,
            second_url,
            encoding="utf-8",
            profile=profile,
            ignore_patterns=(),
            requested=url,
            part=2,
            first_url=url,
        )
        if two.article is None:
            return f"page 2 not read: {two.error}"
        joined = read_pages([one, two], ())
        return joined.fingerprint or "no text"

    page_1 = render(second=False, edited=False)
    before = whole(page_1, render(second=True, edited=False))
    after = whole(page_1, render(second=True, edited=True))
    if isinstance(before, str) or isinstance(after, str):
        return result("fail", str(before if isinstance(before, str) else after))
    if before.fields["body"] == after.fields["body"]:
        return result("fail", "body unchanged")
    return result("ok", "via body")


def evaluate_page(page: CorpusPage) -> list[PairResult]:
    raw = page.read_html()
    results: list[PairResult] = []
    rng = random.Random(page.page_id)
    tree = lxml.html.document_fromstring(raw.decode("utf-8", errors="replace"))
    base = _serialise(tree)
    base_fp = _fingerprint_of(base, page.url, "utf-8")
    title = ""
    if base_fp is not None:
        title = extract(base, page.url, encoding="utf-8").title
    naive_base = _naive_hash(base)

    def record(
        kind: str, after: bytes, *, want_fields: tuple[str, ...] | None, detail: str = ""
    ) -> None:
        after_fp = _fingerprint_of(after, page.url, "utf-8")
        naive_changed = _naive_hash(after) != naive_base
        if want_fields is None:
            alerted = (base_fp is None) != (after_fp is None) or (
                base_fp is not None and after_fp is not None and base_fp.digest != after_fp.digest
            )
            fields = (
                ",".join(after_fp.changed_fields(base_fp.fields))
                if base_fp is not None and after_fp is not None
                else "extraction failed on one side"
            )
            outcome = "fail" if alerted else "ok"
            results.append(
                PairResult(
                    page.corpus,
                    page.page_id,
                    kind,
                    outcome,
                    not naive_changed,
                    f"{detail}; changed: {fields}" if alerted else detail,
                )
            )
        else:
            changed = (
                [f for f in want_fields if base_fp.fields[f] != after_fp.fields[f]]
                if base_fp is not None and after_fp is not None
                else []
            )
            detected = bool(changed)
            if detected:
                detail = f"{detail}via {'+'.join(changed)}"
            results.append(
                PairResult(
                    page.corpus,
                    page.page_id,
                    kind,
                    "ok" if detected else "fail",
                    naive_changed,
                    detail if detected else f"{'/'.join(want_fields)} unchanged",
                )
            )

    for kind in EDIT_KINDS:
        pair = _edit_pair(tree, page, rng, kind)
        if pair is None:
            results.append(
                PairResult(
                    page.corpus,
                    page.page_id,
                    kind,
                    "skipped",
                    False,
                    "no expected-body text node found in the HTML",
                )
            )
        else:
            record(kind, pair[1], want_fields=("body", "lead"))
    headline = _headline_pair(tree, page, title)
    if headline is None:
        results.append(
            PairResult(
                page.corpus,
                page.page_id,
                HEADLINE_KIND,
                "skipped",
                False,
                "headline not found in the page",
            )
        )
    else:
        record(HEADLINE_KIND, headline[1], want_fields=("title",))
    results.append(_later_page_edit(tree, page, rng))

    for kind in NOISE_KINDS:
        if kind == "identical":
            first = _fingerprint_of(raw, page.url, None)
            second = _fingerprint_of(raw, page.url, None)
            same = (first is None and second is None) or (
                first is not None and second is not None and first.digest == second.digest
            )
            results.append(
                PairResult(page.corpus, page.page_id, kind, "ok" if same else "fail", True)
            )
            continue
        noise = _noise_pair(tree, page, kind)
        if noise is None:
            results.append(
                PairResult(
                    page.corpus, page.page_id, kind, "skipped", True, f"page has no {kind} element"
                )
            )
            continue
        before, after, how = noise
        if before != base:
            # The noise needs a different "before" (e.g. a rotated block): measure from it.
            saved = (base_fp, naive_base)
            base_fp, naive_base = _fingerprint_of(before, page.url, "utf-8"), _naive_hash(before)
            record(kind, after, want_fields=None, detail=how)
            base_fp, naive_base = saved
        else:
            record(kind, after, want_fields=None, detail=how)
    return results


def _rate(ok: int, total: int) -> str:
    return f"{100 * ok / total:6.1f}%" if total else "    n/a"


def _report(corpus: str, results: list[PairResult], worst: int) -> None:
    mine = [r for r in results if r.corpus == corpus]
    pages = len({r.page_id for r in mine})
    print(f"\n{corpus}: {pages} pages")
    header = f"{'pair kind':<24} {'pairs':>6} {'skipped':>8} {'topicwatch':>11} {'naive hash':>11}"
    print(f"  {header}  target")
    for kind in (*EDIT_KINDS, HEADLINE_KIND, LATER_PAGE_KIND, *NOISE_KINDS):
        rows = [r for r in mine if r.kind == kind]
        done = [r for r in rows if r.outcome != "skipped"]
        skipped = len(rows) - len(done)
        if kind in NOISE_KINDS:
            ours = _rate(sum(r.outcome == "fail" for r in done), len(done))
            naive = _rate(sum(not r.naive_ok for r in done), len(done))
            label, target = f"{kind} (false)", ("0%" if kind == "identical" else "<= 2%")
        else:
            ours = _rate(sum(r.outcome == "ok" for r in done), len(done))
            naive = _rate(sum(r.naive_ok for r in done), len(done))
            label, target = f"{kind} (recall)", ">= 98%"
        print(f"  {label:<24} {len(done):6d} {skipped:8d} {ours:>11} {naive:>11}  {target}")
    edits = [r for r in mine if r.kind in EDIT_KINDS and r.outcome != "skipped"]
    via_lead = sum(r.outcome == "ok" and r.detail.endswith("via lead") for r in edits)
    print(
        f"  {'all edits (recall)':<24} {len(edits):6d} {'':8} "
        f"{_rate(sum(r.outcome == 'ok' for r in edits), len(edits)):>11}"
        f"   ({via_lead} seen in the lead field only: edits of the standfirst)"
    )
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


def _publisher(page_id: str) -> str:
    """The publisher of a fundus page (``<cc>/<Publisher>_<yyyy>_<mm>_<dd>``)."""
    return page_id.rsplit("_", 3)[0]


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


def _read(html: bytes | None, url: str) -> Fingerprint | None:
    if html is None:
        return None
    try:
        return fingerprint(extract(html, url, encoding="utf-8"))
    except ExtractionError:
        return None


def _publisher_template_results(pages: list[CorpusPage]) -> list[PairResult]:
    """One publisher's pages: each template block on all of them, the templates learned from
    them as recording learns them, then the block rewritten on one page at a time."""
    results: list[PairResult] = []
    for text, rewrite, where in _TEMPLATE_BLOCKS:
        before = [_read(_with_block(p, text, where), p.url) for p in pages]
        templates = templates_of_new_site(r.blocks for r in before if r is not None)
        (block,) = block_hashes(text)
        for page, read in zip(pages, before, strict=True):
            after = _read(_with_block(page, rewrite, where), page.url)
            if read is None or after is None:
                results.append(
                    PairResult("fundus", page.page_id, TEMPLATE_KIND, "skipped", True, "no body")
                )
                continue
            old, new = read, after
            decision = classify(
                Previous("live", old.digest, old.fields, current_blocks=old.blocks),
                PageRead(page.url, new.digest, new.fields, blocks=new.blocks),
                templates,
            )
            alone = "alerts" if old.digest != new.digest else "quiet"
            detail = (
                f"{where} block {'in' if block in old.blocks else 'not in'} the body, "
                f"{'template' if block in templates else 'not learned'}; fingerprint alone {alone}"
            )
            if decision.kind != "unchanged":
                detail += f"; changed: {','.join(decision.fields)}"
            results.append(
                PairResult(
                    "fundus",
                    page.page_id,
                    TEMPLATE_KIND,
                    "ok" if decision.kind == "unchanged" else "fail",
                    False,  # the page's visible text changed: a naive hash alerts
                    detail,
                )
            )
    return results


def template_rewrite_results(
    pages: list[CorpusPage], workers: int = 2, min_pages: int = 3
) -> list[PairResult]:
    """The template-rewrite pairs of the publishers with at least ``min_pages`` of ``pages``
    (fundus pages, every version: ``fundus_pages(newest_only=False)``)."""
    by_publisher: dict[str, list[CorpusPage]] = defaultdict(list)
    for page in pages:
        by_publisher[_publisher(page.page_id)].append(page)
    groups = [group for group in by_publisher.values() if len(group) >= min_pages]
    with Pool(workers) as pool:
        return [r for rs in pool.imap(_publisher_template_results, groups) for r in rs]


def report_template_rewrites(results: list[PairResult]) -> None:
    """False alerts of the template-rewrite pairs: where the publisher's pages taught the
    block as template (the block in the extracted body of 3 of them or more), where they could
    not (the corpus has too few of the publisher's pages for the rule), and by the fingerprint
    alone, as before site templates."""
    done = [r for r in results if r.outcome != "skipped"]
    publishers = len({_publisher(r.page_id) for r in results})
    learned = [r for r in done if ", template;" in r.detail]
    unlearned = [r for r in done if ", not learned;" in r.detail]
    in_body = [r for r in unlearned if " in the body" in r.detail and "not in" not in r.detail]
    dropped = [r for r in unlearned if r not in in_body]
    alone = sum("fingerprint alone alerts" in r.detail for r in done)

    def false(rows: list[PairResult]) -> str:
        return _rate(sum(r.outcome == "fail" for r in rows), len(rows))

    print(
        f"\n{TEMPLATE_KIND}: {publishers} publishers with 3 pages or more, {len(done)} pairs "
        f"({len(results) - len(done)} skipped: no body)"
    )
    print(f"  {'pairs':<58} {'n':>4} {'false alerts':>13}")
    print(f"  {'block learned as template':<58} {len(learned):4d} {false(learned):>13}  <= 1%")
    print(
        f"  {'not learned: in the body of fewer than 3 of its pages':<58} "
        f"{len(in_body):4d} {false(in_body):>13}"
    )
    print(
        f"  {'not learned: not in the extracted body at all':<58} "
        f"{len(unlearned) - len(in_body):4d} {false(dropped):>13}"
    )
    print(
        f"  {'all pairs, fingerprint alone (no templates)':<58} {len(done):4d} "
        f"{_rate(alone, len(done)):>13}"
    )
    for result in (r for r in learned if r.outcome == "fail"):
        print(f"    {result.page_id:<40} {result.detail[:120]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="only the first N pages per corpus")
    parser.add_argument("--worst", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        corpora = {"aeb": aeb_pages(), "fundus": fundus_pages()}
    except CorpusMissingError as exc:
        print(f"SKIPPED: {exc}")
        return 0
    pages = [p for ps in corpora.values() for p in (ps[: args.limit] if args.limit else ps)]
    started = time.perf_counter()
    with Pool(args.workers) as pool:
        results = [r for rs in pool.imap(evaluate_page, pages, chunksize=2) for r in rs]
    for corpus in corpora:
        _report(corpus, results, args.worst)
    every_fundus_page = fundus_pages(newest_only=False)
    report_template_rewrites(template_rewrite_results(every_fundus_page, args.workers))
    print(
        f"\n{len(pages)} pages, {len(results)} pairs in {time.perf_counter() - started:.1f}s "
        f"with {args.workers} workers"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
