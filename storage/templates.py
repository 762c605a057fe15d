"""Site templates: the blocks of text a site puts on many of its articles, learned from them.

A newsletter sign-up box, "write to us at …", a "more on this topic" teaser, a photo credit
or the site's own description often stands inside the article's container, where extraction
takes it for article text. topicwatch watches a site's articles, not one page: a block (a
paragraph of the extracted body) that recurs on many of them is the site's, not the
article's. Such a block is learned, per site, from what crawls already read, and what
happens to it on one article is not an edit of that article.

**The learning rule** (:func:`is_template`). Each paragraph of a body is known by a short
hash of its normalised text (:func:`crawler.fingerprint.block_hashes`). The lead's blocks
(the paragraphs of the visible standfirst, and the description) are known the same way: a
version's list of block hashes holds them first, each marked (:data:`LEAD_MARK`), then the
body's. A block is counted by its text, wherever it stands: a box that one page's
standfirst search takes into the lead and another page's body holds is one block of the
site. A template is a block that recurs on the site's *pages*, not only in what extraction
kept of them: the page of an article read for the first time gives, beside its lead's and
body's blocks, the hashes of its own blocks of text (its paragraphs, and the ``div``,
``section``, ``aside`` and ``blockquote`` elements with no block inside them; normalised as
a body's paragraphs, :func:`crawler.reading.page_blocks`), whether extraction kept them or
not. A site's template sets a box inside a long article's container and after a short
one's, or extraction keeps a box on some pages and leaves it out on others: either way the
box is counted on every page that shows it, so a box kept in the body of two articles and
shown beside the third is known from the third on. A site counts the articles it has read
(each once, when its first version is stored) and, per block, on how many of their pages it
stood and when it was first seen. A block is template when at least :data:`MIN_PAGES` (3)
articles' pages showed it and at least :data:`MIN_SHARE` (20 %) of the site's articles read
since it first appeared did. Three,
because two articles sharing a paragraph is ordinary news work (a follow-up quoting the
first report, a story filed twice), while a template stands on every article; a fifth,
because a site may show a box on one section's articles only, or rotate a few teasers,
while an article's own paragraph is rarely repeated word for word on one article in five.
Counting from the block's first sighting lets a box the site adds today be learned from the
next three articles, however many came before it.

**Comparing two versions of a body, or of a lead** (:func:`body_edited`, applied to the
body's blocks and to the lead's apart, :func:`lead_and_body`). Learning must never raise an
alert by itself, in either direction: a block that becomes template after articles holding
it were stored, or that stops being template, must not make them look edited. So the body's
hash is not recomputed without the templates; the two versions are compared block by block,
with the site's templates of the moment applied to both sides alike. The sequences of block
hashes are aligned; each stretch where they differ is an edit of the article unless it is
template churn:

- every block removed and added there is template (a box added, dropped, or swapped for
  another template);
- the blocks removed are all template and no more blocks take their place: a template
  rewritten in place, whose new text the site has not shown often enough yet to be known (a
  site-wide rewrite of the box, read first on this article; a rotating teaser);
- the blocks added are all template and take the place of no more blocks: a block that was
  template (and is no longer) replaced by the one that is now.

A paragraph added to or removed from the article, or rewritten, alerts as before, also when it
stands next to a template. The cost of the rule: a paragraph of the article's own that the
site repeats word for word on a fifth of its articles (a running story's background
paragraph) is taken for template, and an edit inside it is not alerted; adding or removing
article text around it still is. Counting the pages' blocks widens that a little: an
article's paragraph the site shows whole on a fifth of its other pages (a teaser that quotes
the standfirst in full, on every page for as long as the site reads a fifth of its articles
in that time) is template too. Teasers of other articles are mostly cut short or a headline
of their own, whose text is another block.

**Storage.** ``sites`` holds a site's count of articles read; ``site_blocks`` one row per
site and block hash with its count and first sighting. Recording reads only the rows of the
blocks it compares, by primary key, and adds the blocks of the articles it reads for the
first time in one statement per batch (a page's lead, body and page blocks each counted
once). A block seen on fewer than :data:`MIN_PAGES` articles
that many articles ago (:data:`FORGET_AFTER`) can no longer be template soon and is
forgotten, so the table holds the recurring blocks and those of the recent articles only.
The table has no index but its primary key (site, block), in which SQLite stores its rows
(``WITHOUT ROWID``): an upsert finds and changes its row in one B-tree, and forgetting finds
a site's rows by the key's first column.
Versions stored before site templates existed have no block hashes; their bodies are
compared by hash, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from difflib import SequenceMatcher
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from storage.db import chunks, upsert_for
from storage.models import Site, SiteBlock

MIN_PAGES = 3
MIN_SHARE = 0.2
# Marks a block hash of the lead in a version's list of block hashes (body hashes are hex).
LEAD_MARK = "L"
# A block seen on fewer than MIN_PAGES articles, first seen this many articles ago, is dropped.
FORGET_AFTER = 100
# Forgetting runs each time a site has read this many more articles.
FORGET_EVERY = 100


def site_of(url: str) -> str:
    """The site an article belongs to: its URL's host (and port), lowercased, without
    ``www.``."""
    host = urlsplit(url).netloc.rpartition("@")[2].lower()
    return host.removeprefix("www.")


def unmarked(block: str) -> str:
    """A block's hash as the site knows it: the same in the lead and in the body."""
    return block.removeprefix(LEAD_MARK)


