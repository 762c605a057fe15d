"""What extraction makes of one article page."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractedArticle:
    """The parts of a news article that topicwatch watches.

    ``url`` is the canonical URL (the article's identity); ``body`` is the main text with
    paragraphs separated by blank lines; ``lead`` the standfirst the page shows (its blocks
    separated by blank lines too), else the first description the metadata gives;
    ``description`` holds every distinct description (JSON-LD ``description`` and
    ``abstract``, ``<meta>``), one a line: a change to the standfirst or to a description is
    a change of the lead. Dates are kept as the site states them (ISO 8601 where the site
    gives it).
    """

    url: str
    title: str
    body: str
    lead: str = ""
    authors: tuple[str, ...] = ()
    published: str | None = None
    modified: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Fingerprint:
    """SHA-256 over the normalised article, and one hash per watched field.

    ``fields`` has the keys ``title``, ``lead``, ``body``, ``authors`` and ``dates``.
    ``blocks`` has one short hash per block of the lead (marked
    :data:`storage.templates.LEAD_MARK`), then one per paragraph of the body, in order: what
    site templates are learned from and what two versions of the lead and of the body are
    compared by (:mod:`storage.templates`).
    """

    digest: str
    fields: dict[str, str]
    blocks: tuple[str, ...] = ()

    def changed_fields(self, other: dict[str, str]) -> list[str]:
        """Names of the fields whose hash differs from ``other`` (sorted)."""
        return sorted(
            k for k in self.fields.keys() | other.keys() if self.fields.get(k) != other.get(k)
        )
