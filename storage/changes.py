"""Where a change is decided: what a crawl saw of an article, and what that means.

Everything here is pure, so each rule can be read and tested as a table:

- :func:`response_outcome` — what an HTTP response to an article request says before its
  page is read: 304, 404 / 410, a redirect to the home or a listing page, the very bytes
  stored last time; :func:`later_page_unchanged` the same of a later page of a multi-page
  article (the article is not modified only when none of its pages is).
- :func:`classify` — the detection table: the stored state of an article (:class:`Previous`)
  and what a crawl saw of it (an :data:`Outcome`) give a :class:`Decision`. Bodies that
  differ only in the site's template blocks are the same body, and leads so the same lead
  (:func:`storage.templates.body_edited`).
- :func:`rules_of` — which version of the reading rules a field hash was made by: a field
  hash made by other rules than the page's new one is not compared as an edit.
- :func:`decide` — which topics hear of the decision (:class:`Audience`): the changes to
  record, one per topic, with their versions and whether they alert.

The crawler builds the outcomes; :mod:`storage.recording` loads the state these functions
need and writes the rows the :class:`Plan` names.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from storage.templates import body_edited, lead_and_body

DecisionKind = Literal["new", "updated", "unchanged", "removed", "restored", "none"]
GONE_STATUSES = (404, 410)


@dataclass(frozen=True)
class LaterPage:
    """A page of a multi-page article beyond its own URL (page 2 on, or the view of the whole
    article): where it is, its validators from the last response, and the SHA-256 of that
    response's body."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    raw_sha256: str | None = None


@dataclass(frozen=True)
class PageRead:
    """An article page as a crawl read it. ``url`` is the canonical URL.

    ``fingerprint`` and ``field_hashes`` are what :func:`classify` compares, and ``blocks``
    (one hash per block of the lead, marked, then per paragraph of the body) where the leads
    or the bodies differ; the content is what a new
    version stores (empty for a caller that only classifies). The validators are the
    article's own URL's; ``pages`` are the later pages the content was read from, in order
    (none for a one-page article). ``live`` says how the page showed that it is live
    coverage ("markup" or "marker", None: it did not), ``live_ended`` that its markup says
    the coverage ended (:mod:`storage.live`). ``page_blocks``: for an article read for the
    first time, the hashes of its pages' blocks of text, whether extraction kept them or not
    (:func:`crawler.reading.page_blocks`), which the site's templates are learned from beside
    ``blocks``; they are neither stored nor compared.
    """

    url: str
    fingerprint: str
    field_hashes: dict[str, str] = field(default_factory=dict)
    blocks: tuple[str, ...] = ()
    page_blocks: tuple[str, ...] = ()
    title: str = ""
    body: str = ""
    lead: str = ""
    authors: tuple[str, ...] = ()
    published: str | None = None
    modified: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    raw_sha256: str | None = None
    raw_html: bytes | None = None
    pages: tuple[LaterPage, ...] = ()
    live: str | None = None
    live_ended: bool = False


