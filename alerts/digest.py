"""The digest email: one message per recipient and topic listing what changed.

:func:`build_digest` turns a list of :class:`DigestItem` (new, updated, removed and restored
articles) into a ``multipart/alternative`` :class:`~email.message.EmailMessage` with a
plain-text part and an HTML part. New and restored articles show their title, link, time and
lead; updated ones say which fields changed and show a word diff of title, lead and body;
removed ones show their last title and link.

A digest larger than the configured cap is sent as several (:func:`split_digest`): each part
is a digest of its own, with its own Message-ID, and no change is left out.

All text scraped from news sites is treated as hostile: it is HTML-escaped in the HTML part,
control characters are dropped, and titles are collapsed to one line. Headers are only ever
set through :class:`~email.message.EmailMessage`, which refuses line breaks in header values,
so no scraped or configured text can add a header.
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import html
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import quoprimime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from alerts.diff import DiffOp, diff_html, diff_text, has_changes, word_diff
from alerts.smtp import parse_mailbox

__all__ = [
    "DIFFED_KINDS",
    "KINDS",
    "MAX_DIGEST_BYTES",
    "ChangeKind",
    "DigestItem",
    "Part",
    "build_digest",
    "count_words",
    "digest_subject",
    "item_html",
    "message_id_for",
    "message_size",
    "one_line",
    "render_html",
    "render_text",
    "split_digest",
]

ChangeKind = Literal["new", "updated", "removed", "restored", "live", "summary", "ended"]
KINDS: tuple[ChangeKind, ...] = (
    "new",
    "live",
    "summary",
    "updated",
    "ended",
    "removed",
    "restored",
)
HEADINGS = {
    "new": "New",
    "updated": "Updated",
    "removed": "Removed",
    "restored": "Restored",
    "live": "Went live",
    "summary": "Summaries of updates",
    "ended": "Live coverage ended",
}
# How the subject counts each kind ("2 new, 1 went live, 3 summaries").
COUNTED = {"live": ("went live", "went live"), "summary": ("summary", "summaries")}
# Kinds shown with a word diff from the version before to the version after.
DIFFED_KINDS = ("updated", "live", "summary", "ended")
DIFFED_FIELDS = ("title", "lead", "body")

SUBJECT_TITLE_LIMIT = 120
LEAD_LIMIT = 400
# Per field: a rewritten article would otherwise fill the inbox.
MAX_CHANGES_SHOWN = 40
MAX_CHANGED_CHARS = 4000
TEXT_WIDTH = 76
# Many mail servers refuse messages over 10 MB, some over 25 MB; a digest of a few hundred
# changes is already more than anyone reads in one email.
MAX_DIGEST_BYTES = 1024 * 1024
# Parts are packed to this share of the cap by estimate, so that measuring rarely finds one
# over it (which would cost a halving, and an extra email).
PACKING_SHARE = 0.97

T = TypeVar("T")
# (this part's number, how many parts): a digest split to respect the size cap.
Part = tuple[int, int]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")

# Inline styles: email clients drop <style> blocks.
FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif"
STYLE = {
    "body": "margin:0;padding:0;background:#f6f8fa",
    "page": (
        f"max-width:680px;margin:0 auto;padding:24px 16px;font-family:{FONT};"
        "font-size:15px;line-height:1.5;color:#1f2328"
    ),
    "h1": "font-size:20px;line-height:1.3;margin:0 0 4px 0",
    "summary": "margin:0 0 20px 0;color:#59636e;font-size:14px",
    "h2": (
        "font-size:13px;letter-spacing:0.05em;text-transform:uppercase;color:#59636e;"
        "margin:24px 0 8px 0"
    ),
    "card": (
        "background:#ffffff;border:1px solid #d1d9e0;border-radius:6px;"
        "padding:12px 16px;margin:0 0 12px 0"
    ),
    "title": "font-size:16px;font-weight:600;color:#0969da;text-decoration:none",
    "removed-title": "font-size:16px;font-weight:600;color:#59636e",
    "meta": "margin:2px 0 8px 0;color:#59636e;font-size:13px",
    "lead": "margin:0",
    "field": (
        "margin:10px 0 4px 0;font-size:12px;letter-spacing:0.05em;text-transform:uppercase;"
        "color:#59636e"
    ),
    "diff": "font-size:14px;border-left:3px solid #d1d9e0;padding:0 0 0 10px",
    "note": "margin:0;color:#59636e;font-size:13px;font-style:italic",
    "footer": "margin:24px 0 0 0;color:#59636e;font-size:12px",
}


@dataclass(frozen=True)
class DigestItem:
    """One change in a digest.

    ``title``, ``lead`` and ``body`` are the article as it is now (for a removed article: as
    it was last seen); ``old_title``, ``old_lead`` and ``old_body`` are the previous version of
    an updated article. ``fields`` names what changed ("title", "lead", "body", "authors",
    "dates"); ``published`` is the publication time as the site states it.

    Live coverage and shaped alerts (:mod:`storage.live`): ``live`` says the article is live
    coverage; a ``summary`` or ``ended`` item folds ``folded`` updates detected since
    ``folded_since`` (its diff runs from the version before the first of them). ``text_gone``
    says the earlier version's text was removed by the retention policy.
    """

    kind: ChangeKind
    url: str
    title: str
    detected_at: datetime
    published: str | None = None
    lead: str = ""
    body: str = ""
    fields: tuple[str, ...] = ()
    old_title: str = ""
    old_lead: str = ""
    old_body: str = ""
    live: bool = False
    folded: int = 0
    folded_since: datetime | None = None
    text_gone: bool = False

    @property
    def diffed(self) -> bool:
        """Whether the item shows what changed (an ended item only when it folds updates)."""
        return self.kind in DIFFED_KINDS and (self.kind != "ended" or self.folded > 0)


def one_line(text: str) -> str:
    """``text`` without control characters and with all whitespace collapsed to one space."""
    return " ".join(_CONTROL.sub(" ", text).split())


def digest_subject(topic_title: str, items: Sequence[DigestItem], part: Part | None = None) -> str:
    """``[topicwatch] <topic title>: 2 new, 1 updated`` (zero counts left out), followed by
    `` (part 1 of 3)`` for a part of a split digest."""
    title = one_line(topic_title) or "(untitled topic)"
    if len(title) > SUBJECT_TITLE_LIMIT:
        title = title[: SUBJECT_TITLE_LIMIT - 1].rstrip() + "…"
    label = f" (part {part[0]} of {part[1]})" if part is not None else ""
    return f"[topicwatch] {title}: {_counts(items)}{label}"


def message_id_for(digest_key: str, domain: str) -> str:
    """The Message-ID of a digest: the same key always gives the same Message-ID."""
    if not _DOMAIN.match(domain):
        raise ValueError(f"{domain!r} is not a valid domain for a Message-ID.")
    return f"<{hashlib.sha256(digest_key.encode('utf-8')).hexdigest()[:32]}@{domain}>"


def build_digest(
    *,
    topic_title: str,
    topic_name: str,
    recipient: str,
    sender: str,
    items: Sequence[DigestItem],
    digest_key: str,
    domain: str,
    date: datetime | None = None,
    part: Part | None = None,
) -> EmailMessage:
    """The digest email for one recipient and topic.

    ``digest_key`` identifies the digest (the dispatcher's key names the installation, the
    recipient, the topic and the alerts): the Message-ID is derived from it, so resending the
    same digest reuses the Message-ID. ``date`` defaults to now; ``part`` is set for one of
    the emails of a split digest. Raises ValueError for an invalid sender, recipient or
    domain, or when there are no items.
    """
    if not items:
        raise ValueError(f"A digest for topic {topic_name!r} needs at least one change.")
    ordered = sorted(items, key=lambda i: (KINDS.index(i.kind), i.detected_at, i.url))
    message = EmailMessage()
    message["Subject"] = digest_subject(topic_title, ordered, part)
    message["From"] = parse_mailbox(sender)
    message["To"] = _recipient(recipient)
    message["Date"] = email.utils.format_datetime(date or datetime.now(UTC))
    message["Message-ID"] = message_id_for(digest_key, domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Topicwatch-Topic"] = one_line(topic_name)
    message.set_content(
        render_text(topic_title, topic_name, recipient, ordered), cte="quoted-printable"
    )
    message.add_alternative(
        render_html(topic_title, topic_name, recipient, ordered),
        subtype="html",
        cte="quoted-printable",
    )
    return message


def message_size(message: EmailMessage) -> int:
    """The size of ``message`` in bytes as it is transmitted (CRLF line ends)."""
    return len(message.as_bytes(policy=email.policy.SMTP))


def split_digest(
    items: Sequence[T],
    max_bytes: int,
    build: Callable[[Sequence[T], Part | None], EmailMessage],
    item: Callable[[T], DigestItem],
) -> list[tuple[Sequence[T], EmailMessage]]:
    """``items`` as one digest, or as several of at most ``max_bytes`` each when one would
    be larger: consecutive runs of ``items`` (in their order), each with its message.

    ``build(items, part)`` makes the digest of some items, ``item`` gives an item's change.
    Every item is in exactly one part; an item too large for ``max_bytes`` on its own is a
    part by itself, sent as it is. The parts are packed from an estimate of each change's
    size, then built, and halved while one is still too large: the work stays close to
    rendering each change twice, however many there are.
    """
    if len(items) < 2:
        return [(items, build(items, None))]
    sizes = [_estimated_size(item(each)) for each in items]
    # What every digest has whatever its changes: headers, a heading, the footer.
    frame = max(0, message_size(build(items[:1], None)) - sizes[0])
    runs: list[Sequence[T]] = []
    start, size = 0, frame
    for index, estimate in enumerate(sizes):
        if index > start and size + estimate > max_bytes * PACKING_SHARE:
            runs.append(items[start:index])
            start, size = index, frame
        size += estimate
    runs.append(items[start:])
    while True:
        parts = [
            (run, build(run, (number, len(runs)) if len(runs) > 1 else None))
            for number, run in enumerate(runs, 1)
        ]
        if all(len(run) < 2 or message_size(message) <= max_bytes for run, message in parts):
            return parts
        runs = [
            piece
            for run, message in parts
            for piece in (
                (run[: len(run) // 2], run[len(run) // 2 :])
                if len(run) > 1 and message_size(message) > max_bytes
                else (run,)
            )
        ]


def _estimated_size(item: DigestItem) -> int:
    """About the bytes ``item`` adds to a digest: its text and HTML, quoted-printable
    encoded (as :func:`build_digest` sends them) with CRLF line ends."""
    size = 0
    for rendered in ("\n".join(_text_item(item)) + "\n\n", _html_item(item) + "\n"):
        encoded = quoprimime.body_encode(rendered.encode("utf-8").decode("latin-1"))
        size += len(encoded) + encoded.count("\n") + 1
    return size


def _recipient(recipient: str) -> Address:
    address = parse_mailbox(recipient)
    if address.display_name:
        # Recipients come from the config as bare addresses; keep only the address.
        return Address(addr_spec=address.addr_spec)
    return address


def count_words(items: Sequence[DigestItem]) -> str:
    """How many items of each kind: "2 new, 1 went live, 3 summaries" (zero counts left out)."""
    counts = {kind: sum(1 for i in items if i.kind == kind) for kind in KINDS}
    words = {kind: COUNTED.get(kind, (kind, kind)) for kind in KINDS}
    return ", ".join(f"{n} {words[kind][n != 1]}" for kind, n in counts.items() if n)


_counts = count_words


# --- plain text ------------------------------------------------------------------------------


def render_text(
    topic_title: str, topic_name: str, recipient: str, items: Sequence[DigestItem]
) -> str:
    """The plain-text part of the digest."""
    lines = [f"{one_line(topic_title)}: {_counts(items)}", ""]
    for kind in KINDS:
        group = [i for i in items if i.kind == kind]
        if not group:
            continue
        lines += [f"{HEADINGS[kind].upper()} ({len(group)})", ""]
        for item in group:
            lines += _text_item(item)
            lines.append("")
    lines += [
        "-- ",
        f"topicwatch, topic {one_line(topic_name)}, sent to {one_line(recipient)}",
    ]
    return "\n".join(lines) + "\n"


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(
        text,
        TEXT_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _text_item(item: DigestItem) -> list[str]:
    lines = _wrap(one_line(item.title) or "(no title)", "") or ["(no title)"]
    lines[0] = "* " + lines[0]
    lines[1:] = ["  " + line for line in lines[1:]]
    lines.append("  " + one_line(item.url))
    lines += _wrap(_meta(item), "  ")
    if item.kind in ("new", "restored"):
        lead = _lead(item)
        if lead:
            lines.append("")
            lines += _wrap(lead, "  ")
    elif item.diffed:
        if item.text_gone:
            lines += ["", "  " + GONE_NOTE]
        for name, ops, omitted in _diffs(item):
            lines += ["", f"  {name.capitalize()}:"]
            text = diff_text(ops, width=TEXT_WIDTH - 4)
            lines += [("    " + line).rstrip() for line in text.split("\n")]
            if omitted:
                lines.append(f"    ({_omitted(omitted)})")
    return lines


# --- HTML ------------------------------------------------------------------------------------


def render_html(
    topic_title: str, topic_name: str, recipient: str, items: Sequence[DigestItem]
) -> str:
    """The HTML part of the digest: one self-contained document with inline styles."""
    title = html.escape(one_line(topic_title))
    counts = html.escape(_counts(items))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}: {counts}</title></head>",
        f'<body style="{STYLE["body"]}">',
        f'<div style="{STYLE["page"]}">',
        f'<h1 style="{STYLE["h1"]}">{title}</h1>',
        f'<p style="{STYLE["summary"]}">{counts}</p>',
    ]
    for kind in KINDS:
        group = [i for i in items if i.kind == kind]
        if not group:
            continue
        out.append(f'<h2 style="{STYLE["h2"]}">{HEADINGS[kind]} ({len(group)})</h2>')
        out += [_html_item(item) for item in group]
    out += [
        f'<p style="{STYLE["footer"]}">Sent by topicwatch for the topic '
        f"{html.escape(one_line(topic_name))} to {html.escape(one_line(recipient))}.</p>",
        "</div>",
        "</body>",
        "</html>",
    ]
    return "\n".join(out) + "\n"


def item_html(item: DigestItem) -> str:
    """One change as the digest's HTML shows it (every scraped text escaped)."""
    return _html_item(item)


