"""Foreseer's tables: jobs, the typed events of their trials and, kept from those events, their
trials and every epoch a trial reported; schedules and their firings.

The schema is made and changed only by the Alembic migrations in ``migrations/``; these models
are how the code reads and writes it. Table names carry a ``foreseer_`` prefix and the migration
history lives in ``foreseer_alembic_version``, so the tables share a database with MLflow's and
Optuna's (each keeps its own ``alembic_version``) without colliding.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

__all__ = [
    "AmbiguousJobId",
    "Base",
    "EpochRow",
    "EventRow",
    "FiringRow",
    "JobRow",
    "ScheduleRow",
    "TrialRow",
    "JOB_STATES",
    "utcnow",
]

#: How many matching jobs an ambiguous id prefix lists.
_AMBIGUOUS_SHOWN = 5

#: queued → running → succeeded | failed | cancelled; a resumed job goes back to running.
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class AmbiguousJobId(LookupError):
    """A job id prefix that matches several jobs; the message lists them."""

    def __init__(self, prefix: str, rows: list[JobRow]) -> None:
        listed = ", ".join(f"{r.id} ({r.name}, {r.created_at:%Y-%m-%d %H:%M})" for r in rows)
        more = " and more" if len(rows) == _AMBIGUOUS_SHOWN else ""
        super().__init__(f"job id {prefix!r} is ambiguous: it starts {listed}{more}; give more of the id")


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "foreseer_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    mlflow_experiment_id: Mapped[str | None] = mapped_column(String(64))
    mlflow_parent_run_id: Mapped[str | None] = mapped_column(String(64))
    tune_path: Mapped[str | None] = mapped_column(Text)
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))
    driver: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    #: the Ray dashboard address and submission id of a job sent to a cluster
    cluster: Mapped[str | None] = mapped_column(Text)
    submission_id: Mapped[str | None] = mapped_column(String(128))
    #: the schedule that fired the job
    schedule_id: Mapped[str | None] = mapped_column(String(32), index=True)

    @classmethod
    def find(cls, session: Session, job_id: str) -> JobRow | None:
        """A job by id, or by a unique prefix of its id; ``None`` when none matches.

        Raises:
            AmbiguousJobId: the prefix matches several jobs.
        """
        row = session.get(cls, job_id)
        if row is not None:
            return row
        query = select(cls).where(cls.id.startswith(job_id)).order_by(cls.created_at)
        matches = list(session.scalars(query.limit(_AMBIGUOUS_SHOWN)))
        if len(matches) > 1:
            raise AmbiguousJobId(job_id, matches)
        return matches[0] if matches else None

    @classmethod
    def recent(cls, session: Session, limit: int = 50) -> list[JobRow]:
        return list(session.scalars(select(cls).order_by(cls.created_at.desc()).limit(limit)))


class TrialRow(Base):
    __tablename__ = "foreseer_trials"

    job_id: Mapped[str] = mapped_column(ForeignKey("foreseer_jobs.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate: Mapped[dict[str, Any]] = mapped_column(JSON)
    distributions: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    stopped_by: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(64))
    checkpoint: Mapped[str | None] = mapped_column(Text)
    checkpoint_epoch: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    retry_errors: Mapped[list[str] | None] = mapped_column(JSON)
    resumed_from_epoch: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    @classmethod
    def of_job(cls, session: Session, job_id: str) -> list[TrialRow]:
        return list(session.scalars(select(cls).where(cls.job_id == job_id).order_by(cls.number)))


class EpochRow(Base):
    __tablename__ = "foreseer_epochs"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)
    recorded_at: Mapped[float] = mapped_column(Float)

    @classmethod
    def of_job(cls, session: Session, job_id: str) -> list[EpochRow]:
        query = select(cls).where(cls.job_id == job_id).order_by(cls.number, cls.epoch)
        return list(session.scalars(query))


class EventRow(Base):
    """One typed trial event (:mod:`foreseer.events`), numbered in the order the driver emitted it."""

    __tablename__ = "foreseer_events"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[float] = mapped_column(Float)

    @classmethod
    def of_job(cls, session: Session, job_id: str) -> list[EventRow]:
        return list(session.scalars(select(cls).where(cls.job_id == job_id).order_by(cls.seq)))


class ScheduleRow(Base):
    """A recurring job: its spec, a cron expression in a time zone, and what to do with runs the
    daemon missed and with a run due while the previous one still runs."""

    __tablename__ = "foreseer_schedules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(Text)
    cron: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64))
    cluster: Mapped[str | None] = mapped_column(Text)
    missed: Mapped[str] = mapped_column(String(16))
    overlap: Mapped[str] = mapped_column(String(16))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class FiringRow(Base):
    """One occurrence of a schedule, claimed by one daemon: its primary key is what makes an
    occurrence fire at most once, however many daemons race for it."""

    __tablename__ = "foreseer_firings"

    schedule_id: Mapped[str] = mapped_column(
        ForeignKey("foreseer_schedules.id", ondelete="CASCADE"), primary_key=True
    )
    occurrence: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    daemon: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
