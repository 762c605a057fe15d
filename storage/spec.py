"""A topic's definition as the crawler and the repository need it.

The scheduler validates the TOML config into these objects and stores them, as JSON, in the
``topics`` table; a crawl child reads them back from there, so it needs nothing but the
database URL.

A field that is also a key of the configuration file is declared with :func:`config_key`: its
type, default, check and documentation line live in that one place, and the configuration
loader, its list of keys and ``docs/configuration.md`` are derived from the fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field
from typing import Any

CHANGE_KINDS = ("new", "updated", "removed", "restored")
# Changes made by alert shaping (storage.live): an article's live coverage began, a summary
# of updates held back, the live coverage ended. Who hears of updates hears of these.
SHAPED_KINDS = ("live", "summary", "ended")
RECORDED_KINDS = CHANGE_KINDS + SHAPED_KINDS
# Checks of an article remembered for recognising live coverage by how often it changes.
MAX_LIVE_WINDOW = 32
HEALTH_FAILURES = 3  # failed runs in a row that make a topic broken (storage.health)


@dataclass(frozen=True)
class ConfigKeyRule:
    """How the configuration file spells, checks and documents one key (a field's metadata)."""

    # string, integer, boolean, duration, size, or "list of ..." (a list of non-empty strings)
    type: str
    meaning: str  # one sentence or more for docs/configuration.md, ending with a full stop
    minimum: int = 0  # integers: the smallest value accepted
    positive: bool = False  # durations: zero is refused
    choices: tuple[str, ...] = ()  # strings, and items of lists: the values accepted
    # A further check of a value the file gives (of each item, for a list): returns the value
    # to keep, or raises ValueError "expected ..., got ..." (the loader names file and field).
    check: Callable[[Any], Any] | None = None
    # The default as docs/configuration.md shows it, where the field's own default is not the
    # file's (a default that depends on other keys); "" shows none.
    shown_default: str | None = None


def config_key(
    type: str,
    meaning: str,
    default: Any = MISSING,
    *,
    minimum: int = 0,
    positive: bool = False,
    choices: tuple[str, ...] = (),
    check: Callable[[Any], Any] | None = None,
    shown_default: str | None = None,
) -> Any:
    """A dataclass field that is a key of the configuration file; without ``default`` the
    key is required."""
    rule = ConfigKeyRule(type, meaning, minimum, positive, choices, check, shown_default)
    return field(default=default, metadata={"config_key": rule})


@dataclass(frozen=True)
class CrawlSettings:
    """How politely and how hard one crawl run fetches: the ``[crawl]`` keys a crawl child
    needs (the keys only the daemon reads are in ``scheduler.config.CrawlConfig``)."""

    user_agent: str = config_key(
        "string",
        "User-Agent of every request; name the service and a contact URL.",
        "topicwatch/0.1 (+https://github.com/topicwatch/topicwatch)",
    )
    obey_robots: bool = config_key("boolean", "Obey robots.txt (topics can override it).", True)
    concurrent_per_domain: int = config_key(
        "integer", "Concurrent requests to one domain.", 2, minimum=1
    )
    download_delay: float = config_key("duration", "Delay between requests to one domain.", 0.5)
    autothrottle: bool = config_key(
        "boolean", "Adapt the delay to the server's response times (Scrapy AutoThrottle).", True
    )
    download_timeout: float = config_key("duration", "Timeout of one request.", 30.0, positive=True)
    download_maxsize: int = config_key(
        "size", "Responses larger than this are dropped.", 10 * 1024 * 1024
    )
    retry_times: int = config_key("integer", "Retries of a request that timed out or got a 5xx.", 2)
    store_raw_html: bool = config_key(
        "boolean", "Keep each version's compressed raw HTML in the database.", False
    )
    max_articles_per_run: int = config_key(
        "integer",
        "Article pages one crawl run fetches, at most; the rest wait for the next run, new "
        "articles first in the listing's order, then re-checks of known ones.",
        500,
        minimum=1,
    )
    progress_every: float = config_key(
        "duration",
        "A crawl run that lasts longer logs a progress line this often (pages fetched, "
        "articles read, new and updated so far); 0: never. On a terminal, topicwatch crawl "
        "shows a live line instead.",
        30.0,
    )
    max_pages_per_article: int = config_key(
        "integer",
        "Pages of one article split over several pages that a crawl reads, at most (its first "
        "page included); where the site has a view of the whole article, that view is read "
        "instead.",
        20,
        minimum=1,
    )


# Crawl settings that topics stored by earlier versions may still hold in their definition.
REMOVED_CRAWL_SETTINGS = ("workers",)


@dataclass(frozen=True)
class TopicSpec:
    """One watched topic: where its articles are listed and what to do with changes."""

    name: str
    title: str
    sources: tuple[str, ...]
    max_pages: int = 2
    recheck_for: float = 7 * 86400.0
    keywords: tuple[str, ...] = ()
    ignore_patterns: tuple[str, ...] = ()
    alert_to: tuple[str, ...] = ()
    alert_on: tuple[str, ...] = ("new", "updated", "removed")
    notify: tuple[str, ...] = ()  # keys of the channels told (alerts.channels), not their URLs
    # Emails and channel keys told when the topic's crawl breaks or recovers (storage.health);
    # None: alert_to and notify.
    health_to: tuple[str, ...] | None = None
    health_failures: int = HEALTH_FAILURES
    every: float | None = 900.0
    cron: str | None = None
    jitter: float = 0.0
    profile: str | None = None  # site profile by name; None picks one by the source's host
    allow_private_addresses: bool = False  # crawler.addresses: intranet addresses may be reached
    # Live coverage and alert shaping (storage.live): an article that changed in more than
    # live_after of its last live_window checks is live (0: only markup makes it live).
    live_after: int = 3
    live_window: int = 4
    live_summary_every: float = 3600.0
    live_ends_after: float = 2 * 3600.0
    # Alerts of updates of one article for this topic, at most, per alert_cap_period
    # (0: no cap); the updates beyond it are folded into one summary after the period.
    alert_cap: int = 3
    alert_cap_period: float = 3600.0
    # Retention (storage.retention): every version's text for keep_text_for, then the first,
    # the current and the last of each day; raw HTML for keep_raw_html_for (0: forever).
    keep_text_for: float = 90 * 86400.0
    keep_raw_html_for: float = 7 * 86400.0
    crawl: CrawlSettings = field(default_factory=CrawlSettings)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TopicSpec:
        data: dict[str, Any] = json.loads(text)
        stored_crawl: dict[str, Any] = data.pop("crawl", {})
        for removed in REMOVED_CRAWL_SETTINGS:
            stored_crawl.pop(removed, None)
        crawl = CrawlSettings(**stored_crawl)
        for key in (
            "sources",
            "keywords",
            "ignore_patterns",
            "alert_to",
            "alert_on",
            "notify",
            "health_to",
        ):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(crawl=crawl, **data)

    def alerts_for(self, kind: str) -> tuple[str, ...]:
        """Recipients of an alert for a change of this kind: email addresses and channel keys.

        A restore is the undoing of a removal, so whoever is told of removals hears of it too.
        """
        if kind in SHAPED_KINDS:
            kind = "updated"
        wanted = {kind, "removed"} if kind == "restored" else {kind}
        return (*self.alert_to, *self.notify) if wanted & set(self.alert_on) else ()

    def health_recipients(self) -> tuple[str, ...]:
        """Who is told when the topic's crawl breaks or recovers: emails and channel keys."""
        return (*self.alert_to, *self.notify) if self.health_to is None else self.health_to
