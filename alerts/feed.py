"""Atom feeds of changes: one entry per change (new, updated, removed, restored).

An entry's id is a tag URI made of the installation's random token and the change's id
(``tag:topicwatch.invalid,2026:<token>/change/<id>``): unique across installations, and the
same every time the feed is written, so a feed reader shows each change once and a new edit of
the same article as a new entry. Its ``updated`` time is when the change was detected, its
link the article, its content the change as the email digest's HTML shows it (the word diff of
an edit, the lead of a new article), escaped. Titles are plain text, without control
characters. The feed is written with feedgen; its own ``updated`` is that of its newest entry,
so the same changes always give the same feed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from feedgen.feed import FeedGenerator
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.digest import item_html, one_line
from alerts.dispatcher import change_items, installation_token
from storage.db import read_session
from storage.models import Article, Change, Topic
from storage.spec import TopicSpec

__all__ = ["DEFAULT_ENTRIES", "build_feed"]

DEFAULT_ENTRIES = 100
TAG = "tag:topicwatch.invalid,2026:"
# Characters XML 1.0 does not allow, which a scraped page may hold.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def build_feed(
    session_factory: sessionmaker[Session],
    topic: str | None = None,
    *,
    limit: int = DEFAULT_ENTRIES,
) -> bytes:
    """The Atom feed (UTF-8 XML) of the newest ``limit`` changes of ``topic``, or of all
    topics (no entries for a topic the database does not know yet)."""
    token = installation_token(session_factory)
    with read_session(session_factory) as session:
        title = "topicwatch: all topics"
        query = (
            select(Change, Article.url, Topic.name)
            .join(Article, Article.id == Change.article_id)
            .join(Topic, Topic.id == Change.topic_id)
        )
        if topic is not None:
            found = session.scalar(select(Topic).where(Topic.name == topic))
            title = f"topicwatch: {topic if found is None else _topic_title(found)}"
            query = query.where(Topic.name == topic)
        rows = session.execute(
            query.order_by(Change.detected_at.desc(), Change.id.desc()).limit(limit)
        ).all()
        items = change_items(session, [(change, url) for change, url, _ in rows])
        entries = [
            (change.id, change.kind, change.detected_at, url, topic_name, item)
            for (change, url, topic_name), item in zip(rows, items, strict=True)
        ]
    feed = FeedGenerator()
    feed.id(f"{TAG}{token}/feed/{topic or '*'}")
    feed.title(_clean(title))
    feed.author({"name": "topicwatch"})
    feed.generator("topicwatch")
    feed.updated(entries[0][2] if entries else EPOCH)
    for change_id, kind, detected_at, url, topic_name, item in reversed(entries):
        entry = feed.add_entry()  # newest first in the output: feedgen prepends
        entry.id(f"{TAG}{token}/change/{change_id}")
        heading = one_line(item.title) or "(no title)"
        prefix = f"[{topic_name}] " if topic is None else ""
        entry.title(_clean(f"{prefix}{kind}: {heading}"))
        entry.updated(detected_at)
        entry.published(detected_at)
        entry.link(href=_clean(url), rel="alternate")
        entry.content(_clean(item_html(item)), type="html")
    data: bytes = feed.atom_str(pretty=True)
    return data


def _topic_title(topic: Topic) -> str:
    try:
        return TopicSpec.from_json(topic.definition).title or topic.name
    except (TypeError, ValueError, KeyError):
        return topic.name


def _clean(text: str) -> str:
    return _NOT_XML.sub(" ", text)
