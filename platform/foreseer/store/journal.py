"""The journal of one job: every driver event written to the job store as it happens.

The driver writes here before MLflow (whose writes are buffered), so after a crash the store
holds at least what MLflow holds, and resume brings MLflow up to it, never past it.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from foreseer.store import JobStore
from foreseer.store.models import EpochRow, JobRow, TrialRow, utcnow

__all__ = ["JobJournal"]


class JobJournal:
    """Writes one job's events to the store, each in its own short transaction."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self.store = store
        self.job_id = job_id

    def create_job(self, name: str, spec: dict[str, Any], **fields: Any) -> None:
        with self.store.session() as session:
            session.add(JobRow(id=self.job_id, name=name, spec=spec, status="queued", **fields))

    def update_job(self, **fields: Any) -> None:
        with self.store.session() as session:
            _assign(session.get(JobRow, self.job_id), fields)

    def job(self) -> JobRow:
        with self.store.session() as session:
            return session.get(JobRow, self.job_id)

    def trial_proposed(self, number: int, candidate: dict[str, Any], distributions: dict[str, Any]) -> None:
        with self.store.session() as session:
            session.add(
                TrialRow(
                    job_id=self.job_id, number=number, candidate=candidate, distributions=distributions,
                    state="running", reason="", attempts=1,
                )
            )

    def update_trial(self, number: int, **fields: Any) -> None:
        with self.store.session() as session:
            _assign(session.get(TrialRow, (self.job_id, number)), {**fields, "updated_at": utcnow()})

    def record_epoch(
        self, number: int, epoch: int, metrics: dict[str, float], checkpoint: str | None = None
    ) -> bool:
        """Store one epoch's metrics and the checkpoint taken after it, in one transaction; False
        (and nothing written) when that epoch is already stored."""
        with self.store.session() as session:
            if session.get(EpochRow, (self.job_id, number, epoch)) is not None:
                return False
            session.add(EpochRow(job_id=self.job_id, number=number, epoch=epoch, metrics=metrics, recorded_at=time.time()))
            if checkpoint is not None:
                row = session.get(TrialRow, (self.job_id, number))
                row.checkpoint, row.checkpoint_epoch, row.updated_at = checkpoint, epoch, utcnow()
            return True

    def trials(self) -> list[TrialRow]:
        with self.store.session() as session:
            return TrialRow.of_job(session, self.job_id)

    def epochs(self) -> dict[int, list[dict[str, float]]]:
        """Every stored epoch by trial number, in epoch order."""
        out: dict[int, list[dict[str, float]]] = {}
        for number, _, metrics in self.epochs_in_order():
            out.setdefault(number, []).append(metrics)
        return out

    def epochs_in_order(self) -> list[tuple[int, int, dict[str, float]]]:
        """(trial number, epoch, metrics) of every stored epoch, in the order they were recorded."""
        with self.store.session() as session:
            rows = EpochRow.of_job(session, self.job_id)
        rows.sort(key=lambda r: (r.recorded_at, r.number, r.epoch))
        return [(r.number, r.epoch, r.metrics) for r in rows]

    def last_epoch(self, number: int) -> int:
        with self.store.session() as session:
            query = select(EpochRow.epoch).where(EpochRow.job_id == self.job_id, EpochRow.number == number)
            return max(session.scalars(query), default=0)


def _assign(row: JobRow | TrialRow, fields: dict[str, Any]) -> None:
    """Set columns of ``row``; a name that is not a column is a programming error, not a no-op."""
    columns = type(row).__table__.columns
    unknown = sorted(set(fields) - set(columns.keys()))
    if unknown:
        raise KeyError(f"{type(row).__name__} has no column {', '.join(unknown)}; columns: {', '.join(columns.keys())}")
    for key, value in fields.items():
        setattr(row, key, value)
