"""Change alerts end to end: a crawl of the local site, digests through a real SMTP server.

``topicwatch crawl`` records the changes and then sends the pending alerts; the aiosmtpd
server on 127.0.0.1 receives them, and the test reads the emails as a recipient would. A
webhook channel (Apprise ``json://`` to a local HTTP server) gets the same changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from channel_server import ChannelServer, channel_server
from fixture_site import REFERENCE_TOPIC, REFERENCE_TOPIC_TITLE, SEED_ARTICLE_ID, FixtureSite
from mailserver import MailServer, mail_server
from sqlalchemy import select
from test_crawl_e2e import CLARIFICATION, Crawl, write_config

from storage.models import Alert

pytestmark = pytest.mark.slow

RECIPIENTS = ["desk@example.org", "editor@example.org"]


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    with mail_server() as server:
        yield server


def smtp_section(server: MailServer) -> str:
    return f"""
[smtp]
host = "{server.host}"
port = {server.port}
security = "none"
sender = "topicwatch <alerts@example.org>"
timeout = "5s"
"""


@pytest.fixture
def hooks() -> Iterator[ChannelServer]:
    with channel_server() as server:
        yield server


def test_one_digest_per_recipient_with_titles_links_and_the_diff(
    db_url: str, tmp_path: Path, smtp: MailServer, hooks: ChannelServer
) -> None:
    with FixtureSite.reference_site() as site:
        site.start()
        ids = site.listing_ids(REFERENCE_TOPIC)
        fresh = [i for i in ids if i != SEED_ARTICLE_ID][:2]
        site.set_listing(REFERENCE_TOPIC, [SEED_ARTICLE_ID])
        config = write_config(
            tmp_path / "topicwatch.toml",
            db_url,
            [site.listing_url(REFERENCE_TOPIC)],
            alert_to=repr(RECIPIENTS).replace("'", '"'),
            notify=f'["{hooks.url("json", "desk")}"]',
        )
        config.write_text(
            config.read_text().replace("\n[[topic]]", smtp_section(smtp) + "\n[[topic]]")
        )
        crawl = Crawl(config, db_url)
        try:
            crawl.run()
            assert len(smtp.received) == len(RECIPIENTS)  # the first digest: 1 new
            first = {r.message["Message-ID"] for r in smtp.received}

            site.set_listing(REFERENCE_TOPIC, [*fresh, SEED_ARTICLE_ID])
            site.edit_body(SEED_ARTICLE_ID, insert_sentence=CLARIFICATION, after_paragraph=2)
            _, changes, log = crawl.run()
            assert sorted(c.kind for c in changes) == ["new", "new", "updated"]
            assert "sent" in log

            digests = [r for r in smtp.received if r.message["Message-ID"] not in first]
            for recipient in RECIPIENTS:
                mine = [r for r in digests if r.rcpt_tos == [recipient]]
                assert len(mine) == 1, f"{recipient} got {len(mine)} digests"
                message = mine[0].message
                assert message["To"] == recipient
                assert message["Subject"] == (
                    f"[topicwatch] {REFERENCE_TOPIC_TITLE}: 2 new, 1 updated"
                )
                assert message.get_content_type() == "multipart/alternative"
                text = message.get_body(("plain",))
                html = message.get_body(("html",))
                assert text is not None
                assert html is not None
                text_part, html_part = text.get_content(), html.get_content()
                flat_text = " ".join(text_part.split())  # the text part wraps long lines
                for article_id in [*fresh, SEED_ARTICLE_ID]:
                    article = site.article(article_id)
                    assert article.title in flat_text
                    assert site.article_url(article_id) in text_part
                    assert site.article_url(article_id) in html_part
                # The edited sentence is marked as inserted in both parts.
                assert "<ins" in html_part
                inserted = html_part.split("<ins", 1)[1].split("</ins>", 1)[0]
                assert "Gedung Putih" in inserted
                assert "{+Artikel ini telah diperbarui" in flat_text

            # The channel got one short message per run, with each title and link.
            first_hook, second_hook = (got.json() for got in hooks.at("desk"))
            assert first_hook["title"] == f"{REFERENCE_TOPIC_TITLE}: 1 new"
            assert second_hook["title"] == f"{REFERENCE_TOPIC_TITLE}: 2 new, 1 updated"
            for article_id in [*fresh, SEED_ARTICLE_ID]:
                assert site.article_url(article_id) in second_hook["message"]
                assert site.article(article_id).title in second_hook["message"]
            assert "{+Artikel ini telah diperbarui" in second_hook["message"]

            with crawl.sessions() as session:
                statuses = set(session.scalars(select(Alert.status)))
            assert statuses == {"sent"}
            # Nothing is sent twice: another run with nothing new sends nothing.
            before = len(smtp.received)
            crawl.run()
            assert len(smtp.received) == before
            assert len(hooks.at("desk")) == 2
        finally:
            crawl.close()
