"""Schedules in the job store: add, find, pause, resume, remove, list.

A schedule holds a validated job spec (passwords masked, as every spec Foreseer stores), a cron
expression and its time zone, where to launch (this machine or a Ray cluster), and two policies:

- ``missed``: what the daemon does with occurrences it reached more than its grace period late
  (it was down): ``skip`` them, or ``run-once`` for the latest of them;
- ``overlap``: whether an occurrence launches while a job of the same schedule is still queued or
  running: ``skip`` it (recorded as a skipped firing), or ``allow`` it.

Jobs fired by a schedule are recorded in the schedule's own store, so the daemon can see their
status (the overlap policy, ``foreseer schedule list``) and every firing points at its job.

Example:
    >>> store = JobStore("sqlite:///:memory:")  # doctest: +SKIP
    >>> row = add_schedule(store, load_job("job.yaml"), cron="0 3 * * *", tz="Europe/Paris")  # doctest: +SKIP
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from foreseer.errors import Problem, SpecError
from foreseer.scheduling.cron import CronError, CronSchedule, parse_cron, parse_timezone
from foreseer.store.models import FiringRow, JobRow, ScheduleRow, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from foreseer.spec import SearchJob
    from foreseer.store import JobStore

__all__ = [
    "MISSED_POLICIES",
    "OVERLAP_POLICIES",
    "ScheduleView",
    "add_schedule",
    "as_utc",
    "find_schedule",
    "list_schedules",
    "remove_schedule",
    "set_paused",
]

MISSED_POLICIES = ("skip", "run-once")
OVERLAP_POLICIES = ("skip", "allow")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; SQLite hands back naive ones, which Foreseer always wrote in UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _problem(field: str, message: str, value: object = None) -> SpecError:
    return SpecError([Problem(field, message, value, value is not None)], source="schedule")


def add_schedule(
    store: JobStore,
    job: SearchJob,
    *,
    cron: str,
    tz: str = "UTC",
    name: str | None = None,
    cluster: str | None = None,
    missed: str = "skip",
    overlap: str = "skip",
    source: str = "",
    now: datetime | None = None,
) -> ScheduleRow:
    """Validate and store a schedule; its first run is the first occurrence after ``now``.

    Raises:
        SpecError: a bad cron expression, time zone, policy or name, a name already taken, or a
            job that cannot be fired from a schedule (listing every problem found).
    """
    from foreseer.dburl import mask_secrets

    problems: list[Problem] = []
    for field, check, value in (("cron", parse_cron, cron), ("timezone", parse_timezone, tz)):
        try:
            check(value)
        except CronError as e:
            problems.append(Problem(field, str(e)))
    name = job.name if name is None else name
    if not isinstance(name, str) or not _NAME_RE.match(name):
        problems.append(
            Problem(
                "name",
                "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
                name,
                True,
            )
        )
    for field, value, accepted in (
        ("missed", missed, MISSED_POLICIES),
        ("overlap", overlap, OVERLAP_POLICIES),
    ):
        if value not in accepted:
            problems.append(Problem(field, f"unknown policy; accepted: {', '.join(accepted)}", value, True))
    job = _job_for_store(job, store.url, cluster, problems)
    if problems:
        raise SpecError(problems, source="schedule")
    start = as_utc(now or utcnow())
    row = ScheduleRow(
        id=uuid.uuid4().hex[:12],
        name=name,
        spec=mask_secrets(job.to_dict()),
        source=source,
        cron=cron.strip(),
        timezone=tz,
        cluster=cluster,
        missed=missed,
        overlap=overlap,
        paused=False,
        next_run_at=CronSchedule(cron, tz).next_after(start),
    )
    taken = _problem(
        "name", "a schedule with this name exists; pick another with --name, or remove it first", name
    )
    try:
        with store.session() as session:
            if session.scalar(select(ScheduleRow.id).where(ScheduleRow.name == name)) is not None:
                raise taken
            session.add(row)
    except IntegrityError as e:  # added at the same moment by someone else
        raise taken from e
    return row


def _job_for_store(job: SearchJob, store_url: str, cluster: str | None, problems: list[Problem]) -> SearchJob:
    """The job as the daemon will launch it: recorded in the schedule's store, relative paths
    pinned for a driver on this machine (the daemon runs in a folder of its own)."""
    from foreseer.dburl import mask_url
    from foreseer.launch import cluster_problems, on_this_machine, pin_paths

    spec = job.to_dict()
    if isinstance(spec.get("space"), dict) and "object" in spec["space"]:
        problems.append(
            Problem(
                "space", "a SearchSpace object cannot be stored in a schedule; register it as an entry point"
            )
        )
    if isinstance(spec.get("dataset"), dict) and "arrays" in spec["dataset"]:
        problems.append(
            Problem(
                "dataset",
                "arrays cannot be stored in a schedule; save them as .npz or .csv and give the path",
            )
        )
    if job.store_uri is not None and not _same_database(job.store_uri, store_url):
        problems.append(
            Problem(
                "store_uri",
                (
                    f"the job records into {mask_url(job.store_uri)}, "
                    f"but the schedule lives in {mask_url(store_url)}; "
                    "a scheduled job is recorded beside its schedule: "
                    "drop store_uri or pass the same URL to --store"
                ),
            )
        )
    elif not _same_database(job.store_url, store_url):
        job = job.model_copy(update={"store_uri": store_url})
    if cluster is not None:
        problems.extend(cluster_problems(job, cluster))
    if problems:
        return job
    return pin_paths(job) if cluster is None or on_this_machine(cluster) else job


def _same_database(a: str, b: str) -> bool:
    from sqlalchemy.engine import make_url

    from foreseer.dburl import sqlite_path

    path_a, path_b = sqlite_path(a), sqlite_path(b)
    if path_a is not None or path_b is not None:
        return path_a is not None and path_b is not None and path_a.resolve() == path_b.resolve()
    first, second = make_url(a), make_url(b)
    keep = ("username", "host", "port", "database")
    return (
        all(getattr(first, k) == getattr(second, k) for k in keep)
        and first.get_backend_name() == second.get_backend_name()
    )


def find_schedule(session: Session, name: str) -> ScheduleRow:
    """A schedule by name (or id).

    Raises:
        SpecError: there is no such schedule.
    """
    row = session.scalar(select(ScheduleRow).where(ScheduleRow.name == name))
    row = row or session.get(ScheduleRow, name)
    if row is None:
        names = session.scalars(select(ScheduleRow.name).order_by(ScheduleRow.name)).all()
        known = (
            f"; schedules here: {', '.join(names)}"
            if names
            else "; there are no schedules here (foreseer schedule add)"
        )
        raise _problem("name", f"no schedule with this name{known}", name)
    return row


def set_paused(store: JobStore, name: str, paused: bool, *, now: datetime | None = None) -> ScheduleRow:
    """Pause or resume a schedule. A resumed schedule runs next at its first occurrence after
    ``now``: the occurrences it had while paused were meant not to run, they were not missed."""
    with store.session() as session:
        row = find_schedule(session, name)
        if row.paused != paused:
            row.paused = paused
            if not paused:
                row.next_run_at = CronSchedule(row.cron, row.timezone).next_after(as_utc(now or utcnow()))
        return row


def remove_schedule(store: JobStore, name: str) -> ScheduleRow:
    """Delete a schedule and its firings; the jobs it fired stay in the store."""
    with store.session() as session:
        row = find_schedule(session, name)
        # SQLite enforces foreign keys only when asked to, so the firings go explicitly.
        session.execute(delete(FiringRow).where(FiringRow.schedule_id == row.id))
        session.delete(row)
        return row


@dataclass(frozen=True)
class ScheduleView:
    """One schedule as ``foreseer schedule list`` shows it: its number of firings, the latest
    one, and the latest job it launched with that job's status."""

    schedule: ScheduleRow
    firings: int
    last: FiringRow | None
    last_job: JobRow | None


