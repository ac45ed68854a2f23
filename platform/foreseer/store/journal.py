"""The journal of one job: every trial event appended to the job store as it happens.

The driver appends here first, before any other observer (MLflow's writes are buffered), so after
a crash the store holds at least what MLflow holds, and resume brings MLflow up to it, never past
it. Each append writes the event and its projection (the trial's row, the epoch's row) in one
transaction: the trials and epochs tables are what the events say, kept for queries.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foreseer import events as ev
from foreseer.store import JobStore
from foreseer.store.models import EpochRow, EventRow, JobRow, TrialRow, utcnow

__all__ = ["JobJournal"]


class JobJournal:
    """Writes one job's events to the store, each in its own short transaction."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self._seq: int | None = None

    def create_job(self, name: str, spec: dict[str, Any], **fields: Any) -> None:
        with self.store.session() as session:
            session.add(JobRow(id=self.job_id, name=name, spec=spec, status="queued", **fields))

    def update_job(self, **fields: Any) -> None:
        with self.store.session() as session:
            _assign(session.get(JobRow, self.job_id), fields)

    def job(self) -> JobRow:
        with self.store.session() as session:
            return session.get(JobRow, self.job_id)

    def observe(self, event: ev.TrialEvent) -> None:
        """Append ``event`` and bring the trial's rows up to it, in one transaction."""
        with self.store.session() as session:
            if self._seq is None:
                query = select(func.max(EventRow.seq)).where(EventRow.job_id == self.job_id)
                self._seq = session.scalar(query) or 0
            self._seq += 1
            session.add(
                EventRow(
                    job_id=self.job_id, seq=self._seq, number=event.number, kind=event.kind,
                    payload=event.payload(), at=time.time(),
                )
            )  # fmt: skip
            _project(session, self.job_id, event)

    def events(self) -> list[ev.TrialEvent]:
        """Every event of the job, in the order it was appended."""
        with self.store.session() as session:
            rows = EventRow.of_job(session, self.job_id)
        return [ev.event_from_row(r.kind, r.number, r.payload) for r in rows]

    def trials(self) -> list[TrialRow]:
        with self.store.session() as session:
            return TrialRow.of_job(session, self.job_id)

    def epochs(self) -> dict[int, list[dict[str, float]]]:
        """Every stored epoch by trial number, in epoch order."""
        out: dict[int, list[dict[str, float]]] = {}
        with self.store.session() as session:
            for row in EpochRow.of_job(session, self.job_id):
                out.setdefault(row.number, []).append(row.metrics)
        return out


def _project(session: Session, job_id: str, event: ev.TrialEvent) -> None:
    """What ``event`` changes in the trials and epochs tables."""
    if isinstance(event, ev.Proposed):
        session.add(
            TrialRow(
                job_id=job_id, number=event.number, candidate=dict(event.candidate),
                distributions=dict(event.sampled), state="running", reason="", attempts=1,
            )
        )  # fmt: skip
        return
    row = session.get(TrialRow, (job_id, event.number))
    fields: dict[str, Any] = {"updated_at": utcnow()}
    if isinstance(event, ev.Started):
        fields.update({"run_id": event.run_id} if event.run_id else {})
        fields.update({"resumed_from_epoch": event.from_epoch} if event.from_epoch else {})
    elif isinstance(event, ev.Epoch):
        if session.get(EpochRow, (job_id, event.number, event.epoch)) is None:
            session.add(
                EpochRow(
                    job_id=job_id, number=event.number, epoch=event.epoch, metrics=dict(event.metrics),
                    recorded_at=time.time(),
                )
            )  # fmt: skip
        if event.checkpoint is not None:
            fields.update(checkpoint=event.checkpoint, checkpoint_epoch=event.epoch)
    elif isinstance(event, ev.Paused):
        fields.update(state="paused", reason=event.reason)
    elif isinstance(event, ev.Resumed):
        fields.update(state="running", reason="", resumed_from_epoch=event.epoch)
    elif isinstance(event, ev.Retried):
        errors = [*(row.retry_errors or []), event.error]
        fields.update(attempts=row.attempts + 1, retry_errors=errors, resumed_from_epoch=event.from_epoch)
    elif isinstance(event, ev.Stopped):
        fields.update(state="stopped", stopped_by=event.by, reason=event.reason)
    elif isinstance(event, ev.Failed):
        fields.update(state="failed", reason=event.reason)
    elif isinstance(event, ev.Completed):
        fields.update(state="completed", reason=event.reason)
    _assign(row, fields)


def _assign(row: JobRow | TrialRow, fields: dict[str, Any]) -> None:
    """Set columns of ``row``; a name that is not a column is a programming error, not a no-op."""
    columns = type(row).__table__.columns
    unknown = sorted(set(fields) - set(columns.keys()))
    if unknown:
        raise KeyError(
            f"{type(row).__name__} has no column {', '.join(unknown)}; columns: {', '.join(columns.keys())}"
        )
    for key, value in fields.items():
        setattr(row, key, value)
