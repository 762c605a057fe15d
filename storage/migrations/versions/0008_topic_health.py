"""Topic health: whether each topic's crawl works, and the alerts that say it broke or recovered.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

``topic_health`` holds one row per topic whose health was evaluated (a topic without one is
healthy); ``health_events`` one row per change of that state, "broken" or "recovered". Their
alerts go through the same outbox as those of changes: an ``alerts`` row now reports either a
change or a health event, never both.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "topic_health",
        sa.Column("topic_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("problem", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('ok', 'broken')", name=op.f("ck_topic_health_state")),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_topic_health_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("topic_id", name=op.f("pk_topic_health")),
    )
    op.create_table(
        "health_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("problem", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("crawl_run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('broken', 'recovered')", name=op.f("ck_health_events_kind")),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_health_events_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["crawl_run_id"],
            ["crawl_runs.id"],
            name=op.f("fk_health_events_crawl_run_id_crawl_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_events")),
    )
    op.create_index(op.f("ix_health_events_topic_id"), "health_events", ["topic_id"], unique=False)
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("change_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("health_event_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_alerts_health_event_id_health_events"),
            "health_events",
            ["health_event_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_unique_constraint(
            op.f("uq_alerts_health_event_id"), ["health_event_id", "recipient"]
        )
        batch.create_check_constraint(
            op.f("ck_alerts_reports_one"), "(change_id IS NULL) <> (health_event_id IS NULL)"
        )


def downgrade() -> None:
    op.execute("DELETE FROM alerts WHERE change_id IS NULL")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint(op.f("ck_alerts_reports_one"), type_="check")
        batch.drop_constraint(op.f("uq_alerts_health_event_id"), type_="unique")
        batch.drop_constraint(op.f("fk_alerts_health_event_id_health_events"), type_="foreignkey")
        batch.drop_column("health_event_id")
        batch.alter_column("change_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index(op.f("ix_health_events_topic_id"), table_name="health_events")
    op.drop_table("health_events")
    op.drop_table("topic_health")
