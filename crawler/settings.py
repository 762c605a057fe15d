"""Turns a topic's crawl settings into Scrapy settings, in this one place."""

from __future__ import annotations

from typing import Any

from crawler.addresses import ALLOW_PRIVATE_SETTING, SOURCES_SETTING
from storage.spec import TopicSpec

# 408 and 429 are worth a retry (with backoff from AutoThrottle); 403 is not: a CDN that
# refuses our user agent will keep refusing it.
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]


def scrapy_settings(spec: TopicSpec, **overrides: Any) -> dict[str, Any]:
    """Scrapy settings for one crawl run of ``spec``."""
    crawl = spec.crawl
    settings: dict[str, Any] = {
        "BOT_NAME": "topicwatch",
        "USER_AGENT": crawl.user_agent,
        "ROBOTSTXT_OBEY": crawl.obey_robots,
        "ROBOTSTXT_USER_AGENT": crawl.user_agent,
        "CONCURRENT_REQUESTS": max(8, crawl.concurrent_per_domain * 4),
        "CONCURRENT_REQUESTS_PER_DOMAIN": crawl.concurrent_per_domain,
        "DOWNLOAD_DELAY": crawl.download_delay,
        "AUTOTHROTTLE_ENABLED": crawl.autothrottle,
        "AUTOTHROTTLE_START_DELAY": max(crawl.download_delay, 0.5),
        "AUTOTHROTTLE_TARGET_CONCURRENCY": float(crawl.concurrent_per_domain),
        "DOWNLOAD_TIMEOUT": crawl.download_timeout,
        "DOWNLOAD_MAXSIZE": crawl.download_maxsize,
        "DOWNLOAD_WARNSIZE": 0,
        "RETRY_ENABLED": crawl.retry_times > 0,
        "RETRY_TIMES": crawl.retry_times,
        "RETRY_HTTP_CODES": RETRY_HTTP_CODES,
        "REDIRECT_MAX_TIMES": 10,
        "COOKIES_ENABLED": False,
        # Revisits are conditional requests built from the database; Scrapy's HTTP cache
        # could answer from its own store without asking the server at all.
        "HTTPCACHE_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,
        "LOG_ENABLED": True,
        "LOG_LEVEL": "INFO",
        "LOGSTATS_INTERVAL": 0,
        # How the run is going, on a terminal or in the log (crawler.progress).
        "EXTENSIONS": {"crawler.progress.CrawlProgress": 500},
        # A callback gives no items (article outcomes go to the crawl run directly), only
        # requests; Scrapy's default of 100 parallel slots per response only costs 101
        # asyncio tasks for every response.
        "CONCURRENT_ITEMS": 1,
        # Where a crawl may connect (crawler.addresses): checked before a request is sent
        # and again on the addresses a host name resolves to when connecting.
        SOURCES_SETTING: list(spec.sources),
        ALLOW_PRIVATE_SETTING: spec.allow_private_addresses,
        "TWISTED_DNS_RESOLVER": "crawler.addresses.GuardedResolver",
        # Before robots.txt (100), so a refused host is not even asked for its robots.txt.
        "DOWNLOADER_MIDDLEWARES": {"crawler.addresses.AddressGuardMiddleware": 40},
        # Only web pages are fetched: no handler for any other scheme exists in a crawl.
        "DOWNLOAD_HANDLERS": {"data": None, "file": None, "s3": None, "ftp": None},
    }
    settings.update(overrides)
    return settings
