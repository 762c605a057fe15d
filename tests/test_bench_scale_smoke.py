"""bench/scale.py at a tiny size: two sites, one worker, a few jobs; it prints its
table, the queue's overhead and size, and leaves no job behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.postgres
def test_the_scale_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "bench" / "scale.py"), "--hosts", "2", "--topics", "2"]
    command += ["--articles", "1", "--latency", "0.01", "--workers", "1", "--rounds", "1"]
    command += ["--overhead-jobs", "2", "--size-jobs", "100", "--workdir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"^ +1 +2 +\d+\.\d +\d+\.\d +\d\.\d\d +\d\.\d\d +\d\.\d\d", output, re.M), (
        output
    )
    assert re.search(r"median \d+\.\d ms, p95 \d+\.\d ms \(2 jobs\)", output), output
    assert re.search(r"after \d+ runs: 0 jobs, 0 events", output), output
    assert "per 10,000 waiting jobs: 10000 job rows" in output, output
