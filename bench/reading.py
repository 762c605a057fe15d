"""Reading one article page (``crawler.reading.read_page``): CPU a page, and every result.

    .venv/bin/python bench/reading.py [--passes 5] [--sets fixture,layouts,corpus]
                                      [--dump FILE] [--compare FILE] [--parts]

The pages, rendered once before anything is timed:

- ``fixture``: the first page of each of the 2,000 articles of the benchmark site
  (``FixtureSite.generate``, the site ``bench/throughput.py`` crawls), read as a crawl reads
  a first page (the ``tribunnews`` profile, looking for the view of the whole article);
- ``layouts``: every other kind of article page the fixture site serves: the views of the
  whole article and the second pages of the site's two-page articles; the reference site's
  articles (Tribunnews-like pages, the older ``lsi`` layout, WordPress-like posts read with
  the generic profile, a two-page post, its second page and the two joined, live pages with
  and without markup, a live page whose coverage ended), the same pages after the site
  rotated its noise, in windows-1252, and as careless templates serve them (malformed);
- ``corpus``: every page of the real-page corpus (aeb, and every version of every fundus
  publisher), read as ``bench/detection.py`` reads a first page, with the profile for its
  host.

Each set is read ``--passes`` times, the sets in turns, and the CPU time of the process
(``time.process_time``) a page is printed per set: the median of the passes, with the
fastest and the slowest.

``--parts`` also times the parts of reading on the first pages of the fixture site (the
pages ``fixture`` reads without a view of the whole), each on its own: parsing, the search
for the view of the whole or the next page, extraction and its body, standfirst and metadata,
the live sign, the fingerprint.

``--dump FILE`` writes, for every page, everything reading it gave (the view of the whole
article or the next page, the error, the identity, the live sign, every field of the
article, and the fingerprint: digest, field hashes and block hashes, also with an ignore
pattern) as JSON. ``--compare FILE`` reads such a file and prints every page whose reading
differs, field by field; it exits 1 when any does. A change to the code of reading that
must not change what it reads is checked so: dump before, compare after. For a corpus page
of the unseen half of the publishers only its id and the names of the fields that differ are
printed, never their text.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fixture_site import (  # noqa: E402
    GENERIC_TOPIC,
    MULTIPAGE_ARTICLE_ID,
    Fault,
    FixtureSite,
    _Renderer,
)

from bench.corpus import CorpusMissingError, aeb_pages, fundus_pages  # noqa: E402
from crawler.fingerprint import fingerprint  # noqa: E402
from crawler.profiles import TRIBUNNEWS, SiteProfile, profile_for  # noqa: E402
from crawler.reading import Reading, read_page, read_pages  # noqa: E402

BASE_URL = "http://127.0.0.1:8765"
# An ignore pattern a topic may have: the fingerprint is dumped with it too.
IGNORE = (r"(?i)baca juga\s*:.*$", r"\d+ (?:menit|jam) lalu")


@dataclass
class Page:
    """One page and how a crawl reads it."""

    key: str
    body: bytes
    url: str
    profile: SiteProfile
    encoding: str = "utf-8"
    find_whole: bool = True
    requested: str | None = None
    part: int | None = None
    first_url: str | None = None
    # Shown in full by --compare (False for the unseen half of the corpus).
    show: bool = True
    # Keys of pages read before this one whose readings are joined with it (read_pages).
    join: tuple[str, ...] = field(default=())

    def read(self) -> Reading:
        return read_page(
            self.body,
            self.url,
            encoding=self.encoding,
            profile=self.profile,
            ignore_patterns=(),
            find_whole=self.find_whole,
            requested=self.requested,
            part=self.part,
            first_url=self.first_url,
        )


def _render(site: FixtureSite, path: str, *, live: dict[int, int] | None = None) -> bytes:
    path, _, query = path.partition("?")
    params: dict[str, list[str]] = {}
    for pair in query.split("&") if query else ():
        key, _, value = pair.partition("=")
        params.setdefault(key, []).append(value)
    response = _Renderer(site._state, BASE_URL, live).route(path, params)
    if response.status != 200:
        raise RuntimeError(f"the fixture site answered {response.status} for {path}")
    return response.body


def fixture_pages(articles: int) -> list[Page]:
    """The first page of every article of the benchmark site."""
    site = FixtureSite.generate(articles, start=False)
    pages = []
    for article in site.articles:
        url = BASE_URL + article.path
        pages.append(Page(f"fixture:{article.id}", _render(site, article.path), url, TRIBUNNEWS))
    return pages


def layout_pages(articles: int) -> list[Page]:
    """Every other kind of article page the fixture site serves (see the module)."""
    pages: list[Page] = []
    site = FixtureSite.generate(articles, start=False)
    for article in site.articles:
        if article.pages < 2:
            continue
        url = BASE_URL + article.path
        pages.append(
            Page(
                f"whole:{article.id}",
                _render(site, article.path + "?page=all"),
                url + "?page=all",
                TRIBUNNEWS,
                find_whole=False,
                requested=url,
                first_url=url,
            )
        )
        pages.append(
            Page(
                f"page2:{article.id}",
                _render(site, article.path + "?page=2"),
                url + "?page=2",
                TRIBUNNEWS,
                find_whole=False,
                requested=url,
                part=2,
                first_url=url,
            )
        )

    reference = FixtureSite.reference_site(start=False)
    post = reference.add_article(
        "Dompet Digital Catat Lonjakan Pengguna Baru di Kota Kecil",
        topics=[GENERIC_TOPIC],
        layout="wordpress",
        pages=2,
        authors=("Rini Kusuma",),
        words=700,
    )
    live_ids = [a.id for a in reference.articles if a.layout != "wordpress" and a.pages == 1][:3]
    reference.set_live(live_ids[0], "markup")
    reference.set_live(live_ids[1], "plain")
    reference.set_live(live_ids[2], "markup")
    reference.end_live(live_ids[2])
    entries = dict.fromkeys(live_ids, 3)

    def reference_pages(variant: str, render: Callable[[str], bytes]) -> None:
        for article in reference.articles:
            if article.status != 200:
                continue
            url = BASE_URL + article.path
            wordpress = article.layout == "wordpress"
            profile = profile_for(url) if wordpress else TRIBUNNEWS
            key = f"{variant}:{article.id}"
            pages.append(Page(key, render(article.path), url, profile))
            if article.pages < 2:
                continue
            if wordpress:
                second = article.path.rstrip("/") + "/2/"
                pages.append(
                    Page(
                        f"{key}:2",
                        render(second),
                        BASE_URL + second,
                        profile,
                        find_whole=False,
                        requested=url,
                        part=2,
                        first_url=url,
                        join=(key,),
                    )
                )
            else:
                pages.append(
                    Page(
                        f"{key}:all",
                        render(article.path + "?page=all"),
                        url + "?page=all",
                        profile,
                        find_whole=False,
                        requested=url,
                        first_url=url,
                    )
                )

    reference_pages("reference", lambda path: _render(reference, path, live=entries))
    for kind in ("windows1252", "malformed"):
        fault = Fault(kind)
        reference_pages(
            kind,
            lambda path, fault=fault: reference._fault_response(fault, path, {}).body,  # type: ignore[misc]
        )
    reference.rotate_noise()
    reference_pages("rotated", lambda path: _render(reference, path, live=entries))
    assert any(p.key.endswith(f"{post.id}:2") for p in pages)
    assert any(p.key.endswith(f"{MULTIPAGE_ARTICLE_ID}:all") for p in pages)
    for page in pages:
        if page.key.startswith("windows1252:"):
            page.encoding = "cp1252"
    return pages


def corpus_pages() -> list[Page]:
    """Every page of the corpus, as bench/detection.py reads a first page."""
    pages = []
    for page in [*aeb_pages(), *fundus_pages(newest_only=False)]:
        pages.append(
            Page(
                f"{page.corpus}:{page.page_id}",
                page.read_html(),
                page.url,
                profile_for(page.url),
                show=page.half == "tuning",
            )
        )
    return pages


def describe(reading: Reading, ignored: dict[str, Any] | None) -> dict[str, Any]:
    """Everything a reading gave, as JSON."""
    found: dict[str, Any] = {
        "whole_url": reading.whole_url,
        "next_url": reading.next_url,
        "error": reading.error,
        "identity": reading.identity,
        "live": dataclasses.asdict(reading.live) if reading.live else None,
        "article": dataclasses.asdict(reading.article) if reading.article else None,
        "fingerprint": _fingerprint(reading.fingerprint),
    }
    if ignored is not None:
        found["fingerprint_ignoring"] = ignored
    return found


def _fingerprint(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"digest": value.digest, "fields": value.fields, "blocks": list(value.blocks)}


def read_all(pages: list[Page]) -> dict[str, dict[str, Any]]:
    """Every page's reading (and joined readings), described."""
    readings: dict[str, Reading] = {}
    described: dict[str, dict[str, Any]] = {}
    for page in pages:
        reading = page.read()
        readings[page.key] = reading
        ignored = None
        if reading.article is not None and reading.article.body.strip():
            ignored = _fingerprint(fingerprint(reading.article, IGNORE))
        described[page.key] = describe(reading, ignored)
        if page.join:
            joined = read_pages([*(readings[k] for k in page.join), reading], ())
            described[page.key + ":joined"] = describe(joined, None)
    return described


