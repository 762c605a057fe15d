"""Which addresses a crawl may connect to: public ones, and the sources the operator named.

A watched page is untrusted input: its links and its redirects may point at the machine
topicwatch runs on or at its network (a database's admin page, a cloud metadata service). A
crawl therefore connects only to public addresses, or to the very host and port of one of
the topic's ``sources``; a topic with ``allow_private_addresses`` may also reach private,
loopback and shared (CGNAT) addresses, for intranet sites. Link-local (where cloud metadata
services answer), multicast, unspecified and reserved addresses are never reached, and only
http and https URLs are fetched.

Two parts enforce it, both reading the same :class:`AddressPolicy` from the crawl's
settings:

- :class:`AddressGuardMiddleware` (a downloader middleware, so redirects and robots.txt
  requests pass it too) refuses other schemes, and hosts written as IP addresses, before a
  request is sent; it also names a redirect to a ``file:``/``ftp:``/``data:`` URL.
- :class:`GuardedResolver` (Scrapy's ``TWISTED_DNS_RESOLVER``) checks every address a host
  name resolves to when the connection is made, so a name that resolves to a public address
  once and to a private one later (DNS rebinding) gets no further.

A refusal fails the request with :class:`AddressRefused`, whose message is the reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import CannotResolveHostError, IgnoreRequest
from scrapy.http import Response
from scrapy.resolver import CachingThreadedResolver, dnscache
from scrapy.settings import BaseSettings
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IResolutionReceiver,
)
from zope.interface import implementer  # type: ignore[import-untyped]

# The Scrapy settings the policy is read from (set by crawler.settings.scrapy_settings).
SOURCES_SETTING = "TOPICWATCH_SOURCES"
ALLOW_PRIVATE_SETTING = "TOPICWATCH_ALLOW_PRIVATE_ADDRESSES"

WEB_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = (301, 302, 303, 307, 308)

LOOPBACK = "a loopback address"
PRIVATE = "a private address"
SHARED = "a shared (CGNAT) address"
LINK_LOCAL = "a link-local address"
MULTICAST = "a multicast address"
UNSPECIFIED = "an unspecified address"
RESERVED = "a reserved address"
# What allow_private_addresses lets a topic reach; the other kinds stay refused.
INTRANET_KINDS = frozenset({LOOPBACK, PRIVATE, SHARED})
INTRANET_HINT = "set allow_private_addresses = true on the topic for an intranet site"

_RFC1918 = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRefused(IgnoreRequest):
    """A request refused because of where it goes; the message says why."""


def address_kind(address: str) -> str | None:
    """What kind of non-public address ``address`` (an IPv4 or IPv6 address) is, as a phrase
    ("a loopback address"); None when it is public. An IPv6 address that carries an IPv4
    address (mapped, compatible, 6to4, NAT64) is what the IPv4 address is; anything that is
    not an address is reserved."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return RESERVED
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return _ipv4_kind(embedded)
        return _ipv6_kind(ip)
    return _ipv4_kind(ip)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    value = int(ip)
    if value >> 32 == 0 and value > 1:  # IPv4-compatible ::a.b.c.d (not :: or ::1)
        return ipaddress.IPv4Address(value)
    if ip in _NAT64:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def _ipv4_kind(ip: ipaddress.IPv4Address) -> str | None:
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return UNSPECIFIED
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_link_local:
        return LINK_LOCAL
    if ip.is_multicast:
        return MULTICAST
    if ip in _SHARED:
        return SHARED
    if any(ip in network for network in _RFC1918):
        return PRIVATE
    if not ip.is_global:  # documentation, benchmarking, broadcast, 240/4, ...
        return RESERVED
    return None


def _ipv6_kind(ip: ipaddress.IPv6Address) -> str | None:
    if ip.is_unspecified:
        return UNSPECIFIED
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_link_local:
        return LINK_LOCAL
    if ip.is_multicast:
        return MULTICAST
    if ip in _UNIQUE_LOCAL or ip.is_site_local:
        return PRIVATE
    if not ip.is_global:  # documentation, Teredo, discard-only, ...
        return RESERVED
    return None


