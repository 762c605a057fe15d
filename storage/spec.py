"""A topic's definition as the crawler and the repository need it.

The scheduler validates the TOML config into these objects and stores them, as JSON, in the
``topics`` table; a crawl child reads them back from there, so a worker needs nothing but the
database URL.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

CHANGE_KINDS = ("new", "updated", "removed", "restored")


@dataclass(frozen=True)
class CrawlSettings:
    """How politely and how hard one crawl run fetches."""

    user_agent: str = "topicwatch/0.1 (+https://github.com/topicwatch/topicwatch)"
    obey_robots: bool = True
    concurrent_per_domain: int = 2
    download_delay: float = 0.5
    autothrottle: bool = True
    download_timeout: float = 30.0
    download_maxsize: int = 10 * 1024 * 1024
    retry_times: int = 2
    store_raw_html: bool = False
    workers: int = 0  # reading worker processes (and a writer process) of a crawl run


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
    every: float | None = 900.0
    cron: str | None = None
    jitter: float = 0.0
    profile: str | None = None  # site profile by name; None picks one by the source's host
    crawl: CrawlSettings = field(default_factory=CrawlSettings)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TopicSpec:
        data: dict[str, Any] = json.loads(text)
        crawl = CrawlSettings(**data.pop("crawl", {}))
        for key in ("sources", "keywords", "ignore_patterns", "alert_to", "alert_on"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(crawl=crawl, **data)

    def alerts_for(self, kind: str) -> tuple[str, ...]:
        """Recipients of an alert for a change of this kind.

        A restore is the undoing of a removal, so whoever is told of removals hears of it too.
        """
        wanted = {kind, "removed"} if kind == "restored" else {kind}
        return self.alert_to if wanted & set(self.alert_on) else ()
