"""URLs as identities: canonical form, article-shaped paths, and which URLs share a site.

An article is its canonical URL, so two spellings of one article must become one string:
scheme and host case, default ports, fragments, tracking parameters, parameter order, AMP
variants and the ``?page=N`` / ``?page=all`` views of a multi-page article all collapse.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from crawler.profiles import SiteProfile

_DEFAULT_PORTS = {"http": 80, "https": 443}

_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_enc_id",
        "oly_anon_id",
        "vero_id",
        "li_fat_id",
        "ocid",
        "cmpid",
        "ncid",
        "sr_share",
        "ref_src",
        "ref_url",
        "__twitter_impression",
        "spm",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "piwik_", "matomo_")
_AMP_PARAMS = {"amp": {"", "1", "true", "yes"}, "outputtype": {"amp"}, "output": {"amp"}}
_PAGE_PARAMS = frozenset({"page", "p", "pg", "halaman"})
_PAGE_VALUE = re.compile(r"^(?:all|\d+)$", re.IGNORECASE)

# Characters left as they are in a path; everything else is percent-encoded once.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = ":@!$'()*+,;/?-._~"

_NON_ARTICLE_SEGMENTS = frozenset(
    {
        "tag",
        "tags",
        "topic",
        "topics",
        "category",
        "categories",
        "kategori",
        "author",
        "authors",
        "penulis",
        "search",
        "cari",
        "label",
        "user",
        "users",
        "profile",
        "login",
        "register",
        "subscribe",
        "newsletter",
        "newsletters",
        "about",
        "contact",
        "privacy",
        "terms",
        "feed",
        "rss",
        "indeks",
        "index",
        "archive",
        "archives",
        "page",
    }
)
_NON_ARTICLE_EXTENSIONS = re.compile(
    r"\.(?:jpe?g|png|gif|webp|svg|ico|css|js|json|xml|rss|pdf|zip|gz|mp3|mp4|webm|woff2?)$",
    re.IGNORECASE,
)
_DATE_IN_PATH = re.compile(r"/(?:19|20)\d{2}/(?:0?[1-9]|1[0-2])(?:/(?:0?[1-9]|[12]\d|3[01]))?/")
_NUMERIC_ID = re.compile(r"(?:^|[-_/])\d{5,}(?:$|[-_./])")
_SLUG_WORD = re.compile(r"[a-z0-9]+", re.IGNORECASE)

_SHORT_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "edu", "ac", "or", "go", "ne"})
_HOST_PREFIXES = ("www.", "m.", "mobile.", "amp.")


def _is_tracking(key: str) -> bool:
    lowered = key.lower()
    return lowered in _TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES)


def _is_amp(key: str, value: str) -> bool:
    allowed = _AMP_PARAMS.get(key.lower())
    return allowed is not None and value.lower() in allowed


def _strip_amp_path(path: str) -> str:
    path = re.sub(r"/amp(?=/|$)", "", path)
    path = re.sub(r"\.amp(?=\.html?$|$)", "", path)
    return path or "/"


def _normalise_path(path: str) -> str:
    path = quote(unquote(path), safe=_PATH_SAFE)
    path = re.sub(r"/{2,}", "/", path)
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return path or "/"


@lru_cache(maxsize=8192)
def canonical_url(url: str) -> str:
    """The one spelling of ``url`` that identifies the page it names.

    Lowercases scheme and host, drops the default port, the fragment, user info, tracking
    parameters (``utm_*``, ``fbclid``, ``gclid``, ...) and AMP markers (``/amp/``, ``.amp``,
    ``amp=1``), sorts the remaining query, and strips a trailing slash. On an article-shaped
    path a ``page`` parameter (``?page=2``, ``?page=all``) names a view of the same article and
    is dropped; on other paths (listings) it is kept, since it selects different content.

    Kept for the URLs last asked about: a run canonicalises the same URL several times (its
    listing link, the page's own canonical link, its identity).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower() or "http"
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{host}:{port}"
    path = _normalise_path(_strip_amp_path(parts.path or "/"))
    article_path = _looks_like_article_path(path)
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if _is_tracking(key) or _is_amp(key, value):
            continue
        if article_path and key.lower() in _PAGE_PARAMS and _PAGE_VALUE.match(value):
            continue
        query.append((key, value))
    query.sort()
    query_string = urlencode(query, safe=_QUERY_SAFE, quote_via=quote)
    return urlunsplit((scheme, netloc, path, query_string, ""))


def _segments(path: str) -> list[str]:
    return [unquote(s) for s in path.split("/") if s]


def _looks_like_article_path(path: str) -> bool:
    segments = _segments(path)
    if not segments or _NON_ARTICLE_EXTENSIONS.search(path):
        return False
    if segments[0].lower() in _NON_ARTICLE_SEGMENTS:
        return False
    if len(segments) >= 2 and segments[-2].lower() in _NON_ARTICLE_SEGMENTS:
        return False
    if _DATE_IN_PATH.search(path + "/") and len(segments) >= 3:
        return True
    last = re.sub(r"\.(?:s?html?|php|aspx?)$", "", segments[-1], flags=re.IGNORECASE)
    if _NUMERIC_ID.search("/" + "/".join(segments[1:] or segments)) and len(segments) >= 2:
        return True
    words = _SLUG_WORD.findall(last)
    return len(words) >= 4 and ("-" in last or "_" in last)


def is_article_url(url: str, profile: SiteProfile) -> bool:
    """Whether ``url`` has the shape of an article page rather than a listing or a tag page.

    A profile with ``article_url_patterns`` decides by those (regexes on the path); otherwise a
    general rule: a path that carries a date, a long numeric id or a slug of several words, and
    is not a tag, category, topic, author, search or similar page.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https", ""):
        return False
    path = _strip_amp_path(parts.path or "/")
    if profile.article_url_patterns:
        return any(re.search(pattern, path) for pattern in profile.article_url_patterns)
    return _looks_like_article_path(path)


def site_of(url: str) -> str:
    """The registrable part of a URL's host, roughly: ``www.bbc.co.uk`` → ``bbc.co.uk``.

    Without a public-suffix list this keeps three labels when the second-level label is a
    common short one (``co.uk``, ``com.au``, ``go.id``), else two; IP addresses stay whole.
    """
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if re.fullmatch(r"[\d.]+|\[?[0-9a-f:]+\]?", host) or "." not in host:
        return host
    for prefix in _HOST_PREFIXES:
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix) :]
            break
    labels = host.split(".")
    keep = (
        3 if len(labels) >= 3 and labels[-2] in _SHORT_SECOND_LEVEL and len(labels[-1]) == 2 else 2
    )
    return ".".join(labels[-keep:])


def same_site(a: str, b: str) -> bool:
    """Whether two URLs belong to the same site (``www.``, ``m.`` and subdomains alike)."""
    site = site_of(a)
    return bool(site) and site == site_of(b)


def may_turn_page(href: str, param: str) -> bool:
    """Whether the link ``href`` could lead to another value of the query parameter
    ``param`` (``page``) of the page it is on: it names the parameter, or it keeps the page's
    own query (empty, or only a fragment). Links that cannot need not be resolved, which is
    most of a page's links and most of the cost of looking for pagination."""
    return f"{param}=" in href or href.strip()[:1] in ("", "#")
