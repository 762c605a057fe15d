"""Article pages: the later pages of multi-page articles, with their validators.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

One row per page the current version of an article was read from beyond the article's own
URL (page 2 on, or the view of the whole article), so a re-check asks for each of them with
its own ``If-None-Match`` / ``If-Modified-Since`` and an edit on a later page is seen although
the first page did not change. Articles read before this revision have no rows: their later
pages are recorded the next time their first page is read in full.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "article_pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("etag", sa.String(500), nullable=True),
        sa.Column("last_modified", sa.String(100), nullable=True),
        sa.Column("raw_sha256", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_article_pages_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_article_pages")),
        sa.UniqueConstraint("article_id", "position", name=op.f("uq_article_pages_article_id")),
    )


def downgrade() -> None:
    op.drop_table("article_pages")