@dataclass(frozen=True)
class NotModified:
    """The server answered 304 Not Modified, or sent the very bytes stored last time (then
    with the response's validators), for the article's own URL and for each of its later
    pages. ``pages`` are those later pages with their validators now (none: the stored ones
    stay)."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    pages: tuple[LaterPage, ...] = ()


@dataclass(frozen=True)
class Gone:
    """The article is gone: 404, 410, or a redirect to the home or a topic listing page."""

    url: str


@dataclass(frozen=True)
class Failed:
    """The page could not be read this time (timeout, 5xx, 403, robots refusal)."""

    url: str
    reason: str = ""


Outcome = PageRead | NotModified | Gone | Failed


@dataclass(frozen=True)
class Previous:
    """The stored state of an article that has at least one version.

    ``alerted_fingerprints`` are the fingerprints of the versions already alerted on;
    content that returns to one of them (A -> B -> A) is recorded but not alerted again.
    ``current_blocks`` are the block hashes of the current version's lead and body (None when
    it was stored without them; versions stored before leads had block hashes have the
    body's only).
    """

    status: str
    current_fingerprint: str
    current_field_hashes: dict[str, str]
    alerted_fingerprints: frozenset[str] = frozenset()
    current_version: int = 1
    current_blocks: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Decision:
    """What an outcome means for the article.

    ``kind`` is ``none`` when nothing about the article changes (a failure, or nothing
    known to compare with) and ``unchanged`` when the article's content did not change: only
    ``last_checked`` moves, or (``new_version``) the page is stored as a new version because
    it was read by other rules than the stored one (no change, no alert).
    ``new_version`` says whether the page's content is stored as a new version; ``fields``
    names the fields whose hash differs from the current version's (sorted).
    """

    kind: DecisionKind
    fields: tuple[str, ...] = ()
    alert: bool = False
    new_version: bool = False


NOTHING = Decision("none")
UNCHANGED = Decision("unchanged")
# Only fields read by other rules differ: the page is stored as the new baseline, silently.
REBASELINED = Decision("unchanged", new_version=True)


def response_outcome(
    url: str,
    *,
    status: int,
    redirected_to_home_or_listing: bool,
    raw_sha256: str | None,
    known_status: str | None,
    known_raw_sha256: str | None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> NotModified | Gone | None:
    """What a response to the request for the article at ``url`` says without reading its
    page; None when the page must be read.

    ``redirected_to_home_or_listing``: the request was redirected and landed on the site's
    home or on a topic's listing page, which is how many sites retire an article.
    ``raw_sha256`` is the digest of the web page's body (None when the response is not a
    web page); ``known_status`` and ``known_raw_sha256`` what is stored of the article
    (None when nothing is). The validators go with a body identical to the stored one; a
    304 keeps the stored ones.
    """
    if status == 304:
        return NotModified(url)
    if status in GONE_STATUSES or redirected_to_home_or_listing:
        return Gone(url)
    if raw_sha256 is not None and known_status == "live" and known_raw_sha256 == raw_sha256:
        return NotModified(url, etag=etag, last_modified=last_modified)
    return None


def later_page_unchanged(status: int, raw_sha256: str | None, stored: LaterPage) -> bool:
    """Whether a re-check of a later page of an article found it as ``stored``: it answered
    304, or sent the very bytes stored (``raw_sha256``, None when the response is not a web
    page)."""
    return status == 304 or (raw_sha256 is not None and raw_sha256 == stored.raw_sha256)


# A field hash made by a later version of the rules that read and normalise the field carries
# the version after this mark ("<sha256>~2"); a hash without it was made by version 1.
RULES_MARK = "~"


def with_rules(field_hash: str, rules: int) -> str:
    """``field_hash`` marked as made by version ``rules`` of its field's rules."""
    return field_hash if rules == 1 else f"{field_hash}{RULES_MARK}{rules}"


def rules_of(field_hash: str | None) -> int:
    """The version of the rules a field hash was made by (see :func:`with_rules`)."""
    if not field_hash or RULES_MARK not in field_hash:
        return 1
    number = field_hash.rsplit(RULES_MARK, 1)[1]
    return int(number) if number.isdigit() else 1


def changed_fields(old: dict[str, str], new: dict[str, str]) -> tuple[str, ...]:
    """Names of the fields whose hash differs between ``old`` and ``new`` (sorted)."""
    return tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))


def classify(
    previous: Previous | None, outcome: Outcome, templates: Collection[str] = frozenset()
) -> Decision:
    """Decide what an outcome means, given what is stored about the article (None: it has
    no version yet) and the block hashes that are its site's templates now.

    A body that differs from the current version's only by template churn is not a change
    of the body, nor a lead so a change of the lead; a page that differs only so is
    unchanged (no new version, no alert)."""
    if isinstance(outcome, Failed):
        return NOTHING
    if previous is None:
        if isinstance(outcome, PageRead):
            return Decision("new", alert=True, new_version=True)
        return NOTHING
    removed = previous.status == "removed"
    if isinstance(outcome, Gone):
        return UNCHANGED if removed else Decision("removed", alert=True)
    if isinstance(outcome, NotModified):
        # The validators (or the bytes) match what was stored: the stored page is back.
        return Decision("restored", alert=True) if removed else UNCHANGED
    same = outcome.fingerprint == previous.current_fingerprint
    fields = () if same else changed_fields(previous.current_field_hashes, outcome.field_hashes)
    churn = {name for name in ("lead", "body") if name in fields} - _edited(
        previous, outcome, templates
    )
    if churn:
        fields = tuple(name for name in fields if name not in churn)
        same = not fields
    if removed:
        return Decision("restored", fields=fields, alert=True, new_version=not same)
    if same:
        return UNCHANGED
    # A field read by other rules than the stored version's (a release changed how the field
    # is read) is not compared: the page as read now is the article's new baseline for it, and
    # the stored version would otherwise look edited on every article at the first re-check.
    old_hashes = previous.current_field_hashes
    fields = tuple(
        f for f in fields if rules_of(old_hashes.get(f)) == rules_of(outcome.field_hashes.get(f))
    )
    if not fields:
        return REBASELINED
    seen_before = outcome.fingerprint in previous.alerted_fingerprints
    return Decision("updated", fields=fields, alert=not seen_before, new_version=True)


