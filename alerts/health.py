"""The messages of health alerts (:mod:`storage.health`): a topic's crawl broke or recovered.

Plain text only, with every scraped or server-given word on one line of its own kind: a
reason cannot add headers or markup. The same text goes to email and to channels.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from alerts.digest import message_id_for, one_line
from alerts.smtp import parse_mailbox

WORDS = {"broken": "stopped working", "recovered": "works again"}


@dataclass(frozen=True)
class HealthItem:
    """One health event as a message tells it."""

    kind: str  # broken or recovered
    reason: str
    at: datetime


def health_text(topic_title: str, topic_name: str, items: Sequence[HealthItem]) -> tuple[str, str]:
    """The subject (title) and plain-text body telling of ``items``, oldest first."""
    last = items[-1]
    title = one_line(f"topicwatch: {topic_title} {WORDS.get(last.kind, last.kind)}")
    lines = []
    for item in items:
        stamp = item.at.strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"{stamp} {WORDS.get(item.kind, item.kind)}: {one_line(item.reason)}")
    if last.kind == "broken":
        lines.append("")
        lines.append(
            f"Until it works again the topic finds no changes. `topicwatch status` shows its "
            f"state; `topicwatch crawl {topic_name}` tries it now."
        )
    return title, "\n".join(lines) + "\n"


def build_health_email(
    *,
    title: str,
    body: str,
    topic_name: str,
    recipient: str,
    sender: str,
    key: str,
    domain: str,
    date: datetime,
) -> EmailMessage:
    """The health alert as a plain-text email with a Message-ID derived from ``key``."""
    message = EmailMessage()
    message["Subject"] = title
    message["From"] = parse_mailbox(sender)
    message["To"] = parse_mailbox(recipient).addr_spec
    message["Date"] = email.utils.format_datetime(date)
    message["Message-ID"] = message_id_for(key, domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Topicwatch-Topic"] = one_line(topic_name)
    message["X-Topicwatch-Health"] = "yes"
    message.set_content(body)
    return message
