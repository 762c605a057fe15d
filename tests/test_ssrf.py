"""A crawl reaches only public addresses and the sources' own host and port.

A watched site (a local server standing in for a public news site) lists articles that
redirect elsewhere: to another local port serving internal text, to the cloud metadata
address, to a ``file:`` URL, to ``localhost`` on a port nobody configured. Each is refused
with its reason, nothing of it is stored, and the internal server gets no request; with
``allow_private_addresses = true`` the intranet port is fetched. The address classifier is
tested over many IPv4 and IPv6 forms.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from fixture_site import SEED_ARTICLE_ID, FixtureSite
from scrapy import Request
from test_crawl_e2e import Crawl, write_config
from test_crawl_faults import failures_of, recorded_urls

from crawler.addresses import (
    LINK_LOCAL,
    LOOPBACK,
    MULTICAST,
    PRIVATE,
    RESERVED,
    SHARED,
    UNSPECIFIED,
    AddressGuardMiddleware,
    AddressPolicy,
    AddressRefused,
    address_kind,
)

HINT = "(set allow_private_addresses = true on the topic for an intranet site)"


class RedirectingSite:
    """A news site on 127.0.0.1 whose feed lists articles that redirect: ``/a/<name>``
    answers 302 to ``targets[name]``."""

    def __init__(self, targets: dict[str, str]) -> None:
        self.targets = targets
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/feed.xml":
                    body = site.feed().encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                name = self.path.removeprefix("/a/")
                if self.path.startswith("/a/") and name in site.targets:
                    self.send_response(302)
                    self.send_header("Location", site.targets[name])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def article_url(self, name: str) -> str:
        return f"{self.base_url}/a/{name}"

    def feed(self) -> str:
        items = "".join(
            f"<item><title>Artikel {escape(name)}</title>"
            f"<link>{escape(self.article_url(name))}</link></item>"
            for name in self.targets
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>Berita</title><link>{self.base_url}/</link>{items}</channel></rss>"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[FixtureSite]:
    """An internal service on another local port: its article text must never be read."""
    with FixtureSite.reference_site() as site:
        site.start()
        yield site


def crawl_of(site: RedirectingSite, db_url: str, tmp_path: Path, **topic: str) -> Crawl:
    config = write_config(
        tmp_path / "topicwatch.toml", db_url, [f"{site.base_url}/feed.xml"], **topic
    )
    return Crawl(config, db_url)


def test_redirects_to_internal_addresses_and_other_schemes_are_refused(
    internal: FixtureSite, db_url: str, tmp_path: Path
) -> None:
    internal_article = internal.article_url(SEED_ARTICLE_ID)
    internal_port = internal_article.split(":")[2].split("/")[0]
    site = RedirectingSite(
        {
            "internal": internal_article,
            "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "passwd": "file:///etc/passwd",
            "named": internal_article.replace("127.0.0.1", "localhost"),
        }
    )
    crawl = crawl_of(site, db_url, tmp_path)
    try:
        run, changes, log = crawl.run()
        failures = failures_of(crawl, run.id)
        assert failures[site.article_url("internal")] == (
            f"refused: redirect to {internal_article}, which resolves to 127.0.0.1, "
            f"a loopback address {HINT}"
        )
        assert failures[site.article_url("metadata")] == (
            "refused: redirect to http://169.254.169.254/latest/meta-data/iam/"
            "security-credentials/, which resolves to 169.254.169.254, a link-local address"
        )
        assert failures[site.article_url("passwd")] == "redirect to a file: URL refused"
        # A host name is checked on what it resolves to, when the connection is made.
        assert failures[site.article_url("named")] == (
            f"refused: redirect to http://localhost:{internal_port}"
            f"{internal_article.split(internal_port)[1]}, which resolves to 127.0.0.1, "
            f"a loopback address {HINT}"
        )
        assert f"url={site.article_url('internal')} reason=refused: redirect to" in log
        assert run.status == "partial"
        assert run.errors == 4
        assert changes == []
        assert recorded_urls(crawl) == set()
        # Nothing reached the internal service, not even a robots.txt request.
        assert internal.requests == []
    finally:
        crawl.close()
        site.close()


def test_allow_private_addresses_lets_a_topic_reach_its_intranet(
    internal: FixtureSite, db_url: str, tmp_path: Path
) -> None:
    internal_article = internal.article_url(SEED_ARTICLE_ID)
    site = RedirectingSite(
        {
            "internal": internal_article,
            "metadata": "http://169.254.169.254/latest/meta-data/",
        }
    )
    crawl = crawl_of(site, db_url, tmp_path, allow_private_addresses="true")
    try:
        run, changes, _ = crawl.run()
        assert [c.kind for c in changes] == ["new"]
        assert recorded_urls(crawl) == {internal_article}
        assert internal.requests_for(internal.article_path(SEED_ARTICLE_ID))
        # Link-local addresses (cloud metadata services) stay out of reach even so.
        failures = failures_of(crawl, run.id)
        assert failures == {
            site.article_url("metadata"): "refused: redirect to http://169.254.169.254/latest/"
            "meta-data/, which resolves to 169.254.169.254, a link-local address"
        }
    finally:
        crawl.close()
        site.close()


def test_a_refused_ip_address_is_refused_before_the_request_is_sent() -> None:
    """The middleware raises in ``process_request``: the downloader never gets the request,
    so no connection is even attempted (no packet leaves for 169.254.169.254)."""
    guard = AddressGuardMiddleware(
        AddressPolicy.for_topic(["http://127.0.0.1:8123/topic"], allow_private=False)
    )
    with pytest.raises(AddressRefused, match=r"169\.254\.169\.254, a link-local address"):
        guard.process_request(Request("http://169.254.169.254/latest/meta-data/"))
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1, a loopback address"):
        guard.process_request(Request("http://127.0.0.1:9/internal"))
    with pytest.raises(AddressRefused, match=r"\[::ffff:10\.0\.0\.1\]"):
        guard.process_request(Request("http://[::ffff:10.0.0.1]/"))
    # The source's own host and port, public addresses and host names pass (names are
    # checked by the resolver when connecting).
    for allowed in (
        "http://127.0.0.1:8123/news/1",
        "http://93.184.215.14/",
        "https://news.example.org/",
    ):
        guard.process_request(Request(allowed))


def test_the_refusal_reason_names_the_url_and_the_setting() -> None:
    policy = AddressPolicy.for_topic(["http://127.0.0.1:8123/"], allow_private=False)
    assert policy.refusal("http://127.0.0.1:9/internal") == (
        f"refused: http://127.0.0.1:9/internal resolves to 127.0.0.1, a loopback address {HINT}"
    )
    assert policy.refusal("ftp://example.org/x") == "a ftp: URL refused"
    assert policy.refusal("file:///etc/passwd", redirect=True) == "redirect to a file: URL refused"
    assert policy.refusal("http://127.0.0.1:8123/any/page") is None
    assert policy.refusal("http://127.0.0.1:8124/") is not None
    intranet = AddressPolicy.for_topic(["http://127.0.0.1:8123/"], allow_private=True)
    assert intranet.refusal("http://10.1.2.3/") is None
    assert intranet.refusal("http://127.0.0.1:9/") is None
    assert intranet.refusal("http://169.254.169.254/") is not None
    assert intranet.refusal("http://224.0.0.1/") is not None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("93.184.215.14", None),
        ("1.1.1.1", None),
        ("127.0.0.1", LOOPBACK),
        ("127.255.255.254", LOOPBACK),
        ("10.0.0.1", PRIVATE),
        ("172.16.0.1", PRIVATE),
        ("172.31.255.255", PRIVATE),
        ("172.32.0.1", None),
        ("192.168.1.1", PRIVATE),
        ("100.64.0.1", SHARED),
        ("100.127.255.255", SHARED),
        ("100.128.0.1", None),
        ("169.254.169.254", LINK_LOCAL),
        ("224.0.0.1", MULTICAST),
        ("239.255.255.250", MULTICAST),
        ("0.0.0.0", UNSPECIFIED),
        ("0.1.2.3", UNSPECIFIED),
        ("255.255.255.255", RESERVED),
        ("240.0.0.1", RESERVED),
        ("192.0.2.1", RESERVED),  # documentation
        ("198.18.0.1", RESERVED),  # benchmarking
        ("2606:4700:4700::1111", None),
        ("2001:4860:4860::8888", None),
        ("::1", LOOPBACK),
        ("::", UNSPECIFIED),
        ("fe80::1", LINK_LOCAL),
        ("fe80::1%eth0", LINK_LOCAL),
        ("fc00::1", PRIVATE),
        ("fd12:3456:789a::1", PRIVATE),
        ("fec0::1", PRIVATE),  # site-local (deprecated)
        ("ff02::1", MULTICAST),
        ("2001:db8::1", RESERVED),  # documentation
        ("::ffff:127.0.0.1", LOOPBACK),  # IPv4-mapped
        ("::ffff:7f00:1", LOOPBACK),
        ("::ffff:169.254.169.254", LINK_LOCAL),
        ("::ffff:10.0.0.1", PRIVATE),
        ("::ffff:8.8.8.8", None),
        ("::127.0.0.1", LOOPBACK),  # IPv4-compatible
        ("::10.0.0.1", PRIVATE),
        ("2002:7f00:1::", LOOPBACK),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", LINK_LOCAL),  # 6to4 of 169.254.169.254
        ("64:ff9b::a9fe:a9fe", LINK_LOCAL),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", None),
        ("not an address", RESERVED),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(address) == kind


def test_a_source_given_by_host_name_allows_that_host_and_port_only() -> None:
    policy = AddressPolicy.for_topic(["http://LocalHost.:8123/topic"], allow_private=False)
    assert policy.is_source("localhost", 8123)
    assert not policy.is_source("localhost", 8124)
    assert policy.is_source("localhost", 0)  # a bare lookup, port unknown
    https = AddressPolicy.for_topic(["https://intranet.example/"], allow_private=False)
    assert https.is_source("intranet.example", 443)
    assert not https.is_source("intranet.example", 80)
