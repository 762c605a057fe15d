"""Regenerate docs/example-digest.html, an example digest email, from the reference site.

    .venv/bin/python docs/make_example_digest.py          # the HTML part, and the plain text
    .venv/bin/python docs/make_example_digest.py --png    # also a screenshot (headless Chromium)

The changes are those a crawl of the local reference site (tests/fixture_site.py) records
when its reference article is edited after publication (to clarify its source and add a
statement, with its headline spelled anew), two articles appear and one is taken down.
tests/test_digest.py checks that the committed files are current.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from fixture_site import (  # noqa: E402
    CP1252_ARTICLE_ID,
    MULTIPAGE_ARTICLE_ID,
    SEED_ALT_TITLE,
    SEED_ARTICLE_ID,
    FixtureSite,
)

from alerts.digest import DigestItem, build_digest  # noqa: E402

DOCS = ROOT / "docs"
HTML_FILE = DOCS / "example-digest.html"
TEXT_FILE = DOCS / "example-digest.txt"
PNG_FILE = DOCS / "example-digest.png"

SITE = "https://berita.example"
DETECTED = datetime(2025, 10, 3, 6, 15, tzinfo=UTC)
REMOVED_ID = 7480106  # "Ribuan Warga Kharkiv Mengungsi Akibat Serangan Drone"


def reference_items() -> tuple[DigestItem, ...]:
    """Two new articles, the reference article's edit, and a removal, from the fixture site.

    The texts are those of the local reference site the tests crawl (``tests/fixture_site.py``):
    the article edited after publication, with its headline spelled anew, and its neighbours
    on the topic page.
    """
    site = FixtureSite.reference_site(start=False)

    def url(article_id: int) -> str:
        return SITE + site.article_path(article_id)

    def new(article_id: int) -> DigestItem:
        article = site.article(article_id)
        return DigestItem(
            kind="new",
            url=url(article_id),
            title=article.title,
            detected_at=DETECTED,
            published=article.published.isoformat(),
            lead=article.lead,
        )

    before = site.article(SEED_ARTICLE_ID)
    site.apply_seed_edit()
    site.set_title(SEED_ARTICLE_ID, SEED_ALT_TITLE)
    after = site.article(SEED_ARTICLE_ID)
    removed = site.article(REMOVED_ID)
    return (
        new(MULTIPAGE_ARTICLE_ID),
        new(CP1252_ARTICLE_ID),
        DigestItem(
            kind="updated",
            url=url(SEED_ARTICLE_ID),
            title=after.title,
            old_title=before.title,
            detected_at=DETECTED,
            published=after.published.isoformat(),
            fields=("body", "title"),
            body=after.body_text,
            old_body=before.body_text,
        ),
        DigestItem(kind="removed", url=url(REMOVED_ID), title=removed.title, detected_at=DETECTED),
    )


def example_message() -> EmailMessage:
    """The example digest, exactly as the dispatcher would build it."""
    return build_digest(
        topic_title="Konflik Rusia Vs Ukraina",
        topic_name="konflik-rusia-ukraina",
        recipient="desk@example.org",
        sender="topicwatch <alerts@example.org>",
        items=reference_items(),
        digest_key="alerts:101,102,103,104",
        domain="example.org",
        date=datetime(2025, 10, 3, 6, 16, tzinfo=UTC),
    )


def example_parts() -> tuple[str, str]:
    """(plain text, HTML) of the example digest."""
    message = example_message()
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    text_content: str = text.get_content()
    html_content: str = html.get_content()
    return text_content, html_content


def screenshot(html_file: Path, png_file: Path) -> None:
    """A PNG of ``html_file`` rendered by headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("Chromium is not installed (apt-get install -y chromium).")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--window-size=760,1240",
                f"--screenshot={png_file}",
                html_file.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--png", action="store_true", help="also render a PNG screenshot")
    args = parser.parse_args(argv)
    text, html = example_parts()
    HTML_FILE.write_text(html, encoding="utf-8")
    TEXT_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {HTML_FILE.relative_to(ROOT)} and {TEXT_FILE.relative_to(ROOT)}")
    if args.png:
        screenshot(HTML_FILE, PNG_FILE)
        print(f"wrote {PNG_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
