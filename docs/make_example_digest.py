"""Regenerate docs/example-digest.html, an example digest email, from fixed sample changes.

    .venv/bin/python docs/make_example_digest.py          # the HTML part, and the plain text
    .venv/bin/python docs/make_example_digest.py --png    # also a screenshot (headless Chromium)

The sample follows the reference case (an article edited after publication
to clarify its source and add a statement, with its headline spelled anew); the texts are
written for this example. tests/test_digest.py checks that the committed files are current.
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

from alerts.digest import DigestItem, build_digest  # noqa: E402

DOCS = ROOT / "docs"
HTML_FILE = DOCS / "example-digest.html"
TEXT_FILE = DOCS / "example-digest.txt"
PNG_FILE = DOCS / "example-digest.png"

SITE = "https://berita.example"
DETECTED = datetime(2025, 10, 3, 6, 15, tzinfo=UTC)

OLD_BODY = """\
Sementara perang Rusia dan Ukraina terus berlangsung, sejumlah pembicaraan diplomatik \
rahasia digelar antara pejabat keamanan nasional Amerika Serikat dan petinggi pemerintahan \
Rusia.

Menurut laporan itu, seorang pejabat AS yang terlibat langsung mengatakan pertemuan \
berlangsung setidaknya dua kali sebulan, sebagian besar secara daring.

Diplomasi jalur 1,5 semacam ini memungkinkan kedua pihak memahami garis merah masing-masing \
dan mengurangi potensi konflik.

Pejabat itu menambahkan bahwa peluang Ukraina merebut kembali Krimea sangat tipis."""

NEW_BODY = """\
Sementara perang Rusia dan Ukraina terus berlangsung, sejumlah pembicaraan diplomatik \
rahasia digelar antara mantan pejabat keamanan nasional Amerika Serikat dan petinggi \
pemerintahan Rusia.

Menurut laporan itu, seorang mantan pejabat AS yang terlibat langsung mengatakan pertemuan \
berlangsung setidaknya dua kali sebulan, sebagian besar secara daring.

Diplomasi jalur 1,5 semacam ini memungkinkan kedua pihak memahami garis merah masing-masing \
dan mengurangi potensi konflik.

Dewan Keamanan Nasional Gedung Putih menyatakan tidak meminta pejabat maupun mantan pejabat \
untuk membuka saluran komunikasi semacam itu.

Pejabat itu menambahkan bahwa peluang Ukraina merebut kembali Krimea sangat tipis.

Artikel ini telah diperbarui untuk mengklarifikasi bahwa sumbernya adalah mantan pejabat, \
dan untuk menambahkan pernyataan Dewan Keamanan Nasional Gedung Putih."""

ITEMS = (
    DigestItem(
        kind="new",
        url=f"{SITE}/internasional/2025/10/03/ukraina-terima-sistem-pertahanan-udara-baru",
        title="Ukraina Terima Sistem Pertahanan Udara Baru Menjelang Musim Dingin",
        detected_at=DETECTED,
        published="2025-10-03T12:40:00+07:00",
        lead=(
            "Kyiv menyebut sistem itu akan melindungi jaringan listrik yang berulang kali "
            "menjadi sasaran serangan rudal dan drone."
        ),
    ),
    DigestItem(
        kind="new",
        url=f"{SITE}/internasional/2025/10/03/harga-gandum-naik-setelah-serangan-pelabuhan",
        title="Harga Gandum Dunia Naik Setelah Serangan ke Pelabuhan Odesa",
        detected_at=DETECTED,
        published="2025-10-03T11:05:00+07:00",
        lead=(
            "Pedagang khawatir jalur ekspor lewat Laut Hitam kembali terganggu; harga "
            "berjangka naik hampir 4 persen dalam sehari."
        ),
    ),
    DigestItem(
        kind="updated",
        url=f"{SITE}/internasional/2025/10/02/track-15-pembicaraan-diplomasi-rahasia-as-rusia",
        title=(
            "Track 1.5, Pembicaraan Diplomasi Rahasia AS dan Rusia Soal Ukraina: "
            "Nuklir Turun Tangan Kalau Krimea Lepas"
        ),
        old_title=(
            "Track 1.5, Pembicaraan Diplomasi Rahasia AS-Rusia Soal Ukraina: "
            "Nuklir Turun Kalau Krimea Lepas"
        ),
        detected_at=DETECTED,
        published="2025-10-02T19:30:00+07:00",
        fields=("body", "title"),
        body=NEW_BODY,
        old_body=OLD_BODY,
    ),
    DigestItem(
        kind="removed",
        url=f"{SITE}/internasional/2025/10/01/video-serangan-drone-belgorod",
        title="Video: Serangan Drone di Belgorod Semalam",
        detected_at=DETECTED,
    ),
)


def example_message() -> EmailMessage:
    """The example digest, exactly as the dispatcher would build it."""
    return build_digest(
        topic_title="Konflik Rusia Vs Ukraina",
        topic_name="konflik-rusia-ukraina",
        recipient="desk@example.org",
        sender="topicwatch <alerts@example.org>",
        items=ITEMS,
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
