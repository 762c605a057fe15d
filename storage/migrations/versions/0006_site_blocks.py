"""Site templates: ``sites``, ``site_blocks``, and the block hashes of each version's body.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

A site's template blocks are learned from its articles (``storage.templates``). Versions
stored before have no block hashes (``blocks`` is NULL): their bodies are compared by hash,
as before, and the sites' counts start with the next articles read.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(300), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("host", name=op.f("uq_sites_host")),
    )
    op.create_table(
        "site_blocks",
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
    )
    op.create_index(
        "ix_site_blocks_site_first_seen", "site_blocks", ["site_id", "first_seen"], unique=False
    )
    with op.batch_alter_table("article_versions") as batch:
        batch.add_column(sa.Column("blocks", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("article_versions") as batch:
        batch.drop_column("blocks")
    op.drop_index("ix_site_blocks_site_first_seen", table_name="site_blocks")
    op.drop_table("site_blocks")
    op.drop_table("sites")
