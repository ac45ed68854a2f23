"""Jobs, trials and epochs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

The tables are spelled out here, frozen, rather than taken from the models: a migration must
create what this revision had, whatever the models say later.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "foreseer_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, index=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("mlflow_experiment_id", sa.String(64)),
        sa.Column("mlflow_parent_run_id", sa.String(64)),
        sa.Column("tune_path", sa.Text),
        sa.Column("data_fingerprint", sa.String(64)),
        sa.Column("driver", sa.JSON),
        sa.Column("summary", sa.JSON),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "foreseer_trials",
        sa.Column(
            "job_id", sa.String(32), sa.ForeignKey("foreseer_jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("candidate", sa.JSON, nullable=False),
        sa.Column("distributions", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("stopped_by", sa.String(32)),
        sa.Column("run_id", sa.String(64)),
        sa.Column("checkpoint", sa.Text),
        sa.Column("checkpoint_epoch", sa.Integer),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("resumed_from_epoch", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "foreseer_epochs",
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("epoch", sa.Integer, primary_key=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("foreseer_epochs")
    op.drop_table("foreseer_trials")
    op.drop_table("foreseer_jobs")
