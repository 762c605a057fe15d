"""Where a change is decided, rule by rule: the README's "What counts as a change" table
against :func:`classify` row by row, the rules for HTTP responses, and who hears of a change."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage.changes import (
    Audience,
    Decision,
    Failed,
    Gone,
    LaterPage,
    NotModified,
    Outcome,
    PageRead,
    Plan,
    PlannedChange,
    Previous,
    classify,
    decide,
    later_page_unchanged,
    response_outcome,
    rules_of,
    with_rules,
)

README = Path(__file__).resolve().parent.parent / "README.md"
URL = "https://news.example/nasional/2026/11/26/berita"

A = {"title": "ta", "lead": "la", "body": "ba", "authors": "aa", "dates": "da"}
B = {**A, "body": "bb"}  # body edited
C = {**A, "title": "tc", "dates": "dc"}  # headline and modified date edited
# The same page read by later rules for the lead and the body (they now hold other text).
A2 = {**A, "lead": "la2~2", "body": "ba2~2"}
# ... and with its headline edited.
C2 = {**A2, "title": "tc"}

LIVE_A = Previous("live", "fa", A, frozenset({"fa"}))
# Went A -> B; both were alerted on.
LIVE_B_AFTER_A = Previous("live", "fb", B, frozenset({"fa", "fb"}), current_version=2)
# Went A -> B -> A: the return to A was recorded without an alert.
LIVE_A_AFTER_B = Previous("live", "fa", A, frozenset({"fa", "fb"}), current_version=3)
REMOVED_A = Previous("removed", "fa", A, frozenset({"fa"}))
# Paragraph hashes: p1 and p2 are the article's own, t1 and t2 its site's templates, x new.
BLOCKS = ("p1", "t1", "p2")
TEMPLATES = frozenset({"t1", "t2"})
LIVE_BLOCKS = Previous("live", "fa", A, frozenset({"fa"}), current_blocks=BLOCKS)
REMOVED_BLOCKS = Previous("removed", "fa", A, frozenset({"fa"}), current_blocks=BLOCKS)
# The lead's blocks come first, marked "L": s1 the standfirst's own, then a template.
LIVE_LEAD_BLOCKS = Previous(
    "live", "fa", A, frozenset({"fa"}), current_blocks=("Ls1", "Lt1", *BLOCKS[::2])
)


def page(fingerprint: str, hashes: dict[str, str], blocks: tuple[str, ...] = ()) -> PageRead:
    return PageRead(URL, fingerprint, hashes, blocks=blocks)


# -- the detection table ---------------------------------------------------------------------


def readme_rows() -> list[tuple[str, str]]:
    """The (before, now) cells of the README's table."""
    section = README.read_text(encoding="utf-8").split("What counts as a change:", 1)[1]
    table = re.search(r"\n\| before \| now \| recorded \|\n\| --- .*?\n((?:\|.*\n)+)", section)
    assert table is not None, "the README has no 'What counts as a change' table"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[1].splitlines()]
    return [(before, now) for before, now, _recorded in rows]


NOTHING_BEFORE = ("nothing", "an article page")
UNCHANGED = ("version v", "304, the same bytes, or the same fingerprint")
UPDATED = ("version v", "another fingerprint")
RETURNED = ("version v", "content equal to an older version (A → B → A)")
TEMPLATE_ONLY = (
    "version v",
    "a body or a lead that differs only in the site's template blocks",
)
REMOVED = ("live", "404 / 410, or a redirect to the home or topic page")
RESTORED = ("removed", "the page again")
FAILED = ("anything", "timeout, 5xx, 403, robots.txt refusal")
REREAD = ("version v read by earlier rules", "another fingerprint")


@dataclass(frozen=True)
class Row:
    readme: tuple[str, str]  # the README row this one illustrates
    id: str
    previous: Previous | None
    outcome: Outcome
    expected: Decision
    templates: frozenset[str] = frozenset()


