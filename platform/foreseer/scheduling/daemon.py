"""The scheduler daemon: fires due schedules, at most once per occurrence however many daemons run.

Each occurrence is **claimed** before anything is launched: one transaction locks the schedule
row (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer at a time), inserts
the occurrence's firing row and advances ``next_run_at``. The firing table's primary key
``(schedule_id, occurrence)`` is the guarantee: a second insert of the same occurrence fails on
any database, and the daemon that hits it leaves the occurrence to the one that got there first.
Only after the claim is committed does the daemon launch the job, then record the outcome on the
firing (``launched`` with the job id, ``failed`` with the error, or ``skipped`` with why).

A daemon can die between its claim and that record. Its firing then stays ``claimed``, and:

- while a firing of a schedule is ``claimed``, no other occurrence of that schedule launches (one
  with ``overlap: skip`` is recorded as skipped; one with ``overlap: allow`` waits), so at most one
  launch per schedule is ever in flight, and any job of the schedule that no firing names is that
  launch's job;
- another daemon takes the claim over once the claimer is known dead (same host: its process is
  gone) or its lease ran out (another host: ``lease`` seconds since the claim). It adopts the job
  the dead daemon recorded, if there is one (starting its driver if the dead daemon died before
  that), and launches the job otherwise. So the occurrence is neither lost nor launched twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from foreseer import _failpoints
from foreseer.scheduling.cron import CronSchedule
from foreseer.scheduling.recovery import Claim, adopt, claimer_alive, daemon_identity, orphan_job, take_over
from foreseer.scheduling.schedules import as_utc
from foreseer.store import JobStore
from foreseer.store.models import FiringRow, JobRow, ScheduleRow, utcnow

__all__ = ["Claim", "Scheduler", "warm_up"]

logger = logging.getLogger(__name__)

#: How soon to look again at an occurrence that was due but could not be claimed yet.
RETRY_S = 0.2


class Scheduler:
    """Fires the due schedules of one job store.

    Args:
        store: the job store holding the schedules.
        grace: seconds an occurrence may be late and still count as on time; the daemon treats
            one it reaches later as missed (the schedule's ``missed`` policy decides).
        lease: seconds after which a claim by a daemon on another host that recorded no outcome
            is taken over (a daemon on the same host is checked directly).
        identity: this daemon's name in the firings it claims.
    """

    def __init__(
        self, store: JobStore, *, grace: float = 60.0, lease: float = 300.0, identity: str | None = None
    ) -> None:
        if grace < 0 or lease <= 0:
            raise ValueError(f"grace must be >= 0 and lease > 0 seconds, but got {grace=} and {lease=}")
        self.store = store
        self.grace = timedelta(seconds=grace)
        self.lease = timedelta(seconds=lease)
        self.identity = identity or daemon_identity()
        self._postgres = store.engine.dialect.name == "postgresql"
        self._sqlite = store.engine.dialect.name == "sqlite"
        self._lock = threading.Lock()
        self._in_flight: set[tuple[str, datetime]] = set()

    # ----------------------------------------------------------------------------- the loop

    def run(self, stop: threading.Event, poll: float = 1.0, launchers: int = 4) -> None:
        """Fire due schedules until ``stop`` is set, waking at the next due time or every ``poll`` s.

        Launches run on ``launchers`` threads, so that a slow launch does not make the other
        schedules late; on stop, the launches in flight finish and record their outcome first."""
        from concurrent.futures import ThreadPoolExecutor

        logger.info(
            "scheduler %s started on %s (poll %.2f s, grace %s s, lease %s s)",
            self.identity,
            _masked(self.store.url),
            poll,
            self.grace.total_seconds(),
            self.lease.total_seconds(),
        )
        warm_up()
        with ThreadPoolExecutor(launchers, thread_name_prefix="foreseer-launch") as pool:
            while not stop.is_set():
                try:
                    for claim in self.claim_due():
                        pool.submit(self._resolve_in_flight, claim)
                    wait = self.seconds_to_next(poll)
                except SQLAlchemyError as e:
                    logger.warning(
                        "the job store did not answer (%s: %s); retrying in %.1f s",
                        type(e).__name__,
                        _masked(str(e).splitlines()[0]),
                        poll,
                    )
                    wait = poll
                except Exception:  # a daemon outlives its bugs; the next pass tries again
                    logger.exception("the scheduler's pass failed; retrying in %.1f s", poll)
                    wait = poll
                stop.wait(wait)
            logger.info(
                "scheduler %s stopping: waiting for %d launches in flight",
                self.identity,
                len(self._in_flight),
            )
        logger.info("scheduler %s stopped", self.identity)

    def seconds_to_next(self, poll: float) -> float:
        """Seconds until the earliest due time of an active schedule, at most ``poll``.

        An occurrence still due right after a pass waits for something (a launch in flight with
        ``overlap: allow``, another daemon's lock): look again shortly, not in a busy loop."""
        with self.store.session() as session:
            due = session.scalar(
                select(ScheduleRow.next_run_at)
                .where(ScheduleRow.paused.is_(False))
                .order_by(ScheduleRow.next_run_at)
                .limit(1)
            )
        if due is None:
            return poll
        left = (as_utc(due) - utcnow()).total_seconds()
        return min(poll, RETRY_S) if left <= 0 else min(poll, left + 0.001)

    def tick(self, now: datetime | None = None) -> list[Claim]:
        """One pass, launching in this thread, each claim before the next: take over the claims
        of dead daemons, then claim and launch every due occurrence. Returns what this daemon
        launched or adopted, resolved."""
        done = []
        for claim in self._claims(now):
            try:
                done.append(self.resolve(claim))
            finally:
                with self._lock:
                    self._in_flight.discard((claim.schedule_id, claim.occurrence))
        return done

    def claim_due(self, now: datetime | None = None) -> list[Claim]:
        """Take over the claims of dead daemons and claim every due occurrence; the claims are
        this daemon's to :meth:`resolve` (launch and record)."""
        return list(self._claims(now))

    def _claims(self, now: datetime | None) -> Iterator[Claim]:
        for claim in self._take_over_stale(now):
            yield self._in_flight_now(claim)
        for schedule_id in self._due_ids(now):
            for _ in range(100):  # a schedule whose missed runs were skipped can be due again at once
                try:
                    claim, again = self._claim(schedule_id, as_utc(now or utcnow()))
                except SQLAlchemyError:
                    raise
                except Exception:  # one broken schedule (say, a time zone gone from tzdata) blocks no other
                    logger.exception("schedule %s: cannot fire it", schedule_id)
                    break
                if claim is not None:
                    yield self._in_flight_now(claim)
                if not again:
                    break

    def _in_flight_now(self, claim: Claim) -> Claim:
        with self._lock:
            self._in_flight.add((claim.schedule_id, claim.occurrence))
        return claim

    def _resolve_in_flight(self, claim: Claim) -> None:
        try:
            self.resolve(claim)
        except Exception:  # the claim stays open; this daemon's next pass takes it over
            logger.exception(
                "schedule %s: recording the occurrence %s failed", claim.name, claim.occurrence.isoformat()
            )
        finally:
            with self._lock:
                self._in_flight.discard((claim.schedule_id, claim.occurrence))

    def _due_ids(self, now: datetime | None) -> list[str]:
        with self.store.session() as session:
            query = select(ScheduleRow.id).where(
                ScheduleRow.paused.is_(False), ScheduleRow.next_run_at <= as_utc(now or utcnow())
            )
            return list(session.scalars(query.order_by(ScheduleRow.next_run_at)))

    # ----------------------------------------------------------------------------- claiming

    def _claim(self, schedule_id: str, now: datetime) -> tuple[Claim | None, bool]:
        """Claim the schedule's due occurrence in one transaction. Returns the claim to launch
        (``None`` when there is nothing to launch) and whether the schedule may be due again."""
        try:
            with self.store.session() as session:
                row = self._lock_due(session, schedule_id, now)
                if row is None:
                    if self._postgres and session.scalar(
                        self._due(schedule_id, now).with_only_columns(ScheduleRow.id)
                    ):
                        logger.debug(
                            "schedule %s: another daemon holds its row and is claiming the due occurrence",
                            schedule_id,
                        )
                    return None, False
                claim, status, again = self._decide(session, row, now)
                if claim is None and status is None:
                    return None, again
                session.add(
                    FiringRow(
                        schedule_id=row.id,
                        occurrence=claim.occurrence,
                        claimed_at=utcnow(),
                        daemon=self.identity,
                        status=status,
                        detail=claim.detail,
                    )
                )
                session.flush()  # the primary key decides here who has the occurrence
        except (IntegrityError, OperationalError) as e:
            # Another daemon inserted this occurrence first (or, on SQLite, wrote first).
            logger.debug(
                "schedule %s: another daemon claimed the due occurrence first (%s)",
                schedule_id,
                type(e).__name__,
            )
            return None, False
        if status == "skipped":
            logger.info(
                "schedule %s: occurrence %s skipped: %s",
                claim.name,
                claim.occurrence.isoformat(),
                claim.detail,
            )
            return None, again
        _failpoints.hit("schedule-claimed")
        return claim, again

    def _lock_due(self, session: Any, schedule_id: str, now: datetime) -> ScheduleRow | None:
        if self._sqlite:
            # Write first: the transaction takes SQLite's write lock now and reads the latest
            # state, instead of failing to upgrade a stale read snapshot later.
            session.execute(
                update(ScheduleRow).where(ScheduleRow.id == schedule_id).values(id=ScheduleRow.id)
            )
        query = self._due(schedule_id, now)
        if self._postgres:
            query = query.with_for_update(skip_locked=True)  # a daemon holding it is claiming it
        return session.scalar(query)

    @staticmethod
    def _due(schedule_id: str, now: datetime) -> Any:
        return select(ScheduleRow).where(
            ScheduleRow.id == schedule_id, ScheduleRow.paused.is_(False), ScheduleRow.next_run_at <= now
        )

    def _decide(self, session: Any, row: ScheduleRow, now: datetime) -> tuple[Claim | None, str | None, bool]:
        """Which occurrence to fire and how: (claim, firing status, due again). Advances
        ``next_run_at``, or rolls the transaction back when the occurrence must wait."""
        cron = CronSchedule(row.cron, row.timezone)
        due = as_utc(row.next_run_at)
        occurrence, detail = due, ""
        if now - due > self.grace:
            if row.missed == "skip":
                first_on_time = cron.next_after(now - self.grace - timedelta(microseconds=1))
                logger.warning(
                    "schedule %s: skipped the occurrences missed from %s to %s (missed: skip)",
                    row.name,
                    due.isoformat(),
                    (now - self.grace).isoformat(),
                )
                row.next_run_at = first_on_time
                return None, None, first_on_time <= now
            occurrence = cron.latest_at_or_before(now, due) or due  # due <= now: there is one
            detail = f"run once for the occurrences missed since {due.isoformat()} (missed: run-once)"
        following = cron.next_after(occurrence)
        claim = Claim(row.id, row.name, occurrence, dict(row.spec), row.cluster, detail)
        status = "claimed"
        pending = session.scalar(
            select(FiringRow).where(FiringRow.schedule_id == row.id, FiringRow.status == "claimed").limit(1)
        )
        if pending is not None:
            if row.overlap == "allow":
                session.rollback()  # wait for the launch in flight; next_run_at stays
                return None, None, False
            status = "skipped"
            claim.detail = _join(
                detail,
                f"the firing of {as_utc(pending.occurrence).isoformat()} is still launching (overlap: skip)",
            )
        elif row.overlap == "skip":
            running = self._running_job(session, row.id)
            if running is not None:
                status = "skipped"
                claim.detail = _join(
                    detail, f"job {running.id} of this schedule is still {running.status} (overlap: skip)"
                )
        row.next_run_at = following
        return claim, status, following <= now

    def _running_job(self, session: Any, schedule_id: str) -> JobRow | None:
        """A job of the schedule that is still queued or running (and whose driver is not known dead)."""
        from foreseer._processes import alive

        jobs = session.scalars(
            select(JobRow).where(JobRow.schedule_id == schedule_id, JobRow.status.in_(("queued", "running")))
        )
        for job in jobs:
            driver = job.driver or {}
            if driver.get("host") == socket.gethostname() and not job.cluster:
                if alive(driver.get("process")):
                    return job
                logger.warning(
                    "job %s of schedule %s is %s but its driver is gone; it does not hold the schedule back "
                    "(`foreseer resume %s` continues it)",
                    job.id,
                    schedule_id,
                    job.status,
                    job.id,
                )
                continue
            if not driver and utcnow() - as_utc(job.created_at) > self.lease:
                logger.warning(
                    "job %s of schedule %s has been queued since %s without a driver; it does not hold the "
                    "schedule back",
                    job.id,
                    schedule_id,
                    job.created_at,
                )
                continue
            return job
        return None

    # ----------------------------------------------------------------------------- launching

    def resolve(self, claim: Claim) -> Claim:
        """Launch a claimed occurrence (or adopt the job a dead daemon recorded) and record the outcome."""
        from foreseer.dburl import mask_text
        from foreseer.errors import SpecError

        job_id, status, detail = None, "launched", claim.detail
        try:
            adopted = orphan_job(self.store, claim.schedule_id) if claim.recovered_from else None
            if adopted is not None:
                job_id, note = adopted.id, adopt(adopted, self._with_passwords)
                detail = _join(detail, note)
            else:
                job_id = self._launch(claim).job_id
                _failpoints.hit("schedule-launched")
        except SpecError as e:
            status, detail = "failed", _join(detail, mask_text(str(e)))
        except Exception as e:  # whatever launching raised, the firing records it and the daemon goes on
            logger.exception(
                "schedule %s: launching the occurrence %s failed", claim.name, claim.occurrence.isoformat()
            )
            status, detail = "failed", _join(detail, mask_text(f"{type(e).__name__}: {e}"))
        if status == "failed" and job_id is None:
            orphan = orphan_job(self.store, claim.schedule_id)  # a launch can fail after recording its job
            job_id = orphan.id if orphan is not None else None
        self._record(claim, status, job_id, detail)
        claim.outcome = {"status": status, "job_id": job_id, "detail": detail}
        late = (utcnow() - claim.occurrence).total_seconds()
        log = logger.info if status == "launched" else logger.warning
        log(
            "schedule %s: occurrence %s %s%s (%.3f s after its time)%s",
            claim.name,
            claim.occurrence.isoformat(),
            status,
            f" job {job_id}" if job_id else "",
            late,
            f": {detail}" if detail else "",
        )
        return claim

    def _launch(self, claim: Claim) -> Any:
        from foreseer.launch import launch
        from foreseer.spec import SearchJob

        job = SearchJob.from_dict(self._with_passwords(claim.spec), source=f"schedule {claim.name!r}")
        return launch(job, cluster=claim.cluster, schedule_id=claim.schedule_id)

    def _with_passwords(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The stored spec's masked database URLs with the passwords this daemon was given."""
        from foreseer.dburl import with_password

        known = [self.store.url, os.environ.get("FORESEER_STORE"), os.environ.get("FORESEER_TRACKING_URI")]
        spec = dict(spec)
        for key in ("tracking_uri", "store_uri"):
            if isinstance(spec.get(key), str):
                spec[key] = with_password(spec[key], known)
        return spec

    def _record(self, claim: Claim, status: str, job_id: str | None, detail: str) -> None:
        with self.store.session() as session:
            result = session.execute(
                update(FiringRow)
                .where(
                    FiringRow.schedule_id == claim.schedule_id,
                    FiringRow.occurrence == claim.occurrence,
                    FiringRow.daemon == self.identity,
                    FiringRow.status == "claimed",
                )
                .values(status=status, job_id=job_id, detail=detail)
            )
        if result.rowcount != 1:
            logger.error(
                "schedule %s: the firing of %s is no longer this daemon's open claim: "
                "the schedule was removed, "
                "or another daemon took the claim over (is --lease shorter than a launch takes?)",
                claim.name,
                claim.occurrence.isoformat(),
            )

    # ----------------------------------------------------------------------------- recovery

    def _take_over_stale(self, now: datetime | None) -> list[Claim]:
        """Claims left by daemons that died before recording an outcome, now this daemon's."""
        moment = as_utc(now or utcnow())
        with self.store.session() as session:
            stale = [
                (f.schedule_id, f.occurrence, f.daemon, f.claimed_at)
                for f in session.scalars(select(FiringRow).where(FiringRow.status == "claimed"))
                if self._is_stale(
                    f.daemon, as_utc(f.claimed_at), moment, (f.schedule_id, as_utc(f.occurrence))
                )
            ]
        claims = []
        for schedule_id, occurrence, daemon, claimed_at in stale:
            claim = take_over(self.store, schedule_id, occurrence, daemon, self.identity)
            if claim is not None:
                logger.warning(
                    "schedule %s: took over the occurrence %s claimed at %s by %s, "
                    "which died before launching it",
                    claim.name,
                    as_utc(occurrence).isoformat(),
                    as_utc(claimed_at).isoformat(),
                    daemon,
                )
                claims.append(claim)
        return claims

    def _is_stale(self, daemon: str, claimed_at: datetime, now: datetime, key: tuple[str, datetime]) -> bool:
        if daemon == self.identity:
            # this daemon's own claim, open although no launch of its own is in flight: an error
            # (the store went away while it recorded the outcome) left it
            with self._lock:
                return key not in self._in_flight
        alive = claimer_alive(daemon)
        return (now - claimed_at > self.lease) if alive is None else not alive


def _masked(text: str) -> str:
    from foreseer.dburl import mask_text

    return mask_text(text)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def warm_up() -> None:
    """Import what launching a job needs, so that the first firing is not late by the imports."""
    import importlib

    modules = (
        "foreseer.launch",
        "foreseer.runner",
        "foreseer.spec",
        "foreseer.store.journal",
        "foreseer.tracking",
        "foreseer_workers",
        "foreseer_spaces",
        "optuna",
        "sklearn.datasets",
        "mlflow.store.tracking.sqlalchemy_store",
        "alembic.command",
    )
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:  # the launch itself will report it on the firing
            logger.warning("could not import %s ahead of the first firing: %s", module, e)
