"""The detection table (README, "What counts as a change"), row by row."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from storage.classify import (
    Decision,
    Failed,
    Gone,
    NotModified,
    Observed,
    Page,
    Previous,
    classify,
)

A = {"title": "ta", "lead": "la", "body": "ba", "authors": "aa", "dates": "da"}
B = {**A, "body": "bb"}  # body edited
C = {**A, "title": "tc", "dates": "dc"}  # headline and modified date edited

LIVE_A = Previous("live", "fa", A, frozenset({"fa"}))
# Went A -> B; both were alerted on.
LIVE_B_AFTER_A = Previous("live", "fb", B, frozenset({"fa", "fb"}))
# Went A -> B -> A: the return to A was recorded without an alert.
LIVE_A_AFTER_B = Previous("live", "fa", A, frozenset({"fa", "fb"}))
REMOVED_A = Previous("removed", "fa", A, frozenset({"fa"}))


@dataclass(frozen=True)
class Row:
    id: str
    previous: Previous | None
    observed: Observed
    expected: Decision


TABLE = [
    # none -> page with article: new, version 1
    Row("none+page=new", None, Page("fa", A), Decision("new", (), True, True)),
    Row("none+304=nothing", None, NotModified(), Decision("none")),
    Row("none+gone=nothing", None, Gone(), Decision("none")),
    Row("none+failed=nothing", None, Failed("timeout"), Decision("none")),
    # version v -> 304 or same fingerprint: unchanged
    Row("live+304=unchanged", LIVE_A, NotModified(), Decision("unchanged")),
    Row("live+same=unchanged", LIVE_A, Page("fa", A), Decision("unchanged")),
    # version v -> different fingerprint: updated, with the changed fields
    Row(
        "live+body-edit=updated", LIVE_A, Page("fb", B), Decision("updated", ("body",), True, True)
    ),
    Row(
        "live+title-and-dates=updated",
        LIVE_A,
        Page("fc", C),
        Decision("updated", ("dates", "title"), True, True),
    ),
    # A -> B -> A: recorded, but alerted only once per distinct content
    Row(
        "A-B-A=updated-without-alert",
        LIVE_B_AFTER_A,
        Page("fa", A),
        Decision("updated", ("body",), False, True),
    ),
    Row(
        "A-B-A-B=updated-without-alert",
        LIVE_A_AFTER_B,
        Page("fb", B),
        Decision("updated", ("body",), False, True),
    ),
    Row(
        "A-B-C=updated-with-alert",
        LIVE_B_AFTER_A,
        Page("fc", C),
        Decision("updated", ("body", "dates", "title"), True, True),
    ),
    # live -> 404 / 410 / redirect home: removed
    Row("live+gone=removed", LIVE_A, Gone(), Decision("removed", (), True, False)),
    Row("removed+gone=unchanged", REMOVED_A, Gone(), Decision("unchanged")),
    # removed -> page again: restored (a new version only if the content differs)
    Row("removed+same=restored", REMOVED_A, Page("fa", A), Decision("restored", (), True, False)),
    Row(
        "removed+edited=restored-new-version",
        REMOVED_A,
        Page("fb", B),
        Decision("restored", ("body",), True, True),
    ),
    Row("removed+304=restored", REMOVED_A, NotModified(), Decision("restored", (), True, False)),
    # any -> timeout, 5xx, 403, robots: no change
    Row("live+timeout=nothing", LIVE_A, Failed("timeout"), Decision("none")),
    Row("live+503=nothing", LIVE_A, Failed("HTTP 503"), Decision("none")),
    Row("live+403=nothing", LIVE_A, Failed("HTTP 403"), Decision("none")),
    Row("live+robots=nothing", LIVE_A, Failed("robots.txt"), Decision("none")),
    Row("removed+failed=nothing", REMOVED_A, Failed("timeout"), Decision("none")),
]


@pytest.mark.parametrize("row", TABLE, ids=[row.id for row in TABLE])
def test_classify(row: Row) -> None:
    assert classify(row.previous, row.observed) == row.expected


def test_table_ids_are_unique() -> None:
    assert len({row.id for row in TABLE}) == len(TABLE)
