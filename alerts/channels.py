"""Chat and push channels (Slack, Telegram, Matrix, Discord, ntfy, webhooks…) through Apprise.

A channel is an Apprise URL (``slack://…``, ``tgram://…``, ``json://…``) given in the
configuration file (``notify``) or held by an environment variable that the file names
(``notify_env``), so that a URL's tokens need not be written in the file. Alert rows name a
channel by its *key*, never by its URL: ``notify:$VARIABLE`` for a URL from the environment,
``notify:<scheme>:<hash>`` for one from the file (the first 12 hex digits of the URL's
SHA-256). No token reaches the database, the crawl processes or the logs.

A channel gets a short plain-text message: the topic, the counts, and for each change its kind,
the article's title, the fields that changed, the link and (for an edit) the word diff, trimmed
so that the whole message fits the service's limit; changes that do not fit are counted at the
end. Scraped text is sent as plain text with its control characters removed and its whitespace
collapsed, so a title holding markup or control characters is shown, never interpreted.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alerts.diff import diff_text, has_changes, word_diff
from alerts.digest import DigestItem, count_words, one_line

if TYPE_CHECKING:
    from apprise.plugins import NotifyBase

__all__ = [
    "CHANNEL_PREFIX",
    "Channel",
    "ChannelError",
    "channel_message",
    "is_channel",
    "limits",
    "send_to_channel",
    "understood",
]

CHANNEL_PREFIX = "notify:"
# Below this a message could not hold even one change's title and link.
MIN_BODY = 200
# Of one field's diff in a channel message, at most this many characters.
DIFF_LIMIT = 400


class ChannelError(Exception):
    """A message was not delivered to a channel; ``permanent`` when trying again cannot help
    (a URL that Apprise does not understand)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def is_channel(recipient: str) -> bool:
    """Whether an alert's recipient is a channel rather than an email address."""
    return recipient.startswith(CHANNEL_PREFIX)


@dataclass(frozen=True)
class Channel:
    """One configured channel: its URL as the file gives it, or the variable that holds it."""

    url: str | None = None
    env: str | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.env is None):
            raise ValueError("A channel has either a URL or an environment variable.")

    @property
    def key(self) -> str:
        """How alert rows name this channel: see the module's documentation."""
        if self.env is not None:
            return f"{CHANNEL_PREFIX}${self.env}"
        assert self.url is not None
        scheme = self.url.split("://", 1)[0].lower()
        digest = hashlib.sha256(self.url.encode("utf-8")).hexdigest()[:12]
        return f"{CHANNEL_PREFIX}{scheme}:{digest}"

    def resolve(self, env: Mapping[str, str] | None = None) -> str:
        """The Apprise URL; raises :class:`ChannelError` when its variable is not set."""
        if self.url is not None:
            return self.url
        environ = os.environ if env is None else env
        value = environ.get(self.env or "", "").strip()
        if not value:
            raise ChannelError(f"The environment variable {self.env} (a notify_env) is not set")
        return value


def understood(url: str) -> bool:
    """Whether Apprise knows the service of ``url`` and can read its parts."""
    import apprise  # imported when a channel is used: it takes a while to load

    return apprise.Apprise.instantiate(url) is not None


def _service(url: str, key: str) -> NotifyBase:
    import apprise

    service = apprise.Apprise.instantiate(url)
    if service is None:
        raise ChannelError(
            f"Apprise does not understand the URL of the channel {key}; see "
            "https://appriseit.com/services/ for the URLs of each service",
            permanent=True,
        )
    return service


def channel_message(
    topic_title: str, items: Sequence[DigestItem], *, body_limit: int, title_limit: int
) -> tuple[str, str]:
    """The title and body of a channel message about ``items``, the body at most
    ``body_limit`` characters (and the title too, when the service has no title:
    ``title_limit`` 0)."""
    summary = count_words(items)
    title = f"{one_line(topic_title) or '(untitled topic)'}: {summary}"
    if title_limit > 0 and len(title) > title_limit:
        title = title[: title_limit - 1].rstrip() + "…"
    budget = max(body_limit, MIN_BODY)
    if title_limit <= 0:
        budget -= len(title) + 2
    blocks = [_block(item) for item in items]
    body: list[str] = []
    used = 0
    for index, full in enumerate(blocks):
        left = len(blocks) - index - 1
        tail = len(_more(left + 1)) + 2 if left else 0
        block = full
        if used + len(block) + 2 + tail > budget:
            block = _block(items[index], diff=False)
            if used + len(block) + 2 + tail > budget:
                body.append(_more(len(blocks) - index))
                break
        body.append(block)
        used += len(block) + 2
    return title, "\n\n".join(body)[:budget]


def _more(count: int) -> str:
    return f"… and {count} more change{'s' if count != 1 else ''}"


def _block(item: DigestItem, *, diff: bool = True) -> str:
    heading = f"{item.kind.upper()}: {one_line(item.title) or '(no title)'}"
    if item.diffed and item.fields:
        heading += f" (changed: {', '.join(one_line(f) for f in item.fields)})"
    lines = [heading, one_line(item.url)]
    if diff and item.diffed and not item.text_gone:
        pairs = {
            "title": (one_line(item.old_title), one_line(item.title)),
            "lead": (one_line(item.old_lead), one_line(item.lead)),
            "body": (item.old_body, item.body),
        }
        for name, (old, new) in pairs.items():
            if item.fields and name not in item.fields:
                continue
            ops = word_diff(old, new)
            if not has_changes(ops):
                continue
            text = one_line(diff_text(ops, context=6, width=0))
            if len(text) > DIFF_LIMIT:
                text = text[: DIFF_LIMIT - 1].rsplit(" ", 1)[0] + " …"
            lines.append(f"{name}: {text}")
    return "\n".join(lines)


def send_to_channel(url: str, key: str, title: str, body: str) -> None:
    """Send one plain-text message; raises :class:`ChannelError` with the service's reason."""
    import apprise

    service = _service(url, key)
    capture = apprise.LogCapture(level=logging.WARNING, fmt="%(message)s")  # type: ignore[no-untyped-call]
    with capture as captured:
        delivered = service.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
    if not delivered:
        reasons = [line for line in captured.getvalue().splitlines() if line.strip()]
        reason = reasons[-1] if reasons else "no reason given"
        raise ChannelError(f"The channel {key} did not take the message: {reason}")


def limits(url: str, key: str) -> tuple[int, int]:
    """The service's longest body and title (0: it has no title)."""
    service = _service(url, key)
    return int(service.body_maxlen), int(service.title_maxlen)
