"""Extraction accuracy on the real-page corpus, beside trafilatura alone.

    .venv/bin/python bench/extraction.py [--workers 2] [--all-versions] [--worst 10]

- aeb: body precision, recall and F1 with the benchmark's published shingle scoring;
- fundus: title exact-match rate, publishing-date match rate (as instants when both sides
  have a time and zone, else as calendar dates), author-set match rate, body F1 (expected body
  = summary + section headlines + paragraphs; extracted = lead + body, the lead only when the
  body does not already hold it).

The corpus is read from ``$TOPICWATCH_CORPUS`` or ``../shared/corpus``.
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trafilatura

from bench.corpus import (
    BodyScore,
    CorpusMissingError,
    CorpusPage,
    aeb_pages,
    fundus_pages,
    score_body,
    summarise,
)
from crawler.extraction.extractor import extract
from crawler.extraction.parsing import ExtractionError


@dataclass(frozen=True)
class PageResult:
    page: CorpusPage
    ours: BodyScore
    baseline: BodyScore
    error: str | None
    title: str
    published: str | None
    authors: tuple[str, ...]
    seconds: float


def _baseline_text(html: bytes, url: str) -> str:
    return (
        trafilatura.extract(html.decode("utf-8", errors="replace"), url=url, include_comments=False)
        or ""
    )


def _squash(text: str) -> str:
    return " ".join(text.split())


def evaluate_page(page: CorpusPage) -> PageResult:
    html = page.read_html()
    started = time.perf_counter()
    error = None
    title, published, authors, text = "", None, (), ""
    try:
        article = extract(html, page.url)
    except ExtractionError as exc:
        error = str(exc)
    else:
        title, published, authors = article.title, article.published, article.authors
        text = article.body
        if (
            page.corpus == "fundus"
            and article.lead
            and _squash(article.lead) not in _squash(article.body)
        ):
            text = article.lead + "\n\n" + article.body
    seconds = time.perf_counter() - started
    return PageResult(
        page=page,
        ours=score_body(text, page.expected_body),
        baseline=score_body(_baseline_text(html, page.url), page.expected_body),
        error=error,
        title=title,
        published=published,
        authors=authors,
        seconds=seconds,
    )


def _parse_when(value: str) -> datetime | None:
    text = value.strip().replace("Z", "+00:00")
    for candidate in (text, text.replace(" ", "T", 1)):
        try:
            return datetime.fromisoformat(candidate)
        except ValueError:
            continue
    return None


def dates_match(extracted: str | None, expected: str | None) -> bool:
    """Same instant when both carry a time and zone, else the same calendar date."""
    if not extracted or not expected:
        return False
    got, want = _parse_when(extracted), _parse_when(expected)
    if got is None or want is None:
        return False
    has_time = len(extracted.strip()) > 10
    if got.tzinfo is not None and want.tzinfo is not None and has_time:
        return got.astimezone(UTC) == want.astimezone(UTC)
    return got.date() == want.date()


def _norm_title(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    for a, b in (("’", "'"), ("‘", "'"), ("“", '"'), ("”", '"'), ("–", "-"), ("—", "-")):
        text = text.replace(a, b)
    return _squash(text).casefold()


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "  n/a"


def _print_body_table(label: str, results: list[PageResult]) -> None:
    ours = summarise([r.ours for r in results])
    base = summarise([r.baseline for r in results])
    print(f"\n{label}: body text, {ours.documents} pages (shingle P / R / F1)")
    print(f"  {'extractor':<28} {'precision':>9} {'recall':>9} {'F1':>9}")
    print(f"  {'topicwatch extract()':<28} {ours.precision:9.3f} {ours.recall:9.3f} {ours.f1:9.3f}")
    print(f"  {'trafilatura alone':<28} {base.precision:9.3f} {base.recall:9.3f} {base.f1:9.3f}")


def _print_worst(results: list[PageResult], count: int) -> None:
    """The ``count`` worst pages of the tuning publishers: the unseen half's pages are never
    listed (rules are chosen looking at the tuning half only; see ``bench.corpus``)."""
    if count <= 0:
        return
    tuning = [r for r in results if r.page.half == "tuning"]
    print(f"  worst {count} pages of the tuning publishers by F1 (ours | trafilatura alone):")
    for r in sorted(tuning, key=lambda r: r.ours.f1)[:count]:
        note = f"  [{r.error}]" if r.error else ""
        print(
            f"    {r.page.page_id:<44} P {r.ours.precision:.2f} R {r.ours.recall:.2f} "
            f"F1 {r.ours.f1:.2f} | F1 {r.baseline.f1:.2f}{note}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--worst", type=int, default=10, help="list the N worst pages of the tuning publishers"
    )
    parser.add_argument(
        "--all-versions",
        action="store_true",
        help="fundus: every version key with its page, not only the newest per publisher",
    )
    args = parser.parse_args(argv)
    try:
        aeb = aeb_pages()
        fundus = fundus_pages(newest_only=not args.all_versions)
    except CorpusMissingError as exc:
        print(f"SKIPPED: {exc}")
        return 0

    started = time.perf_counter()
    with Pool(args.workers) as pool:
        results = pool.map(evaluate_page, aeb + fundus, chunksize=4)
    wall = time.perf_counter() - started
    aeb_results = [r for r in results if r.page.corpus == "aeb"]
    fundus_results = [r for r in results if r.page.corpus == "fundus"]

    _print_body_table("aeb", aeb_results)
    f1 = summarise([r.ours for r in aeb_results]).f1
    print(f"  target F1 >= 0.95: {'met' if f1 >= 0.95 else 'NOT met'}")
    _print_worst(aeb_results, args.worst)

    _print_body_table("fundus", fundus_results)
    n = len(fundus_results)
    titled = [r for r in fundus_results if r.page.title]
    exact = sum(_squash(r.title) == _squash(r.page.title or "") for r in titled)
    loose = sum(_norm_title(r.title) == _norm_title(r.page.title or "") for r in titled)
    dated = [r for r in fundus_results if r.page.published]
    date_ok = sum(dates_match(r.published, r.page.published) for r in dated)
    authored = [r for r in fundus_results if r.page.authors]
    author_ok = sum(
        {a.casefold() for a in r.authors} == {a.casefold() for a in r.page.authors}
        for r in authored
    )
    errors = sum(r.error is not None for r in fundus_results)
    print(f"\nfundus: metadata, {n} pages")
    print(f"  {'field':<34} {'matched':>9} {'of':>5} {'rate':>7}")
    print(f"  {'title, exact':<34} {exact:9d} {len(titled):5d} {_pct(exact, len(titled)):>7}")
    print(
        f"  {'title, after NFKC/quotes/case':<34} {loose:9d} {len(titled):5d} "
        f"{_pct(loose, len(titled)):>7}"
    )
    print(f"  {'publishing date':<34} {date_ok:9d} {len(dated):5d} {_pct(date_ok, len(dated)):>7}")
    print(
        f"  {'authors (same set)':<34} {author_ok:9d} {len(authored):5d} "
        f"{_pct(author_ok, len(authored)):>7}"
    )
    print(f"  {'pages refused (ExtractionError)':<34} {errors:9d} {n:5d} {_pct(errors, n):>7}")
    _print_worst(fundus_results, args.worst)

    mean = sum(r.seconds for r in results) / len(results) if results else 0.0
    print(
        f"\n{len(results)} pages in {wall:.1f}s with {args.workers} workers; "
        f"extract() {1000 * mean:.0f} ms per page on average"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
