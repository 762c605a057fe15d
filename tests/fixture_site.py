"""A local news site for tests and benchmarks: real HTTP on 127.0.0.1, scripted edits and noise.

The site serves pages shaped like the reference site of the design (Tribunnews.com: topic
listings, articles with JSON-LD, "Baca juga" links, captions, ad slots, sidebars) and a second,
WordPress-like layout for the generic profile. Its content is a state object the test mutates
between crawls; every page is rendered from that state, so the same state always gives the
same bytes, and the same ETag.

In one process::

    with FixtureSite.reference_site() as site:
        url = site.listing_url(REFERENCE_TOPIC)
        site.edit_body(SEED_ARTICLE_ID, insert_sentence="Kalimat baru.", after_paragraph=2)
        site.rotate_noise()             # every noise element changes, the articles do not
        site.set_fault(site.article_path(SEED_ARTICLE_ID), "status", code=503, times=1)

As a separate process (for the daemon and the command-line tests)::

    python tests/fixture_site.py --port 8765 [--articles N] [--state-file F] [--request-log L]

prints its base URL (``http://127.0.0.1:PORT``) on one line of stdout and serves until SIGTERM
or SIGINT, then exits 0. Without ``--articles`` it serves ``reference_site()``, with it
``generate(N)``.

**Controlling a site in another process: the state file.** With ``--state-file F`` the
server loads its state from ``F`` when the file exists (else it writes its initial state
there) and re-reads ``F`` whenever the file changes (inode, mtime or size), before answering
the next request. A test controls it with an ordinary ``FixtureSite`` built with
``start=False`` and the same state file: every mutation method of that object rewrites the
file atomically (write, then rename), so the change is in effect when the method returns.
``FixtureSite.spawn()`` does all of this::

    site = FixtureSite.reference_site(start=False)
    with site.spawn(tmp_path / "site.json") as process:   # sets site.base_url
        ...                                              # mutate `site` as usual
        site.requests                                    # read from the request log

With ``--request-log L`` every answered request is appended to ``L`` as one JSON line; a
spawned site's ``requests`` and ``clear_requests()`` read and truncate that file. A fault's
``times`` counter is kept by the serving process only, and is reset when the test rewrites the
state.

URLs served:

- ``/`` home; ``/robots.txt`` (text from ``robots_txt``, ``{base_url}`` replaced; 404 when
  ``None``); ``/sitemap.xml`` (sitemap index), ``/sitemap-news.xml`` (news sitemap with
  ``news:title``), ``/sitemap-pages.xml`` (plain urlset);
- Tribunnews-like topics: ``/topic/{slug}?page=N`` (``li.p2030 h3 a``, or the older
  ``ul.lsi li h3 a`` when the topic's layout is ``"lsi"``), ``/rss/{slug}.xml`` (RSS 2.0, links
  carry ``utm_*`` parameters), ``/atom/{slug}.xml`` (Atom);
- WordPress-like topics (layout ``"wordpress"``): ``/category/{slug}/`` and
  ``/category/{slug}/page/N/`` with ``rel=next``;
- articles: ``/{section}/{yyyy}/{mm}/{dd}/{slug}`` or ``/{section}/{id}/{slug}`` (Tribunnews
  layout; ``?page=N`` and ``?page=all`` for multi-page ones) and ``/{yyyy}/{mm}/{dd}/{slug}/``
  (WordPress layout; ``{N}/`` appended for page N of a multi-page post, which has no view of
  the whole post, with numbered ``div.page-links`` and ``link rel=prev/next``). Unknown query
  parameters are ignored.

Markup facts of the Tribunnews layout, for tests that read them: title ``h1#arttitle``; lead
``div#artsubtitle``, JSON-LD ``description`` and ``og:description``; authors
``div#penulis a`` (the editor is in ``div#editor``, not an author); ``time`` text like
"Jumat, 3 Oktober 2025 12:40 WIB"; body ``div.side-article.txt-article``, whose first paragraph
starts with the dateline "TRIBUNNEWS.COM -", with ``p.baca``, ``blockquote.summary-article``,
``div.ads…`` and ``div.paging`` inside it; ``figure``/``figcaption`` before it. A
``FixtureArticle.body_text`` is the body as an extractor should return it (paragraphs joined by
blank lines, no dateline and no noise).

Live pages: an article with ``live`` set (``set_live``: ``"markup"``, a JSON-LD
``LiveBlogPosting`` with ``liveBlogUpdate`` entries; ``"plain"``, the same page without any
live markup) gains one entry, on top of its text, at every request the serving process
answers for it, until ``end_live``, after which it stays as it is (with ``"markup"``, its
``coverageEndTime`` then says the coverage ended).

Validators: ``ETag`` is a hash of the exact bytes served (so ``rotate_noise`` changes it);
``Last-Modified`` is the time of the article's last content change (a listing's: of the last
change anywhere), on a logical clock that moves one minute per change. 304 follows RFC 9110:
``If-None-Match`` when sent, else ``If-Modified-Since``.

Only the standard library is used, so this module runs with any Python 3.11.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import email.utils
import errno
import hashlib
import html
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape as xml_escape

WIB = timezone(timedelta(hours=7), "WIB")
SITE_NAME = "Tribunnews.com"
COPYRIGHT = "© 2025 TribunNews.com, a subsidiary of KG Media. All Right Reserved"

REFERENCE_TOPIC = "konflik-rusia-vs-ukraina"
REFERENCE_TOPIC_TITLE = "Konflik Rusia Vs Ukraina"
LSI_TOPIC = "timnas-indonesia"
GENERIC_TOPIC = "ekonomi-digital"

SEED_ARTICLE_ID = 7480101
MULTIPAGE_ARTICLE_ID = 7480102
CP1252_ARTICLE_ID = 7480104

ARTICLE_STATUSES = (200, 404, 410, "redirect_home", "redirect_topic")
FAULT_KINDS = (
    "hang",
    "status",
    "redirect_loop",
    "redirect_home",
    "pdf",
    "image",
    "huge",
    "windows1252",
    "malformed",
    "reset",
    "botwall",
    "redesign",
)
LAYOUTS = ("p2030", "lsi", "wordpress")

_DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
_MONTHS = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)

# -- the reference article: a Tribunnews.com piece edited after publication ---------------------

SEED_TITLE = (
    "Track 1.5, Pembicaraan Diplomasi Rahasia AS-Rusia Soal Ukraina: "
    "Nuklir Turun Kalau Krimea Lepas"
)
SEED_ALT_TITLE = (
    "Track 1.5, Pembicaraan Diplomasi Rahasia AS dan Rusia Soal Ukraina: "
    "Nuklir Turun Tangan Kalau Kriea Lepas"
)
SEED_LEAD = (
    "Dikenal sebagai diplomasi 'track1.5', diskusi rahasia ini memungkinkan AS, Rusia, Ukraina "
    "untuk memahami garis merah masing-masing"
)
SEED_CAPTION = (
    'Seorang pria memotret seorang anak di atas tank Soviet di museum-diorama "Fiery Arc" di '
    "kota Belgorod, Rusia, sekitar 40 km dari perbatasan dengan Ukraina, pada 27 Mei 2023. "
    "Olga MALTSEVA / AFP"
)
# The statement of the White House and the disclaimer that the site added when it edited the
# article; ``reference_site()`` serves the article without them, ``apply_seed_edit()`` adds
# them where they stand in the published version.
SEED_STATEMENT_PARAGRAPHS = (
    "Atas laporan The Moscow Times ini, Dewan Keamanan Nasional Gedung Putih mengatakan bahwa "
    "AS belum meminta pejabat saat ini atau formal untuk membuka saluran komunikasi belakang "
    "dengan apa yang tersirat sebagai Moskow.",
    "“Amerika Serikat belum meminta pejabat atau mantan pejabat untuk membuka saluran "
    "belakang, dan tidak mencari saluran semacam itu. Kami juga tidak menyampaikan pesan apa "
    "pun kepada orang lain,” kicau penjabat juru bicara Dewan Keamanan Nasional, Adam Hodge di "
    "tweeter Kamis.",
    "“Ketika kami tidak mengatakan apa-apa tentang Ukraina tanpa Ukraina, kami "
    "bersungguh-sungguh.”",
)
SEED_DISCLAIMER = (
    "Disclaimer The Moscow Times: Artikel ini telah diperbarui untuk mengklarifikasi bahwa "
    "sumbernya adalah mantan pejabat, dan untuk menambahkan pernyataan Dewan Keamanan Nasional "
    "Gedung Putih."
)
_SEED_BEFORE_STATEMENT = (
    "Sementara perang Rusia dan Ukraina terus berkecamuk, terjadi pembicaraan diplomatik "
    "rahasia yang berlangsung antara mantan pejabat senior keamanan nasional Amerika Serikat "
    "(AS) dan petinggi pemerintahan Rusia di Kremlin.",
    "Pembicaraan rahasia ini dilansir The Moscow Times yang mengutip keterangan seorang mantan "
    "pejabat AS yang terlibat langsung dalam pembicaraan diplomatik rahasia tersebut.",
    "Laporan The Moscow Times tersebut meneruskan laporan NBC awal Juli ini yang pertama kali "
    "mengabarkan adanya diskusi nonofisial alias 'back-channel' ini.",
    "Pertemuan disebut melibatkan mantan pejabat AS yang terlibat dalam pertukaran rahasia "
    "dengan pihak Kremlin, serta pertemuan dengan Menteri Luar Negeri Sergei Lavrov, dalam "
    "upaya meletakkan dasar negosiasi untuk mengakhiri perang di Ukraina.",
    "Dikenal sebagai diplomasi 'track1.5', diskusi rahasia ini memungkinkan kedua belah pihak "
    "untuk memahami garis merah masing-masing dan mengurangi potensi konflik.",
    "Komunikasi ini juga berfungsi sebagai penghubung penting antara negosiasi resmi "
    "pemerintah (diplomasi jalur 1) dan dialog pakar tidak resmi (jalur 2).",
    "The Moscow Times mengklaim sudah berbicara dengan salah satu individu yang terlibat "
    "langsung dalam pembicaraan ini.",
    "Mantan pejabat AS itu setuju untuk berbicara dengan syarat anonim mengingat sifat rahasia "
    "dari diskusi tersebut.",
    "“Ada kebutuhan besar untuk diplomasi 'jalur 1.5' ketika dunia ditutup seperti sekarang,” "
    "kata mantan pejabat itu.",
    "Pertemuan antara AS dan para pejabat di Kremlin telah berlangsung setidaknya dua kali "
    "sebulan, seringkali melalui format online.",
    "“Saya telah mengunjungi Moskow setidaknya setiap tiga bulan,” kata mantan pejabat itu.",
)
_SEED_AFTER_STATEMENT = (
    "Moscow Punya Peranan Penting Bagi AS",
    "Dalam pembicaraan yang dijelaskan oleh mantan pejabat itu, pembicaraan sampai pada "
    "kesediaan Kremlin untuk 'meletakkan kartunya di atas meja'.",
    '"Kami diberi akses ke pemikiran Kremlin, meskipun tidak sebanyak yang kami inginkan," kata '
    "mantan pejabat itu.",
    "Dari sudut pandang si mantan pejabat, duduk di hadapan para pejabat dan penasihat senior "
    "Kremlin, tampak jelas bahwa masalah terbesar adalah bahwa Rusia tidak dapat "
    "mengartikulasikan apa yang sebenarnya mereka inginkan dan butuhkan.",
    "“Mereka tidak tahu bagaimana mendefinisikan kemenangan atau kekalahan. Faktanya, beberapa "
    "elit yang kami ajak bicara tidak pernah menginginkan perang sejak awal, bahkan mengatakan "
    "itu adalah kesalahan total,” katanya.",
    '"Tapi sekarang mereka sedang berperang, menderita kekalahan yang memalukan bukanlah '
    'pilihan bagi orang-orang ini."',
    "“Di sinilah kami memperjelas bahwa AS siap untuk bekerja secara konstruktif dengan masalah "
    "keamanan nasional Rusia,” mantan pejabat itu menambahkan.",
    "Di luar diskusi rahasia ini, kesediaan AS ini sejatinya melanggar garis resmi AS sendiri "
    "yang menekan Rusia secara finansial dan mengisolasinya secara internasional untuk "
    "mencegahnya melanjutkan perangnya melawan Ukraina.",
    "“Upaya untuk mengisolasi dan melumpuhkan Rusia sampai ke titik penghinaan atau kehancuran "
    "akan membuat negosiasi hampir tidak mungkin – kita sudah melihat ini dalam keengganan "
    "pejabat Moskow,” katanya.",
    "“Kekuatan Rusia, belum tentu merupakan hal yang buruk,” katanya.",
    "Mengenai hubungan Rusia yang semakin dalam dengan China, mantan pejabat itu mengakui bahwa "
    "memutuskan hubungan sepenuhnya antara Moskow dan Beijing tidak realistis.",
    "Namun, upaya harus dilakukan untuk membatasi sejauh mana hubungan ini, katanya.",
    "Dengan demikian, pemerintahan Biden menyadari — meskipun terlambat — bahwa Rusia berusaha "
    "untuk dianggap serius, dengan pembangunan militernya di perbatasan Ukraina pada tahun 2021 "
    "merupakan taktik untuk mendapatkan perhatian.",
    "Peluang Ukraina Tipis Ambil Alih Krimea",
    "Selama diskusi, laporan menyebut, menjadi jelas bahwa peluang Ukraina untuk merebut "
    "kembali wilayah pendudukannya sangat tipis.",
    "Krimea tetap menjadi masalah yang sangat diperdebatkan, karena Ukraina menegaskan niatnya "
    "untuk merebut kembali wilayah yang dianeksasi Rusia pada tahun 2014.",
    "“Jika Rusia mengira akan kehilangan Krimea, hampir pasti (Rusia) akan menggunakan senjata "
    "nuklir taktis,” kata mantan pejabat itu.",
    "Masalahnya bukan pada elite Rusia secara keseluruhan, tapi -secara khusus- keputusan "
    "Vladimir Putin, jelasnya.",
    "“Putin adalah penghalang utama untuk semua kemajuan,” katanya.",
    "Jika ada dukungan di antara elit untuk pemimpin lain, katanya, “melengserkan Putin bukanlah "
    "hal yang mustahil.”",
)
SEED_PARAGRAPHS_BEFORE_EDIT = _SEED_BEFORE_STATEMENT + _SEED_AFTER_STATEMENT
SEED_PARAGRAPHS = (
    _SEED_BEFORE_STATEMENT + SEED_STATEMENT_PARAGRAPHS + _SEED_AFTER_STATEMENT + (SEED_DISCLAIMER,)
)

# -- noise pools -------------------------------------------------------------------------------

_TRENDING = (
    ("seleb", "Artis Senior Ungkap Kabar Terbaru Usai Jalani Operasi Lutut di Singapura"),
    ("sport", "Jadwal Lengkap Timnas Indonesia di Kualifikasi Piala Dunia Putaran Keempat"),
    ("bisnis", "Harga Emas Antam Hari Ini Turun Rp 12.000 per Gram"),
    ("regional", "Banjir Rob Genangi Pesisir Semarang, Warga Diminta Waspada"),
    ("nasional", "Daftar Lengkap Libur Nasional dan Cuti Bersama Tahun Depan"),
    ("techno", "Cara Mengecek Kuota Internet dengan Mudah Lewat Aplikasi"),
    ("kesehatan", "Lima Manfaat Jalan Kaki 30 Menit Setiap Hari bagi Jantung"),
    ("metropolitan", "Ganjil Genap Jakarta Hari Ini Berlaku di 26 Ruas Jalan"),
    ("otomotif", "Harga Mobil Listrik Bekas Turun Tajam Jelang Akhir Tahun"),
    ("travel", "Tujuh Destinasi Wisata Alam di Bandung untuk Libur Akhir Pekan"),
    ("internasional", "Badai Tropis Terjang Filipina, Ribuan Warga Dievakuasi"),
    ("pendidikan", "Jadwal Pendaftaran Beasiswa LPDP Tahap Kedua Dibuka"),
)
_RECOMMENDED = (
    ("internasional", "Presiden Finlandia: Eropa Harus Siap Hadapi Ancaman Jangka Panjang"),
    ("internasional", "Turki Tawarkan Diri Jadi Tuan Rumah Perundingan Damai Berikutnya"),
    ("bisnis", "Ekspor Batu Bara Indonesia ke Eropa Melonjak Dua Kali Lipat"),
    ("internasional", "Polandia Perketat Pengamanan Perbatasan dengan Belarus"),
    ("nasional", "Kemlu Pastikan WNI di Kyiv dalam Kondisi Aman"),
    ("internasional", "Harga Minyak Dunia Bergejolak Usai Sanksi Baru Diumumkan"),
    ("internasional", "Sekjen PBB Serukan Gencatan Senjata Kemanusiaan"),
    ("bisnis", "Rupiah Menguat Tipis di Tengah Ketidakpastian Global"),
    ("internasional", "Jerman Kirim Tambahan Bantuan Kemanusiaan ke Ukraina"),
    ("internasional", "China Tegaskan Sikap Netral dalam Konflik di Eropa Timur"),
)
_CREDITS = (
    "Olga MALTSEVA / AFP",
    "AFP/GENYA SAVILOV",
    "Tribunnews.com/Dok",
    "REUTERS/Stringer",
    "AP Photo/Efrem Lukatsky",
)
_COMMENTERS = ("Budi S.", "Rina", "Ahmad Fauzi", "Dewi K.", "pembaca_setia", "Yoga")
_COMMENTS = (
    "Artikel yang sangat informatif, terima kasih.",
    "Semoga ada kelanjutan liputannya.",
    "Data di paragraf ketiga perlu dicek lagi.",
    "Menarik, tapi bagaimana dampaknya bagi UMKM?",
    "Setuju dengan penulis.",
)

# -- generated text ---------------------------------------------------------------------------

_ORGS = (
    "Pemerintah",
    "Kementerian Luar Negeri",
    "Kementerian Keuangan",
    "Badan Pusat Statistik",
    "Dinas Perhubungan",
    "Kepolisian Daerah",
    "Dewan Perwakilan Rakyat",
    "Bank Indonesia",
    "Otoritas setempat",
    "Komisi Pemilihan Umum",
    "Badan Meteorologi",
    "Pemerintah Provinsi",
    "Kementerian Pertahanan",
    "Palang Merah",
)
_PEOPLE = (
    ("Andi Pratama", "juru bicara kementerian"),
    ("Siti Rahmawati", "pengamat hubungan internasional"),
    ("Bambang Susilo", "kepala dinas"),
    ("Dewi Lestari", "ekonom senior"),
    ("Hendra Wijaya", "anggota komisi I"),
    ("Rudi Hartono", "koordinator lapangan"),
    ("Maria Ulfa", "peneliti lembaga kajian"),
    ("Agus Salim", "ketua asosiasi"),
    ("Yusuf Maulana", "wakil gubernur"),
    ("Lina Marlina", "direktur eksekutif"),
)
_PLACES = (
    "Jakarta",
    "Surabaya",
    "Bandung",
    "Medan",
    "Makassar",
    "Semarang",
    "Yogyakarta",
    "Kyiv",
    "Moskow",
    "Kharkiv",
    "Brussel",
    "Jenewa",
    "Denpasar",
    "Palembang",
    "Balikpapan",
)
_OBJECTS = (
    "rencana kebijakan baru",
    "anggaran tambahan",
    "hasil evaluasi tahunan",
    "program bantuan sosial",
    "rancangan peraturan",
    "kerja sama bilateral",
    "jadwal perundingan",
    "laporan investigasi",
    "paket stimulus ekonomi",
    "langkah pengamanan",
    "data terbaru",
    "sistem pelayanan digital",
)
_VERBS = (
    "mengumumkan",
    "membahas",
    "menyetujui",
    "mengevaluasi",
    "menolak",
    "meninjau",
    "memperkenalkan",
    "menunda",
    "menyampaikan",
    "merampungkan",
)
_GOALS = (
    "menjaga stabilitas harga",
    "memperkuat koordinasi antarlembaga",
    "mempercepat pemulihan ekonomi",
    "melindungi warga sipil",
    "meningkatkan transparansi",
    "mengurangi risiko di lapangan",
    "memastikan layanan publik tetap berjalan",
)
_CAUSES = (
    "cuaca ekstrem",
    "kenaikan harga bahan bakar",
    "serangan drone",
    "gangguan pasokan",
    "perubahan regulasi",
    "lonjakan permintaan",
)
_UNITS = ("warga", "rumah", "kendaraan", "pelaku usaha", "peserta", "sekolah")
_TIMES = (
    "Senin pagi",
    "Selasa malam",
    "Rabu siang",
    "Kamis sore",
    "Jumat pagi",
    "akhir pekan lalu",
    "awal bulan ini",
)
_QUOTES = (
    "Kami akan terus memantau perkembangan situasi dan memberi kabar secara berkala",
    "Keputusan ini diambil setelah mendengar masukan dari banyak pihak",
    "Tidak ada alasan untuk panik, semua sudah kami siapkan",
    "Kami berharap semua pihak menahan diri",
    "Prosesnya memang tidak mudah, tetapi kami optimistis",
    "Yang terpenting adalah keselamatan masyarakat",
)
_SENTENCES = (
    "{org} {verb} {obj} di {place} pada {time}.",
    "Menurut {person}, {role}, langkah tersebut diambil untuk {goal}.",
    "“{quote},” kata {person} kepada wartawan di {place}, {time}.",
    "Sebanyak {num} {unit} dilaporkan terdampak akibat {cause} di sejumlah wilayah.",
    "Hingga {time}, {org} belum memberikan keterangan resmi terkait {obj} tersebut.",
    "Sementara itu, {org2} menyatakan akan {verb} {obj} dalam {small} pekan ke depan.",
    "Data {org} menunjukkan angka tersebut naik {pct} persen dibandingkan periode yang sama "
    "tahun lalu.",
    "Situasi di {place} dilaporkan mulai kondusif sejak {time}, meski aparat tetap berjaga.",
    "Ia menambahkan, pihaknya telah menyiapkan {num} petugas untuk {goal}.",
    "Pihaknya juga meminta masyarakat untuk tidak mudah percaya pada informasi yang belum "
    "terverifikasi terkait {obj}.",
    "{person} menilai kebijakan itu perlu diikuti dengan pengawasan yang ketat agar tidak "
    "menimbulkan masalah baru.",
    "Rapat lanjutan dijadwalkan berlangsung di {place} dengan melibatkan {small} lembaga terkait.",
    "Sejumlah warga yang ditemui mengaku berharap {obj} segera memberi dampak nyata.",
    "Dalam keterangan tertulisnya, {org} menyebut {obj} sudah melalui kajian selama {small} bulan.",
)
_TITLES = (
    "{org} {verbh} {objh} di {place}",
    "{num} {unith} Terdampak {causeh} di {place}",
    "{person}: {quoteh}",
    "{org} {verbh} {objh}, Ini Kata {person}",
    "Jelang Akhir Tahun, {org} {verbh} {objh}",
)
_VERBS_H = ("Umumkan", "Bahas", "Setujui", "Evaluasi", "Tolak", "Tinjau", "Tunda", "Percepat")
_OBJECTS_H = (
    "Kebijakan Baru",
    "Anggaran Tambahan",
    "Program Bantuan",
    "Rancangan Peraturan",
    "Kerja Sama Bilateral",
    "Jadwal Perundingan",
    "Paket Stimulus",
    "Langkah Pengamanan",
    "Layanan Digital",
)
_UNITS_H = ("Warga", "Rumah", "Kendaraan", "Pelaku Usaha", "Sekolah")
_CAUSES_H = ("Cuaca Ekstrem", "Kenaikan Harga BBM", "Serangan Drone", "Gangguan Pasokan")
_QUOTES_H = (
    "Kami Pantau Terus Perkembangannya",
    "Keselamatan Warga yang Utama",
    "Tidak Perlu Panik",
    "Semua Pihak Diminta Menahan Diri",
)
_SECTIONS_BY_TOPIC = {
    REFERENCE_TOPIC: "internasional",
    LSI_TOPIC: "sport",
    GENERIC_TOPIC: "bisnis",
}
_FALLBACK_SECTIONS = ("nasional", "internasional", "bisnis", "regional", "sport", "techno")


def _sentence(rng: random.Random) -> str:
    person, role = rng.choice(_PEOPLE)
    return rng.choice(_SENTENCES).format(
        org=rng.choice(_ORGS),
        org2=rng.choice(_ORGS).lower() if rng.random() < 0.3 else rng.choice(_ORGS),
        verb=rng.choice(_VERBS),
        obj=rng.choice(_OBJECTS),
        place=rng.choice(_PLACES),
        time=rng.choice(_TIMES),
        person=person,
        role=role,
        goal=rng.choice(_GOALS),
        quote=rng.choice(_QUOTES),
        num=f"{rng.randint(12, 4800):,}".replace(",", "."),
        unit=rng.choice(_UNITS),
        cause=rng.choice(_CAUSES),
        pct=rng.randint(2, 38),
        small=rng.randint(2, 6),
    )


def generated_paragraphs(seed: int | str, words: int = 650) -> list[str]:
    """Deterministic Indonesian news paragraphs of about ``words`` words in all."""
    rng = random.Random(f"body:{seed}")
    paragraphs: list[str] = []
    total = 0
    while total < words:
        paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(1, 3)))
        paragraphs.append(paragraph)
        total += len(paragraph.split())
    return paragraphs


def generated_title(seed: int | str) -> str:
    """A deterministic Indonesian headline."""
    rng = random.Random(f"title:{seed}")
    person, _role = rng.choice(_PEOPLE)
    return rng.choice(_TITLES).format(
        org=rng.choice(_ORGS),
        verbh=rng.choice(_VERBS_H),
        objh=rng.choice(_OBJECTS_H),
        place=rng.choice(_PLACES),
        num=rng.randint(12, 900),
        unith=rng.choice(_UNITS_H),
        causeh=rng.choice(_CAUSES_H),
        person=person,
        quoteh=rng.choice(_QUOTES_H),
    )


def slugify(text: str) -> str:
    """The URL slug of a headline: lowercase ASCII words joined by hyphens."""
    text = text.lower().replace("&", " dan ")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "artikel"


def indonesian_datetime(moment: datetime) -> str:
    """``Jumat, 3 Oktober 2025 12:40 WIB`` for a time, shown in WIB (+07:00)."""
    local = moment.astimezone(WIB)
    return (
        f"{_DAYS[local.weekday()]}, {local.day} {_MONTHS[local.month - 1]} {local.year} "
        f"{local:%H:%M} WIB"
    )


# -- state ------------------------------------------------------------------------------------


@dataclass
class FixtureArticle:
    """One article of the site, as the site holds it (the truth a crawl is checked against).

    ``status`` is 200, 404, 410, ``"redirect_home"`` or ``"redirect_topic"``; ``pages`` > 1
    splits ``paragraphs`` over that many pages; ``layout`` is ``"tribun"`` or
    ``"wordpress"``; ``url_shape`` is ``"dated"`` or ``"numeric"`` (Tribunnews layout only).
    """

    id: int
    section: str
    slug: str
    title: str
    lead: str
    paragraphs: list[str]
    authors: list[str]
    published: datetime
    modified: datetime | None = None
    status: int | str = 200
    url_shape: str = "dated"
    layout: str = "tribun"
    pages: int = 1
    caption: str = ""
    summary: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    changed_at: datetime | None = None  # Last-Modified: the last change of the content
    live: str = ""  # "", "markup" (LiveBlogPosting) or "plain": gains an entry per request
    live_ended: datetime | None = None  # when the live coverage ended (no more entries)

    @property
    def date(self) -> date:
        return self.published.astimezone(WIB).date()

    @property
    def path(self) -> str:
        d = self.date
        if self.layout == "wordpress":
            return f"/{d:%Y/%m/%d}/{self.slug}/"
        if self.url_shape == "numeric":
            return f"/{self.section}/{self.id}/{self.slug}"
        return f"/{self.section}/{d:%Y/%m/%d}/{self.slug}"

    @property
    def body_text(self) -> str:
        """The main text as an extractor should return it: paragraphs, blank-line separated."""
        return "\n\n".join(self.paragraphs)

    def page_paragraphs(self, page: int) -> list[str]:
        """The paragraphs shown on page ``page`` (1-based) of a multi-page article."""
        if self.pages <= 1:
            return list(self.paragraphs)
        size = -(-len(self.paragraphs) // self.pages)
        return self.paragraphs[(page - 1) * size : page * size]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("published", "modified", "changed_at", "live_ended"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FixtureArticle:
        data = dict(data)
        for key in ("published", "modified", "changed_at", "live_ended"):
            if data.get(key) is not None:
                data[key] = datetime.fromisoformat(data[key])
        return cls(**data)


@dataclass
class FixtureTopic:
    """A topic page: which articles it lists, newest first, and how."""

    slug: str
    title: str
    article_ids: list[int] = field(default_factory=list)
    per_page: int = 20
    layout: str = "p2030"  # p2030 | lsi | wordpress
    description: str = ""

    @property
    def path(self) -> str:
        if self.layout == "wordpress":
            return f"/category/{self.slug}/"
        return f"/topic/{self.slug}"

    def page_path(self, page: int) -> str:
        if page <= 1:
            return self.path
        if self.layout == "wordpress":
            return f"/category/{self.slug}/page/{page}/"
        return f"/topic/{self.slug}?page={page}"

    def page_count(self, listed: int) -> int:
        return max(1, -(-listed // self.per_page))


@dataclass
class Fault:
    """A misbehaviour of one path. ``remaining`` counts down; ``None`` means forever."""

    kind: str
    opts: dict[str, Any] = field(default_factory=dict)
    remaining: int | None = None


@dataclass(frozen=True)
class FixtureRequest:
    """One request the site answered. ``path`` is the request target, query included.

    ``status`` is 0 for a connection closed without an answer; ``bytes_sent`` is the length
    of the body the answer carried (0 for 304 and HEAD). A record is written before the
    answer leaves, so a client that has its answer finds the record.
    """

    method: str
    path: str
    status: int
    headers: dict[str, str]
    bytes_sent: int
    # Wall-clock times (time.time()) when the request was read and when its answer left:
    # requests of two crawls overlap when one's span meets the other's.
    received_at: float = 0.0
    answered_at: float = 0.0

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    @property
    def if_none_match(self) -> str | None:
        return self.header("If-None-Match")

    @property
    def if_modified_since(self) -> str | None:
        return self.header("If-Modified-Since")

    @property
    def user_agent(self) -> str | None:
        return self.header("User-Agent")

    @property
    def url_path(self) -> str:
        return urlsplit(self.path).path


_DEFAULT_ROBOTS = (
    "User-agent: *\nDisallow: /_private/\nDisallow: /search\n\nSitemap: {base_url}/sitemap.xml\n"
)
_CLOCK_START = datetime(2025, 10, 3, 16, 0, tzinfo=WIB)


@dataclass
class _State:
    articles: dict[int, FixtureArticle] = field(default_factory=dict)
    topics: dict[str, FixtureTopic] = field(default_factory=dict)
    noise: int = 0
    clock: datetime = _CLOCK_START
    robots_txt: str | None = _DEFAULT_ROBOTS
    faults: dict[str, Fault] = field(default_factory=dict)
    send_etag: bool = True
    send_last_modified: bool = True
    # Derived lookups (path → article, newest first); emptied on every change.
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "articles": [a.to_dict() for a in self.articles.values()],
            "topics": [asdict(t) for t in self.topics.values()],
            "noise": self.noise,
            "clock": self.clock.isoformat(),
            "robots_txt": self.robots_txt,
            "faults": {path: asdict(f) for path, f in self.faults.items()},
            "send_etag": self.send_etag,
            "send_last_modified": self.send_last_modified,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _State:
        articles = [FixtureArticle.from_dict(a) for a in data["articles"]]
        return cls(
            articles={a.id: a for a in articles},
            topics={t["slug"]: FixtureTopic(**t) for t in data["topics"]},
            noise=data["noise"],
            clock=datetime.fromisoformat(data["clock"]),
            robots_txt=data["robots_txt"],
            faults={path: Fault(**f) for path, f in data["faults"].items()},
            send_etag=data["send_etag"],
            send_last_modified=data["send_last_modified"],
        )

    def tick(self, *also: datetime | None) -> datetime:
        """Advance the logical clock past everything it has seen; the new time."""
        self.clock = max([self.clock, *(t for t in also if t is not None)]) + timedelta(minutes=1)
        return self.clock


# -- rendering --------------------------------------------------------------------------------


_ACTIVE = ' class="active"'


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _json_ld(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1).replace("</", "<\\/")


def _http_date(moment: datetime) -> str:
    return email.utils.format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None
    validators: bool = True


class _Renderer:
    """Pages from one state. Deterministic: the same state gives the same bytes."""

    def __init__(
        self, state: _State, base_url: str, live_entries: dict[int, int] | None = None
    ) -> None:
        self.state = state
        self.base = base_url
        self.noise = state.noise
        self.live_entries = live_entries or {}  # live article id -> entries it has now

    def url(self, path: str) -> str:
        return self.base + path

    def rng(self, *key: object) -> random.Random:
        return random.Random(":".join(str(k) for k in ("noise", self.noise, *key)))

    def nonce(self, *key: object) -> str:
        digest = hashlib.sha256(f"nonce:{self.noise}:{key}".encode()).digest()
        return base64.b64encode(digest[:12]).decode()

    def ad_slot(self, *key: object) -> str:
        return f"div-gpt-ad-{self.rng('ad', *key).randrange(10**12, 10**13)}"

    def live_articles(self, layout: str | None = None) -> list[FixtureArticle]:
        key = f"live:{layout}"
        if key not in self.state.cache:
            articles = [
                a
                for a in self.state.articles.values()
                if a.status == 200 and (layout is None or a.layout == layout)
            ]
            articles.sort(key=lambda a: (a.published, a.id), reverse=True)
            self.state.cache[key] = articles
        articles = self.state.cache[key]
        return list(articles)

    def listed(self, topic: FixtureTopic) -> list[FixtureArticle]:
        return [self.state.articles[i] for i in topic.article_ids if i in self.state.articles]

    # -- shared Tribunnews chrome ------------------------------------------------------------

    def head(self, title: str, extra: str = "") -> str:
        return (
            '<!DOCTYPE html>\n<html lang="id">\n<head>\n<meta charset="UTF-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n{extra}"
            '<link rel="stylesheet" href="/asset/css/main.css">\n'
            f'<script nonce="{self.nonce("head")}">window.dataLayer=window.dataLayer||[];'
            f"dataLayer.push({{'pageview':{self.rng('pv').randint(1, 10**6)}}});</script>\n"
            "</head>\n"
        )

    def header(self) -> str:
        trending = self.rng("trending").sample(_TRENDING, 5)
        links = "".join(
            f'<a href="{_e(self.url(self.fake_path(section, title, "t")))}">#{_e(title)}</a>\n'
            for section, title in trending
        )
        topics = "".join(
            f'<li><a href="{_e(t.path)}">{_e(t.title)}</a></li>'
            for t in self.state.topics.values()
            if t.layout != "wordpress"
        )
        return (
            '<header id="header">\n<div class="logo"><a href="/">Tribunnews.com</a></div>\n'
            '<nav class="menu" id="menu"><ul>'
            '<li><a href="/">Home</a></li><li><a href="/news">News</a></li>'
            '<li><a href="/nasional">Nasional</a></li>'
            '<li><a href="/internasional">Internasional</a></li>'
            '<li><a href="/bisnis">Bisnis</a></li><li><a href="/sport">Sport</a></li>'
            '<li><a href="/seleb">Seleb</a></li>'
            f"{topics}</ul></nav>\n"
            f'<div class="trending" id="trending"><span>Trending</span>\n{links}</div>\n'
            "</header>\n"
            f'<div class="ads ads-top" id="{self.ad_slot("top")}-0"></div>\n'
        )

    def fake_path(self, section: str, title: str, salt: str) -> str:
        number = 7000000 + int(hashlib.sha256(f"{salt}{title}".encode()).hexdigest()[:5], 16)
        return f"/{section}/{number}/{slugify(title)}"

    def terkini(self) -> str:
        latest = self.live_articles("tribun")[:8]
        if latest:
            start = self.noise % len(latest)
            latest = (latest[start:] + latest[:start])[:5]
        items = "".join(
            f'<li><a class="f15" href="{_e(self.url(a.path))}">{_e(a.title)}</a>'
            f'<span class="grey">{_e(indonesian_datetime(a.published))}</span></li>\n'
            for a in latest
        )
        return (
            '<aside class="sidebar" id="right">\n<div class="berita-terkini">'
            '<h3 class="title">Berita Terkini</h3>\n'
            f'<ul class="lst-terkini">\n{items}</ul></div>\n'
            f'<div class="ads ads-side" id="{self.ad_slot("side")}-2"></div>\n'
            "</aside>\n"
        )

    def footer(self) -> str:
        return (
            '<footer id="footer">\n<ul class="footer-links">'
            '<li><a href="/about">Tentang Kami</a></li>'
            '<li><a href="/redaksi">Redaksi</a></li>'
            '<li><a href="/pedoman-media-siber">Pedoman Media Siber</a></li>'
            '<li><a href="/kode-etik-jurnalistik-tribunnews-com">Kode Etik Jurnalistik</a></li>'
            '<li><a href="/privacy-policy">Kebijakan Privasi</a></li>'
            '<li><a href="/rss">RSS</a></li></ul>\n'
            f'<div class="copyright">{_e(COPYRIGHT)}</div>\n</footer>\n'
            f'<script nonce="{self.nonce("foot")}">(function(){{var s=document.createElement('
            "'script');s.async=true;s.src='/asset/js/app.js';document.body.appendChild(s);}})();"
            "</script>\n</body>\n</html>\n"
        )

    # -- Tribunnews pages -------------------------------------------------------------------

    def home(self) -> _Response:
        items = "".join(
            f'<li class="art-list"><h3><a href="{_e(self.url(a.path))}">{_e(a.title)}</a></h3>'
            f"<time>{_e(indonesian_datetime(a.published))}</time></li>\n"
            for a in self.live_articles("tribun")[:20]
        )
        body = (
            self.head("Tribunnews.com - Berita Terkini Hari Ini")
            + '<body class="home">\n'
            + self.header()
            + '<div id="main" class="main">\n<h1 class="hide">Tribunnews.com</h1>\n'
            f'<ul class="latest">\n{items}</ul>\n</div>\n' + self.terkini() + self.footer()
        )
        return _Response(200, body.encode(), last_modified=self.state.clock)

    def not_found(self, status: int = 404) -> _Response:
        body = (
            self.head("Halaman Tidak Ditemukan - Tribunnews.com")
            + '<body class="error">\n'
            + self.header()
            + '<div id="main" class="main">\n<h1 class="error-title">Halaman tidak ditemukan</h1>\n'
            "<p>Maaf, halaman yang Anda cari tidak tersedia atau sudah dihapus.</p>\n"
            '<p><a href="/">Kembali ke beranda</a></p>\n</div>\n' + self.terkini() + self.footer()
        )
        return _Response(status, body.encode(), validators=False)

    def topic_page(self, topic: FixtureTopic, page: int) -> _Response:
        listed = self.listed(topic)
        pages = topic.page_count(len(listed))
        if page < 1:
            return self.not_found()
        # Past the last page the site answers an empty listing, not 404.
        chunk = listed[(page - 1) * topic.per_page : page * topic.per_page]
        if topic.layout == "lsi":
            items = "".join(
                f'<li class="ptb15"><h3 class="f16 fbo">'
                f'<a class="f20" href="{_e(self.url(a.path))}">{_e(a.title)}</a></h3>'
                f'<div class="grey pt5">{_e(a.lead)}</div>'
                f'<time class="grey">{_e(indonesian_datetime(a.published))}</time></li>\n'
                for a in chunk
            )
            listing = f'<ul class="lsi">\n{items}</ul>\n'
        else:
            items = "".join(
                '<li class="p2030"><div class="pos_rel">'
                f'<a href="{_e(self.url(a.path))}" class="fr mt5 pos_rel">'
                f'<img src="/images/{a.id}.jpg" alt="{_e(a.title)}" width="120" height="90"></a>'
                f'<div class="mr140"><h3><a class="f20 ln24 fbo txt-oev-2" '
                f'href="{_e(self.url(a.path))}" title="{_e(a.title)}">{_e(a.title)}</a></h3>'
                f'<div class="grey2 pt5 f13 ln18 txt-oev-3">{_e(a.lead)}</div>'
                f'<time class="foot timeago" title="{a.published:%Y-%m-%d %H:%M:%S}">'
                f"{_e(indonesian_datetime(a.published))}</time></div></div></li>\n"
                for a in chunk
            )
            listing = f'<ul class="lsi-topic">\n{items}</ul>\n'
        paging = "" if chunk else '<p class="empty">Belum ada artikel untuk topik ini.</p>\n'
        if pages > 1 and page <= pages:
            numbers = "".join(
                f'<a href="{_e(topic.page_path(n))}"{_ACTIVE if n == page else ""}>{n}</a>'
                for n in range(1, pages + 1)
            )
            after = (
                f'<a class="next" href="{_e(topic.page_path(page + 1))}">Selanjutnya</a>'
                if page < pages
                else ""
            )
            paging = f'<div class="paging">{numbers}{after}</div>\n'
        extra = (
            f'<link rel="canonical" href="{_e(self.url(topic.page_path(page)))}">\n'
            f'<link rel="alternate" type="application/rss+xml" title="{_e(topic.title)}" '
            f'href="/rss/{_e(topic.slug)}.xml">\n'
            f'<meta property="og:title" content="{_e(topic.title)} - Tribunnews.com">\n'
        )
        body = (
            self.head(f"Berita {topic.title} Terbaru Hari Ini - Tribunnews.com", extra)
            + '<body class="topic">\n'
            + self.header()
            + '<div id="main" class="main">\n'
            f'<div class="breadcrumb"><a href="/">Home</a> » '
            f'<a href="{_e(topic.path)}">Topik</a></div>\n'
            f'<h1 class="topic-title">{_e(topic.title)}</h1>\n'
            f'<div class="topic-desc">{_e(topic.description)}</div>\n'
            f"{listing}{paging}</div>\n" + self.terkini() + self.footer()
        )
        return _Response(200, body.encode(), last_modified=self.state.clock)

    def baca_juga(self, article: FixtureArticle, k: int) -> str:
        others = [a for a in self.live_articles("tribun") if a.id != article.id]
        rng = self.rng("baca", article.id, k)
        if others and rng.random() < 0.7:
            other = rng.choice(others)
            href, title = self.url(other.path), other.title
        else:
            section, title = rng.choice(_RECOMMENDED)
            href = self.url(self.fake_path(section, title, "r"))
        return f'<p class="baca">Baca juga: <a href="{_e(href)}" class="blue">{_e(title)}</a></p>\n'

    def tribun_article(self, article: FixtureArticle, view: str) -> _Response:
        """``view`` is ``""`` (first page), ``"all"`` or a page number as text."""
        if article.live:
            count = self.live_entries.get(article.id, 0)
            page, paragraphs = 0, [*_live_entries(article, count), *article.paragraphs]
        elif view == "all" or article.pages <= 1:
            page, paragraphs = 0, list(article.paragraphs)
        else:
            page = int(view) if view.isdigit() else 1
            if page < 1 or page > article.pages:
                return self.not_found()
            paragraphs = article.page_paragraphs(page)
        url = self.url(article.path)
        published = article.published.astimezone(WIB)
        modified = (article.modified or article.published).astimezone(WIB)
        authors = article.authors or ["Tim Tribunnews"]
        ld = {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "mainEntityOfPage": {"@type": "WebPage", "@id": url},
            "headline": article.title,
            "description": article.lead,
            "url": url,
            "datePublished": published.isoformat(),
            "dateModified": modified.isoformat(),
            "author": [
                {"@type": "Person", "name": a, "url": self.url(f"/penulis/{slugify(a)}")}
                for a in authors
            ],
            "publisher": {
                "@type": "Organization",
                "name": SITE_NAME,
                "logo": {"@type": "ImageObject", "url": self.url("/asset/img/logo.png")},
            },
            "image": {"@type": "ImageObject", "url": self.url(f"/images/{article.id}.jpg")},
            "keywords": ", ".join(article.tags),
        }
        if article.live == "markup":
            count = self.live_entries.get(article.id, 0)
            ld["@type"] = "LiveBlogPosting"
            ld["coverageStartTime"] = published.isoformat()
            if article.live_ended is not None:
                ld["coverageEndTime"] = article.live_ended.astimezone(WIB).isoformat()
            ld["liveBlogUpdate"] = [
                {"@type": "BlogPosting", "headline": entry.split(":", 1)[0], "articleBody": entry}
                for entry in _live_entries(article, count)
            ]
        breadcrumb = {
            "@context": "https://schema.org",
            "@type": "BreadcrumbList",
            "itemListElement": [
                {"@type": "ListItem", "position": 1, "name": "Home", "item": self.url("/")},
                {
                    "@type": "ListItem",
                    "position": 2,
                    "name": article.section.title(),
                    "item": self.url(f"/{article.section}"),
                },
            ],
        }
        extra = (
            f'<meta name="description" content="{_e(article.lead)}">\n'
            f'<meta property="og:type" content="article">\n'
            f'<meta property="og:title" content="{_e(article.title)} - Tribunnews.com">\n'
            f'<meta property="og:description" content="{_e(article.lead)}">\n'
            f'<meta property="og:url" content="{_e(url)}">\n'
            f'<meta property="og:image" content="{_e(self.url(f"/images/{article.id}.jpg"))}">\n'
            f'<meta property="article:published_time" content="{published.isoformat()}">\n'
            f'<link rel="canonical" href="{_e(url)}">\n'
            f'<script type="application/ld+json">{_json_ld(ld)}</script>\n'
            f'<script type="application/ld+json">{_json_ld(breadcrumb)}</script>\n'
        )
        rng = self.rng("article", article.id)
        views = rng.randint(800, 90000) + 137 * self.noise
        views_text = f"{views:,}".replace(",", ".")
        credit = rng.choice(_CREDITS)
        parts: list[str] = []
        if article.summary and page <= 1:
            points = "".join(f"<li>{_e(s)}</li>" for s in article.summary)
            parts.append(
                '<blockquote class="summary-article"><strong>Ringkasan Berita:</strong>'
                f"<ul>{points}</ul></blockquote>\n"
            )
        for i, text in enumerate(paragraphs):
            if i == 0 and page <= 1:
                parts.append(f"<p><strong>TRIBUNNEWS.COM</strong> - {_e(text)}</p>\n")
            else:
                parts.append(f"<p>{_e(text)}</p>\n")
            if i in (2, 9) and i < len(paragraphs) - 1:
                parts.append(self.baca_juga(article, i))
            if i == 5 and i < len(paragraphs) - 1:
                parts.append(
                    f'<div class="ads ads-mid" id="{self.ad_slot("mid", article.id)}-1">'
                    f'<script nonce="{self.nonce("ad", article.id)}">googletag.cmd.push('
                    "function(){googletag.display('ads-mid');});</script></div>\n"
                )
        if article.pages > 1 and page != 0:
            numbers = "".join(
                f'<a href="{_e(url if n == 1 else f"{url}?page={n}")}"'
                f"{_ACTIVE if n == page else ''}>{n}</a>"
                for n in range(1, article.pages + 1)
            )
            after = (
                f'<a class="next" href="{_e(url)}?page={page + 1}">Selanjutnya</a>'
                if page < article.pages
                else ""
            )
            parts.append(
                '<div class="paging">'
                f'<span class="paging-info">Halaman {page}/{article.pages}</span>'
                f'{numbers}{after}<a class="all" href="{_e(url)}?page=all">Tampilkan Semua</a>'
                "</div>\n"
            )
        author_links = ", ".join(f'<a href="/penulis/{slugify(a)}">{_e(a)}</a>' for a in authors)
        recommended = self.rng("rekomendasi", article.id).sample(_RECOMMENDED, 4)
        rec_items = "".join(
            f'<li><a href="{_e(self.url(self.fake_path(s, t, "r")))}">{_e(t)}</a></li>'
            for s, t in recommended
        )
        tags = "".join(f'<a href="/tag/{slugify(t)}">{_e(t)}</a> ' for t in article.tags)
        topics = [t for t in self.state.topics.values() if article.id in t.article_ids]
        topic_link = (
            f'<div class="topic-tag"><a href="{_e(topics[0].path)}">'
            f"{_e(topics[0].title)}</a></div>\n"
            if topics
            else ""
        )
        body = (
            self.head(f"{article.title} - Tribunnews.com", extra)
            + '<body class="article">\n'
            + self.header()
            + '<div id="article" class="main">\n'
            f'<div class="breadcrumb"><a href="/">Home</a> » '
            f'<a href="/{_e(article.section)}">{_e(article.section.title())}</a></div>\n'
            f"{topic_link}"
            f'<h1 id="arttitle" class="f32 ln40 fbo">{_e(article.title)}</h1>\n'
            f'<div id="artsubtitle" class="sub-title">{_e(article.lead)}</div>\n'
            f'<div id="penulis">Penulis: {author_links}</div>\n'
            '<div id="editor">Editor: <a href="/penulis/muhammad-barir">Muhammad Barir</a></div>\n'
            f'<time class="grey">{_e(indonesian_datetime(published))}</time>\n'
            f'<div class="view-count"><span>Dibaca {views_text} kali</span></div>\n'
            '<figure class="imgfull">'
            f'<img src="/images/{article.id}.jpg" alt="{_e(article.title)}" '
            'width="640" height="360">'
            f"<figcaption>{_e(article.caption or article.title)} ({_e(credit)})</figcaption>"
            "</figure>\n"
            '<div class="side-article txt-article multi-fontsize">\n' + "".join(parts) + "</div>\n"
            f'<div class="tagcloud">{tags}</div>\n'
            '<div class="rekomendasi"><h3>Rekomendasi untuk Anda</h3>'
            f"<ul>{rec_items}</ul></div>\n"
            f'<div class="ads ads-bottom" id="{self.ad_slot("bottom", article.id)}-3"></div>\n'
            "</div>\n" + self.terkini() + self.footer()
        )
        return _Response(200, body.encode(), last_modified=article.changed_at)

    # -- WordPress-like pages -------------------------------------------------------------

    def wp_head(self, title: str, extra: str = "") -> str:
        return (
            '<!DOCTYPE html>\n<html lang="id-ID">\n<head>\n<meta charset="UTF-8">\n'
            f"<title>{_e(title)} – Kabar Ekonomi</title>\n{extra}"
            "<link rel='stylesheet' id='theme-css' href='/wp-content/themes/kabar/style.css' "
            "media='all'>\n</head>\n"
        )

    def wp_chrome_top(self, body_class: str) -> str:
        pick = self.rng("wp-featured").choice(_TRENDING)
        return (
            f'<body class="{body_class}">\n<a class="skip-link screen-reader-text" '
            'href="#content">Langsung ke konten</a>\n'
            '<header id="masthead" class="site-header">\n'
            '<div class="site-branding"><p class="site-title"><a href="/" rel="home">'
            "Kabar Ekonomi</a></p></div>\n"
            '<nav id="site-navigation" class="main-navigation"><ul id="primary-menu" class="menu">'
            '<li><a href="/">Beranda</a></li>'
            f'<li><a href="/category/{GENERIC_TOPIC}/">Ekonomi Digital</a></li>'
            '<li><a href="/tentang-kami/">Tentang Kami</a></li>'
            f'<li class="featured"><a href="{_e(self.url(self.fake_path(*pick, "w")))}">'
            f"Pilihan: {_e(pick[1])}</a></li>"
            "</ul></nav>\n</header>\n"
            '<div id="content" class="site-content">\n<div id="primary" class="content-area">\n'
            '<main id="main" class="site-main">\n'
        )

    def wp_sidebar_and_footer(self) -> str:
        recent = self.live_articles("wordpress")
        if recent:
            start = self.noise % len(recent)
            recent = recent[start:] + recent[:start]
        items = "".join(
            f'<li><a href="{_e(self.url(a.path))}">{_e(a.title)}</a></li>\n' for a in recent[:5]
        )
        return (
            "</main>\n</div>\n"
            '<aside id="secondary" class="widget-area">\n'
            '<section id="recent-posts-2" class="widget widget_recent_entries">'
            f'<h2 class="widget-title">Pos-pos Terbaru</h2>\n<ul>\n{items}</ul></section>\n'
            '<section class="widget newsletter-box"><h2 class="widget-title">Buletin</h2>'
            '<form method="post" action="/newsletter/">'
            f'<input type="hidden" name="_wpnonce" value="{self.nonce("wp-newsletter")[:10]}">'
            '<input type="email" name="email" placeholder="Alamat email">'
            '<button type="submit">Berlangganan</button></form></section>\n'
            "</aside>\n</div>\n"
            '<footer id="colophon" class="site-footer"><div class="site-info">'
            '<a href="/kebijakan-privasi-dan-ketentuan-penggunaan-situs/">Kebijakan Privasi</a> | '
            "© 2025 Kabar Ekonomi. Dibuat dengan WordPress.</div></footer>\n"
            f"<script id='wp-embed' nonce=\"{self.nonce('wp')}\">/* {self.noise} */</script>\n"
            "</body>\n</html>\n"
        )

    def wp_listing(self, topic: FixtureTopic, page: int) -> _Response:
        listed = self.listed(topic)
        pages = topic.page_count(len(listed))
        if page < 1 or page > pages:
            return self.not_found()
        chunk = listed[(page - 1) * topic.per_page : page * topic.per_page]
        entries = []
        for a in chunk:
            url = self.url(a.path)
            comments = self.rng("comments", a.id).randint(0, 40) + self.noise
            author = a.authors[0] if a.authors else "Redaksi"
            entries.append(
                f'<article id="post-{a.id}" class="post-{a.id} post type-post status-publish">\n'
                f'<header class="entry-header"><h2 class="entry-title"><a href="{_e(url)}" '
                f'rel="bookmark">{_e(a.title)}</a></h2>\n'
                '<div class="entry-meta"><span class="posted-on">Diposting pada '
                f'<a href="{_e(url)}" rel="bookmark"><time class="entry-date published" '
                f'datetime="{a.published.isoformat()}">{a.date:%d/%m/%Y}</time></a></span>'
                f'<span class="byline"> oleh <a class="url fn n" href="/author/{slugify(author)}/">'
                f"{_e(author)}</a></span></div></header>\n"
                f'<div class="entry-summary"><p>{_e(a.lead)} <a class="more-link" href="{_e(url)}">'
                "Baca selengkapnya</a></p></div>\n"
                f'<footer class="entry-footer"><span class="cat-links"><a href="{_e(topic.path)}" '
                f'rel="category tag">{_e(topic.title)}</a></span> <span class="comments-link">'
                f'<a href="{_e(url)}#comments">{comments} Komentar</a></span></footer>\n'
                "</article>\n"
            )
        nav = ""
        extra = f'<link rel="canonical" href="{_e(self.url(topic.page_path(page)))}">\n'
        if pages > 1:
            links = []
            if page > 1:
                links.append(
                    '<a class="prev page-numbers" '
                    f'href="{_e(self.url(topic.page_path(page - 1)))}">Sebelumnya</a>'
                )
                extra += f'<link rel="prev" href="{_e(self.url(topic.page_path(page - 1)))}">\n'
            for n in range(1, pages + 1):
                if n == page:
                    links.append(
                        f'<span aria-current="page" class="page-numbers current">{n}</span>'
                    )
                else:
                    links.append(
                        f'<a class="page-numbers" href="{_e(self.url(topic.page_path(n)))}">{n}</a>'
                    )
            if page < pages:
                links.append(
                    '<a class="next page-numbers" '
                    f'href="{_e(self.url(topic.page_path(page + 1)))}">Berikutnya</a>'
                )
                extra += f'<link rel="next" href="{_e(self.url(topic.page_path(page + 1)))}">\n'
            nav = (
                '<nav class="navigation pagination" aria-label="Pos"><div class="nav-links">'
                + "".join(links)
                + "</div></nav>\n"
            )
        body = (
            self.wp_head(f"{topic.title} Arsip", extra)
            + self.wp_chrome_top("archive category")
            + f'<header class="page-header"><h1 class="page-title">Kategori: {_e(topic.title)}'
            "</h1></header>\n" + "".join(entries) + nav + self.wp_sidebar_and_footer()
        )
        return _Response(200, body.encode(), last_modified=self.state.clock)

    def wp_article(self, article: FixtureArticle, page: int = 1) -> _Response:
        """``page`` > 1 is that page of a multi-page post (``{path}{page}/``)."""
        if page < 1 or page > max(1, article.pages):
            return self.not_found()
        url = self.url(article.path)
        page_url = url if page == 1 else f"{url}{page}/"
        published = article.published.astimezone(WIB)
        modified = (article.modified or article.published).astimezone(WIB)
        author = article.authors[0] if article.authors else "Redaksi"
        graph = {
            "@context": "https://schema.org",
            "@graph": [
                {
                    "@type": "Article",
                    "@id": f"{url}#article",
                    "isPartOf": {"@id": url},
                    "author": [{"@type": "Person", "name": a} for a in article.authors],
                    "headline": article.title,
                    "datePublished": published.isoformat(),
                    "dateModified": modified.isoformat(),
                    "mainEntityOfPage": {"@id": url},
                    "articleSection": ["Ekonomi Digital"],
                    "inLanguage": "id-ID",
                },
                {
                    "@type": "WebPage",
                    "@id": url,
                    "url": url,
                    "name": f"{article.title} – Kabar Ekonomi",
                    "description": article.lead,
                    "datePublished": published.isoformat(),
                    "dateModified": modified.isoformat(),
                },
            ],
        }
        # As an SEO plugin marks a post split with <!--nextpage-->: each page its own
        # canonical URL, rel=prev/next between them.
        neighbours = "".join(
            f'<link rel="{rel}" href="{_e(url if n == 1 else f"{url}{n}/")}">\n'
            for rel, n in (("prev", page - 1), ("next", page + 1))
            if 1 <= n <= article.pages
        )
        extra = (
            f'<meta name="description" content="{_e(article.lead)}">\n'
            f'<link rel="canonical" href="{_e(page_url)}">\n'
            f"{neighbours}"
            '<meta property="og:type" content="article">\n'
            f'<meta property="og:title" content="{_e(article.title)}">\n'
            f'<meta property="og:description" content="{_e(article.lead)}">\n'
            f'<meta property="og:url" content="{_e(page_url)}">\n'
            f'<meta property="article:published_time" content="{published.isoformat()}">\n'
            f'<meta property="article:modified_time" content="{modified.isoformat()}">\n'
            '<script type="application/ld+json" class="yoast-schema-graph">'
            f"{_json_ld(graph)}</script>\n"
        )
        rng = self.rng("wp", article.id)
        shares = "".join(
            f'<li class="share-{name}"><a rel="nofollow noopener noreferrer" '
            f'class="share-{name} sd-button" href="{_e(url)}?share={name}" target="_blank">'
            f'<span>{label}</span><span class="share-count">{rng.randint(0, 500) + self.noise}'
            "</span></a></li>"
            for name, label in (("facebook", "Facebook"), ("x", "X"), ("whatsapp", "WhatsApp"))
        )
        others = [a for a in self.live_articles("wordpress") if a.id != article.id]
        related_pool = [(self.url(a.path), a.title) for a in others] + [
            (self.url(self.fake_path("bisnis", t, "w")), t) for _s, t in _RECOMMENDED[:4]
        ]
        related = rng.sample(related_pool, min(3, len(related_pool)))
        related_html = "".join(
            f'<div class="jp-relatedposts-post"><h4 class="jp-relatedposts-post-title">'
            f'<a href="{_e(href)}">{_e(title)}</a></h4></div>'
            for href, title in related
        )
        comments_count = rng.randint(0, 40) + self.noise
        comments = "".join(
            f'<li class="comment"><article class="comment-body"><footer class="comment-meta">'
            f'<b class="fn">{_e(self.rng("c", article.id, k).choice(_COMMENTERS))}</b></footer>'
            f'<div class="comment-content"><p>{_e(self.rng("c", article.id, k).choice(_COMMENTS))}'
            "</p></div></article></li>"
            for k in range(2)
        )
        paragraphs = "".join(f"<p>{_e(p)}</p>\n" for p in article.page_paragraphs(page))
        if article.pages > 1:
            numbers = "".join(
                f'<span class="post-page-numbers current" aria-current="page">{n}</span>'
                if n == page
                else f'<a href="{_e(url if n == 1 else f"{url}{n}/")}" '
                f'class="post-page-numbers">{n}</a>'
                for n in range(1, article.pages + 1)
            )
            paragraphs += f'<div class="page-links">Halaman: {numbers}</div>\n'
        tags = ", ".join(
            f'<a href="/tag/{slugify(t)}/" rel="tag">{_e(t)}</a>' for t in article.tags
        )
        body = (
            self.wp_head(article.title, extra)
            + self.wp_chrome_top("post-template-default single single-post")
            + f'<article id="post-{article.id}" class="post-{article.id} post type-post '
            'status-publish format-standard">\n'
            f'<header class="entry-header"><h1 class="entry-title">{_e(article.title)}</h1>\n'
            '<div class="entry-meta"><span class="posted-on">Diposting pada <time '
            f'class="entry-date published" datetime="{published.isoformat()}">'
            f'{published:%d/%m/%Y}</time><time class="updated" '
            f'datetime="{modified.isoformat()}">{modified:%d/%m/%Y}</time></span>'
            f'<span class="byline"> oleh <span class="author vcard"><a class="url fn n" '
            f'href="/author/{slugify(author)}/">{_e(author)}</a></span></span></div>\n'
            "</header>\n"
            '<div class="entry-content">\n'
            + paragraphs
            + '<div class="sharedaddy sd-sharing-enabled"><h3 class="sd-title">Bagikan:</h3>'
            f"<ul>{shares}</ul></div>\n"
            '<div id="jp-relatedposts" class="jp-relatedposts">'
            '<h3 class="jp-relatedposts-headline">'
            f"<em>Terkait</em></h3>{related_html}</div>\n"
            "</div>\n"
            f'<footer class="entry-footer"><span class="tags-links">Tag: {tags}</span> '
            f'<span class="comments-link"><a href="{_e(url)}#comments">{comments_count} Komentar'
            "</a></span></footer>\n"
            "</article>\n"
            '<div class="newsletter-inline"><p>Dapatkan kabar ekonomi terbaru setiap pagi.</p>'
            '<form><input type="hidden" name="_wpnonce" '
            f'value="{self.nonce("wp-nl", article.id)[:10]}">'
            '<input type="email" name="email"></form></div>\n'
            f'<div id="comments" class="comments-area"><h2 class="comments-title">{comments_count} '
            f'tanggapan untuk “{_e(article.title)}”</h2><ol class="comment-list">{comments}</ol>'
            "</div>\n" + self.wp_sidebar_and_footer()
        )
        return _Response(200, body.encode(), last_modified=article.changed_at)

    # -- feeds and sitemaps --------------------------------------------------------------

    def rss(self, topic: FixtureTopic) -> _Response:
        articles = [a for a in self.listed(topic) if a.status == 200]
        items = "".join(
            "<item>\n"
            f"<title>{xml_escape(a.title)}</title>\n"
            f"<link>{xml_escape(self.url(a.path))}?utm_source=rss&amp;utm_medium=feed</link>\n"
            f'<guid isPermaLink="false">tribunnews-{a.id}</guid>\n'
            f"<description><![CDATA[<p>{_e(a.lead)}</p>]]></description>\n"
            f"<pubDate>{email.utils.format_datetime(a.published.astimezone(WIB))}</pubDate>\n"
            + "".join(f"<dc:creator>{xml_escape(x)}</dc:creator>\n" for x in a.authors)
            + f"<category>{xml_escape(a.section)}</category>\n"
            "</item>\n"
            for a in articles
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
            f"<title>{xml_escape(topic.title)} - Tribunnews.com</title>\n"
            f"<link>{xml_escape(self.url(topic.path))}</link>\n"
            f"<description>Berita terbaru {xml_escape(topic.title)}</description>\n"
            "<language>id</language>\n"
            f"<lastBuildDate>{email.utils.format_datetime(self.state.clock)}</lastBuildDate>\n"
            f'<atom:link href="{xml_escape(self.url(f"/rss/{topic.slug}.xml"))}" rel="self" '
            'type="application/rss+xml"/>\n'
            f"{items}</channel>\n</rss>\n"
        )
        return _Response(
            200,
            body.encode(),
            content_type="application/rss+xml; charset=UTF-8",
            last_modified=self.state.clock,
        )

    def atom(self, topic: FixtureTopic) -> _Response:
        articles = [a for a in self.listed(topic) if a.status == 200]
        entries = "".join(
            "<entry>\n"
            f'<title type="html">{xml_escape(_e(a.title))}</title>\n'
            f'<link rel="enclosure" type="image/jpeg" href="/images/{a.id}.jpg"/>\n'
            f'<link rel="alternate" type="text/html" href="{xml_escape(self.url(a.path))}"/>\n'
            f"<id>tag:tribunnews.com,2025:{a.id}</id>\n"
            f"<published>{a.published.isoformat()}</published>\n"
            f"<updated>{(a.modified or a.published).isoformat()}</updated>\n"
            + "".join(f"<author><name>{xml_escape(x)}</name></author>\n" for x in a.authors)
            + f"<summary>{xml_escape(a.lead)}</summary>\n"
            "</entry>\n"
            for a in articles
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            f'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="{xml_escape(self.base)}/">\n'
            f"<title>{xml_escape(topic.title)} - Tribunnews.com</title>\n"
            f'<link rel="self" href="{xml_escape(self.url(f"/atom/{topic.slug}.xml"))}"/>\n'
            f'<link rel="alternate" href="{xml_escape(self.url(topic.path))}"/>\n'
            f"<id>tag:tribunnews.com,2025:topic:{xml_escape(topic.slug)}</id>\n"
            f"<updated>{self.state.clock.isoformat()}</updated>\n"
            f"{entries}</feed>\n"
        )
        return _Response(
            200,
            body.encode(),
            content_type="application/atom+xml; charset=utf-8",
            last_modified=self.state.clock,
        )

    def sitemap_news(self) -> _Response:
        urls = "".join(
            "<url>\n"
            f"<loc>{xml_escape(self.url(a.path))}</loc>\n"
            "<news:news><news:publication><news:name>Tribunnews.com</news:name>"
            "<news:language>id</news:language></news:publication>\n"
            f"<news:publication_date>{a.published.isoformat()}</news:publication_date>\n"
            f"<news:title>{xml_escape(a.title)}</news:title>\n"
            f"<news:keywords>{xml_escape(', '.join(a.tags))}</news:keywords>\n"
            "</news:news>\n"
            f"<image:image><image:loc>{xml_escape(self.url(f'/images/{a.id}.jpg'))}</image:loc>"
            f"<image:title>Foto: {xml_escape(a.caption[:60] or a.title)}</image:title>"
            "</image:image>\n"
            f"<lastmod>{(a.modified or a.published).isoformat()}</lastmod>\n"
            "</url>\n"
            for a in self.live_articles()
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9" '
            'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">\n'
            f"{urls}</urlset>\n"
        )
        return _Response(
            200,
            body.encode(),
            content_type="application/xml; charset=UTF-8",
            last_modified=self.state.clock,
        )

    def sitemap_pages(self) -> _Response:
        paths = ["/", "/about", "/redaksi", "/pedoman-media-siber"]
        urls = "".join(f"<url><loc>{xml_escape(self.url(p))}</loc></url>\n" for p in paths)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{urls}</urlset>\n'
        )
        return _Response(200, body.encode(), content_type="application/xml; charset=UTF-8")

    def sitemap_index(self) -> _Response:
        children = "".join(
            f"<sitemap><loc>{xml_escape(self.url(p))}</loc>"
            f"<lastmod>{self.state.clock.isoformat()}</lastmod></sitemap>\n"
            for p in ("/sitemap-news.xml", "/sitemap-pages.xml")
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            f"{children}</sitemapindex>\n"
        )
        return _Response(200, body.encode(), content_type="application/xml; charset=UTF-8")

    def robots(self) -> _Response:
        if self.state.robots_txt is None:
            return _Response(404, b"Not found\n", content_type="text/plain; charset=utf-8")
        text = self.state.robots_txt.replace("{base_url}", self.base)
        return _Response(200, text.encode(), content_type="text/plain; charset=utf-8")

    # -- routing -----------------------------------------------------------------------------

    def route(self, path: str, query: dict[str, list[str]]) -> _Response:
        page_value = (query.get("page") or [""])[0]
        if path == "/":
            return self.home()
        if path == "/robots.txt":
            return self.robots()
        if path == "/sitemap.xml":
            return self.sitemap_index()
        if path == "/sitemap-news.xml":
            return self.sitemap_news()
        if path == "/sitemap-pages.xml":
            return self.sitemap_pages()
        if match := re.fullmatch(r"/topic/([\w-]+)/?", path):
            topic = self.state.topics.get(match.group(1))
            if topic is None or topic.layout == "wordpress":
                return self.not_found()
            page = int(page_value) if page_value.isdigit() else 1
            return self.topic_page(topic, page)
        if match := re.fullmatch(r"/category/([\w-]+)(?:/page/(\d+))?/?", path):
            topic = self.state.topics.get(match.group(1))
            if topic is None or topic.layout != "wordpress":
                return self.not_found()
            return self.wp_listing(topic, int(match.group(2) or 1))
        if match := re.fullmatch(r"/(rss|atom)/([\w-]+)\.xml", path):
            topic = self.state.topics.get(match.group(2))
            if topic is None:
                return self.not_found()
            return self.rss(topic) if match.group(1) == "rss" else self.atom(topic)
        article = self.find_article(path)
        page = 1
        if article is None and (split := re.fullmatch(r"(/.+?)/(\d+)/?", path)):
            # A later page of a WordPress post split into pages: {path}{page}/.
            article = self.find_article(split.group(1))
            if article is not None and article.layout != "wordpress":
                article = None
            page = int(split.group(2))
        if article is None:
            return self.not_found()
        if article.status in (404, 410):
            return self.not_found(int(article.status))
        if article.status == "redirect_home":
            return _Response(301, b"", headers={"Location": self.url("/")}, validators=False)
        if article.status == "redirect_topic":
            topics = [t for t in self.state.topics.values() if article.id in t.article_ids]
            target = topics[0].path if topics else "/"
            return _Response(302, b"", headers={"Location": self.url(target)}, validators=False)
        if article.layout == "wordpress":
            return self.wp_article(article, page)
        return self.tribun_article(article, page_value)

    def find_article(self, path: str) -> FixtureArticle | None:
        if "paths" not in self.state.cache:
            self.state.cache["paths"] = {
                a.path.rstrip("/"): a.id for a in self.state.articles.values()
            }
        article_id = self.state.cache["paths"].get(path.rstrip("/"))
        return None if article_id is None else self.state.articles.get(article_id)


# -- faults -----------------------------------------------------------------------------------


def _live_entries(article: FixtureArticle, count: int) -> list[str]:
    """The entries of a live article that has ``count`` of them, newest first."""
    return [
        f"Pembaruan {n}: {generated_paragraphs(f'live-{article.id}-{n}', 40)[0]}"
        for n in range(count, 0, -1)
    ]


def _bot_wall(code: int, service: str) -> _Response:
    """The challenge page a bot-protection service answers a crawler with."""
    if service == "cloudflare":
        page = (
            "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
            '<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1"></script>'
            "</body></html>"
        )
        headers = {"cf-mitigated": "challenge", "Server": "cloudflare"}
    elif service == "datadome":
        page = (
            '<html><body><script src="https://ct.captcha-delivery.com/c.js"></script></body></html>'
        )
        headers = {"X-DataDome": "protected"}
    else:  # a captcha of a service that does not name itself
        page = '<html><body><div class="g-recaptcha" data-sitekey="x"></div></body></html>'
        headers = {}
    return _Response(code, page.encode(), headers=headers, validators=False)


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xcc\x33\x33")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


_PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)

_CP1252_DEMO = (
    "<p>“Harga kopi di Café Crème naik menjadi €4,50,” kata André — pemiliknya.</p>\n"
    "<p>Rubrik ini memakai ejaan lama: naïve, façade, Zürich.</p>\n"
)


def _malform(body: bytes) -> bytes:
    """The page as careless templates serve it: optional end tags dropped, stray end tags,
    bytes that are no text in any encoding, an unclosed tag and a truncated end.

    Block structure (``div``, ``ul``, ``header``) is left alone, as browsers and lenient
    parsers need it to tell a listing from its sidebars.
    """
    out = re.sub(rb"</(?:p|li)>", b"", body)
    count = 0

    def garbage(match: re.Match[bytes]) -> bytes:
        nonlocal count
        count += 1
        return match.group(0) + (b"\x00\xff\xfe\x81\x9d" if count % 2 else b"\xc3\x28")

    out = re.sub(rb"</h3>|</a>", garbage, out)
    out = out.replace(b"</header>", b"</header></span></table>", 1)
    out = out.replace(b"<body", b"<!-- unclosed comment --><body", 1)
    out = re.sub(rb"<strong>", b"<strong><i>", out, count=1)
    out = out.replace(b"</body>\n</html>\n", b"")
    return out + b'\x00\x07<div class="tail'


# -- the server -------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    server_version = "fixture-news/1.0"
    timeout = 15

    def setup(self) -> None:
        super().setup()
        self.server.site._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.site._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    # -- answering ---------------------------------------------------------------------------

    def _serve(self, *, head: bool) -> None:
        site = self.server.site
        self.received_at = time.time()
        if site.latency:
            time.sleep(site.latency)  # a server (or a network) that takes its time
        site._reload_if_changed()
        target = self.path
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        fault = site._take_fault(target, parts.path)
        if fault is not None:
            if fault.kind == "hang":
                if site._stopping.wait(float(fault.opts.get("seconds", 30))):
                    self._reset(target)
                    return
            elif fault.kind == "reset":
                self._reset(target)
                return
            else:
                response = site._fault_response(fault, parts.path, query)
                if fault.kind == "huge":
                    self._send_huge(target, head, int(fault.opts.get("mb", 20)))
                    return
                self._send(target, response, head)
                return
        with site._lock:
            site._count_live_request(parts.path)
            response = _Renderer(site._state, site.base_url, site._live_entries).route(
                parts.path, query
            )
            send_etag = site._state.send_etag
            send_lm = site._state.send_last_modified
        if response.status == 200 and response.validators:
            etag = f'"{hashlib.sha256(response.body).hexdigest()[:32]}"' if send_etag else None
            last_modified = response.last_modified if send_lm else None
            if etag:
                response.headers["ETag"] = etag
            if last_modified is not None:
                response.headers["Last-Modified"] = _http_date(last_modified)
            response.headers["Cache-Control"] = "public, max-age=60"
            if self._not_modified(etag, last_modified):
                response = _Response(304, b"", headers=response.headers, validators=False)
        self._send(target, response, head)

    def _not_modified(self, etag: str | None, last_modified: datetime | None) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            if etag is None:
                return False
            tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
            return "*" in tags or etag in tags
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since and last_modified is not None:
            try:
                since = email.utils.parsedate_to_datetime(if_modified_since)
            except (TypeError, ValueError):
                return False
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            return last_modified.replace(microsecond=0) <= since
        return False

    def _send(self, target: str, response: _Response, head: bool) -> None:
        body = b"" if response.status == 304 else response.body
        self.send_response(response.status)
        if response.status != 304:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        sent = 0 if head else len(body)
        # Recorded before the client can see the answer, so a test that has its answer
        # also finds it in the log.
        self.server.site._record(
            self.command, target, response.status, self.headers, sent, self.received_at
        )
        self.end_headers()
        if sent:
            self.wfile.write(body)

    def _send_huge(self, target: str, head: bool, megabytes: int) -> None:
        site = self.server.site
        opening = (
            b'<!DOCTYPE html>\n<html lang="id"><head><meta charset="UTF-8">'
            b"<title>Halaman sangat besar</title></head><body>"
            b'<div class="side-article txt-article">\n'
        )
        closing = b"</div></body></html>\n"
        filler = (b"<p>" + b"Paragraf pengisi yang panjang sekali. " * 40 + b"</p>\n") * 40
        total = megabytes * 1024 * 1024
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(total))
        site._record(
            self.command, target, 200, self.headers, 0 if head else total, self.received_at
        )
        self.end_headers()
        sent = 0
        if not head:
            try:
                self.wfile.write(opening)
                sent = len(opening)
                while sent < total - len(closing) and not site._stopping.is_set():
                    piece = filler[: total - len(closing) - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
                if not site._stopping.is_set():
                    self.wfile.write(closing)
                    sent += len(closing)
            except OSError:
                pass

    def _reset(self, target: str) -> None:
        """Close the connection without a word: the client sees a reset."""
        self.server.site._record(self.command, target, 0, self.headers, 0, self.received_at)
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread: nothing leaks
    block_on_close = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], site: FixtureSite) -> None:
        self.site = site
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)) or (
            isinstance(error, OSError) and error.errno in (errno.EBADF, errno.ENOTCONN)
        ):
            return  # the client went away, or the answer was a deliberate reset
        super().handle_error(request, client_address)


def _file_signature(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class FixtureSite:
    """The local news site. See the module docstring for the URLs and the state file."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        start: bool = True,
        state_file: str | os.PathLike[str] | None = None,
        request_log: str | os.PathLike[str] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.latency = latency  # seconds each answer waits, like a distant server
        self._lock = threading.RLock()
        self._state = _State()
        self._host = host
        self._port = port
        self._state_file = Path(state_file) if state_file is not None else None
        self._state_signature: tuple[int, int, int] | None = None
        self._request_log = Path(request_log) if request_log is not None else None
        self._requests: list[FixtureRequest] = []
        # Entries of each live article, counted by the serving process (one per request).
        self._live_entries: dict[int, int] = {}
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._process: FixtureProcess | None = None
        self.base_url = ""
        if self._state_file is not None and self._state_file.exists():
            self._load_state_file()
        if start:
            self.start()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving on ``host:port`` in a background thread; sets ``base_url``."""
        if self._server is not None:
            return
        self._stopping.clear()
        self._server = _Server((self._host, self._port), self)
        host, port = self._server.socket.getsockname()[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"fixture-site-{port}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving: interrupt hanging answers, close connections, join every thread."""
        self._stopping.set()
        if self._process is not None:
            self._process.stop()
            self._process = None
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FixtureSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spawn(
        self,
        state_file: str | os.PathLike[str],
        *,
        port: int = 0,
        request_log: str | os.PathLike[str] | None = None,
        timeout: float = 20.0,
        latency: float = 0.0,
    ) -> FixtureProcess:
        """Serve this site's state from a separate process; this object then controls it.

        Writes the state to ``state_file``, starts ``python fixture_site.py`` on it, waits
        (up to ``timeout`` seconds) for its base URL and sets ``base_url``. Every later
        mutation of this object rewrites the state file; ``requests`` reads the request log
        (``request_log``, default beside the state file).
        """
        if self._server is not None:
            raise RuntimeError(
                "This FixtureSite already serves in this process; spawn() needs start=False."
            )
        self._state_file = Path(state_file)
        self._request_log = (
            Path(request_log)
            if request_log is not None
            else self._state_file.with_name(self._state_file.name + ".requests.jsonl")
        )
        self._request_log.write_text("")
        self._save_state_file()
        process = FixtureProcess.start(
            self._state_file,
            port=port,
            request_log=self._request_log,
            timeout=timeout,
            latency=latency,
        )
        self._process = process
        self.base_url = process.base_url
        return process

    # -- state file ------------------------------------------------------------------------------

    def state_json(self) -> str:
        with self._lock:
            return json.dumps(self._state.to_dict(), ensure_ascii=False)

    def _save_state_file(self) -> None:
        if self._state_file is None:
            return
        text = self.state_json()
        temporary = self._state_file.with_name(f".{self._state_file.name}.{os.getpid()}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, self._state_file)
        self._state_signature = _file_signature(self._state_file.stat())

    def _attach_state_file(self, path: str | os.PathLike[str] | None) -> None:
        if path is not None:
            self._state_file = Path(path)
            self._save_state_file()

    def _load_state_file(self) -> None:
        assert self._state_file is not None
        with self._state_file.open("rb") as handle:
            signature = _file_signature(os.fstat(handle.fileno()))
            data = json.loads(handle.read().decode("utf-8"))
        self._state = _State.from_dict(data)
        self._state_signature = signature

    def _reload_if_changed(self) -> None:
        if self._state_file is None:
            return
        try:
            signature = _file_signature(self._state_file.stat())
        except FileNotFoundError:
            return
        if signature == self._state_signature:
            return
        with self._lock:
            self._load_state_file()

    @contextlib.contextmanager
    def _mutating(self) -> Iterator[_State]:
        with self._lock:
            try:
                yield self._state
            finally:
                self._state.cache.clear()
            self._save_state_file()

    # -- requests ----------------------------------------------------------------------------

    def _record(
        self, method: str, target: str, status: int, headers: Any, sent: int, received: float
    ) -> None:
        record = FixtureRequest(
            method=method,
            path=target,
            status=status,
            headers=dict(headers.items()) if headers is not None else {},
            bytes_sent=sent,
            received_at=received,
            answered_at=time.time(),
        )
        with self._lock:
            self._requests.append(record)
            if self._request_log is not None:
                with self._request_log.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")

    @property
    def requests(self) -> list[FixtureRequest]:
        """Every request answered so far, oldest first (from the request log when spawned)."""
        with self._lock:
            if self._server is None and self._request_log is not None:
                if not self._request_log.exists():
                    return []
                lines = self._request_log.read_text(encoding="utf-8").splitlines()
                return [FixtureRequest(**json.loads(line)) for line in lines if line.strip()]
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            if self._request_log is not None and self._request_log.exists():
                self._request_log.write_text("")

    def requests_for(self, path: str) -> list[FixtureRequest]:
        """Requests whose path (without the query) is ``path``, or whose target is."""
        return [r for r in self.requests if path in (r.path, r.url_path)]

    # -- reading the state -----------------------------------------------------------------

    def article(self, article_id: int) -> FixtureArticle:
        """A copy of the article as the site now holds it."""
        with self._lock:
            return copy.deepcopy(self._article(article_id))

    def _article(self, article_id: int) -> FixtureArticle:
        try:
            return self._state.articles[article_id]
        except KeyError:
            raise KeyError(f"The fixture site has no article with id {article_id}") from None

    def _topic(self, slug: str) -> FixtureTopic:
        try:
            return self._state.topics[slug]
        except KeyError:
            raise KeyError(f"The fixture site has no topic {slug!r}") from None

    @property
    def articles(self) -> list[FixtureArticle]:
        with self._lock:
            return [copy.deepcopy(a) for a in self._state.articles.values()]

    @property
    def topics(self) -> list[str]:
        with self._lock:
            return list(self._state.topics)

    @property
    def noise_generation(self) -> int:
        return self._state.noise

    def listing_ids(self, topic: str) -> list[int]:
        """The ids a topic lists, in listing order (newest first)."""
        with self._lock:
            return list(self._topic(topic).article_ids)

    def listed_on_page(self, topic: str, page: int = 1) -> list[int]:
        with self._lock:
            t = self._topic(topic)
            ids = [i for i in t.article_ids if i in self._state.articles]
            return ids[(page - 1) * t.per_page : page * t.per_page]

    def page_count(self, topic: str) -> int:
        with self._lock:
            t = self._topic(topic)
            return t.page_count(len([i for i in t.article_ids if i in self._state.articles]))

    def _require_base(self) -> str:
        if not self.base_url:
            raise RuntimeError("The fixture site is not serving yet, so it has no base URL.")
        return self.base_url

    def article_path(self, article_id: int) -> str:
        with self._lock:
            return self._article(article_id).path

    def article_url(self, article_id: int, *, page: int | str | None = None) -> str:
        """The article's URL; ``page=2`` or ``page="all"`` for views of a multi-page one
        (a WordPress post has no view of the whole, and its page N is ``{url}{N}/``)."""
        url = self._require_base() + self.article_path(article_id)
        if page is not None and self._article(article_id).layout == "wordpress":
            return url if page == 1 else f"{url}{page}/"
        return url if page is None else f"{url}?page={page}"

    def listing_path(self, topic: str, page: int = 1) -> str:
        with self._lock:
            return self._topic(topic).page_path(page)

    def listing_url(self, topic: str, page: int = 1) -> str:
        return self._require_base() + self.listing_path(topic, page)

    def feed_url(self, topic: str, kind: str = "rss") -> str:
        if kind not in ("rss", "atom"):
            raise ValueError(f"A feed is 'rss' or 'atom', not {kind!r}")
        self._topic(topic)
        return f"{self._require_base()}/{kind}/{topic}.xml"

    def sitemap_url(self, kind: str = "news") -> str:
        paths = {
            "news": "/sitemap-news.xml",
            "index": "/sitemap.xml",
            "pages": "/sitemap-pages.xml",
        }
        return self._require_base() + paths[kind]

    @property
    def home_url(self) -> str:
        return self._require_base() + "/"

    # -- mutating the state ----------------------------------------------------------------

    def add_topic(
        self,
        slug: str,
        title: str | None = None,
        *,
        layout: str = "p2030",
        per_page: int = 20,
        description: str = "",
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"A topic layout is one of {LAYOUTS}, not {layout!r}")
        with self._mutating() as state:
            state.topics[slug] = FixtureTopic(
                slug=slug,
                title=title or slug.replace("-", " ").title(),
                per_page=per_page,
                layout=layout,
                description=description or f"Kumpulan berita terbaru seputar {title or slug}.",
            )

    def add_article(
        self,
        title: str | None = None,
        *,
        article_id: int | None = None,
        section: str | None = None,
        slug: str | None = None,
        lead: str | None = None,
        paragraphs: Sequence[str] | None = None,
        authors: Sequence[str] = ("Tim Tribunnews",),
        published: datetime | None = None,
        modified: datetime | None = None,
        topics: Sequence[str] | None = None,
        position: int = 0,
        url_shape: str = "dated",
        layout: str | None = None,
        pages: int = 1,
        caption: str = "",
        summary: Sequence[str] = (),
        tags: Sequence[str] = (),
        words: int = 650,
    ) -> FixtureArticle:
        """Add an article and list it at ``position`` (0: top) on ``topics``.

        ``topics=None`` lists it on the first topic the site has; missing text is generated
        from the id; ``published`` defaults to the next minute of the site's clock, so a new
        article is the newest. The layout follows the first topic's unless given.
        """
        with self._mutating() as state:
            new_id = article_id or max([7480100, *state.articles]) + 1
            if new_id in state.articles:
                raise ValueError(f"The fixture site already has an article with id {new_id}")
            topic_slugs = list(topics) if topics is not None else list(state.topics)[:1]
            for t in topic_slugs:
                self._topic(t)
            if layout is None:
                first = state.topics[topic_slugs[0]] if topic_slugs else None
                layout = (
                    "wordpress" if first is not None and first.layout == "wordpress" else "tribun"
                )
            title = title or generated_title(new_id)
            when = published or state.tick()
            if when.tzinfo is None:
                raise ValueError("An article's publication time needs a time zone")
            body = (
                list(paragraphs) if paragraphs is not None else generated_paragraphs(new_id, words)
            )
            default_section = _SECTIONS_BY_TOPIC.get(
                topic_slugs[0] if topic_slugs else "", "nasional"
            )
            article = FixtureArticle(
                id=new_id,
                section=section or default_section,
                slug=slug or slugify(title),
                title=title,
                lead=lead if lead is not None else body[0].split(". ")[0].rstrip(".") + ".",
                paragraphs=body,
                authors=list(authors),
                published=when,
                modified=modified,
                url_shape=url_shape,
                layout=layout,
                pages=pages,
                caption=caption,
                summary=list(summary),
                tags=list(tags),
                changed_at=modified or when,
            )
            state.clock = max(state.clock, article.changed_at or when)
            state.articles[new_id] = article
            for t in topic_slugs:
                ids = state.topics[t].article_ids
                ids.insert(min(position, len(ids)), new_id)
            return copy.deepcopy(article)

    def _changed(self, state: _State, article: FixtureArticle, touch_modified: bool) -> None:
        article.changed_at = state.tick(article.changed_at, article.modified, article.published)
        if touch_modified:
            article.modified = article.changed_at.astimezone(WIB)

    def edit_body(
        self,
        article_id: int,
        *,
        insert_sentence: str | None = None,
        after_paragraph: int | None = None,
        replace_paragraph: int | None = None,
        text: str | None = None,
        delete_paragraph: int | None = None,
        paragraphs: Sequence[str] | None = None,
        touch_modified: bool = True,
    ) -> FixtureArticle:
        """Edit the article's body, as an editor would.

        ``insert_sentence`` becomes a new paragraph after paragraph ``after_paragraph``
        (0-based; ``None`` appends it at the end); ``replace_paragraph=i, text=...`` rewrites
        one; ``delete_paragraph=i`` drops one; ``paragraphs`` replaces the whole body.
        ``touch_modified`` moves ``dateModified`` to the edit time, as most sites do.
        """
        with self._mutating() as state:
            article = self._article(article_id)
            body = list(article.paragraphs) if paragraphs is None else list(paragraphs)
            if insert_sentence is not None:
                where = len(body) if after_paragraph is None else after_paragraph + 1
                body.insert(where, insert_sentence)
            if replace_paragraph is not None:
                if text is None:
                    raise ValueError("replace_paragraph needs the new text in text=...")
                body[replace_paragraph] = text
            if delete_paragraph is not None:
                del body[delete_paragraph]
            article.paragraphs = body
            self._changed(state, article, touch_modified)
            return copy.deepcopy(article)

    def apply_seed_edit(self) -> FixtureArticle:
        """The reference edit: the White House statement and the disclaimer added."""
        return self.edit_body(SEED_ARTICLE_ID, paragraphs=SEED_PARAGRAPHS)

    def set_title(
        self, article_id: int, title: str, *, touch_modified: bool = True
    ) -> FixtureArticle:
        with self._mutating() as state:
            article = self._article(article_id)
            article.title = title
            self._changed(state, article, touch_modified)
            return copy.deepcopy(article)

    def set_lead(
        self, article_id: int, lead: str, *, touch_modified: bool = True
    ) -> FixtureArticle:
        with self._mutating() as state:
            article = self._article(article_id)
            article.lead = lead
            self._changed(state, article, touch_modified)
            return copy.deepcopy(article)

    def set_authors(
        self, article_id: int, authors: Sequence[str], *, touch_modified: bool = True
    ) -> FixtureArticle:
        with self._mutating() as state:
            article = self._article(article_id)
            article.authors = list(authors)
            self._changed(state, article, touch_modified)
            return copy.deepcopy(article)

    def set_status(self, article_id: int, status: int | str) -> None:
        """200, 404, 410, ``"redirect_home"`` (301 to ``/``) or ``"redirect_topic"`` (302)."""
        if status not in ARTICLE_STATUSES:
            raise ValueError(f"An article status is one of {ARTICLE_STATUSES}, not {status!r}")
        with self._mutating() as state:
            article = self._article(article_id)
            article.status = status
            article.changed_at = state.tick(article.changed_at)

    def set_live(self, article_id: int, live: str = "markup") -> None:
        """Make the article a live page that gains an entry at every request: ``"markup"``
        (JSON-LD LiveBlogPosting) or ``"plain"`` (no live markup at all)."""
        if live not in ("markup", "plain"):
            raise ValueError(f"A live page is 'markup' or 'plain', not {live!r}")
        with self._mutating() as state:
            article = self._article(article_id)
            article.live, article.live_ended = live, None
            article.changed_at = state.tick(article.changed_at)

    def end_live(self, article_id: int) -> None:
        """The live coverage of the article ends: no more entries (the markup says so)."""
        with self._mutating() as state:
            article = self._article(article_id)
            article.live_ended = state.tick(article.changed_at)
            article.changed_at = article.live_ended

    def live_entries(self, article_id: int) -> int:
        """How many entries the live article has now (in this process's server)."""
        with self._lock:
            return self._live_entries.get(article_id, 0)

    def _count_live_request(self, path: str) -> None:
        article = _Renderer(self._state, self.base_url).find_article(path)
        if article is not None and article.live and article.live_ended is None:
            self._live_entries[article.id] = self._live_entries.get(article.id, 0) + 1

    def remove_from_listing(self, topic: str, article_id: int) -> None:
        with self._mutating() as state:
            ids = self._topic(topic).article_ids
            if article_id in ids:
                ids.remove(article_id)
                state.tick()

    def add_to_listing(self, topic: str, article_id: int, position: int = 0) -> None:
        with self._mutating() as state:
            self._article(article_id)
            ids = self._topic(topic).article_ids
            if article_id in ids:
                ids.remove(article_id)
            ids.insert(min(position, len(ids)), article_id)
            state.tick()

    def set_listing(self, topic: str, article_ids: Sequence[int]) -> None:
        with self._mutating() as state:
            for article_id in article_ids:
                self._article(article_id)
            self._topic(topic).article_ids = list(article_ids)
            state.tick()

    def set_per_page(self, topic: str, per_page: int) -> None:
        with self._mutating() as state:
            self._topic(topic).per_page = per_page
            state.tick()

    def rotate_noise(self) -> None:
        """Change every noise element of every page; no article changes."""
        with self._mutating() as state:
            state.noise += 1

    def set_robots(self, text: str | None) -> None:
        """robots.txt text (``{base_url}`` is replaced when served); ``None`` answers 404."""
        with self._mutating() as state:
            state.robots_txt = text

    def set_validators(self, *, etag: bool = True, last_modified: bool = True) -> None:
        """Whether pages carry ETag and Last-Modified (and so can answer 304)."""
        with self._mutating() as state:
            state.send_etag = etag
            state.send_last_modified = last_modified

    def set_fault(self, path: str, kind: str, *, times: int | None = None, **opts: Any) -> None:
        """Make ``path`` misbehave; a path with a query matches only that exact target.

        Kinds and options: ``hang`` (``seconds=30``, then the normal answer), ``status``
        (``code=500``, ``retry_after=None``), ``redirect_loop``, ``redirect_home``, ``pdf``,
        ``image``, ``huge`` (``mb=20``), ``windows1252`` (the page encoded cp1252 and declared
        so in its ``<meta charset>``; ``header_charset=True`` says it in the Content-Type too;
        a path with no page gets a demo page with “ ” é €), ``malformed``, ``reset``,
        ``botwall`` (a bot-protection challenge page: ``code=403``, ``service="cloudflare"``,
        ``"datadome"`` or ``"captcha"``), ``redesign`` (an article page whose text a script
        fills in: its body container is empty, as after a redesign the profile does not know).
        ``times`` limits the fault to that many requests.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"A fault kind is one of {FAULT_KINDS}, not {kind!r}")
        with self._mutating() as state:
            state.faults[path] = Fault(kind=kind, opts=dict(opts), remaining=times)

    def clear_fault(self, path: str) -> None:
        with self._mutating() as state:
            state.faults.pop(path, None)

    def clear_faults(self) -> None:
        with self._mutating() as state:
            state.faults.clear()

    def _take_fault(self, target: str, path: str) -> Fault | None:
        with self._lock:
            faults = self._state.faults
            key = target if target in faults else path if path in faults else None
            if key is None and path.endswith("/") and path.rstrip("/") in faults:
                key = path.rstrip("/")
            if key is None:
                return None
            fault = faults[key]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del faults[key]
            return copy.deepcopy(fault)

    def _fault_response(self, fault: Fault, path: str, query: dict[str, list[str]]) -> _Response:
        kind, opts = fault.kind, fault.opts
        if kind == "status":
            code = int(opts.get("code", 500))
            headers = {}
            if opts.get("retry_after") is not None:
                headers["Retry-After"] = str(opts["retry_after"])
            page = (
                f"<html><body><h1>{code}</h1><p>Permintaan tidak dapat dilayani.</p></body></html>"
            )
            return _Response(code, page.encode(), headers=headers, validators=False)
        if kind == "botwall":
            return _bot_wall(int(opts.get("code", 403)), str(opts.get("service", "cloudflare")))
        if kind == "redirect_loop":
            target = path if query.get("loop") else f"{path}?loop=1"
            return _Response(
                302, b"", headers={"Location": self.base_url + target}, validators=False
            )
        if kind == "redirect_home":
            return _Response(301, b"", headers={"Location": self.base_url + "/"}, validators=False)
        if kind == "pdf":
            return _Response(200, _PDF, content_type="application/pdf", validators=False)
        if kind == "image":
            return _Response(200, _png(), content_type="image/png", validators=False)
        if kind == "huge":
            return _Response(200)  # streamed by the handler
        with self._lock:
            renderer = _Renderer(self._state, self.base_url)
            normal = renderer.route(path, query)
            if kind == "windows1252":
                if normal.status == 200 and normal.content_type.startswith("text/html"):
                    text = normal.body.decode("utf-8")
                else:
                    text = renderer.head("Halaman lama") + f"<body>{_CP1252_DEMO}</body></html>"
                text = text.replace('<meta charset="UTF-8">', '<meta charset="windows-1252">')
                content_type = (
                    "text/html; charset=windows-1252" if opts.get("header_charset") else "text/html"
                )
                return _Response(
                    200,
                    text.encode("cp1252", errors="xmlcharrefreplace"),
                    content_type=content_type,
                    validators=False,
                )
            if kind == "redesign":
                text = re.sub(
                    r'<div class="side-article txt-article[^"]*">.*?(?=<div class="tagcloud">)',
                    '<div class="side-article txt-article" id="app-body"></div>\n'
                    '<script src="/static/article-body.js"></script>\n',
                    normal.body.decode("utf-8"),
                    flags=re.DOTALL,
                )
                return _Response(normal.status, text.encode("utf-8"), validators=False)
            # malformed
            return _Response(normal.status, _malform(normal.body), validators=False)

    # -- ready-made sites ------------------------------------------------------------------

    @classmethod
    def reference_site(cls, **kwargs: Any) -> FixtureSite:
        """The reference scenario: the topic "Konflik Rusia Vs Ukraina" as Tribunnews.com lists it.

        Topic ``konflik-rusia-vs-ukraina`` (4 per page, 2 pages) lists six articles, newest
        first: the seed article (before its edit, ``SEED_ARTICLE_ID``), a two-page article
        (``MULTIPAGE_ARTICLE_ID``), one with “ ” é € in its text (``CP1252_ARTICLE_ID``) and
        three more, dated and numeric URLs mixed. Topic ``timnas-indonesia`` (older ``ul.lsi``
        layout) lists three sport articles, which also fill the "Berita Terkini" sidebars;
        topic ``ekonomi-digital`` is a WordPress-like category of three posts, two per page.
        ``kwargs`` go to the constructor; a ``state_file`` is overwritten with this state.
        """
        state_file = kwargs.pop("state_file", None)
        site = cls(**{**kwargs, "start": False})
        site.add_topic(
            REFERENCE_TOPIC,
            REFERENCE_TOPIC_TITLE,
            per_page=4,
            description="Berita terbaru seputar konflik Rusia dan Ukraina.",
        )
        site.add_topic(LSI_TOPIC, "Timnas Indonesia", layout="lsi", per_page=10)
        site.add_topic(GENERIC_TOPIC, "Ekonomi Digital", layout="wordpress", per_page=2)

        def at(day: int, hour: int, minute: int) -> datetime:
            return datetime(2025, 10, day, hour, minute, tzinfo=WIB)

        for article in _reference_articles():
            site.add_article(
                article["title"],
                article_id=article["id"],
                section="internasional",
                lead=article["lead"],
                paragraphs=article["paragraphs"],
                authors=article["authors"],
                published=at(*article["at"]),
                modified=at(*article["modified"]) if article.get("modified") else None,
                topics=[REFERENCE_TOPIC],
                url_shape=article["shape"],
                pages=article.get("pages", 1),
                caption=article["caption"],
                summary=article.get("summary", ()),
                tags=article["tags"],
            )
        site.set_listing(
            REFERENCE_TOPIC,
            sorted(
                site.listing_ids(REFERENCE_TOPIC),
                key=lambda i: site.article(i).published,
                reverse=True,
            ),
        )
        for n, (title, minute) in enumerate(
            (
                ("Timnas Indonesia Tiba di Jeddah, Langsung Gelar Latihan Ringan", 5),
                ("Pelatih Timnas Indonesia Panggil Tiga Pemain Baru Jelang Laga Penting", 25),
                ("Suporter Timnas Indonesia Diimbau Tertib Saat Laga Kandang", 45),
            )
        ):
            site.add_article(
                title,
                article_id=7480201 + n,
                section="sport",
                topics=[LSI_TOPIC],
                published=at(3, 15, minute),
                url_shape="numeric" if n % 2 else "dated",
                authors=("Abdul Majid",),
                tags=("Timnas Indonesia",),
                words=320,
            )
        for n, (title, day) in enumerate(
            (
                ("Transaksi QRIS Tumbuh Pesat di Kalangan Pedagang Pasar Tradisional", 1),
                ("Startup Logistik Lokal Raih Pendanaan Seri B untuk Ekspansi ke Timur", 2),
                ("Bank Digital Perketat Verifikasi Nasabah Setelah Maraknya Penipuan", 3),
            )
        ):
            site.add_article(
                title,
                article_id=7480301 + n,
                section="bisnis",
                topics=[GENERIC_TOPIC],
                published=at(day, 9, 30),
                authors=("Rini Kusuma",),
                tags=("Ekonomi Digital", "Fintech"),
                words=420,
            )
        site.set_listing(GENERIC_TOPIC, [7480303, 7480302, 7480301])
        site._attach_state_file(state_file)
        if kwargs.get("start", True):
            site.start()
        return site

    @classmethod
    def generate(
        cls,
        n_articles: int = 2000,
        *,
        topics: Sequence[str] = (REFERENCE_TOPIC, LSI_TOPIC, "ekonomi-bisnis", "politik-nasional"),
        per_page: int = 20,
        seed: int = 0,
        multipage_every: int = 25,
        newest: datetime | None = None,
        **kwargs: Any,
    ) -> FixtureSite:
        """A large deterministic site for benchmarks: ``n_articles`` articles of ~500–900 words.

        Article ``i`` is listed on ``topics[i % len(topics)]`` (every seventh on a second topic
        too), newest first, published 17 minutes after the one before, the newest at
        ``newest`` (by default 3 October 2025, 18:00 WIB); every ``multipage_every``-th
        article has two pages; URL shapes alternate. ``kwargs`` go to the constructor; a
        ``state_file`` is overwritten with this state.
        """
        state_file = kwargs.pop("state_file", None)
        site = cls(**{**kwargs, "start": False})
        for slug in topics:
            layout = "lsi" if slug == LSI_TOPIC else "p2030"
            title = REFERENCE_TOPIC_TITLE if slug == REFERENCE_TOPIC else None
            site.add_topic(slug, title, layout=layout, per_page=per_page)
        newest = newest or datetime(2025, 10, 3, 18, 0, tzinfo=WIB)
        rng = random.Random(f"generate:{seed}")
        with site._lock:
            state = site._state
            used_slugs: set[str] = set()
            for i in range(n_articles):
                article_id = 7500001 + i
                topic = topics[i % len(topics)]
                title = generated_title(f"{seed}:{i}")
                slug = slugify(title)
                if slug in used_slugs:
                    slug = f"{slug}-{i}"
                used_slugs.add(slug)
                paragraphs = generated_paragraphs(f"{seed}:{i}", rng.randint(500, 900))
                published = newest - timedelta(minutes=17 * i)
                section = _SECTIONS_BY_TOPIC.get(topic) or _FALLBACK_SECTIONS[i % 6]
                state.articles[article_id] = FixtureArticle(
                    id=article_id,
                    section=section,
                    slug=slug,
                    title=title,
                    lead=paragraphs[0].split(". ")[0].rstrip(".") + ".",
                    paragraphs=paragraphs,
                    authors=[_PEOPLE[i % len(_PEOPLE)][0]],
                    published=published,
                    url_shape="numeric" if i % 2 else "dated",
                    pages=2
                    if multipage_every and i % multipage_every == multipage_every - 1
                    else 1,
                    caption=f"Ilustrasi: {title}",
                    tags=[topic.replace("-", " ").title()],
                    changed_at=published,
                )
                state.topics[topic].article_ids.append(article_id)
                if i % 7 == 3 and len(topics) > 1:
                    state.topics[topics[(i + 1) % len(topics)]].article_ids.append(article_id)
            for t in state.topics.values():
                t.article_ids.sort(key=lambda a: state.articles[a].published, reverse=True)
            state.cache.clear()
        site._attach_state_file(state_file)
        if kwargs.get("start", True):
            site.start()
        return site


def _reference_articles() -> list[dict[str, Any]]:
    return [
        {
            "id": SEED_ARTICLE_ID,
            "title": SEED_TITLE,
            "lead": SEED_LEAD,
            "paragraphs": SEED_PARAGRAPHS_BEFORE_EDIT,
            "authors": ["Hasanudin Aco"],
            "at": (3, 12, 40),
            "shape": "dated",
            "caption": SEED_CAPTION,
            "summary": [
                "Mantan pejabat AS dan petinggi Kremlin menggelar pembicaraan rahasia.",
                "Diplomasi 'track 1.5' dipakai untuk memahami garis merah masing-masing pihak.",
            ],
            "tags": ["Rusia", "Ukraina", "Amerika Serikat", "Krimea"],
        },
        {
            "id": MULTIPAGE_ARTICLE_ID,
            "title": "Zelensky Minta Tambahan Sistem Pertahanan Udara Jelang Musim Dingin",
            "lead": (
                "Presiden Ukraina meminta sekutu Barat mempercepat pengiriman sistem pertahanan "
                "udara untuk melindungi jaringan listrik."
            ),
            "paragraphs": [
                "Presiden Ukraina Volodymyr Zelensky kembali meminta negara-negara sekutu untuk "
                "mempercepat pengiriman sistem pertahanan udara menjelang musim dingin.",
                "Menurut Zelensky, serangan rudal dan drone Rusia dalam beberapa pekan terakhir "
                "menyasar pembangkit listrik dan jaringan distribusi energi di berbagai kota.",
                "“Setiap sistem pertahanan udara yang datang lebih cepat berarti lebih banyak "
                "rumah yang tetap hangat,” kata Zelensky dalam pidato malamnya.",
                "Ia menyebut Ukraina membutuhkan setidaknya tujuh baterai tambahan untuk "
                "melindungi kota-kota besar, termasuk Kyiv, Kharkiv, dan Odesa.",
                "Sejumlah negara Eropa telah menyatakan kesediaan untuk mengirim bantuan, meski "
                "jadwal pengirimannya belum dipastikan.",
                "Jerman, misalnya, menjanjikan satu sistem tambahan yang dijadwalkan tiba "
                "sebelum akhir tahun.",
                "Sementara itu, operator jaringan listrik Ukraina memperingatkan kemungkinan "
                "pemadaman bergilir jika serangan terus berlanjut.",
                "Warga di beberapa wilayah timur sudah mulai menyiapkan generator dan persediaan "
                "bahan bakar.",
                "Pemerintah setempat juga membuka pusat penghangatan bagi warga yang rumahnya "
                "kehilangan aliran listrik.",
                "Para analis menilai musim dingin tahun ini akan menjadi ujian berat bagi "
                "ketahanan energi Ukraina.",
                "Mereka menekankan pentingnya perbaikan cepat infrastruktur yang rusak selain "
                "penambahan sistem pertahanan.",
                "Hingga Jumat malam, Kremlin belum menanggapi pernyataan Zelensky tersebut.",
            ],
            "authors": ["Whiesa Daniswara"],
            "at": (3, 10, 15),
            "shape": "numeric",
            "pages": 2,
            "caption": "Presiden Ukraina Volodymyr Zelensky berbicara di Kyiv.",
            "tags": ["Volodymyr Zelensky", "Ukraina"],
        },
        {
            "id": 7480103,
            "title": "Rusia Klaim Kuasai Desa di Donetsk, Ukraina Bantah",
            "lead": "Kementerian Pertahanan Rusia mengklaim pasukannya menguasai sebuah desa di "
            "wilayah Donetsk; militer Ukraina membantahnya.",
            "paragraphs": [
                "Kementerian Pertahanan Rusia mengklaim pasukannya telah menguasai sebuah desa di "
                "wilayah Donetsk, Ukraina timur.",
                "Klaim tersebut disampaikan dalam pernyataan harian kementerian pada Jumat pagi.",
                "Militer Ukraina membantah klaim itu dan menyebut pertempuran masih berlangsung "
                "di pinggiran desa.",
                "“Pasukan kami tetap memegang posisi dan memukul mundur beberapa serangan,” kata "
                "juru bicara komando wilayah timur.",
                "Klaim kedua pihak belum dapat diverifikasi secara independen.",
                "Donetsk menjadi salah satu medan pertempuran paling sengit sejak invasi skala "
                "penuh dimulai pada Februari 2022.",
            ],
            "authors": ["Nuryanti", "Tiara Shelavie"],
            "at": (3, 9, 5),
            "modified": (3, 11, 0),
            "shape": "dated",
            "caption": "Asap membubung di wilayah Donetsk.",
            "tags": ["Rusia", "Donetsk"],
        },
        {
            "id": CP1252_ARTICLE_ID,
            "title": "Harga Gandum Dunia Naik Usai Serangan ke Pelabuhan Odesa",
            "lead": "Harga gandum di bursa Eropa naik tajam setelah serangan ke fasilitas "
            "pelabuhan Odesa.",
            "paragraphs": [
                "Harga gandum di bursa Eropa naik tajam setelah serangan drone merusak fasilitas "
                "penyimpanan di pelabuhan Odesa.",
                "“Kami membayar €245 per ton pagi ini, naik hampir 12 persen,” kata André Müller, "
                "pedagang biji-bijian di Paris.",
                "Kenaikan itu juga terasa di kafe dan toko roti, termasuk Café Crème di pusat "
                "kota, yang menaikkan harga croissant menjadi €2,10.",
                "Ukraina merupakan salah satu pengekspor gandum terbesar di dunia, dan Odesa "
                "adalah pintu utama ekspornya.",
                "Para analis memperkirakan harga akan tetap tinggi selama jalur pelayaran di Laut "
                "Hitam belum aman.",
            ],
            "authors": ["Febri Prasetyo"],
            "at": (2, 20, 30),
            "shape": "numeric",
            "caption": "Kapal pengangkut gandum bersandar di pelabuhan Odesa.",
            "tags": ["Gandum", "Odesa"],
        },
        {
            "id": 7480105,
            "title": "NATO Gelar Latihan Gabungan di Laut Baltik",
            "lead": "Aliansi NATO memulai latihan gabungan di Laut Baltik yang melibatkan belasan "
            "kapal perang.",
            "paragraphs": [
                "Aliansi NATO memulai latihan gabungan di Laut Baltik yang melibatkan belasan "
                "kapal perang dan puluhan pesawat.",
                "Latihan tahunan itu diikuti oleh 14 negara anggota dan berlangsung selama dua "
                "pekan.",
                "Juru bicara NATO menyebut latihan ini bersifat defensif dan tidak ditujukan "
                "kepada negara mana pun.",
                "Rusia menyebut latihan tersebut sebagai provokasi dan berjanji memantau "
                "pergerakan kapal di kawasan itu.",
            ],
            "authors": ["Hasanudin Aco"],
            "at": (2, 14, 0),
            "shape": "dated",
            "caption": "Kapal perang NATO berlayar di Laut Baltik.",
            "tags": ["NATO", "Laut Baltik"],
        },
        {
            "id": 7480106,
            "title": "Ribuan Warga Kharkiv Mengungsi Akibat Serangan Drone",
            "lead": "Ribuan warga Kharkiv meninggalkan rumah mereka setelah serangan drone "
            "beruntun selama tiga malam.",
            "paragraphs": [
                "Ribuan warga Kharkiv meninggalkan rumah mereka setelah serangan drone beruntun "
                "selama tiga malam berturut-turut.",
                "Pemerintah kota menyiapkan bus evakuasi dari pusat kota menuju wilayah barat.",
                "“Kami tidak bisa tidur, setiap malam sirene berbunyi,” kata Olena, seorang guru "
                "yang mengungsi bersama dua anaknya.",
                "Wali Kota Kharkiv menyebut sedikitnya 40 bangunan tempat tinggal rusak.",
                "Organisasi kemanusiaan mengirim tambahan selimut dan makanan ke tempat "
                "penampungan sementara.",
            ],
            "authors": ["Tiara Shelavie"],
            "at": (1, 22, 10),
            "shape": "dated",
            "caption": "Warga Kharkiv menunggu bus evakuasi.",
            "tags": ["Kharkiv", "Ukraina"],
        },
    ]


class FixtureProcess:
    """A fixture site served by a separate ``python fixture_site.py`` process."""

    def __init__(self, popen: subprocess.Popen[bytes], base_url: str) -> None:
        self.popen = popen
        self.base_url = base_url

    @property
    def pid(self) -> int:
        return self.popen.pid

    @classmethod
    def start(
        cls,
        state_file: Path,
        *,
        port: int = 0,
        request_log: Path | None = None,
        timeout: float = 20.0,
        latency: float = 0.0,
    ) -> FixtureProcess:
        command = [sys.executable, str(Path(__file__).resolve()), "--port", str(port)]
        if latency:
            command += ["--latency", str(latency)]
        command += ["--state-file", str(state_file)]
        if request_log is not None:
            command += ["--request-log", str(request_log)]
        stderr_path = state_file.with_name(state_file.name + ".stderr")
        with stderr_path.open("wb") as stderr:
            popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
        line = _readline(popen, timeout)
        if not line.startswith("http://"):
            popen.kill()
            popen.wait(timeout=10)
            detail = stderr_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"The fixture site process did not print its URL within {timeout} s "
                f"(got {line!r}); its stderr ({stderr_path}):\n{detail}"
            )
        return cls(popen, line)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait up to ``timeout`` seconds (SIGKILL after that); the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return self.popen.returncode

    def __enter__(self) -> FixtureProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _readline(popen: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line of the process's stdout, or ``""`` after ``timeout`` seconds."""
    result: list[bytes] = []

    def read() -> None:
        assert popen.stdout is not None
        result.append(popen.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].decode().strip() if result else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--articles", type=int, help="serve generate(N) instead of reference_site()"
    )
    parser.add_argument("--state-file", help="JSON state, re-read when it changes")
    parser.add_argument("--request-log", help="append every request here as a JSON line")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds each answer waits (default 0)"
    )
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "start": False,
        "request_log": args.request_log,
        "latency": args.latency,
    }
    state_file = Path(args.state_file) if args.state_file else None
    if state_file is not None and state_file.exists():
        site = FixtureSite(state_file=state_file, **options)
    else:
        if args.articles is not None:
            site = FixtureSite.generate(args.articles, state_file=state_file, **options)
        else:
            site = FixtureSite.reference_site(state_file=state_file, **options)
    site.start()
    print(site.base_url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        site.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
