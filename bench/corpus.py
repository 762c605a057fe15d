"""The real-page corpus: loading its pages and scoring extracted text against its ground truth.

The corpus lives outside the project (``../shared/corpus`` from the repository root, or the
directory named by ``TOPICWATCH_CORPUS``). Two parts:

- ``aeb/``: article pages with a ground-truth body each (``ground-truth.json``);
- ``fundus/``: publisher pages with expected title, authors, publishing date and body, one JSON
  per publisher whose version keys (``V1``, ``V1_1``, ...) pair, in order, with that publisher's
  pages sorted by date.

Body scoring follows the method the article-extraction benchmark published: tokens are ``\\w+``
matches, 4-token shingles are counted as multisets, and per document precision and recall are
averaged over documents before F1 is taken of the averages.

Every page belongs to one of two fixed halves of the publishers (:func:`publisher_half`), by a
hash of its registrable host: rules are chosen looking at the *tuning* half only, and the
figures that count are those of the *unseen* half.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
_TOKEN = re.compile(r"\w+", re.UNICODE)
_SHINGLE = 4
# Second-level labels under a two-letter country domain that registries sell names below
# ("example.co.uk", "example.com.br").
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "gov", "ac", "edu", "ne", "or", "go"})

Half = Literal["tuning", "unseen"]
HALVES: tuple[Half, ...] = ("tuning", "unseen")


def registrable_host(url: str) -> str:
    """The host a publisher registered: ``https://www.bbc.co.uk/x`` → ``bbc.co.uk``.

    Two labels, or three under a country's second level (``co.uk``, ``com.br``); a fixed rule
    rather than the public suffix list, so that the halves never move with a library update.
    """
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    labels = host.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def publisher_half(url: str) -> Half:
    """The fixed half of the publishers ``url`` belongs to: the parity of the first byte of
    the SHA-256 of its registrable host. Every page of a publisher lands in the same half."""
    digest = hashlib.sha256(registrable_host(url).encode("utf-8")).digest()
    return "tuning" if digest[0] % 2 == 0 else "unseen"


class CorpusMissingError(FileNotFoundError):
    """The corpus directory (or one of its parts) is not where it should be."""


def corpus_root() -> Path:
    """The corpus directory: ``$TOPICWATCH_CORPUS`` or ``../shared/corpus`` from the repo root."""
    env = os.environ.get("TOPICWATCH_CORPUS")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "corpus").resolve()


def require_corpus(part: str) -> Path:
    """The directory of one corpus part, or :class:`CorpusMissingError` saying where it looked."""
    path = corpus_root() / part
    if not path.is_dir():
        raise CorpusMissingError(
            f"The corpus part {part!r} was not found at {path}; set TOPICWATCH_CORPUS to the "
            "corpus directory."
        )
    return path


@dataclass(frozen=True)
class CorpusPage:
    """One real page with what a correct extraction would give.

    ``expected_paragraphs`` is the expected body, one entry per paragraph (or heading);
    ``title``, ``published``, ``authors`` and ``summary`` (the visible standfirst, which is
    also the start of ``expected_paragraphs``) are known for fundus pages only.
    """

    corpus: str
    page_id: str
    url: str
    path: Path
    expected_paragraphs: tuple[str, ...]
    title: str | None = None
    published: str | None = None
    authors: tuple[str, ...] = field(default=())
    summary: tuple[str, ...] = field(default=())

    @property
    def half(self) -> Half:
        return publisher_half(self.url)

    @property
    def expected_body(self) -> str:
        return "\n\n".join(self.expected_paragraphs)

    def read_html(self) -> bytes:
        with gzip.open(self.path, "rb") as fh:
            return fh.read()


def aeb_pages() -> list[CorpusPage]:
    """The article-extraction benchmark pages, sorted by id."""
    root = require_corpus("aeb")
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id in sorted(truth):
        entry = truth[page_id]
        path = root / "html" / f"{page_id}.html.gz"
        if not path.exists():
            continue
        paragraphs = tuple(p.strip() for p in entry["articleBody"].split("\n") if p.strip())
        pages.append(
            CorpusPage(
                corpus="aeb",
                page_id=page_id[:12],
                url=entry["url"],
                path=path,
                expected_paragraphs=paragraphs,
            )
        )
    return pages


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def fundus_pages(*, newest_only: bool = True) -> list[CorpusPage]:
    """The fundus publisher pages with their expectations.

    With ``newest_only`` each publisher contributes its newest version key and the page it
    pairs with (its newest page); otherwise every version key with its page.
    """
    root = require_corpus("fundus")
    pages = []
    for json_path in sorted(root.glob("*/*.json")):
        publisher = json_path.stem
        folder = json_path.parent
        expectations = json.loads(json_path.read_text(encoding="utf-8"))
        htmls = sorted(folder.glob(f"{publisher}_*.html.gz"))
        meta_path = folder / "meta.info"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        versions = sorted(expectations, key=_version_key)
        pairs = list(zip(versions, htmls, strict=False))
        if newest_only:
            pairs = pairs[-1:]
        for version, html_path in pairs:
            expected = expectations[version]
            body = expected.get("body") or {}
            summary = [p.strip() for p in body.get("summary", []) if p.strip()]
            paragraphs: list[str] = list(summary)
            for section in body.get("sections", []):
                paragraphs.extend(p for p in section.get("headline", []) if p.strip())
                paragraphs.extend(p for p in section.get("paragraphs", []) if p.strip())
            url = meta.get(html_path.name, {}).get("url", f"https://{publisher.lower()}.test/")
            pages.append(
                CorpusPage(
                    corpus="fundus",
                    page_id=f"{folder.name}/{html_path.name.removesuffix('.html.gz')}",
                    url=url,
                    path=html_path,
                    expected_paragraphs=tuple(p.strip() for p in paragraphs),
                    title=expected.get("title"),
                    published=expected.get("publishing_date"),
                    authors=tuple(expected.get("authors") or ()),
                    summary=tuple(summary),
                )
            )
    return pages


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def shingles(text: str) -> Counter[tuple[str, ...]]:
    toks = tokens(text)
    return Counter(
        tuple(toks[i : i + _SHINGLE]) for i in range(max(1, len(toks) - _SHINGLE + 1)) if toks
    )


@dataclass(frozen=True)
class BodyScore:
    """One document's shingle counts, as shares of their sum (so documents weigh the same)."""

    tp: float
    fp: float
    fn: float

    @property
    def precision(self) -> float:
        if self.fp == self.fn == 0:
            return 1.0
        if self.tp == self.fp == 0:
            return 0.0
        return self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float:
        if self.fp == self.fn == 0:
            return 1.0
        if self.tp == self.fn == 0:
            return 0.0
        return self.tp / (self.tp + self.fn)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_body(extracted: str, expected: str) -> BodyScore:
    """Score one document: TP shared shingles, FP extracted-only, FN truth-only."""
    got, want = shingles(extracted), shingles(expected)
    tp = sum((got & want).values())
    fp = sum((got - want).values())
    fn = sum((want - got).values())
    total = tp + fp + fn
    if total == 0:
        return BodyScore(0.0, 0.0, 0.0)
    return BodyScore(tp / total, fp / total, fn / total)


@dataclass(frozen=True)
class Summary:
    precision: float
    recall: float
    f1: float
    documents: int


def summarise(scores: Sequence[BodyScore]) -> Summary:
    """Precision averaged over documents with a prediction, recall over those with a truth."""
    if not scores:
        return Summary(0.0, 0.0, 0.0, 0)
    with_pred = [s.precision for s in scores if s.tp + s.fp > 0]
    with_truth = [s.recall for s in scores if s.tp + s.fn > 0]
    p = sum(with_pred) / len(with_pred) if with_pred else 0.0
    r = sum(with_truth) / len(with_truth) if with_truth else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return Summary(p, r, f1, len(scores))


def iter_all_pages() -> Iterator[CorpusPage]:
    yield from aeb_pages()
    yield from fundus_pages()
