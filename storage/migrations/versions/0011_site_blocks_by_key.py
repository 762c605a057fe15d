"""Site templates' block counts kept by their primary key alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

Every article read for the first time adds a row or a count per block to ``site_blocks``,
tens of rows a page. The index on ``(site_id, first_seen)`` served only the forgetting of
rarely seen blocks, once per hundred articles of a site, which the primary key's
``site_id`` prefix finds as well (a site's rows are bounded by that forgetting); it is
dropped, so an upsert updates one B-tree less. On SQLite the table is also rebuilt
``WITHOUT ROWID``: its rows are stored in the primary key's B-tree itself, so an upsert
finds and changes its row in one B-tree rather than in the key's index and the table.
The rows stay the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_site_blocks_site_first_seen"
COPY = (
    "INSERT INTO _site_blocks_new (site_id, block, pages, first_seen) "
    "SELECT site_id, block, pages, first_seen FROM site_blocks"
)


def _rebuild_sqlite(*, with_rowid: bool) -> None:
    """``site_blocks`` made anew on SQLite, with or without a rowid, its rows copied."""
    op.create_table(
        "_site_blocks_new",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("block", sa.String(16), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_site_blocks_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "block", name=op.f("pk_site_blocks")),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(COPY)
    op.drop_table("site_blocks")
    op.rename_table("_site_blocks_new", "site_blocks")


def upgrade() -> None:
    op.drop_index(INDEX, table_name="site_blocks")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(with_rowid=True)
    op.create_index(INDEX, "site_blocks", ["site_id", "first_seen"], unique=False)