TABLE = [
    Row(NOTHING_BEFORE, "none+page=new", None, page("fa", A), Decision("new", (), True, True)),
    Row(NOTHING_BEFORE, "none+304=nothing", None, NotModified(URL), Decision("none")),
    Row(NOTHING_BEFORE, "none+gone=nothing", None, Gone(URL), Decision("none")),
    Row(UNCHANGED, "live+304=unchanged", LIVE_A, NotModified(URL), Decision("unchanged")),
    Row(UNCHANGED, "live+same=unchanged", LIVE_A, page("fa", A), Decision("unchanged")),
    Row(
        UPDATED,
        "live+body-edit=updated",
        LIVE_A,
        page("fb", B),
        Decision("updated", ("body",), True, True),
    ),
    Row(
        UPDATED,
        "live+title-and-dates=updated",
        LIVE_A,
        page("fc", C),
        Decision("updated", ("dates", "title"), True, True),
    ),
    Row(
        UPDATED,
        "A-B-C=updated-with-alert",
        LIVE_B_AFTER_A,
        page("fc", C),
        Decision("updated", ("body", "dates", "title"), True, True),
    ),
    Row(
        RETURNED,
        "A-B-A=updated-without-alert",
        LIVE_B_AFTER_A,
        page("fa", A),
        Decision("updated", ("body",), False, True),
    ),
    Row(
        RETURNED,
        "A-B-A-B=updated-without-alert",
        LIVE_A_AFTER_B,
        page("fb", B),
        Decision("updated", ("body",), False, True),
    ),
    Row(
        TEMPLATE_ONLY,
        "live+template-rewritten=unchanged",
        LIVE_BLOCKS,
        page("fb", B, ("p1", "x", "p2")),
        Decision("unchanged"),
        TEMPLATES,
    ),
    Row(
        TEMPLATE_ONLY,
        "live+template-added-and-dropped=unchanged",
        LIVE_BLOCKS,
        page("fb", B, ("t2", "p1", "p2")),
        Decision("unchanged"),
        TEMPLATES,
    ),
    Row(
        TEMPLATE_ONLY,
        "live+no-longer-template-replaced-by-template=unchanged",
        Previous("live", "fa", A, frozenset({"fa"}), current_blocks=("p1", "old", "p2")),
        page("fb", B, ("p1", "t1", "p2")),
        Decision("unchanged"),
        TEMPLATES,
    ),
    Row(
        TEMPLATE_ONLY,
        "live+template-rewritten-and-title=updated-title",
        LIVE_BLOCKS,
        page("fc", {**C, "body": "bb"}, ("p1", "x", "p2")),
        Decision("updated", ("dates", "title"), True, True),
        TEMPLATES,
    ),
    Row(
        TEMPLATE_ONLY,
        "removed+template-rewritten=restored",
        REMOVED_BLOCKS,
        page("fb", B, ("p1", "x", "p2")),
        Decision("restored", (), True, False),
        TEMPLATES,
    ),
    Row(
        TEMPLATE_ONLY,
        "live+template-in-the-lead-rewritten=unchanged",
        LIVE_LEAD_BLOCKS,
        page("fb", {**A, "lead": "lb"}, ("Ls1", "Lx", "p1", "p2")),
        Decision("unchanged"),
        TEMPLATES,
    ),
    Row(
        UPDATED,
        "live+standfirst-beside-template-edited=updated",
        LIVE_LEAD_BLOCKS,
        page("fb", {**A, "lead": "lb"}, ("Lx", "Lt1", "p1", "p2")),
        Decision("updated", ("lead",), True, True),
        TEMPLATES,
    ),
    Row(
        REREAD,
        "lead-by-earlier-rules+template-rewritten=rebaselined",
        LIVE_BLOCKS,
        page("fb", {**A, "lead": "lb~3"}, ("Ls1", "Lt1", "p1", "t1", "p2")),
        Decision("unchanged", new_version=True),
        TEMPLATES,
    ),
    Row(
        UPDATED,
        "live+paragraph-beside-template-edited=updated",
        LIVE_BLOCKS,
        page("fb", B, ("p1", "x", "y")),
        Decision("updated", ("body",), True, True),
        TEMPLATES,
    ),
    Row(
        UPDATED,
        "live+paragraph-added-beside-template=updated",
        LIVE_BLOCKS,
        page("fb", B, ("p1", "t1", "x", "p2")),
        Decision("updated", ("body",), True, True),
        TEMPLATES,
    ),
    Row(
        UPDATED,
        "live-stored-without-blocks+template-rewritten=updated",
        LIVE_A,
        page("fb", B, ("p1", "x", "p2")),
        Decision("updated", ("body",), True, True),
        TEMPLATES,
    ),
    Row(
        REREAD,
        "live+other-rules=new-baseline",
        LIVE_A,
        page("fa2", A2),
        Decision("unchanged", (), False, True),
    ),
    Row(
        REREAD,
        "live+other-rules+title-edit=updated",
        LIVE_A,
        page("fc2", C2),
        Decision("updated", ("title",), True, True),
    ),
    Row(REMOVED, "live+gone=removed", LIVE_A, Gone(URL), Decision("removed", (), True, False)),
    Row(REMOVED, "removed+gone=unchanged", REMOVED_A, Gone(URL), Decision("unchanged")),
    Row(
        RESTORED,
        "removed+same=restored",
        REMOVED_A,
        page("fa", A),
        Decision("restored", (), True, False),
    ),
    Row(
        RESTORED,
        "removed+edited=restored-new-version",
        REMOVED_A,
        page("fb", B),
        Decision("restored", ("body",), True, True),
    ),
    Row(
        RESTORED,
        "removed+304=restored",
        REMOVED_A,
        NotModified(URL),
        Decision("restored", (), True, False),
    ),
    Row(FAILED, "none+failed=nothing", None, Failed(URL, "timeout"), Decision("none")),
    Row(FAILED, "live+timeout=nothing", LIVE_A, Failed(URL, "timeout"), Decision("none")),
    Row(FAILED, "live+503=nothing", LIVE_A, Failed(URL, "HTTP 503"), Decision("none")),
    Row(FAILED, "live+403=nothing", LIVE_A, Failed(URL, "HTTP 403"), Decision("none")),
    Row(FAILED, "live+robots=nothing", LIVE_A, Failed(URL, "robots.txt"), Decision("none")),
    Row(FAILED, "removed+failed=nothing", REMOVED_A, Failed(URL, "timeout"), Decision("none")),
]


