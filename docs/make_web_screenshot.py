"""Regenerate docs/web-article.png and docs/web-topics.png: the web view's article diff page
and topics page, in headless Chromium.

    .venv/bin/python docs/make_web_screenshot.py

What is shown is what a crawl of the local reference site (tests/fixture_site.py) records:
a first run finds the topic's articles, then the reference article is edited after
publication (to clarify its source and add a statement) and a second run records the edit.
The database lives in a temporary directory; ``topicwatch web`` serves it on a free port of
127.0.0.1. Needs Debian's chromium (apt-get install -y chromium).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from fixture_site import REFERENCE_TOPIC, REFERENCE_TOPIC_TITLE, FixtureSite  # noqa: E402

DOCS = ROOT / "docs"
ARTICLE_PNG = DOCS / "web-article.png"
TOPICS_PNG = DOCS / "web-topics.png"
TOPICWATCH = str(Path(sys.executable).with_name("topicwatch"))
TOPIC = "konflik"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def topicwatch(config: Path, *args: str) -> None:
    done = subprocess.run(
        [TOPICWATCH, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"topicwatch {' '.join(args)} failed:\n{done.stderr}")


def screenshot(browser: str, url: str, target: Path, size: str, scratch: Path) -> None:
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={scratch / 'chromium'}",
            f"--window-size={size}",
            f"--screenshot={target}",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    print(f"wrote {target.relative_to(ROOT)}")


def main() -> int:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("Chromium is not installed (apt-get install -y chromium).")
    with tempfile.TemporaryDirectory() as name, FixtureSite.reference_site() as site:
        scratch = Path(name)
        config = scratch / "topicwatch.toml"
        config.write_text(
            f"""
[database]
url = "sqlite:///{scratch / "topicwatch.db"}"

[crawl]
user_agent = "topicwatch-docs/1.0 (+http://127.0.0.1/bot)"
download_delay = 0
autothrottle = false

[[topic]]
name = "{TOPIC}"
title = "{REFERENCE_TOPIC_TITLE}"
sources = ["{site.listing_url(REFERENCE_TOPIC)}"]
profile = "tribunnews"
max_pages = 2
alert_to = ["desk@example.org"]
""",
            encoding="utf-8",
        )
        topicwatch(config, "db", "upgrade")
        topicwatch(config, "crawl", TOPIC)
        site.apply_seed_edit()
        topicwatch(config, "crawl", TOPIC)
        log = scratch / "web.log"
        with log.open("wb") as stderr:
            web = subprocess.Popen(
                [TOPICWATCH, "--config", str(config), "web", "--listen", "127.0.0.1:0"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            base = None
            deadline = time.monotonic() + 30
            while base is None and time.monotonic() < deadline and web.poll() is None:
                found = re.search(r"Web view on (http://\S+)/", log.read_text(errors="replace"))
                base = found.group(1) if found else None
                time.sleep(0.1)
            if base is None:
                raise SystemExit(f"topicwatch web did not start:\n{log.read_text()}")
            topic_page = f"{base}/topics/{TOPIC}?kind=updated"  # base: http://127.0.0.1:…
            with urllib.request.urlopen(topic_page, timeout=30) as r:  # noqa: S310
                page = r.read().decode("utf-8")
            found = re.search(r'href="(/articles/\d+)\?from=1&amp;to=2"', page)
            if found is None:
                raise SystemExit("the topic page lists no update of the reference article")
            screenshot(
                browser, f"{base}{found.group(1)}?from=1&to=2", ARTICLE_PNG, "1100,1500", scratch
            )
            screenshot(browser, f"{base}/", TOPICS_PNG, "1100,420", scratch)
        finally:
            web.terminate()
            web.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
