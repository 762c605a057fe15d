"""Live coverage, alert shaping and retention of version texts.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

``articles`` learn whether an article is live coverage (how it was recognised, since when,
until when) and the outcome of its last checks (changed or not), from which live coverage
without markup is recognised. ``changes`` may now be of the kinds ``live``, ``summary`` and
``ended``; an update recorded without alert rows is ``held`` until a summary reports it
(``summary_id``), and a summary says how many updates it folds since when.
``article_versions.text_pruned_at`` says when the retention policy removed a version's text.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = "kind IN ('new', 'updated', 'removed', 'restored')"
NEW_KINDS = "kind IN ('new', 'updated', 'removed', 'restored', 'live', 'summary', 'ended')"


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("live", sa.String(16), nullable=True))
        batch.add_column(sa.Column("live_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("live_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("checks", sa.String(32), nullable=False, server_default=""))
        batch.create_check_constraint(
            op.f("ck_articles_live"),
            "live IS NULL OR live IN ('markup', 'marker', 'changes')",
        )
        batch.create_index(op.f("ix_articles_live"), ["live"], unique=False)
    with op.batch_alter_table("articles") as batch:
        batch.alter_column("checks", existing_type=sa.String(32), server_default=None)
    with op.batch_alter_table("changes") as batch:
        batch.drop_constraint(op.f("ck_changes_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_changes_kind"), NEW_KINDS)
        batch.add_column(sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("summary_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("folded", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("folded_since", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            op.f("fk_changes_summary_id_changes"),
            "changes",
            ["summary_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("ix_changes_held_summary"), ["held", "summary_id"], unique=False)
    with op.batch_alter_table("changes") as batch:
        batch.alter_column("held", existing_type=sa.Boolean(), server_default=None)
        batch.alter_column("folded", existing_type=sa.Integer(), server_default=None)
    with op.batch_alter_table("article_versions") as batch:
        batch.add_column(sa.Column("text_pruned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("article_versions") as batch:
        batch.drop_column("text_pruned_at")
    op.execute("DELETE FROM changes WHERE kind IN ('live', 'summary', 'ended')")
    with op.batch_alter_table("changes") as batch:
        batch.drop_index(op.f("ix_changes_held_summary"))
        batch.drop_constraint(op.f("fk_changes_summary_id_changes"), type_="foreignkey")
        batch.drop_column("folded_since")
        batch.drop_column("folded")
        batch.drop_column("summary_id")
        batch.drop_column("held")
        batch.drop_constraint(op.f("ck_changes_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_changes_kind"), OLD_KINDS)
    with op.batch_alter_table("articles") as batch:
        batch.drop_index(op.f("ix_articles_live"))
        batch.drop_constraint(op.f("ck_articles_live"), type_="check")
        batch.drop_column("checks")
        batch.drop_column("live_until")
        batch.drop_column("live_since")
        batch.drop_column("live")