def _html_item(item: DigestItem) -> str:
    title = html.escape(one_line(item.title) or "(no title)")
    href = _safe_href(item.url)
    style = STYLE["removed-title"] if item.kind == "removed" else STYLE["title"]
    if href is not None and item.kind != "removed":
        heading = f'<a href="{href}" style="{style}">{title}</a>'
    else:
        heading = f'<span style="{style}">{title}</span>'
    parts = [f'<div style="{STYLE["card"]}">', heading]
    url = html.escape(one_line(item.url))
    link = f'<a href="{href}" style="color:#59636e">{url}</a>' if href else url
    meta = html.escape(_meta(item))
    parts.append(f'<div style="{STYLE["meta"]}">{meta}<br>{link}</div>')
    if item.kind in ("new", "restored"):
        lead = _lead(item)
        if lead:
            parts.append(f'<p style="{STYLE["lead"]}">{html.escape(lead)}</p>')
    elif item.diffed:
        if item.text_gone:
            parts.append(f'<p style="{STYLE["note"]}">{html.escape(GONE_NOTE)}</p>')
        for name, ops, omitted in _diffs(item):
            parts.append(f'<div style="{STYLE["field"]}">{html.escape(name)}</div>')
            parts.append(f'<div style="{STYLE["diff"]}">{diff_html(ops)}</div>')
            if omitted:
                parts.append(f'<p style="{STYLE["note"]}">{html.escape(_omitted(omitted))}</p>')
    parts.append("</div>")
    return "\n".join(parts)


