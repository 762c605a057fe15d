"""The benchmarks run end to end at tiny sizes, and what they report holds together.

No figure of speed is checked here: the benchmarks print those. These runs only prove that
``bench/throughput.py``, ``bench/growth.py``, ``bench/web.py``, ``bench/retention.py`` and
``bench/reading.py`` work, that a re-check of an unchanged site writes nothing new, while a
bare spider sending the same conditional requests gets the same 304s, and that the reading
benchmark's comparison finds a reading that differs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench"
ARTICLES = 40


def run_bench(script: str, *args: str, timeout: float = 240) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_throughput_benchmark_crawls_and_rechecks(tmp_path: Path) -> None:
    results_file = tmp_path / "throughput.json"
    output = run_bench(
        "throughput.py",
        *("--articles", str(ARTICLES), "--repeat", "1", "--db", "sqlite"),
        *("--per-page", "5", "--concurrency", "4"),
        *("--json", str(results_file)),
    )
    assert "full/bare" in output
    assert "re-check, every article due" in output
    results: dict[str, Any] = json.loads(results_file.read_text(encoding="utf-8"))

    for mode in ("bare", "bare-defaults"):
        (bare,) = results["bare"][mode]
        assert bare["status_200"] == bare["responses"] > ARTICLES
    (full,) = results["full"]["sqlite"]
    assert full["status"] == "ok"
    assert full["counts"]["articles_new"] == ARTICLES
    assert full["counts"]["errors"] == 0
    assert full["pages_read"] >= ARTICLES
    (first,) = results["first_rows"]["sqlite"]
    assert first == {
        "versions": ARTICLES,
        "changes": ARTICLES,
        "alerts": ARTICLES,
        "articles": ARTICLES,
    }

    nothing = dict.fromkeys(("versions", "changes", "alerts", "articles"), 0)
    for scenario in ("after", "all", "steady"):
        (run,) = results["recheck"][f"sqlite/{scenario}"]
        assert run["recheck"]["status"] == "ok"
        assert run["rows_written"] == nothing
        # The listings' first pages and robots.txt are answered 200, every article 304, and
        # so is the view of the whole of each multi-page one.
        again = run["recheck"]
        assert again["status_200"] <= 5
        assert again["status_304"] == (
            again["counts"]["articles_not_modified"] + again["later_pages_checked"]
        )
    # Right after the first crawl, only the articles the listings' first pages show are asked
    # again (5 a page on four topics): the others were published an hour or more ago (the
    # site's newest minutes ago, one every 17 minutes before) and were just checked.
    (after,) = results["recheck"]["sqlite/after"]
    assert after["recheck"]["status_304"] <= 20 < ARTICLES
    (every,) = results["recheck"]["sqlite/all"]
    multipage = every["recheck"]["later_pages_checked"]
    assert multipage >= 1  # every 25th article has two pages
    assert every["recheck"]["status_304"] == ARTICLES + multipage
    assert every["recheck"]["counts"]["articles_not_modified"] == ARTICLES
    (bare_again,) = results["bare_recheck"]["sqlite"]
    assert bare_again["status_304"] == ARTICLES + multipage
    assert "the same conditional requests" in output
    # The steady state reads no page; with a few pages to read again, nothing new.
    (steady,) = results["recheck"]["sqlite/steady"]
    (steady_read,) = results["recheck"]["sqlite/steady-read"]
    assert steady["recheck"]["pages_read"] == 0
    assert steady_read["rows_written"] == nothing
    assert steady_read["recheck"]["counts"]["articles_unchanged"] >= 10
    assert steady_read["recheck"]["pages_read"] >= 10


def test_growth_benchmark_records_and_schedules(tmp_path: Path) -> None:
    results_file = tmp_path / "growth.json"
    output = run_bench(
        "growth.py",
        *("--sizes", "100,300", "--samples", "10", "--db", "sqlite"),
        *("--topics", "20", "--idle", "1", "--json", str(results_file)),
    )
    assert "largest/smallest" in output
    results: dict[str, Any] = json.loads(results_file.read_text(encoding="utf-8"))
    sizes = results["record"]["sqlite"]
    assert [size["size"] for size in sizes] == [100, 300]
    for size in sizes:
        assert size["scans"] == []
        assert all(value > 0 for value in size["figures"].values())
    schedule = results["schedule"]["sqlite"]
    assert schedule["topics"] == 20
    assert schedule["jobs"] == 22  # one per topic, the alert dispatch and the retention pass


def test_web_benchmark_times_every_page() -> None:
    output = run_bench("web.py", "--articles", "300", "--db", "sqlite", "--repeat", "1")
    for page in ("topics", "changes, a middle page", "article diff", "metrics, first scrape"):
        assert re.search(rf"^{re.escape(page)} +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ ", output, re.M)


def test_retention_benchmark_measures_sizes_before_and_after() -> None:
    output = run_bench("retention.py", "--articles", "30", "--db", "sqlite", timeout=120)
    [row] = [line for line in output.splitlines() if line.startswith("sqlite ")]
    columns = row.split()
    articles, versions, pruned = int(columns[1]), int(columns[3]), int(columns[4])
    before, after = float(columns[5]), float(columns[6])
    assert articles == 30
    assert 0 < pruned < versions
    assert after < before


def test_reading_benchmark_dumps_and_compares_every_reading(tmp_path: Path) -> None:
    dump = tmp_path / "readings.json"
    common = ("--sets", "fixture,layouts", "--articles", str(ARTICLES))
    output = run_bench("reading.py", *common, "--passes", "1", "--dump", str(dump), "--parts")
    assert re.search(r"^fixture\s+40 pages", output, re.MULTILINE)
    assert "fingerprint" in output
    readings: dict[str, Any] = json.loads(dump.read_text(encoding="utf-8"))
    assert any(reading["whole_url"] for reading in readings.values())
    assert any(reading["next_url"] for reading in readings.values())
    assert any(reading["live"] for reading in readings.values())
    output = run_bench("reading.py", *common, "--passes", "0", "--compare", str(dump))
    assert f"compared {len(readings)} readings" in output
    assert ": 0 differ" in output
    key = next(k for k, reading in readings.items() if reading["fingerprint"])
    readings[key]["fingerprint"]["digest"] = "changed"
    dump.write_text(json.dumps(readings), encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "reading.py"),
            *common,
            "--passes",
            "0",
            "--compare",
            str(dump),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 1
    assert f"DIFFERS {key} fingerprint.digest" in done.stdout
