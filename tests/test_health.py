"""Health alerts end to end: ``topicwatch crawl`` runs against the local site with its faults,
the alerts through a real SMTP server and an Apprise ``json://`` channel.

Each crawl is a process of its own, so the state that keeps an alert from being repeated is
the database's, across processes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from channel_server import ChannelServer
from fixture_site import REFERENCE_TOPIC, REFERENCE_TOPIC_TITLE, FixtureSite
from mailserver import MailServer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from test_alerts_e2e import hooks, smtp, smtp_section
from test_crawl_e2e import TOPIC, Crawl, topicwatch, write_config

from alerts.dispatcher import list_alerts
from storage.models import Alert, HealthEvent
from storage.runs import close_run, finish_run, mark_unfinished_runs, start_run
from storage.spec import TopicSpec
from storage.topics import load_topic, sync_topics

pytestmark = pytest.mark.slow
__all__ = ["hooks", "smtp"]  # the fixtures, shared with the alerts' end-to-end tests

OPS = "ops@example.org"
BOT_WALL = "blocked by the site's bot protection (Cloudflare, HTTP 503)"


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
            # The same pages again: what was stored while broken does not make it work.
            crawl.run()
            assert len(told(smtp, hooks)) == 5
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


def test_health_from_every_way_a_run_is_closed(session_factory: sessionmaker[Session]) -> None:
    """The crawl process's own end, the runner's close and a restarted daemon's give-up all
    count; the state is the database's, so each step below could be another process."""
    spec = TopicSpec(name="pemilu", title="Pemilu", sources=("https://example.org/pemilu",))
    sync_topics(session_factory, [replace(spec, alert_to=("desk@example.org",))])
    topic_id, _ = load_topic(session_factory, spec.name)

    def events() -> list[tuple[str, str]]:
        with session_factory() as session:
            rows = session.execute(
                select(HealthEvent.kind, Alert.recipient)
                .join(Alert, Alert.health_event_id == HealthEvent.id)
                .order_by(HealthEvent.id)
            )
            return [(kind, recipient) for kind, recipient in rows]

    finish_run(
        session_factory,
        start_run(session_factory, topic_id),
        status="failed",
        counts={},
        errors=[],
        stats={},
        message="HTTP 500",
    )
    close_run(
        session_factory, start_run(session_factory, topic_id), status="timeout", message="timed out"
    )
    assert events() == []
    start_run(session_factory, topic_id)
    assert mark_unfinished_runs(session_factory, "failed", "the daemon stopped") == 1
    assert events() == [("broken", "desk@example.org")]
    with session_factory() as session:
        reason = session.scalars(select(HealthEvent.reason)).one()
    assert reason == "3 crawl runs in a row failed; the last: the daemon stopped"
    finish_run(
        session_factory,
        start_run(session_factory, topic_id),
        status="refused",
        counts={},
        errors=[],
        stats={},
        message=BOT_WALL,
    )
    assert len(events()) == 1
    finish_run(
        session_factory,
        start_run(session_factory, topic_id),
        status="ok",
        counts={"articles_seen": 3},
        errors=[],
        stats={},
    )
    assert events() == [("broken", "desk@example.org"), ("recovered", "desk@example.org")]
    shown = list_alerts(session_factory)
    assert [(a.kind, a.url, a.status) for a in shown] == [
        ("health:recovered", "", "pending"),
        ("health:broken", "", "pending"),
    ]
    assert shown[1].title == reason