def _safe_href(url: str) -> str | None:
    """The URL, escaped for an attribute, if it is an http(s) link; else None."""
    url = one_line(url)
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    if scheme not in ("http", "https"):
        return None
    return html.escape(url, quote=True)


# --- shared pieces ---------------------------------------------------------------------------


def _meta(item: DigestItem) -> str:
    detected = _utc(item.detected_at)
    live = "Live coverage · " if item.live else ""
    if item.kind == "new":
        published = _site_time(item.published)
        return live + (f"Published {published}" if published else f"Found {detected}")
    if item.kind == "live":
        fields = ", ".join(one_line(f) for f in item.fields) or "content"
        return (
            f"Live coverage: updated again and again (detected {detected}); further updates "
            f"come as summaries. Changed: {fields}"
        )
    if item.kind in ("summary", "ended"):
        since = f" since {_utc(item.folded_since)}" if item.folded_since is not None else ""
        updates = f"{item.folded} update{'s' if item.folded != 1 else ''}{since}"
        if item.kind == "ended":
            return f"Live coverage ended (detected {detected}); {updates}"
        return f"{live}{updates} (summary at {detected})"
    if item.kind == "updated":
        fields = ", ".join(one_line(f) for f in item.fields) or "content"
        return f"Changed: {fields} (detected {detected})"
    if item.kind == "removed":
        return f"No longer on the site (detected {detected})"
    return f"Back on the site after removal (detected {detected})"


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _site_time(published: str | None) -> str:
    """The publication time as the site states it, tidied when it is ISO 8601."""
    if not published:
        return ""
    text = one_line(published)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    offset = moment.strftime("%z")
    return moment.strftime("%Y-%m-%d %H:%M ") + f"{offset[:3]}:{offset[3:]}"


