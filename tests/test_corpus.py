"""A small smoke run over real pages (the shared corpus); skipped when the corpus is absent.

The full measurements are the benchmarks: bench/extraction.py and bench/detection.py.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

# The benchmarks live beside the packages, not in them; their helpers are shared with this test.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import (
    CorpusMissingError,
    CorpusPage,
    aeb_pages,
    score_body,
    summarise,
)
from bench.detection import NOISE_KINDS, evaluate_page
from crawler.extraction.extractor import extract


@pytest.fixture(scope="module")
def sample() -> list[CorpusPage]:
    try:
        pages = aeb_pages()
    except CorpusMissingError as exc:
        pytest.skip(f"Real-page corpus not available: {exc}")
    return random.Random(7).sample(pages, 10)


def test_aeb_sample_body_f1(sample: list[CorpusPage]) -> None:
    scores = [score_body(extract(p.read_html(), p.url).body, p.expected_body) for p in sample]
    assert summarise(scores).f1 > 0.9


def test_detection_pairs_on_a_few_pages(sample: list[CorpusPage]) -> None:
    results = [r for page in sample[:3] for r in evaluate_page(page)]
    done = [r for r in results if r.outcome != "skipped"]
    edits = [r for r in done if r.kind.startswith("edit")]
    assert edits, "no edit pair could be placed on the sample pages"
    assert all(r.outcome == "ok" for r in edits), [r for r in edits if r.outcome != "ok"]
    identical = [r for r in done if r.kind == "identical"]
    assert identical
    assert all(r.outcome == "ok" for r in identical)
    noise = [r for r in done if r.kind in NOISE_KINDS]
    assert sum(r.outcome == "fail" for r in noise) <= 1, [r for r in noise if r.outcome == "fail"]


def test_scoring_matches_the_published_method() -> None:
    perfect = score_body("one two three four five", "one two three four five")
    assert (perfect.precision, perfect.recall) == (1.0, 1.0)
    half = score_body("a b c d e f g", "a b c d")
    assert half.tp == pytest.approx(0.25)
    assert half.fp == pytest.approx(0.75)
    assert score_body("", "a b c d").recall == 0.0