def time_pass(pages: list[Page]) -> float:
    """CPU seconds reading every page once."""
    gc.collect()
    started = time.process_time()
    for page in pages:
        page.read()
    return time.process_time() - started


def time_parts(pages: list[Page], passes: int) -> None:
    """CPU ms a page of each part of reading, on the pages read without a view of the whole."""
    from crawler.extraction import body, json_ld, lead, metadata
    from crawler.extraction.extractor import extract_tree
    from crawler.extraction.multipage import next_page_url_of, whole_article_url_of
    from crawler.extraction.parsing import parse
    from crawler.live import live_signal

    trees = [parse(page.body, page.url, encoding=page.encoding) for page in pages]
    read = [
        (page, tree)
        for page, tree in zip(pages, trees, strict=True)
        if whole_article_url_of(tree, page.url, page.profile) is None
    ]
    found = []
    for page, tree in read:
        meta = metadata.meta_tags(tree)
        ld = json_ld.article_object(json_ld.json_ld_objects(tree, articles_only=True))
        title = metadata.title_of(tree, ld, meta, page.profile)
        paragraphs = body.tidy(
            body.profile_body(tree, page.profile) or [], title, drop_repeats=False
        )
        article = extract_tree(tree, page.url, profile=page.profile)
        found.append((page, tree, meta, ld, title, paragraphs, article))

    def whole_or_next(page: Page, tree: Any) -> object:
        return whole_article_url_of(tree, page.url, page.profile) or next_page_url_of(
            tree, page.url, page.url, 1
        )

    def metadata_of(page: Page, tree: Any, meta: Any, ld: Any) -> None:
        metadata.meta_tags(tree)
        json_ld.article_object(json_ld.json_ld_objects(tree, articles_only=True))
        metadata.title_of(tree, ld, meta, page.profile)
        metadata.dates_of(tree, ld, meta, page.profile)
        metadata.authors_of(tree, ld, meta, page.profile)
        metadata.canonical_of(tree, ld, meta, page.url)

    every, first = len(pages), len(read)
    parts: list[tuple[str, int, Callable[[], object]]] = [
        ("read_page, all of it", every, lambda: [page.read() for page in pages]),
        (
            "  parse (bytes to tree)",
            every,
            lambda: [parse(p.body, p.url, encoding=p.encoding) for p in pages],
        ),
        (
            "  view of the whole / next page",
            every,
            lambda: [whole_or_next(p, t) for p, t in zip(pages, trees, strict=True)],
        ),
        (
            "  extraction",
            first,
            lambda: [extract_tree(t, p.url, profile=p.profile) for p, t in read],
        ),
        (
            "    body (profile's selectors)",
            first,
            lambda: [body.profile_body(t, p.profile) for p, t in read],
        ),
        (
            "    standfirst (lead_of)",
            first,
            lambda: [
                lead.lead_of(t, ld, m, p.profile, title=ti, paragraphs=ps, squashed=True)
                for p, t, m, ld, ti, ps, _a in found
            ],
        ),
        (
            "    metadata",
            first,
            lambda: [metadata_of(p, t, m, ld) for p, t, m, ld, _ti, _ps, _a in found],
        ),
        ("  live sign", first, lambda: [live_signal(f[1], f[6].title) for f in found]),
        ("  fingerprint", first, lambda: [fingerprint(f[6], ()) for f in found]),
    ]
    print(f"\nparts of reading, CPU ms a page (median of {passes} passes)")
    for name, count, run in parts:
        times = []
        for _ in range(passes):
            gc.collect()
            started = time.process_time()
            run()
            times.append(1000 * (time.process_time() - started) / count)
        print(f"{name:<36} {statistics.median(times):7.3f}")


