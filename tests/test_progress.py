"""Progress of a crawl run while it goes: a live line on a terminal, log lines elsewhere.

``topicwatch crawl`` runs as a real process against the local site; its stderr is a pipe, or
a pseudo-terminal that the test reads.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixture_site import REFERENCE_TOPIC, FixtureSite
from test_crawl_e2e import TOPICWATCH, topicwatch

pytestmark = pytest.mark.slow

PROGRESS_LINE = re.compile(
    r"^\S+Z INFO topicwatch\.progress topic=konflik run=(\d+) pages=(\d+) articles=(\d+) "
    r"new=(\d+) updated=(\d+) elapsed=(\d+\.\d)s$",
    re.MULTILINE,
)
LIVE_LINE = re.compile(
    r"\rkonflik: (\d+) pages fetched, (\d+) articles read, (\d+) new, (\d+) updated  00:0\d"
)


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as served:
        served.start()
        yield served


def slow_config(tmp_path: Path, sqlite_url: str, site: FixtureSite, every: str) -> Path:
    """A crawl of the reference topic that takes a few seconds (a pause between requests)."""
    config = tmp_path / "topicwatch.toml"
    config.write_text(
        f'[database]\nurl = "{sqlite_url}"\n[crawl]\ndownload_delay = "0.4s"\n'
        f'autothrottle = false\nretry_times = 0\nprogress_every = "{every}"\n'
        f'[[topic]]\nname = "konflik"\nsources = ["{site.listing_url(REFERENCE_TOPIC)}"]\n'
        "allow_private_addresses = true\n"
    )
    assert topicwatch(config, "db", "upgrade").returncode == 0
    return config


def test_a_long_run_logs_its_progress_on_a_pipe(
    tmp_path: Path, sqlite_url: str, site: FixtureSite
) -> None:
    config = slow_config(tmp_path, sqlite_url, site, "1s")
    done = topicwatch(config, "crawl", "konflik")
    assert done.returncode == 0, done.stderr
    lines = PROGRESS_LINE.findall(done.stderr)
    assert len(lines) >= 2, done.stderr
    assert {run for run, *_ in lines} == {"1"}
    elapsed = [float(line[-1]) for line in lines]
    assert elapsed == sorted(elapsed)
    assert elapsed[0] >= 1.0
    pages = [int(line[1]) for line in lines]
    assert pages == sorted(pages)
    assert "\r" not in done.stderr  # no live line on a pipe
    summary = done.stdout.splitlines()[0]
    assert re.match(r"topicwatch\.run topic=konflik run=1 status=ok pages=(\d+) ", summary)


def test_a_terminal_gets_a_live_line_instead(
    tmp_path: Path, sqlite_url: str, site: FixtureSite
) -> None:
    config = slow_config(tmp_path, sqlite_url, site, "1s")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            [TOPICWATCH, "--config", str(config), "crawl", "konflik"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")
    assert done.returncode == 0, terminal
    live = LIVE_LINE.findall(terminal)
    assert len(live) >= 2, terminal
    assert live[0] == ("0", "0", "0", "0")
    assert int(live[-1][0]) > 0
    assert "topicwatch.progress" not in terminal  # the live line replaces the log lines
    # log lines are written above the live line (cleared first), each on a line of its own
    assert re.search(r"[\r\n]\S+Z INFO topicwatch\.change kind=new topic=konflik ", terminal)
    assert done.stdout.startswith("topicwatch.run topic=konflik run=1 status=ok ")
