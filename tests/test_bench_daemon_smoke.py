"""bench/daemon_memory.py at a tiny size: it starts the daemon, counts runs, reads its memory,
stops it with SIGTERM and prints its table. The growth limit is lifted: a few runs say
nothing about memory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_daemon_memory_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "bench" / "daemon_memory.py")]
    command += ["--runs", "4", "--warmup", "2", "--sample-every", "1", "--change-every", "2"]
    command += ["--topics", "2", "--max-growth", "1000", "--timeout", "200"]
    command += ["--workdir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=280, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert done.stdout.rstrip().endswith("PASS"), output
    assert re.search(r"^RSS at run [2-4] +\d+\.\d MiB \(\d+ KiB\)$", done.stdout, re.M), output
    assert re.search(r"^growth +[+-]\d+\.\d\d% \(limit 1000%\)$", done.stdout, re.M), output
    assert re.search(r"^run statuses \(log\) +ok=\d+$", done.stdout, re.M), output
    assert re.search(r"^daemon exit on SIGTERM +0$", done.stdout, re.M), output
    assert re.search(r"^changes recorded .*updated=\d+", done.stdout, re.M), output
    assert re.search(r"^digests received +[1-9]\d*$", done.stdout, re.M), output
    assert "topicwatch.run topic=konflik" in (tmp_path / "daemon.log").read_text()
