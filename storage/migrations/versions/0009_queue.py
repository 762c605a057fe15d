"""Where a crawl run ran (``host``, ``worker``, ``job_id``), and the job queue's schema.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

``crawl_runs`` says on which machine and under which process each run ran, and which queue
job asked for it (so that the run of a job whose worker died can be found and closed). On
PostgreSQL this revision also installs the schema of the job queue (Procrastinate's
``procrastinate_*`` tables, types, functions and triggers, from the SQL file the installed
``procrastinate`` package ships), so that ``topicwatch db upgrade`` still upgrades
everything; the queue runs only on PostgreSQL (``[executor] kind = "queue"``), so SQLite
gets the columns alone. A later release of Procrastinate that changes its schema ships its
own migration files; a topicwatch revision applies them, as this one applies the whole
schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("crawl_runs") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("worker", sa.String(255), nullable=True))
        batch.add_column(sa.Column("job_id", sa.BigInteger(), nullable=True))
        batch.create_index(batch.f("ix_crawl_runs_job_id"), ["job_id"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        schema = (resources.files("procrastinate.sql") / "schema.sql").read_text("utf-8")
        # Through the driver itself, in Alembic's transaction: the file is plain SQL, with
        # no parameters for SQLAlchemy or psycopg to fill in.
        bind.connection.driver_connection.execute(schema)  # type: ignore[union-attr]


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in (
            "procrastinate_events",
            "procrastinate_periodic_defers",
            "procrastinate_jobs",
            "procrastinate_workers",
        ):
            op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        functions = (
            bind.exec_driver_sql(
                "SELECT p.oid::regprocedure::text FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = current_schema() AND left(p.proname, 13) = 'procrastinate'"
            )
            .scalars()
            .all()
        )
        for function in functions:
            op.execute(f"DROP FUNCTION IF EXISTS {function} CASCADE")
        for kind in (
            "procrastinate_job_to_defer_v1",
            "procrastinate_job_event_type",
            "procrastinate_job_status",
        ):
            op.execute(f"DROP TYPE IF EXISTS {kind} CASCADE")
    with op.batch_alter_table("crawl_runs") as batch:
        batch.drop_index(batch.f("ix_crawl_runs_job_id"))
        batch.drop_column("job_id")
        batch.drop_column("worker")
        batch.drop_column("host")
