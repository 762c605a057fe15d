"""Recording one outcome at a time, as the tests of the storage layer like to.

Each helper records a single outcome with :func:`storage.recording.record_outcomes`, in its
own transaction, and returns the observing topic's change (or None).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from storage.changes import Gone, NotModified, PageRead
from storage.recording import ChangeRecord, record_outcomes


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def observation(
    url: str,
    title: str,
    body: str,
    lead: str = "",
    published: str | None = "2026-01-05T14:40:00+07:00",
) -> PageRead:
    """A page read of an article with the given text, its hashes made here."""
    hashes = {
        "title": sha(title),
        "lead": sha(lead),
        "body": sha(body),
        "authors": sha(""),
        "dates": sha(""),
    }
    return PageRead(
        url=url,
        title=title,
        body=body,
        lead=lead,
        authors=(),
        published=published,
        modified=None,
        fingerprint=sha("|".join(hashes[k] for k in sorted(hashes))),
        field_hashes=hashes,
    )


def record_page(
    session_factory: sessionmaker[Session],
    *,
    topic_id: int,
    run_id: int | None,
    observation: PageRead,
    now: datetime | None = None,
) -> ChangeRecord | None:
    """Record an article page read by a crawl of the topic."""
    (change,) = record_outcomes(
        session_factory, topic_id=topic_id, run_id=run_id, outcomes=[observation], now=now
    )
    return change


def record_not_modified(
    session_factory: sessionmaker[Session],
    *,
    topic_id: int,
    run_id: int | None,
    url: str,
    now: datetime | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> ChangeRecord | None:
    """Record a 304 Not Modified (or a body identical byte for byte) for ``url``."""
    outcome = NotModified(url=url, etag=etag, last_modified=last_modified)
    (change,) = record_outcomes(
        session_factory, topic_id=topic_id, run_id=run_id, outcomes=[outcome], now=now
    )
    return change


def record_gone(
    session_factory: sessionmaker[Session],
    *,
    topic_id: int,
    run_id: int | None,
    url: str,
    now: datetime | None = None,
) -> ChangeRecord | None:
    """Record that ``url`` is gone (404, 410, redirect to the home or topic page)."""
    (change,) = record_outcomes(
        session_factory, topic_id=topic_id, run_id=run_id, outcomes=[Gone(url)], now=now
    )
    return change
