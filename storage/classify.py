"""What one observation of an article means: the detection table of the design, as code.

:func:`classify` is pure: it compares what the database knows of an article
(:class:`Previous`) with what a crawl just saw (:class:`Page`, :class:`NotModified`,
:class:`Gone` or :class:`Failed`) and returns a :class:`Decision`. The repository carries
the decision out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DecisionKind = Literal["new", "updated", "unchanged", "removed", "restored", "none"]


@dataclass(frozen=True)
class Previous:
    """The stored state of an article that has at least one version.

    ``known_fingerprints`` are the fingerprints of the versions already alerted on; content
    that returns to one of them (A -> B -> A) is recorded but not alerted again.
    """

    status: str
    current_fingerprint: str
    current_field_hashes: dict[str, str]
    known_fingerprints: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Page:
    """The article page was read: its fingerprint and one hash per field."""

    fingerprint: str
    field_hashes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NotModified:
    """The server answered 304 Not Modified, or sent a body identical byte for byte."""


@dataclass(frozen=True)
class Gone:
    """The article is gone: 404, 410, or a redirect to the home or topic page."""


@dataclass(frozen=True)
class Failed:
    """The page could not be read this time (timeout, 5xx, 403, robots refusal)."""

    reason: str = ""


Observed = Page | NotModified | Gone | Failed


@dataclass(frozen=True)
class Decision:
    """What to record.

    ``kind`` is ``none`` when nothing about the article changes (a failure, or nothing
    known to compare with) and ``unchanged`` when only ``last_checked`` moves.
    ``new_version`` says whether the page's content is stored as a new version; ``fields``
    names the fields whose hash differs from the current version's (sorted).
    """

    kind: DecisionKind
    fields: tuple[str, ...] = ()
    alert: bool = False
    new_version: bool = False


NOTHING = Decision("none")
UNCHANGED = Decision("unchanged")


def changed_fields(old: dict[str, str], new: dict[str, str]) -> tuple[str, ...]:
    """Names of the fields whose hash differs between ``old`` and ``new`` (sorted)."""
    return tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))


def classify(previous: Previous | None, observed: Observed) -> Decision:
    """Decide what an observation of an article means, given what is stored about it."""
    if isinstance(observed, Failed):
        return NOTHING
    if previous is None:
        if isinstance(observed, Page):
            return Decision("new", alert=True, new_version=True)
        return NOTHING
    removed = previous.status == "removed"
    if isinstance(observed, Gone):
        return UNCHANGED if removed else Decision("removed", alert=True)
    if isinstance(observed, NotModified):
        # The validators (or the bytes) match what was stored: the stored page is back.
        return Decision("restored", alert=True) if removed else UNCHANGED
    same = observed.fingerprint == previous.current_fingerprint
    fields = () if same else changed_fields(previous.current_field_hashes, observed.field_hashes)
    if removed:
        return Decision("restored", fields=fields, alert=True, new_version=not same)
    if same:
        return UNCHANGED
    seen_before = observed.fingerprint in previous.known_fingerprints
    return Decision("updated", fields=fields, alert=not seen_before, new_version=True)
