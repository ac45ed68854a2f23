"""Schedules, their firings, and where a job was submitted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("foreseer_jobs") as batch:
        batch.add_column(sa.Column("cluster", sa.Text, nullable=True))
        batch.add_column(sa.Column("submission_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("schedule_id", sa.String(32), nullable=True))
        batch.create_index("ix_foreseer_jobs_schedule_id", ["schedule_id"])
    op.create_table(
        "foreseer_schedules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("cron", sa.String(128), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("cluster", sa.Text, nullable=True),
        sa.Column("missed", sa.String(16), nullable=False),
        sa.Column("overlap", sa.String(16), nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "foreseer_firings",
        sa.Column(
            "schedule_id",
            sa.String(32),
            sa.ForeignKey("foreseer_schedules.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        # The primary key is the guarantee that an occurrence fires once, whatever the daemons do.
        sa.Column("occurrence", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("daemon", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("foreseer_firings")
    op.drop_table("foreseer_schedules")
    with op.batch_alter_table("foreseer_jobs") as batch:
        batch.drop_index("ix_foreseer_jobs_schedule_id")
        batch.drop_column("schedule_id")
        batch.drop_column("submission_id")
        batch.drop_column("cluster")
