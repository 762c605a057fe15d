"""The README's first command, ``scripts/start``, on a fresh copy of the repository.

The copy gets the files git tracks, and a virtualenv that already holds the dependencies
(tests never reach a package registry): ``scripts/setup`` finds it installed and goes on.
The example configuration is pointed at the local fixture site; the test then sees the
daemon start, crawl and log its summary line, and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixture_site import REFERENCE_TOPIC, FixtureSite

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def fresh_copy(target: Path) -> Path:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    return target


def provision_virtualenv(copy: Path) -> None:
    """A .venv as ``scripts/setup`` leaves it, with this environment's packages."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(copy / ".venv")],
        check=True,
        timeout=120,
    )
    python = copy / ".venv" / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    # The copy's own code first, then the dependencies installed here.
    here = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "topicwatch-test.pth").write_text(f"{copy}\n{here}\n")
    script = copy / ".venv" / "bin" / "topicwatch"
    script.write_text(f"#!{python}\nimport sys\nfrom scheduler.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    (copy / ".venv" / ".installed").touch()


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    with FixtureSite.reference_site() as served:
        yield served


def test_scripts_start_runs_the_daemon_on_the_example_config(
    tmp_path: Path, site: FixtureSite
) -> None:
    copy = fresh_copy(tmp_path / "topicwatch")
    provision_virtualenv(copy)
    example = (copy / "deploy" / "topicwatch.example.toml").read_text()
    local = example.replace(
        "https://www.tribunnews.com/topic/konflik-rusia-vs-ukraina",
        site.listing_url(REFERENCE_TOPIC),
    )
    local = re.sub(r'(?m)^jitter = "30s"', "jitter = 0", local)
    local = re.sub(r"(?m)^download_delay = 0.5", "download_delay = 0", local)
    assert local != example
    (copy / "topicwatch.toml").write_text(local)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPICWATCH_", "SENTRY_"))}
    env.pop("VIRTUAL_ENV", None)
    log_path = tmp_path / "start.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["scripts/start"],
            cwd=copy,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    summary = re.compile(r"topicwatch\.run topic=konflik-rusia-ukraina run=1 status=ok ")
    try:
        deadline = time.monotonic() + 120
        while not summary.search(log_path.read_text(errors="replace")):
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    log_text = log_path.read_text(errors="replace")
    assert "Upgrading the database" in log_text or "schema revision" in log_text
    assert (copy / "data" / "topicwatch.db").is_file()  # SQLite under the data directory
    assert " new=6 " in summary.search(log_text).string  # type: ignore[union-attr]