def lead_and_body(blocks: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A version's block hashes parted: the lead's (marked) and the body's, each in order."""
    return (
        tuple(block for block in blocks if block.startswith(LEAD_MARK)),
        tuple(block for block in blocks if not block.startswith(LEAD_MARK)),
    )


def is_template(pages: int, since: int) -> bool:
    """Whether a block is template: ``pages`` of the site's articles held it, of the
    ``since`` articles read since it was first seen (that one included)."""
    return pages >= MIN_PAGES and pages >= MIN_SHARE * since


def body_edited(old: Sequence[str], new: Sequence[str], templates: Collection[str]) -> bool:
    """Whether the body whose block hashes are ``new`` is an edit of the one whose block
    hashes are ``old``, given the site's template blocks (see the module: where the two
    differ only by template churn, it is not). The same for two versions of a lead."""
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for tag, old_start, old_end, new_start, new_end in matcher.get_opcodes():
        if tag == "equal":
            continue
        if not _template_churn(old[old_start:old_end], new[new_start:new_end], templates):
            return True
    return False


def _template_churn(
    removed: Sequence[str], added: Sequence[str], templates: Collection[str]
) -> bool:
    removed_template = all(unmarked(block) in templates for block in removed)
    added_template = all(unmarked(block) in templates for block in added)
    if removed_template and added_template:
        return True
    if removed and removed_template and len(added) <= len(removed):
        return True
    return bool(added) and added_template and len(removed) <= len(added)


def count_blocks(
    before: int, pages: Iterable[Collection[str]]
) -> tuple[int, dict[str, tuple[int, int]]]:
    """A site that had read ``before`` articles reads ``pages`` (the block hashes of each
    article read for the first time: its lead's, its body's and its page's, a hash given
    twice counted once): its article count after them, and per block on how many of them it
    stood and the article count at which it was first seen among them."""
    seen = before
    counts: dict[str, list[int]] = {}
    for blocks in pages:
        seen += 1
        for block in {block.removeprefix(LEAD_MARK) for block in blocks}:
            count = counts.get(block)
            if count is None:
                counts[block] = [1, seen]
            else:
                count[0] += 1
    return seen, {block: (n, first) for block, (n, first) in counts.items()}


def templates_of_new_site(pages: Iterable[Collection[str]]) -> frozenset[str]:
    """The templates of a site that has read only ``pages`` (block hashes of each article's
    lead, body and page)."""
    seen, counts = count_blocks(0, pages)
    return frozenset(
        block for block, (n, first) in counts.items() if is_template(n, seen - first + 1)
    )


@functools.cache
def _statements(dialect: str) -> tuple[Any, Any, Any, Any, Any, Any]:
    """:func:`learn`'s and :func:`templates_among`'s statements for a database of this kind,
    built once per process, as Core statements (the ORM's handling of each costs more than
    the database spends on it): the sites' upsert, their rows locked, a site's count set,
    its forgotten blocks deleted, the sites by host and a site's blocks among some."""
    sites: Any = Site.__table__
    blocks: Any = SiteBlock.__table__
    hosts: Any = bindparam("hosts", expanding=True)
    return (
        upsert_for(dialect, Site).on_conflict_do_nothing(index_elements=[sites.c.host]),
        select(sites.c.id, sites.c.host, sites.c.pages)
        .where(sites.c.host.in_(hosts))
        .order_by(sites.c.host)
        .with_for_update(),
        update(sites).where(sites.c.id == bindparam("site_id")).values(pages=bindparam("seen")),
        delete(blocks).where(
            blocks.c.site_id == bindparam("site_id"),
            blocks.c.first_seen <= bindparam("before"),
            blocks.c.pages < MIN_PAGES,
        ),
        select(sites.c.id, sites.c.host, sites.c.pages).where(sites.c.host.in_(hosts)),
        select(blocks.c.block, blocks.c.pages, blocks.c.first_seen).where(
            blocks.c.site_id == bindparam("site_id"),
            blocks.c.block.in_(bindparam("blocks", expanding=True)),
        ),
    )


def learn(session: Session, pages: Iterable[tuple[str, Collection[str]]]) -> None:
    """Count the blocks of articles read for the first time: ``(site, block hashes)`` each,
    the hashes those of the article's lead, body and page (:func:`count_blocks`).

    Each site's row is locked while its counts change, so concurrent crawls of one site
    count every article once."""
    by_site: dict[str, list[Collection[str]]] = {}
    for site, blocks in pages:
        by_site.setdefault(site, []).append(blocks)
    if not by_site:
        return
    connection = session.connection()
    dialect = connection.dialect.name
    upsert, lock, set_count, forget, _, _ = _statements(dialect)
    hosts = sorted(by_site)
    connection.execute(upsert, [{"host": host, "pages": 0} for host in hosts])
    # Locked in host order, so concurrent crawls never wait for each other in a circle.
    rows = [
        tuple(row)
        for chunk in chunks(hosts)
        for row in connection.execute(lock, {"hosts": list(chunk)}).all()
    ]
    counted: list[tuple[int, str, int, int]] = []
    for site_id, host, before in rows:
        seen, counts = count_blocks(before, by_site[host])
        counted.extend((site_id, block, n, first) for block, (n, first) in sorted(counts.items()))
        connection.execute(set_count, {"site_id": site_id, "seen": seen})
        if seen // FORGET_EVERY > before // FORGET_EVERY:
            connection.execute(forget, {"site_id": site_id, "before": seen - FORGET_AFTER})
    if counted:
        _add_counts(session, dialect, counted)


# Adding blocks' counts, as the database's driver takes the statement: every article read for
# the first time counts a row per paragraph, and SQLAlchemy's processing of each of these many
# small rows (through the table, let alone the ORM's bulk insert) cost several times what the
# driver and the database spend on them. PostgreSQL takes the rows as four arrays in one
# statement (one round trip, one plan); SQLite the rows one by one from its driver's loop.
# The rows of one call name each (site, block) once, as ON CONFLICT DO UPDATE requires.
_ADD_COUNTS = (
    "INSERT INTO site_blocks (site_id, block, pages, first_seen) {rows} "
    "ON CONFLICT (site_id, block) DO UPDATE SET pages = site_blocks.pages + excluded.pages"
)
_ADD_COUNTS_SQLITE = _ADD_COUNTS.format(rows="VALUES (?, ?, ?, ?)")
_ADD_COUNTS_POSTGRESQL = _ADD_COUNTS.format(
    rows="SELECT * FROM unnest(%s::integer[], %s::varchar[], %s::integer[], %s::integer[])"
)


def _add_counts(session: Session, dialect: str, rows: list[tuple[int, str, int, int]]) -> None:
    """Add ``rows`` (site id, block, articles holding it, first seen) to ``site_blocks``."""
    connection = session.connection()
    if dialect == "postgresql":
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        connection.exec_driver_sql(_ADD_COUNTS_POSTGRESQL, columns)
    else:
        connection.exec_driver_sql(_ADD_COUNTS_SQLITE, rows)


def templates_among(
    session: Session, wanted: Mapping[str, Collection[str]]
) -> dict[str, frozenset[str]]:
    """Of the blocks ``wanted`` names per site, those that are the site's templates now (as
    :func:`unmarked` names them)."""
    connection = session.connection()
    _, _, _, _, sites_by_host, blocks_among = _statements(connection.dialect.name)
    found: dict[str, frozenset[str]] = {}
    hosts = sorted(site for site, blocks in wanted.items() if blocks)
    for host_chunk in chunks(hosts):
        sites = connection.execute(sites_by_host, {"hosts": list(host_chunk)}).all()
        for site_id, host, site_pages in sites:
            templates: set[str] = set()
            for block_chunk in chunks(sorted({unmarked(block) for block in wanted[host]})):
                rows = connection.execute(
                    blocks_among, {"site_id": site_id, "blocks": list(block_chunk)}
                ).all()
                templates.update(
                    block
                    for block, pages, first_seen in rows
                    if is_template(pages, site_pages - first_seen + 1)
                )
            found[host] = frozenset(templates)
    return found
