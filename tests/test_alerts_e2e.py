"""Change alerts end to end: a crawl of the local site, digests through a real SMTP server.

``topicwatch crawl`` records the changes and then sends the pending alerts; the aiosmtpd
server on 127.0.0.1 receives them, and the test reads the emails as a recipient would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
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


def test_one_digest_per_recipient_with_titles_links_and_the_diff(
    db_url: str, tmp_path: Path, smtp: MailServer
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

            with crawl.sessions() as session:
                statuses = set(session.scalars(select(Alert.status)))
            assert statuses == {"sent"}
            # Nothing is sent twice: another run with nothing new sends nothing.
            before = len(smtp.received)
            crawl.run()
            assert len(smtp.received) == before
        finally:
            crawl.close()