def _host(host: str) -> str:
    return host.lower().rstrip(".")


def _endpoint(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of ``url``; ValueError when it has no host or a bad port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if not host:
        raise ValueError(f"{url} has no host")
    port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    return scheme, _host(host), port


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class AddressPolicy:
    """Where one topic's crawl may connect: its sources' own host and port, and public
    addresses (and intranet ones with ``allow_private``)."""

    sources: frozenset[tuple[str, int]]
    allow_private: bool = False

    @classmethod
    def for_topic(cls, sources: Iterable[str], *, allow_private: bool) -> AddressPolicy:
        endpoints = set()
        for source in sources:
            try:
                _, host, port = _endpoint(source)
            except ValueError:
                continue  # the configuration refuses such sources; nothing to allow
            endpoints.add((host, port))
        return cls(frozenset(endpoints), allow_private)

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> AddressPolicy:
        return cls.for_topic(
            settings.getlist(SOURCES_SETTING),
            allow_private=settings.getbool(ALLOW_PRIVATE_SETTING),
        )

    def is_source(self, host: str, port: int) -> bool:
        """Whether ``host``:``port`` is one of the topic's sources; port 0 (unknown, as in
        a bare name lookup) matches any of the host's source ports."""
        host = _host(host)
        if port == 0:
            return any(source_host == host for source_host, _ in self.sources)
        return (host, port) in self.sources

    def refused_kind(self, address: str) -> str | None:
        """What kind of refused address ``address`` is; None when it may be reached."""
        kind = address_kind(address)
        if kind is None or (self.allow_private and kind in INTRANET_KINDS):
            return None
        return kind

    def reason(self, url: str, address: str, kind: str, *, redirect: bool = False) -> str:
        """The refusal of ``url``, which goes to ``address`` (of ``kind``), as one line."""
        hint = "" if self.allow_private or kind not in INTRANET_KINDS else f" ({INTRANET_HINT})"
        if redirect:
            return f"refused: redirect to {url}, which resolves to {address}, {kind}{hint}"
        return f"refused: {url} resolves to {address}, {kind}{hint}"

    def refusal(self, url: str, *, redirect: bool = False) -> str | None:
        """Why ``url`` may not be requested, as far as the URL itself tells (its scheme, and
        its host when that is an IP address); None when it may be, so far."""
        try:
            scheme, host, port = _endpoint(url)
        except ValueError as error:
            scheme = urlsplit(url).scheme.lower()
            if scheme in WEB_SCHEMES:
                return f"refused: {error}"
            host, port = "", 0
        if scheme not in WEB_SCHEMES:
            prefix = "redirect to " if redirect else ""
            return f"{prefix}a {scheme or 'schemeless'}: URL refused"
        if self.is_source(host, port) or not _is_ip_literal(host):
            return None
        kind = self.refused_kind(host)
        return None if kind is None else self.reason(url, host, kind, redirect=redirect)


# What the resolver refused, by host and port: the middleware turns the lookup failure the
# connection then reports into the refusal's reason. A crawl process crawls one topic at a
# time, as Scrapy's own DNS cache is one per process; both are forgotten between runs.
_refused_lookups: dict[tuple[str, int], tuple[str, str]] = {}


def forget_lookups() -> None:
    """Forget what earlier crawls of this process resolved and refused: Scrapy's DNS cache
    keeps names for the life of the process, and a warm process lives for many runs."""
    _refused_lookups.clear()
    dnscache.clear()


@implementer(IResolutionReceiver)
class _CheckingReceiver:
    """Passes on the addresses the policy allows; remembers a refusal when none is left."""

    # Twisted's interfaces are zope ones, which mypy cannot check: the receiver is Any.
    def __init__(self, receiver: Any, policy: AddressPolicy, host: str, port: int) -> None:
        self.receiver = receiver
        self.policy = policy
        self.host = host
        self.port = port
        self.allowed = 0
        self.refused: tuple[str, str] | None = None

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        self.receiver.resolutionBegan(resolution)

    def addressResolved(self, address: IAddress) -> None:
        host = str(getattr(address, "host", ""))
        kind = self.policy.refused_kind(host)
        if kind is not None:
            self.refused = self.refused or (host, kind)
            return
        self.allowed += 1
        self.receiver.addressResolved(address)

    def resolutionComplete(self) -> None:
        if self.allowed == 0 and self.refused is not None:
            _refused_lookups[(self.host, self.port)] = self.refused
        else:
            _refused_lookups.pop((self.host, self.port), None)
        self.receiver.resolutionComplete()


@implementer(IHostnameResolver)
class GuardedResolver:
    """Scrapy's caching resolver, with every address it gives checked against the topic's
    :class:`AddressPolicy` (the port of the connection included) before a connection is
    made to it; refused addresses are left out, so a name with none left fails to resolve."""

    def __init__(self, reactor: Any, inner: CachingThreadedResolver, policy: AddressPolicy):
        self.reactor = reactor
        self.inner = inner
        self.policy = policy
        self.checked: Any = None  # the name resolver of the reactor, which this one wraps

    @classmethod
    def from_crawler(cls, crawler: Crawler, reactor: Any) -> GuardedResolver:
        inner = CachingThreadedResolver.from_crawler(crawler, reactor)
        return cls(reactor, inner, AddressPolicy.from_settings(crawler.settings))

    def install_on_reactor(self) -> None:
        self.inner.install_on_reactor()
        self.checked = self.reactor.nameResolver
        self.reactor.installNameResolver(self)

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type[IAddress]] | None = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        assert self.checked is not None, "install_on_reactor() first"
        receiver: Any = resolutionReceiver
        if not self.policy.is_source(hostName, portNumber):
            receiver = _CheckingReceiver(receiver, self.policy, _host(hostName), portNumber)
        resolution: IHostResolution = self.checked.resolveHostName(
            receiver, hostName, portNumber, addressTypes, transportSemantics
        )
        return resolution


