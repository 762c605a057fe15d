"""Health alerts end to end: ``topicwatch crawl`` runs against the local site with its faults,
the alerts through a real SMTP server and an Apprise ``json://`` channel.

Each crawl is a process of its own, so the state that keeps an alert from being repeated is
the database's, across processes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from channel_server import ChannelServer, channel_server
from fixture_site import REFERENCE_TOPIC, REFERENCE_TOPIC_TITLE, FixtureSite
from mailserver import MailServer, mail_server
from sqlalchemy import select
from test_alerts_e2e import smtp_section
from test_crawl_e2e import TOPIC, Crawl, topicwatch, write_config

from storage.models import Alert, HealthEvent

pytestmark = pytest.mark.slow

OPS = "ops@example.org"
BOT_WALL = "blocked by the site's bot protection (Cloudflare, HTTP 503)"


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    with mail_server() as server:
        yield server


@pytest.fixture
def hooks() -> Iterator[ChannelServer]:
    with channel_server() as server:
        yield server


def told(smtp: MailServer, hooks: ChannelServer) -> list[tuple[str, str]]:
    """Each health alert so far as (subject, text), by email to ops; the channel got the same."""
    mails = [r.message for r in smtp.to(OPS)]
    got = [(str(m["Subject"]), m.get_content()) for m in mails]
    channel = [(h.json()["title"], h.json()["message"]) for h in hooks.at("ops")]
    assert [subject for subject, _ in channel] == [subject for subject, _ in got]
    for (_, text), (_, message) in zip(got, channel, strict=True):
        assert " ".join(text.split()) == " ".join(message.split())
    return got


def health(config: Path) -> dict[str, object]:
    done = topicwatch(config, "status", "--json")
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)
    state: dict[str, object] = entry["health"]
    return state


def test_broken_and_recovered_once_each(
    db_url: str, tmp_path: Path, smtp: MailServer, hooks: ChannelServer
) -> None:
    with FixtureSite.reference_site() as site:
        site.start()
        listed = site.listing_ids(REFERENCE_TOPIC)
        config = write_config(
            tmp_path / "topicwatch.toml",
            db_url,
            [site.listing_url(REFERENCE_TOPIC)],
            health_to=f'["{OPS}", "{hooks.url("json", "ops")}"]',
        )
        config.write_text(
            config.read_text().replace("\n[[topic]]", smtp_section(smtp) + "\n[[topic]]")
        )
        crawl = Crawl(config, db_url)
        title = f"topicwatch: {REFERENCE_TOPIC_TITLE}"
        try:
            run, _, _ = crawl.run()
            assert run.articles_seen >= 5
            assert told(smtp, hooks) == []

            # The listing behind a bot wall: two failures say nothing, the third says it broke.
            site.set_fault(site.listing_path(REFERENCE_TOPIC), "botwall", code=503)
            for _ in range(2):
                crawl.run(exit_code=1)
            assert told(smtp, hooks) == []
            assert health(config)["state"] == "ok"
            crawl.run(exit_code=1)
            [(subject, text)] = told(smtp, hooks)
            assert subject == f"{title} stopped working"
            assert "3 crawl runs in a row failed" in text
            assert BOT_WALL in text
            shown = health(config)
            assert (shown["state"], shown["problem"]) == ("broken", "failing")
            assert BOT_WALL in str(shown["reason"])
            status = topicwatch(config, "status", "--wide")
            assert "broken" in status.stdout.splitlines()[-1].split()

            # A fourth failure: still broken, nothing more is said.
            crawl.run(exit_code=1)
            assert len(told(smtp, hooks)) == 1

            # The wall is gone: one alert that it works again.
            site.clear_faults()
            crawl.run()
            assert [s for s, _ in told(smtp, hooks)] == [
                f"{title} stopped working",
                f"{title} works again",
            ]
            assert health(config)["state"] == "ok"
            crawl.run()
            assert len(told(smtp, hooks)) == 2

            # A listing that suddenly yields nothing, where it listed six.
            site.set_listing(REFERENCE_TOPIC, [])
            run, _, _ = crawl.run()
            assert run.articles_seen == 0
            subject, text = told(smtp, hooks)[-1]
            assert subject == f"{title} stopped working"
            assert "the listing yielded no articles" in text
            assert health(config)["problem"] == "empty_listing"
            crawl.run()
            assert len(told(smtp, hooks)) == 3
            site.set_listing(REFERENCE_TOPIC, listed)
            crawl.run()
            assert told(smtp, hooks)[-1][0] == f"{title} works again"

            # A redesign: the article pages' text comes from a script the profile cannot read.
            for article_id in listed:
                site.set_fault(site.article_path(article_id), "redesign")
            run, _, _ = crawl.run()
            subject, text = told(smtp, hooks)[-1]
            assert subject == f"{title} stopped working"
            assert "had no article text, or a small part of what they had before" in text
            assert health(config)["problem"] == "no_body"
            site.clear_faults()
            crawl.run()
            assert told(smtp, hooks)[-1][0] == f"{title} works again"
            assert len(told(smtp, hooks)) == 6

            with crawl.sessions() as session:
                kinds = list(session.scalars(select(HealthEvent.kind).order_by(HealthEvent.id)))
                statuses = set(
                    session.scalars(select(Alert.status).where(Alert.health_event_id.is_not(None)))
                )
            assert kinds == ["broken", "recovered"] * 3
            assert statuses == {"sent"}
            assert TOPIC
        finally:
            crawl.close()