def _edited(previous: Previous, outcome: PageRead, templates: Collection[str]) -> set[str]:
    """Of the lead and the body, those that changed beyond the site's templates. A field is
    taken as changed when a side has no block hashes to compare (then the field hashes
    decide), and the lead also when the two were read by other rules (a lead stored before
    it had block hashes)."""
    if previous.current_blocks is None or not outcome.blocks:
        return {"lead", "body"}
    old_lead, old_body = lead_and_body(previous.current_blocks)
    new_lead, new_body = lead_and_body(outcome.blocks)
    edited = set()
    if body_edited(old_body, new_body, templates):
        edited.add("body")
    old_rules = rules_of(previous.current_field_hashes.get("lead"))
    if old_rules != rules_of(outcome.field_hashes.get("lead")) or body_edited(
        old_lead, new_lead, templates
    ):
        edited.add("lead")
    return edited


@dataclass(frozen=True)
class Audience:
    """The topics that may hear of a change of one article.

    ``topic_id`` is the topic whose crawl saw the outcome, ``run_id`` that crawl's run;
    ``announced_by`` the topics that have announced the article (each topic's first change
    of an article is its ``new``); ``inactive`` those of them no longer configured.
    """

    topic_id: int
    run_id: int | None = None
    announced_by: Collection[int] = frozenset()
    inactive: Collection[int] = frozenset()


@dataclass(frozen=True)
class PlannedChange:
    """A change to record for one topic (with alert rows for its recipients when ``alert``)."""

    topic_id: int
    kind: str
    fields: tuple[str, ...]
    from_version: int | None
    to_version: int | None
    alert: bool
    crawl_run_id: int | None


@dataclass(frozen=True)
class Plan:
    """What to record of one outcome: the article's status and current version after it,
    whether the page is stored as that new version, and the changes, one per topic."""

    decision: Decision
    status: str
    current_version: int
    changes: tuple[PlannedChange, ...] = ()


def decide(
    previous: Previous | None,
    outcome: Outcome,
    audience: Audience,
    templates: Collection[str] = frozenset(),
) -> Plan:
    """Classify ``outcome`` (with the site's ``templates``, see :func:`classify`) and say who
    hears of it.

    The content is classified once for the article, which every topic that lists it shares.
    An ``updated``, ``removed`` or ``restored`` goes to every active topic that has announced
    the article, the observing topic included only if it has. A topic that has not
    announced a live article hears of it through a ``new`` change, also when another topic
    read it first. The run is named on the observing topic's change only.
    """
    decision = classify(previous, outcome, templates)
    before = 0 if previous is None else previous.current_version
    status = "live" if previous is None else previous.status
    if decision.kind == "none":
        return Plan(decision, status, before)
    after = before + 1 if decision.new_version else before
    if decision.kind == "removed":
        status = "removed"
    elif decision.kind in ("new", "restored"):
        status = "live"
    observing = audience.topic_id
    announced = set(audience.announced_by)
    changes: list[PlannedChange] = []
    if decision.kind in ("updated", "removed", "restored"):
        hearing = sorted(announced - set(audience.inactive) - {observing})
        if observing in announced:
            hearing = sorted([*hearing, observing])
        changes.extend(
            PlannedChange(
                topic_id=topic,
                kind=decision.kind,
                fields=decision.fields,
                from_version=before,
                to_version=None if decision.kind == "removed" else after,
                alert=decision.alert,
                crawl_run_id=audience.run_id if topic == observing else None,
            )
            for topic in hearing
        )
    if observing not in announced and status == "live":
        changes.append(
            PlannedChange(
                topic_id=observing,
                kind="new",
                fields=(),
                from_version=None,
                to_version=after,
                alert=True,
                crawl_run_id=audience.run_id,
            )
        )
    return Plan(decision, status, after, tuple(changes))
