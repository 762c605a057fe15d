"""Installation: a random token made once per database, part of every digest's Message-ID.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Message-IDs built from alert ids alone repeat across databases (every database has an
alert 1); with this token in them they are unique to the installation.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_installation_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )
    op.bulk_insert(installation, [{"id": 1, "token": secrets.token_hex(16)}])


def downgrade() -> None:
    op.drop_table("installation")
