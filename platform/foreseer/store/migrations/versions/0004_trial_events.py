"""The journal of typed trial events (proposed, started, epoch, scored, paused, resumed, retried,
stopped, failed, completed): what resume rebuilds a job from. Jobs recorded before it get their
events from their trial and epoch rows, so they can still be resumed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    events = op.create_table(
        "foreseer_events",
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    _backfill(op.get_bind(), events)


def _backfill(connection: sa.Connection, events: sa.Table) -> None:
    """Events from the trial and epoch rows of 0003 (a frozen copy of what the driver emits)."""
    meta = sa.MetaData()
    trials = sa.Table("foreseer_trials", meta, autoload_with=connection)
    epochs = sa.Table("foreseer_epochs", meta, autoload_with=connection)
    by_trial: dict = {}
    for row in connection.execute(sa.select(epochs).order_by(epochs.c.recorded_at, epochs.c.epoch)):
        by_trial.setdefault((row.job_id, row.number), []).append(row)
    seq: dict[str, int] = {}
    rows = []

    def add(job_id, number, kind, payload, at):
        seq[job_id] = seq.get(job_id, 0) + 1
        rows.append(
            {
                "job_id": job_id,
                "seq": seq[job_id],
                "number": number,
                "kind": kind,
                "payload": payload,
                "at": at,
            }
        )

    for t in connection.execute(
        sa.select(trials).order_by(trials.c.job_id, trials.c.created_at, trials.c.number)
    ):
        at = t.created_at.timestamp() if t.created_at else 0.0
        add(t.job_id, t.number, "proposed", {"candidate": t.candidate, "sampled": t.distributions}, at)
        add(t.job_id, t.number, "started", {"run_id": t.run_id, "from_epoch": 0}, at)
        for e in by_trial.get((t.job_id, t.number), []):
            checkpoint = t.checkpoint if e.epoch == t.checkpoint_epoch else None
            add(
                t.job_id,
                t.number,
                "epoch",
                {"epoch": e.epoch, "metrics": e.metrics, "checkpoint": checkpoint},
                e.recorded_at,
            )
        ending = {
            "completed": ("completed", {"reason": t.reason}),
            "stopped": ("stopped", {"by": t.stopped_by or "", "reason": t.reason}),
            "failed": ("failed", {"reason": t.reason}),
        }.get(t.state)
        if ending is not None:
            add(t.job_id, t.number, *ending, at)
    if rows:
        op.bulk_insert(events, rows)


def downgrade() -> None:
    op.drop_table("foreseer_events")