def _lead(item: DigestItem) -> str:
    """The lead, or else the start of the body, cut at a word near ``LEAD_LIMIT``."""
    text = one_line(item.lead)
    if not text:
        first_paragraph = re.split(r"\n\s*\n", item.body.strip(), maxsplit=1)[0]
        text = one_line(first_paragraph)
    if len(text) > LEAD_LIMIT:
        text = text[:LEAD_LIMIT].rsplit(" ", 1)[0].rstrip(",;:") + " …"
    return text


GONE_NOTE = (
    "The earlier version's text is gone: the retention policy removed it. Only what changed "
    "in the title is shown."
)


def _diffs(item: DigestItem) -> list[tuple[str, list[DiffOp], int]]:
    """(field, diff, changes left out) for each of title, lead and body whose text changed
    (the title only, when the earlier text is gone)."""
    pairs = {
        "title": (one_line(item.old_title), one_line(item.title)),
        "lead": (item.old_lead, item.lead),
        "body": (item.old_body, item.body),
    }
    out: list[tuple[str, list[DiffOp], int]] = []
    for name in DIFFED_FIELDS:
        if (item.fields and name not in item.fields) or (item.text_gone and name != "title"):
            continue
        old, new = pairs[name]
        ops = word_diff(old, new)
        if not has_changes(ops):
            continue
        ops, omitted = _limit(ops, MAX_CHANGES_SHOWN)
        out.append((name, ops, omitted))
    return out


def _limit(
    ops: list[DiffOp], limit: int, budget: int = MAX_CHANGED_CHARS
) -> tuple[list[DiffOp], int]:
    """The first ``limit`` changes of ``ops`` (at most ``budget`` characters of changed text),
    and how many changes were left out."""
    starts = {
        i
        for i, op in enumerate(ops)
        # A replacement is a delete followed by an insert: count it once.
        if op.kind != "equal"
        and not (op.kind == "insert" and i > 0 and ops[i - 1].kind == "delete")
    }
    kept: list[DiffOp] = []
    changes = 0
    for i, op in enumerate(ops):
        if i in starts:
            if changes == limit or budget <= 0:
                return kept, len(starts) - changes
            changes += 1
        shown = op
        if op.kind != "equal":
            if len(op.text) > max(budget, 0):
                cut = op.text[: max(budget, 0)].rsplit(" ", 1)[0]
                shown = DiffOp(op.kind, f"{cut} …" if cut else "…")
            budget -= len(shown.text)
        kept.append(shown)
    return kept, 0


def _omitted(count: int) -> str:
    noun = "change" if count == 1 else "changes"
    return f"{count} more {noun} not shown; see the article."
