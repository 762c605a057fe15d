"""The daemon table: which daemon serves the database (host, pid, since), and its next runs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

One daemon serves a database at a time (a lock beside the SQLite file, a PostgreSQL advisory
lock); the one that holds the lock writes this row, so that ``topicwatch status`` and a
second daemon refused at start can name it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daemon",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_runs", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_daemon_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daemon")),
    )


def downgrade() -> None:
    op.drop_table("daemon")