@pytest.mark.parametrize("row", TABLE, ids=[row.id for row in TABLE])
def test_classify(row: Row) -> None:
    assert classify(row.previous, row.outcome, row.templates) == row.expected


def test_every_row_of_the_readme_table_is_tested_and_no_other() -> None:
    assert {row.readme for row in TABLE} == set(readme_rows())


def test_table_ids_are_unique() -> None:
    assert len({row.id for row in TABLE}) == len(TABLE)


def test_rules_of_a_field_hash() -> None:
    assert rules_of("ab12") == 1
    assert rules_of(with_rules("ab12", 1)) == 1
    assert rules_of(with_rules("ab12", 3)) == 3
    assert with_rules("ab12", 3) != with_rules("ab12", 2)


# -- what a response says before its page is read -----------------------------------------------


@dataclass(frozen=True)
class Response:
    id: str
    status: int
    expected: NotModified | Gone | None
    to_home_or_listing: bool = False
    raw_sha256: str | None = "same"
    known: tuple[str, str | None] | None = ("live", "same")  # status, raw_sha256


RESPONSES = [
    Response("304=not-modified-keeping-validators", 304, NotModified(URL)),
    Response("304-unknown=not-modified", 304, NotModified(URL), known=None),
    Response("404=gone", 404, Gone(URL), raw_sha256="other"),
    Response("410=gone", 410, Gone(URL), raw_sha256="other"),
    Response("404-of-a-removed-article=gone", 404, Gone(URL), known=("removed", "same")),
    Response("redirect-home=gone", 200, Gone(URL), to_home_or_listing=True),
    Response("redirect-home-unknown=gone", 200, Gone(URL), to_home_or_listing=True, known=None),
    Response(
        "same-bytes=not-modified-with-validators",
        200,
        NotModified(URL, etag='"e"', last_modified="Thu, 26 Nov 2026 10:00:00 GMT"),
    ),
    Response("same-bytes-of-a-removed-article=read", 200, None, known=("removed", "same")),
    Response("other-bytes=read", 200, None, raw_sha256="other"),
    Response("unknown-article=read", 200, None, known=None),
    Response("nothing-stored-of-the-bytes=read", 200, None, known=("live", None)),
    Response("not-a-web-page=read", 200, None, raw_sha256=None),
    Response("503=read", 503, None, raw_sha256="other"),
]


@pytest.mark.parametrize("row", RESPONSES, ids=[row.id for row in RESPONSES])
def test_response_outcome(row: Response) -> None:
    outcome = response_outcome(
        URL,
        status=row.status,
        redirected_to_home_or_listing=row.to_home_or_listing,
        raw_sha256=row.raw_sha256,
        known_status=None if row.known is None else row.known[0],
        known_raw_sha256=None if row.known is None else row.known[1],
        etag='"e"',
        last_modified="Thu, 26 Nov 2026 10:00:00 GMT",
    )
    assert outcome == row.expected


LATER_PAGES = [
    ("304=unchanged", 304, "other", True),
    ("same-bytes=unchanged", 200, "same", True),
    ("other-bytes=changed", 200, "other", False),
    ("not-a-web-page=changed", 200, None, False),
    ("404=changed", 404, "other", False),
]


@pytest.mark.parametrize(
    ("status", "raw_sha256", "unchanged"),
    [row[1:] for row in LATER_PAGES],
    ids=[row[0] for row in LATER_PAGES],
)
def test_later_page_unchanged(status: int, raw_sha256: str | None, unchanged: bool) -> None:
    stored = LaterPage(f"{URL}?page=all", etag='"e"', raw_sha256="same")
    assert later_page_unchanged(status, raw_sha256, stored) is unchanged


# -- who hears of a change ---------------------------------------------------------------------

OWN, OTHER, THIRD, RETIRED = 1, 2, 3, 4
RUN = 77


