"""The topics table: the configured topics, synchronised from the configuration, and read
back by the crawl of one of them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.db import aware_now, read_session, write_transaction
from storage.models import Topic
from storage.spec import TopicSpec


class UnknownTopic(LookupError):
    """No topic of that name is in the database."""


@dataclass
class TopicCache:
    """Topic rows and definitions read during one transaction."""

    session: Session
    cache: dict[int, tuple[Topic, TopicSpec]] = field(default_factory=dict)
    alerted: dict[tuple[int, str], list[str]] = field(default_factory=dict)

    def get(self, topic_id: int) -> tuple[Topic, TopicSpec]:
        if topic_id not in self.cache:
            topic = self.session.get(Topic, topic_id)
            if topic is None:
                raise UnknownTopic(f"No topic with the id {topic_id} is in the database.")
            self.cache[topic_id] = (topic, TopicSpec.from_json(topic.definition))
        return self.cache[topic_id]

    def recipients(self, topic_id: int, kind: str) -> list[str]:
        """Who hears of the topic's changes of this kind, each once (a fresh list)."""
        key = (topic_id, kind)
        if key not in self.alerted:
            self.alerted[key] = list(dict.fromkeys(self.get(topic_id)[1].alerts_for(kind)))
        return list(self.alerted[key])


def sync_topics(
    session_factory: sessionmaker[Session],
    specs: Iterable[TopicSpec],
    *,
    now: datetime | None = None,
) -> None:
    """Make the topics table match ``specs``: insert or update each by name, and mark the
    topics that are no longer configured inactive (their history stays)."""
    wanted: dict[str, TopicSpec] = {}
    for spec in specs:
        if spec.name in wanted:
            raise ValueError(f"The topic name {spec.name!r} is used twice.")
        wanted[spec.name] = spec
    moment = aware_now(now)

    def work(session: Session) -> None:
        existing = {topic.name: topic for topic in session.scalars(select(Topic))}
        for name, spec in wanted.items():
            definition = spec.to_json()
            topic = existing.get(name)
            if topic is None:
                session.add(
                    Topic(
                        name=name,
                        definition=definition,
                        active=True,
                        created_at=moment,
                        updated_at=moment,
                    )
                )
            elif topic.definition != definition or not topic.active:
                topic.definition = definition
                topic.active = True
                topic.updated_at = moment
        for name, topic in existing.items():
            if name not in wanted and topic.active:
                topic.active = False
                topic.updated_at = moment

    write_transaction(session_factory, work)


def load_topic(session_factory: sessionmaker[Session], name: str) -> tuple[int, TopicSpec]:
    """The id and definition of the topic called ``name``."""
    with read_session(session_factory) as session:
        topic = session.scalars(select(Topic).where(Topic.name == name)).one_or_none()
        if topic is None:
            names = session.scalars(
                select(Topic.name).where(Topic.active.is_(True)).order_by(Topic.name)
            ).all()
            raise UnknownTopic(
                f"No topic named {name!r} in the database; known topics: "
                f"{', '.join(names) or '(none)'}"
            )
        return topic.id, TopicSpec.from_json(topic.definition)


def topic_names(session_factory: sessionmaker[Session]) -> list[str]:
    """The names of the topics the database knows, active or not, in order."""
    with read_session(session_factory) as session:
        return list(session.scalars(select(Topic.name).order_by(Topic.name)))