def list_schedules(store: JobStore) -> list[ScheduleView]:
    """Every schedule by name, with its number of firings, the latest one and its latest job."""
    with store.session() as session:
        views = []
        for row in session.scalars(select(ScheduleRow).order_by(ScheduleRow.name)):
            count = session.scalar(
                select(func.count()).select_from(FiringRow).where(FiringRow.schedule_id == row.id)
            )
            latest = (
                select(FiringRow)
                .where(FiringRow.schedule_id == row.id)
                .order_by(FiringRow.occurrence.desc())
                .limit(1)
            )
            last = session.scalar(latest)
            with_job = session.scalar(latest.where(FiringRow.job_id.is_not(None)))
            job = session.get(JobRow, with_job.job_id) if with_job is not None else None
            views.append(ScheduleView(row, count or 0, last, job))
        return views


def firings_of(
    store: JobStore, name: str, limit: int = 50
) -> tuple[ScheduleRow, list[tuple[FiringRow, str | None]]]:
    """A schedule's latest firings, newest first, each with its job's status."""
    with store.session() as session:
        row = find_schedule(session, name)
        query = (
            select(FiringRow)
            .where(FiringRow.schedule_id == row.id)
            .order_by(FiringRow.occurrence.desc())
            .limit(limit)
        )
        out = []
        for firing in session.scalars(query):
            job = session.get(JobRow, firing.job_id) if firing.job_id else None
            out.append((firing, job.status if job is not None else None))
        return row, out
