"""Articles: ``age_from``, where the re-check table counts an article's youth from.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

It is the moment the article was first seen, or the publication time its page states when
that is earlier. Articles already stored start from when they were first seen; their stated
publication time counts from the next time their page is read.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("age_from", UTC_DATETIME, nullable=True))
    op.execute("UPDATE articles SET age_from = first_seen")
    with op.batch_alter_table("articles") as batch:
        batch.alter_column("age_from", existing_type=UTC_DATETIME, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("age_from")
