"""What learning site templates adds to a crawl: hashing paragraphs and pages, and recording
first reads.

    .venv/bin/python bench/templates.py [--articles 2000] [--repeat 3] [--db sqlite,postgresql]

Side by side in one run, medians over ``--repeat``: the fingerprint of the fixture site's
article bodies and the part of it that hashes their paragraphs; ``read_page`` of the fixture
site's first pages (as ``bench/reading.py``'s ``fixture`` set reads them) without and with
the page's blocks (``crawler.reading.page_blocks``, what a first read adds); and
``record_outcomes`` of ``--articles`` first reads of one site (batches of 100, as a crawl
writes them) on a fresh database: the article bodies with their paragraph hashes (the site's
paragraphs counted) and without (nothing learned), and the fixture site's pages as read, with
their paragraph and page blocks and with their paragraph blocks only. CPU is this process's
(the database server's is not in it); seconds are wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from crawler.article import ExtractedArticle
from crawler.fingerprint import _block_hashes, _normalise_in_lines, fingerprint
from crawler.reading import Reading, read_page
from storage.changes import PageRead
from storage.db import make_engine, session_factory, upgrade
from storage.recording import record_outcomes
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"
BATCH = 100


def measure(work: Callable[[], None]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


def articles(n: int) -> list[ExtractedArticle]:
    from fixture_site import generated_paragraphs

    return [
        ExtractedArticle(
            url=f"https://news.example.org/nasional/{i}",
            title=f"Judul {i}",
            body="\n\n".join([*generated_paragraphs(i, 700), "Ikuti kami di Google News."]),
        )
        for i in range(n)
    ]


def read_fixture_page(page: Any, *, with_page_blocks: bool) -> Reading:
    """One of the fixture site's first pages read as a crawl reads it."""
    return read_page(
        page.body,
        page.url,
        encoding="utf-8",
        profile=page.profile,
        ignore_patterns=(),
        find_whole=True,
        with_page_blocks=with_page_blocks,
    )


def fixture_reads(n: int) -> tuple[list[Any], list[PageRead]]:
    """The fixture site's first pages (``bench/reading.py``'s ``fixture`` set) and the first
    reads a crawl hands to recording of them (with their page blocks)."""
    from bench.reading import fixture_pages

    pages = fixture_pages(n)
    reads = []
    for page in pages:
        reading = read_fixture_page(page, with_page_blocks=True)
        if reading.article is None or reading.fingerprint is None:
            continue
        reads.append(
            PageRead(
                url=page.url.replace("http://127.0.0.1:8765", "https://news.example.org"),
                fingerprint=reading.fingerprint.digest,
                field_hashes=reading.fingerprint.fields,
                blocks=reading.fingerprint.blocks,
                page_blocks=reading.page_blocks,
                title=reading.article.title,
                body=reading.article.body,
            )
        )
    return pages, reads


def record(url: str, reads: list[PageRead]) -> tuple[float, float, int]:
    """CPU and wall seconds recording ``reads`` in batches on the database at ``url``, and
    the rows ``site_blocks`` holds after them."""
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    spec = TopicSpec(name="bench", title="Bench", sources=("https://news.example.org/t",))
    sync_topics(sessions, [spec])
    topic_id, _ = load_topic(sessions, "bench")
    now = datetime(2026, 12, 8, tzinfo=UTC)

    def work() -> None:
        for start in range(0, len(reads), BATCH):
            record_outcomes(
                sessions,
                topic_id=topic_id,
                run_id=None,
                outcomes=reads[start : start + BATCH],
                now=now,
            )

    try:
        cpu, wall = measure(work)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT count(*) FROM site_blocks")).scalar_one()
        return cpu, wall, rows
    finally:
        engine.dispose()


def database(kind: str, workdir: Path) -> tuple[str, Callable[[], None]]:
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'{uuid.uuid4().hex}.db'}", lambda: None
    name = f"topicwatch_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"{POSTGRES}/{name}", drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    pages = articles(args.articles)
    n = len(pages)
    paragraphs = statistics.mean(len(p.body.split("\n\n")) for p in pages)
    print(f"{n} articles of the fixture site, {paragraphs:.0f} paragraphs each")
    rows: list[tuple[str, float, float]] = []
    normalised = [_normalise_in_lines(p.body, ()) for p in pages]
    whole = [measure(lambda: [fingerprint(p) for p in pages])[0] for _ in range(args.repeat)]
    hashes = [
        measure(lambda: [_block_hashes(b) for b in normalised])[0] for _ in range(args.repeat)
    ]
    rows.append(("fingerprint (paragraph hashes included)", statistics.median(whole), 0.0))
    rows.append(("of which the paragraph hashes", statistics.median(hashes), 0.0))
    prints = [fingerprint(p) for p in pages]
    reads = [
        PageRead(
            url=p.url,
            fingerprint=f.digest,
            field_hashes=f.fields,
            blocks=f.blocks,
            title=p.title,
            body=p.body,
        )
        for p, f in zip(pages, prints, strict=True)
    ]
    site_reads = fixture_reads(args.articles)
    for label, with_blocks in (("read_page, first pages", False), ("  with the page blocks", True)):
        cpu = [
            measure(
                lambda with_blocks=with_blocks: [
                    read_fixture_page(page, with_page_blocks=with_blocks) for page in site_reads[0]
                ]
            )[0]
            for _ in range(args.repeat)
        ]
        rows.append((label, statistics.median(cpu) * n / len(site_reads[0]), 0.0))
    page_reads = site_reads[1]
    extra = statistics.mean(len(set(r.page_blocks) - set(r.blocks)) for r in page_reads)
    print(
        f"fixture site's pages: {statistics.mean(len(r.blocks) for r in page_reads):.0f} "
        f"paragraph blocks, {extra:.0f} more blocks of the page each"
    )
    kept: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as workdir:
        for kind in args.db.split(","):
            for label, batch in (
                ("with paragraph hashes", reads),
                ("without (nothing learned)", [replace(r, blocks=()) for r in reads]),
                ("pages, paragraph and page blocks", page_reads),
                ("pages, paragraph blocks only", [replace(r, page_blocks=()) for r in page_reads]),
            ):
                results = []
                for _ in range(args.repeat):
                    url, drop = database(kind, Path(workdir))
                    try:
                        results.append(record(url, batch))
                    finally:
                        drop()
                rows.append(
                    (
                        f"record first reads, {kind}, {label}",
                        statistics.median(r[0] for r in results) * n / len(batch),
                        statistics.median(r[1] for r in results) * n / len(batch),
                    )
                )
                kept[f"{kind}, {label}"] = results[-1][2]
    # Each row's figures are of n pages (a row of fewer pages is scaled to n).
    print(f"{'':<62} {'CPU ms/page':>12} {'wall ms/page':>14}")
    for label, cpu, wall in rows:
        print(
            f"{label:<62} {1000 * cpu / n:12.3f} {1000 * wall / n if wall else float('nan'):14.3f}"
        )
    print("rows of site_blocks after recording (forgetting keeps them bounded):")
    for label, count in kept.items():
        print(f"  {label}: {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