def differences(
    old: dict[str, Any], new: dict[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """The paths (``article.body``, …) where two descriptions differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(old.keys() | new.keys()):
            found.extend(differences(old.get(key), new.get(key), f"{prefix}{key}."))
        return found
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=5, help="timed passes of each set")
    parser.add_argument("--sets", default="fixture,layouts,corpus", help="which sets to read")
    parser.add_argument("--articles", type=int, default=2000, help="articles of the fixture site")
    parser.add_argument("--dump", type=Path, help="write every reading to this JSON file")
    parser.add_argument("--compare", type=Path, help="compare every reading with this dump")
    parser.add_argument("--parts", action="store_true", help="time the parts of reading too")
    args = parser.parse_args()

    builders: dict[str, Callable[[], list[Page]]] = {
        "fixture": lambda: fixture_pages(args.articles),
        "layouts": lambda: layout_pages(args.articles),
        "corpus": corpus_pages,
    }
    sets: dict[str, list[Page]] = {}
    for name in args.sets.split(","):
        try:
            sets[name] = builders[name]()
        except CorpusMissingError as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
    shown = {page.key: page.show for pages in sets.values() for page in pages}

    if args.dump or args.compare:
        described: dict[str, dict[str, Any]] = {}
        for pages in sets.values():
            described.update(read_all(pages))
        # As JSON holds them (tuples as lists), to compare with a dump.
        described = json.loads(json.dumps(described))
        if args.dump:
            args.dump.write_text(json.dumps(described, ensure_ascii=False, indent=0))
            print(f"{len(described)} readings written to {args.dump}")
        if args.compare:
            expected = json.loads(args.compare.read_text())
            differing = 0
            for key in sorted(expected.keys() & described.keys()):
                found = differences(expected[key], described[key])
                if not found:
                    continue
                differing += 1
                if not shown.get(key.removesuffix(":joined"), True):
                    print(f"DIFFERS {key}: {', '.join(path for path, _, _ in found)}")
                    continue
                for path, before, after in found:
                    print(f"DIFFERS {key} {path}:\n  before: {before!r}\n  after:  {after!r}")
            missing = expected.keys() - described.keys()
            extra = described.keys() - expected.keys()
            compared = len(expected.keys() & described.keys())
            print(
                f"compared {compared} readings with {args.compare}: {differing} differ"
                + (f", {len(missing)} not read now" if missing else "")
                + (f", {len(extra)} not in the dump" if extra else "")
            )
            if differing:
                return 1

    if args.passes > 0:
        times: dict[str, list[float]] = {name: [] for name in sets}
        for _ in range(args.passes):
            for name, pages in sets.items():
                times[name].append(time_pass(pages))
        print(f"\nread_page, CPU ms a page (median of {args.passes} passes, min-max)")
        for name, pages in sets.items():
            per_page = [1000 * t / len(pages) for t in times[name]]
            print(
                f"{name:<10} {len(pages):>5} pages  {statistics.median(per_page):7.3f}"
                f"   ({min(per_page):.3f}-{max(per_page):.3f})"
            )
    if args.parts and "fixture" in sets:
        time_parts(sets["fixture"], max(args.passes, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
