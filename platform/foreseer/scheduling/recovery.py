"""Crash safety of firings: who claimed an occurrence, whether that daemon still runs, and taking
its claim over when it died between claiming and recording what it launched.

A dead daemon's open claim is taken over with a compare-and-set on the firing row (only one
daemon can move it from the dead claimer to itself). While a firing of a schedule is open, no
other launch of that schedule starts (see :mod:`~foreseer.scheduling.daemon`), so a job of the
schedule that no firing names can only be that claim's: the new claimer adopts it instead of
launching a second one, and starts its driver when the dead daemon recorded the job but died
before starting it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psutil
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from foreseer.scheduling.schedules import as_utc
from foreseer.store import JobStore
from foreseer.store.models import FiringRow, JobRow, ScheduleRow, utcnow

__all__ = ["Claim", "adopt", "claimer_alive", "daemon_identity", "orphan_job", "take_over", "work_process"]


def daemon_identity() -> str:
    """``host/pid@start``: which process claimed a firing, so another daemon on the same host can
    tell whether it still runs (a reused pid has another start time)."""
    me = psutil.Process()
    return f"{socket.gethostname()}/{me.pid}@{me.create_time():.3f}"


def claimer_alive(identity: str) -> bool | None:
    """Whether the daemon ``identity`` still runs; ``None`` when it ran on another host."""
    host, _, rest = identity.rpartition("/")
    pid, _, started = rest.partition("@")
    if host != socket.gethostname():
        return None
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) < 1e-3
    except (psutil.Error, ValueError):
        return False


@dataclass
class Claim:
    """An occurrence a daemon claimed and must now launch (or adopt, when it took the claim over)."""

    schedule_id: str
    name: str
    occurrence: datetime
    spec: dict[str, Any]
    cluster: str | None
    detail: str = ""
    recovered_from: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)


def take_over(
    store: JobStore, schedule_id: str, occurrence: datetime, daemon: str, identity: str
) -> Claim | None:
    """Compare-and-set the firing's claimer from the dead ``daemon`` to ``identity``; the claim,
    or ``None`` when another daemon took it over first."""
    try:
        with store.session() as session:
            result = session.execute(
                update(FiringRow)
                .where(
                    FiringRow.schedule_id == schedule_id,
                    FiringRow.occurrence == occurrence,
                    FiringRow.status == "claimed",
                    FiringRow.daemon == daemon,
                )
                .values(daemon=identity, claimed_at=utcnow(), detail=f"taken over from {daemon}")
            )
            if result.rowcount != 1:
                return None
            row = session.get(ScheduleRow, schedule_id)
            note = (
                "its own claim, left open by an error" if daemon == identity else f"taken over from {daemon}"
            )
            return Claim(
                schedule_id,
                row.name,
                as_utc(occurrence),
                dict(row.spec),
                row.cluster,
                note,
                recovered_from=daemon,
            )
    except OperationalError:
        return None


def orphan_job(store: JobStore, schedule_id: str) -> JobRow | None:
    """The schedule's job that no firing names: recorded by the launch in flight (one at most)."""
    with store.session() as session:
        named = select(FiringRow.job_id).where(
            FiringRow.schedule_id == schedule_id, FiringRow.job_id.is_not(None)
        )
        return session.scalar(
            select(JobRow)
            .where(JobRow.schedule_id == schedule_id, JobRow.id.not_in(named))
            .order_by(JobRow.created_at.desc())
            .limit(1)
        )


def adopt(job: JobRow, with_passwords: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    """Make the dead daemon's recorded job the firing's; start its driver if it never started.
    Returns what happened, for the firing's detail."""
    from foreseer.launch import ensure_submitted, spawn_detached
    from foreseer.spec import SearchJob

    if job.status != "queued" or job.driver:
        return f"its job {job.id} had been launched"
    if job.cluster:
        spec = SearchJob.from_dict(with_passwords(job.spec), source=f"job {job.id}")
        if ensure_submitted(job.id, spec, job.cluster, job.submission_id):
            return f"its job {job.id} had been recorded but not submitted; submitted it to {job.cluster}"
        return f"its job {job.id} had been submitted to {job.cluster}"
    if work_process(job.id) is not None:
        return f"its job {job.id} had been launched and its driver is starting"
    spec = with_passwords(job.spec)
    store_url = spec.get("store_uri") or spec["tracking_uri"]
    spawn_detached(job.id, store_url, spec["tracking_uri"])
    return f"its job {job.id} had been recorded but not started; started it"


def work_process(job_id: str) -> psutil.Process | None:
    """The background driver process of a local job (``foreseer _work JOB``), if it runs here."""
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if len(cmdline) >= 2 and cmdline[-2:] == ["_work", job_id]:
            return process
    return None