class AddressGuardMiddleware:
    """Refuses, before it is sent, a request the URL shows to be out of bounds; names the
    refusals of :class:`GuardedResolver` and redirects to URLs of other schemes."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> AddressGuardMiddleware:
        return cls(AddressPolicy.from_settings(crawler.settings))

    def process_request(self, request: Request) -> None:
        refusal = self.policy.refusal(request.url, redirect=_is_redirect(request))
        if refusal is not None:
            raise AddressRefused(refusal)

    def process_response(self, request: Request, response: Response) -> Response:
        """A redirect Scrapy does not follow because of its scheme is refused by name, rather
        than reported as the redirect's status."""
        location = response.headers.get("Location")
        if (
            response.status in REDIRECT_STATUSES
            and location
            and not request.meta.get("dont_redirect", False)
            and response.status not in request.meta.get("handle_httpstatus_list", ())
        ):
            target = urljoin(request.url, location.decode("latin-1").strip())
            scheme = urlsplit(target).scheme.lower()
            if scheme not in WEB_SCHEMES:
                raise AddressRefused(f"redirect to a {scheme or 'schemeless'}: URL refused")
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        if not isinstance(exception, CannotResolveHostError | DNSLookupError):
            return
        try:
            _, host, port = _endpoint(request.url)
        except ValueError:
            return
        refused = _refused_lookups.get((host, port))
        if refused is not None:
            address, kind = refused
            reason = self.policy.reason(request.url, address, kind, redirect=_is_redirect(request))
            raise AddressRefused(reason) from exception


def _is_redirect(request: Request) -> bool:
    return bool(request.meta.get("redirect_urls"))
