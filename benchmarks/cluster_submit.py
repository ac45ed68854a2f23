"""From ``foreseer submit`` to the first trial running, on a Ray head on this machine.

A head with its dashboard (Ray's job submission API) starts once, on loopback, with token auth on
(``foreseer.backends.ray_nodes``). Then ``--runs`` times, a small real job (space mlp, dataset wine, 2
trials of 2 epochs, SQLite stores) is submitted with the CLI, and the table gives, in seconds from
the moment ``foreseer submit`` was started:

- ``submit returned``: the CLI validated the job against its data, recorded it (job row, MLflow
  experiment and parent run) and Ray accepted the submission;
- ``driver started``: the driver on the cluster has opened the job (the job row's ``started_at``);
- ``first trial running``: the driver handed the first trial to a worker (its trial row);
- ``first epoch recorded``: the first epoch's metrics are in the job store.

Run: ``.venv/bin/python benchmarks/cluster_submit.py [--runs 5]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from sqlalchemy import func, select

from foreseer.backends import ray_nodes
from foreseer.store import JobStore
from foreseer.store.models import EpochRow, JobRow, TrialRow

JOB = {"space": {"name": "mlp", "params": {"depth": 1}}, "dataset": "wine", "trials": 2, "max_epochs": 2,
       "max_concurrent": 2, "stopping": {"name": "none"}}  # fmt: skip


def timestamps(store: JobStore, job_id: str) -> dict[str, float] | None:
    """Unix times of the driver start, the first trial and the first epoch; None until all exist."""
    with store.session() as session:
        job = session.get(JobRow, job_id)
        first_trial = session.scalar(select(func.min(TrialRow.created_at)).where(TrialRow.job_id == job_id))
        first_epoch = session.scalar(select(func.min(EpochRow.recorded_at)).where(EpochRow.job_id == job_id))
        if job.status == "failed":
            raise RuntimeError(f"job {job_id} failed: {job.error}")
        if job.started_at is None or first_trial is None or first_epoch is None:
            return None
        return {"driver started": job.started_at.timestamp(), "first trial running": first_trial.timestamp(),
                "first epoch recorded": first_epoch}  # fmt: skip


def submit_once(cluster, folder: Path, number: int) -> dict[str, float]:
    job_file = folder / f"job{number}.yaml"
    job_file.write_text(yaml.safe_dump({"name": f"submit-{number}", **JOB, "workdir": str(folder / "runs")}))
    began = time.time()
    done = subprocess.run([sys.executable, "-m", "foreseer", "submit", str(job_file),
                           "--cluster", cluster.dashboard_url],
                          cwd=folder, env=cluster.env, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    returned = time.time()
    if done.returncode:
        raise RuntimeError(done.stdout + done.stderr)
    job_id = done.stdout.strip()
    store = JobStore(f"sqlite:///{folder}/foreseer.db")
    deadline = time.time() + 300
    while (times := timestamps(store, job_id)) is None:
        if time.time() > deadline:
            raise RuntimeError(f"job {job_id} did not start its first epoch in 300 s")
        time.sleep(0.2)
    while store_status(store, job_id) in ("queued", "running"):  # one job at a time: no overlap
        time.sleep(0.5)
    store.dispose()
    return {"submit returned": returned - began, **{k: v - began for k, v in times.items()}}


def store_status(store: JobStore, job_id: str) -> str:
    with store.session() as session:
        return session.get(JobRow, job_id).status


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="fs-submit-") as tmp,
        ray_nodes.RayCluster(["--num-cpus=2"], dashboard=True) as cluster,
    ):
        rows = [submit_once(cluster, Path(tmp), n) for n in range(args.runs)]
    print(
        f"\nforeseer submit to a local Ray head, {args.runs} jobs one after another "
        "(seconds after submit started)\n"
    )
    print("| step | min | median | max |\n|---|---:|---:|---:|")
    for step in rows[0]:
        values = [r[step] for r in rows]
        print(f"| {step} | {min(values):.2f} | {statistics.median(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
