"""bench/many_topics.py at a tiny size: the daemon on a few topics over two host names,
one short cycle measured; it prints its table and the daemon exits 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_many_topics_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "bench" / "many_topics.py"), "--db", "sqlite"]
    command += ["--topics", "3", "--hosts", "2", "--every", "6s", "--jitter", "0s"]
    command += ["--sample-every", "2", "--edits-per-minute", "30", "--workdir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"crawl CPU per run, median / p95 +\d+\.\d+ s / \d+\.\d+ s", output), output
    assert re.search(r"share of one core +\d+\.\d %", output), output
    assert re.search(r"skipped or coalesced runs +\d+ \(scheduler warnings: \d+\)", output), output
    assert re.search(r"daemon exit on SIGTERM +0$", output, re.M), output
    log = (tmp_path / "daemon-sqlite.log").read_text()
    assert "topicwatch.run topic=topik-1-0" in log
