"""Crawl runs: ``process_id`` and ``process_start`` of the crawl process, and ``due_at``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

A restarted daemon finds a crawl process a previous daemon left running by its pid and start
time, and stops it before it marks the run failed. ``due_at`` is when the schedule wanted the
run to start, so the lag of a start is known. Runs already stored have none of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("crawl_runs") as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("process_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("process_start", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crawl_runs") as batch:
        batch.drop_column("process_start")
        batch.drop_column("process_id")
        batch.drop_column("due_at")
