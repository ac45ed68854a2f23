"""How late the scheduler daemon fires: a real ``foreseer scheduler`` process on a seconds-level cron.

A schedule of a small real job (space mlp, dataset wine, 1 trial of 1 epoch) fires every
``--every`` seconds until ``--firings`` occurrences have fired; ``overlap: allow``, so every
occurrence launches a job. For each firing the table gives how many seconds after its occurrence:

- the daemon claimed it (``claimed_at``, the firing row committed),
- its job was recorded (the job row's ``created_at``: it shows in ``foreseer jobs``; this
  includes validating the job against its data and creating its MLflow parent run),
- with ``--jobs run``, its driver started (the job row's ``started_at``: Ray up, search starting).

``--jobs stop`` (default) stops each job's background driver as soon as the job is recorded, so
the daemon is measured on an otherwise idle machine; ``--jobs run`` lets the jobs run, so it is
measured while they load the CPU. The MLflow store is created before the daemon starts, so the
first firing does not pay for MLflow's migrations.

Run: ``.venv/bin/python benchmarks/schedules.py [--firings 12] [--every 5] [--jobs stop|run]``
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psutil
from sqlalchemy import select

from foreseer.scheduling.recovery import work_process
from foreseer.scheduling.schedules import add_schedule, as_utc, set_paused
from foreseer.spec import SearchJob
from foreseer.store import JobStore
from foreseer.store.models import FiringRow, JobRow, utcnow


def stop_drivers(job_ids: set[str]) -> None:
    """Kill the background drivers of the given jobs, and the Ray they started."""
    for process in filter(None, map(work_process, job_ids)):
        try:
            victims = [process, *process.children(recursive=True)]
        except psutil.Error:
            continue
        for victim in victims:
            try:
                victim.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(victims, timeout=10)


def quantiles(values: list[float]) -> tuple[float, float, float, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return ordered[0], statistics.median(ordered), p90, ordered[-1]


def run(folder: Path, firings: int, every: int, jobs: str, store_url: str | None) -> dict[str, list[float]]:
    from mlflow.tracking import MlflowClient

    tracking = f"sqlite:///{folder}/mlflow.db"
    store_url = store_url or f"sqlite:///{folder}/foreseer.db"
    MlflowClient(tracking).search_experiments()  # MLflow's schema, made before the clock starts
    store = JobStore(store_url)
    job = SearchJob.from_dict(
        {
            "name": "bench-sched",
            "space": {"name": "mlp", "params": {"depth": 1}},
            "dataset": "wine",
            "trials": 1,
            "max_epochs": 1,
            "max_concurrent": 1,
            "sampler": "random",
            "tracking_uri": tracking,
            "workdir": str(folder / "runs"),
        }
    )
    with open(folder / "daemon.log", "w") as log:  # the daemon writes to its own copy of the descriptor
        daemon = subprocess.Popen(
            [sys.executable, "-m", "foreseer", "scheduler", "--store", store_url, "--poll", "1"],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FORESEER_FAILPOINT": ""},
        )
    stopped: set[str] = set()
    try:
        while "started" not in (folder / "daemon.log").read_text():
            time.sleep(0.2)
        time.sleep(3.0)  # the daemon imports what launching needs right after it starts
        # the first occurrence at least 2 s away: a schedule added less than a poll before its
        # first occurrence can fire up to a poll late (the daemon learns of it at its next look)
        add_schedule(
            store,
            job,
            cron=f"*/{every} * * * * *",
            name="bench",
            overlap="allow",
            now=utcnow() + timedelta(seconds=2),
        )
        deadline = time.monotonic() + firings * every * 4 + 120
        while time.monotonic() < deadline:
            with store.session() as session:
                rows = list(session.scalars(select(FiringRow).where(FiringRow.status != "claimed")))
            if jobs == "stop":
                recorded = {r.job_id for r in rows if r.job_id} - stopped
                stop_drivers(recorded)
                stopped |= recorded
            if len(rows) >= firings:
                break
            time.sleep(0.5)
        set_paused(store, "bench", True)
        if jobs == "run":
            time.sleep(30)  # the last jobs' drivers start
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(120)
        with store.session() as session:
            stop_drivers(set(session.scalars(select(JobRow.id))))
    return collect(store, firings)


def collect(store: JobStore, firings: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"claimed": [], "job recorded": [], "driver started": []}
    with store.session() as session:
        rows = list(session.scalars(select(FiringRow).order_by(FiringRow.occurrence)))[:firings]
        for firing in rows:
            occurrence = as_utc(firing.occurrence)
            out["claimed"].append((as_utc(firing.claimed_at) - occurrence).total_seconds())
            job = session.get(JobRow, firing.job_id) if firing.job_id else None
            if job is not None:
                out["job recorded"].append((as_utc(job.created_at) - occurrence).total_seconds())
                if job.started_at is not None:
                    out["driver started"].append((as_utc(job.started_at) - occurrence).total_seconds())
            print(
                f"  {occurrence:%H:%M:%S}  {firing.status:8}  claimed +{out['claimed'][-1]:.3f} s"
                + (f"  job {job.id} recorded +{out['job recorded'][-1]:.3f} s" if job is not None else "")
                + (f"  ({firing.detail[:60]})" if firing.status != "launched" else "")
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firings", type=int, default=12)
    parser.add_argument("--every", type=int, default=5, help="seconds between occurrences (a divisor of 60)")
    parser.add_argument("--jobs", choices=("stop", "run"), default="stop")
    parser.add_argument("--store", default=None, help="the job store (a temporary SQLite file by default)")
    args = parser.parse_args()
    if 60 % args.every:
        parser.error("--every must divide 60 (the cron is */EVERY in the seconds field)")
    with tempfile.TemporaryDirectory(prefix="foreseer-bench-schedules-") as tmp:
        results = run(Path(tmp), args.firings, args.every, args.jobs, args.store)
    load = os.getloadavg()
    print(
        f"\n{args.firings} firings every {args.every} s, jobs {args.jobs}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f} / {load[1]:.1f}"
    )
    print("| seconds after the occurrence | n | min | median | p90 | max |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, values in results.items():
        if values:
            low, mid, p90, high = quantiles(values)
            print(f"| {label} | {len(values)} | {low:.3f} | {mid:.3f} | {p90:.3f} | {high:.3f} |")


if __name__ == "__main__":
    main()