def change(
    topic: int,
    kind: str,
    from_version: int | None,
    to_version: int | None,
    *,
    fields: tuple[str, ...] = (),
    alert: bool = True,
) -> PlannedChange:
    return PlannedChange(
        topic_id=topic,
        kind=kind,
        fields=fields,
        from_version=from_version,
        to_version=to_version,
        alert=alert,
        crawl_run_id=RUN if topic == OWN else None,
    )


@dataclass(frozen=True)
class Fan:
    id: str
    previous: Previous | None
    outcome: Outcome
    announced_by: frozenset[int]
    expected_status: str
    expected_version: int
    expected: tuple[PlannedChange, ...]
    inactive: frozenset[int] = frozenset()


FAN_OUT = [
    Fan(
        "first-read=new",
        None,
        page("fa", A),
        frozenset(),
        "live",
        1,
        (change(OWN, "new", None, 1),),
    ),
    Fan(
        "read-by-another-topic-first=new-for-this-one",
        LIVE_A,
        page("fa", A),
        frozenset({OTHER}),
        "live",
        1,
        (change(OWN, "new", None, 1),),
    ),
    Fan(
        "304-of-an-article-another-topic-read=new-for-this-one",
        LIVE_A,
        NotModified(URL),
        frozenset({OTHER}),
        "live",
        1,
        (change(OWN, "new", None, 1),),
    ),
    Fan("announced-and-unchanged=nothing", LIVE_A, page("fa", A), frozenset({OWN}), "live", 1, ()),
    Fan(
        "edit=updated-for-every-topic-that-announced-it",
        LIVE_A,
        page("fb", B),
        frozenset({OWN, OTHER, THIRD}),
        "live",
        2,
        (
            change(OWN, "updated", 1, 2, fields=("body",)),
            change(OTHER, "updated", 1, 2, fields=("body",)),
            change(THIRD, "updated", 1, 2, fields=("body",)),
        ),
    ),
    Fan(
        "edit-seen-first-by-another-topic=updated-there-new-here",
        LIVE_A,
        page("fb", B),
        frozenset({OTHER}),
        "live",
        2,
        (change(OTHER, "updated", 1, 2, fields=("body",)), change(OWN, "new", None, 2)),
    ),
    Fan(
        "inactive-topic=hears-nothing",
        LIVE_A,
        page("fb", B),
        frozenset({OWN, RETIRED}),
        "live",
        2,
        (change(OWN, "updated", 1, 2, fields=("body",)),),
        inactive=frozenset({RETIRED}),
    ),
    Fan(
        "A-B-A=no-alert-for-any-topic",
        LIVE_B_AFTER_A,
        page("fa", A),
        frozenset({OWN, OTHER}),
        "live",
        3,
        (
            change(OWN, "updated", 2, 3, fields=("body",), alert=False),
            change(OTHER, "updated", 2, 3, fields=("body",), alert=False),
        ),
    ),
    Fan(
        "gone=removed-for-every-topic-that-announced-it",
        LIVE_A,
        Gone(URL),
        frozenset({OWN, OTHER}),
        "removed",
        1,
        (change(OWN, "removed", 1, None), change(OTHER, "removed", 1, None)),
    ),
    Fan(
        "gone-seen-by-a-topic-that-never-announced-it=removed-elsewhere-only",
        LIVE_A,
        Gone(URL),
        frozenset({OTHER}),
        "removed",
        1,
        (change(OTHER, "removed", 1, None),),
    ),
    Fan(
        "back-seen-by-a-topic-that-never-announced-it=restored-elsewhere-new-here",
        REMOVED_A,
        page("fa", A),
        frozenset({OTHER}),
        "live",
        1,
        (change(OTHER, "restored", 1, 1), change(OWN, "new", None, 1)),
    ),
    Fan(
        "back-edited=restored-with-a-new-version",
        REMOVED_A,
        page("fb", B),
        frozenset({OWN}),
        "live",
        2,
        (change(OWN, "restored", 1, 2, fields=("body",)),),
    ),
    Fan(
        "removed-and-still-gone=nothing",
        REMOVED_A,
        Gone(URL),
        frozenset({OTHER}),
        "removed",
        1,
        (),
    ),
    Fan("failure=nothing", LIVE_A, Failed(URL, "timeout"), frozenset({OTHER}), "live", 1, ()),
    Fan("304-of-an-unread-article=nothing", None, NotModified(URL), frozenset(), "live", 0, ()),
]


@pytest.mark.parametrize("row", FAN_OUT, ids=[row.id for row in FAN_OUT])
def test_decide(row: Fan) -> None:
    plan = decide(row.previous, row.outcome, Audience(OWN, RUN, row.announced_by, row.inactive))
    assert plan == Plan(
        classify(row.previous, row.outcome), row.expected_status, row.expected_version, row.expected
    )
