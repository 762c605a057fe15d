"""The item pipeline that records each article outcome in the database."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from crawler.items import ArticleGone, ArticleNotModified, ArticlePage
from storage import repository
from storage.repository import ChangeRecord

if TYPE_CHECKING:
    from crawler.spiders.topic import TopicSpider

change_logger = logging.getLogger("topicwatch.change")


class StoragePipeline:
    """Records pages, 304s and removals; every recording is one transaction.

    Counts each outcome as a Scrapy stat (``topicwatch/articles_new``, …) and logs one
    line per change.
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.changes: list[ChangeRecord] = []

    @classmethod
    def from_crawler(cls, crawler: Any) -> StoragePipeline:
        return cls(crawler)

    def count(self, key: str) -> None:
        self.crawler.stats.inc_value(f"topicwatch/{key}")

    def process_item(self, item: Any) -> Any:
        spider: TopicSpider = self.crawler.spider
        common = {"topic_id": spider.topic_id, "run_id": spider.run_id}
        change: ChangeRecord | None
        if isinstance(item, ArticlePage):
            self.count("articles_seen")
            change = repository.record_page(
                spider.session_factory, observation=item.observation, **common
            )
            if change is None:
                self.count("articles_unchanged")
        elif isinstance(item, ArticleNotModified):
            self.count("articles_seen")
            self.count("articles_not_modified")
            if item.reason == "identical":
                self.count("identical_bodies")
            # A removed article answering 304 again is back: that is a change too.
            change = repository.record_not_modified(
                spider.session_factory,
                url=item.url,
                etag=item.etag,
                last_modified=item.last_modified,
                **common,
            )
        elif isinstance(item, ArticleGone):
            self.count("articles_seen")
            change = repository.record_gone(spider.session_factory, url=item.url, **common)
            if change is None:
                self.count("gone_unknown")
        else:
            return item
        if change is not None:
            self.count(f"articles_{change.kind}")
            self.changes.append(change)
            change_logger.info(
                "kind=%s topic=%s url=%s title=%s fields=%s alerted=%s",
                change.kind,
                change.topic,
                change.url,
                _quote(change.title),
                ",".join(change.fields) or "-",
                "yes" if change.alerted else "no",
            )
        return item


def _quote(text: str) -> str:
    """A title as one log token: quoted, with no line breaks."""
    flat = " ".join(text.split())
    return '"' + flat.replace('"', "'") + '"'
