"""Orchestration overhead and MLflow write throughput.

(a) The same tiny trials run in a plain Python loop (``foreseer_workers.run_trial``, one thread) and
(b) through Foreseer (Optuna sampling, the driver's loop on Ray actors, stopping policy, MLflow on SQLite),
one trial at a time on one CPU so that the difference is orchestration, not parallelism. Then
MLflow metric writes per second into SQLite, Foreseer's buffered ``log_batch`` against one
``log_metric`` call per value (what Ray's stock ``MLflowLoggerCallback`` does), in the same run.
Last, where the time from ``submit`` to the first trial goes, phase by phase, with Ray already up.

Run: ``make bench`` or ``.venv/bin/python benchmarks/overhead.py [--trials 24] [--epochs 3]``.
Targets on a 2-core machine: <= 0.1 s overhead per trial, >= 3,000 metrics/s into SQLite.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import optuna

import foreseer as fs
from foreseer.backends.ray_runtime import ensure_ray
from foreseer.ledger import TrialRecord
from foreseer.tracking import Tracker
from foreseer_spaces import constrain, get_space, parse_overrides
from foreseer_workers import TrialConfig, load_dataset, run_trial

# a small fixed network so the trial itself is short and the overhead shows
PARAMS = {"depth": 1, "width_0": 32, "batch_size": 128}


def plain_loop(trials: int, epochs: int) -> float:
    data = load_dataset("wine")
    space = get_space("mlp")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    overrides = parse_overrides(PARAMS)
    start = time.perf_counter()
    for number in range(trials):
        trial = study.ask()
        candidate = space.sample(constrain(trial, overrides), data.task)
        results: list[float] = []

        def report(metrics: dict[str, float], checkpoint_dir: str, results: list[float] = results) -> None:
            results.append(metrics["val_accuracy"])
            shutil.rmtree(checkpoint_dir, ignore_errors=True)

        config = TrialConfig(space=space, candidate=candidate, max_epochs=epochs, seed=number, num_threads=1)
        run_trial(config, data, report)
        study.tell(trial, max(results))
    return time.perf_counter() - start


def through_foreseer(trials: int, epochs: int, workdir: Path) -> tuple[float, float]:
    """Seconds for the whole job, and for ``submit`` alone (validation, dataset, MLflow records)."""
    job = fs.SearchJob(
        name=f"overhead-{trials}",
        space={"name": "mlp", "params": PARAMS},
        dataset="wine",
        sampler="random",
        trials=trials,
        max_epochs=epochs,
        stopping="none",
        max_concurrent=1,
        tracking_uri=f"sqlite:///{workdir}/mlflow.db",
        workdir=str(workdir / "runs"),
    )
    start = time.perf_counter()
    handle = fs.submit(job)
    submitted = time.perf_counter()
    handle.wait()
    return time.perf_counter() - start, submitted - start


def submit_phases(workdir: Path, epochs: int) -> dict[str, float]:
    """Seconds from ``submit`` to the first trial, phase by phase (Ray already up): the up-front
    checks (dataset, space, URLs, resources), the job's records (job store row, MLflow experiment
    and parent run), then until the first trial has started and has reported its first epoch."""
    from foreseer.api import JobHandle
    from foreseer.runner import check, open_records

    job = fs.SearchJob(
        name="phases", space={"name": "mlp", "params": PARAMS}, dataset="wine", trials=2, max_epochs=epochs,
        max_concurrent=1, tracking_uri=f"sqlite:///{workdir}/phases.db", workdir=str(workdir / "runs"),
    )  # fmt: skip
    marks = {"start": time.perf_counter()}
    prepared = check(job)
    marks["checks"] = time.perf_counter()
    open_records(prepared)
    marks["records"] = time.perf_counter()
    handle = JobHandle(prepared)._start()
    while len(prepared.ledger) == 0:
        time.sleep(0.005)
    marks["first trial started"] = time.perf_counter()
    while prepared.ledger.epochs_used() == 0:
        time.sleep(0.005)
    marks["first epoch recorded"] = time.perf_counter()
    handle.wait()
    names = list(marks)
    return {name: marks[name] - marks[before] for before, name in zip(names, names[1:], strict=False)}


def mlflow_throughput(workdir: Path, trials: int = 100, epochs: int = 20) -> tuple[float, float, int]:
    """Metrics per second: Foreseer's tracker vs one ``log_metric`` call per value."""
    from foreseer_spaces import Candidate

    metrics = {"train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7, "lr": 0.01}
    tracker = Tracker(f"sqlite:///{workdir}/tracking.db", "throughput", flush_interval=1.0)
    tracker.start_job("bench", {"bench": True}, "bench")
    records = []
    for n in range(trials):
        record = TrialRecord(f"t{n}", n, Candidate("mlp", {"depth": 1}, {"lr": n}))
        record.run_id = tracker.start_trial(record)
        records.append(record)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for record in records:
            tracker.log_metrics(record.run_id, metrics, step=epoch)
    tracker.flush()
    batched = trials * epochs * len(metrics) / (time.perf_counter() - start)

    naive_count = 10 * epochs * len(metrics)
    start = time.perf_counter()
    for record in records[:10]:
        for epoch in range(1, epochs + 1):
            for key, value in metrics.items():
                tracker.client.log_metric(record.run_id, key, value, step=epoch)
    naive = naive_count / (time.perf_counter() - start)
    return batched, naive, trials * epochs * len(metrics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="foreseer-bench-"))
    try:
        t0 = time.perf_counter()
        ensure_ray()
        ray_start = time.perf_counter() - t0
        plain_loop(2, args.epochs)  # warm the caches both runs share (dataset, torch kernels)
        small, large = args.trials, 2 * args.trials
        loop = {n: plain_loop(n, args.epochs) for n in (small, large)}
        through_foreseer(2, args.epochs, workdir)  # the same warm state for both sizes: store schema, workers
        job = {n: through_foreseer(n, args.epochs, workdir) for n in (small, large)}
        batched, naive, written = mlflow_throughput(workdir)
        phases = submit_phases(workdir, args.epochs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # The marginal cost of one more trial, from two job sizes: fixed costs (MLflow schema on a new
    # store, the first actor) cancel out and are reported on their own.
    loop_per_trial = (loop[large] - loop[small]) / (large - small)
    job_per_trial = (job[large][0] - job[small][0]) / (large - small)
    fixed = job[small][0] - small * job_per_trial
    print(
        f"\nmlp on wine, {args.epochs} epochs a trial, one trial at a time on 1 CPU; "
        f"jobs of {small} and {large} trials"
    )
    print(f"{'':38}{'s/trial':>9}{'ratio':>8}{f'{small} trials':>12}{f'{large} trials':>12}")
    print(
        f"{'plain Python loop (baseline)':38}{loop_per_trial:9.3f}{1.0:8.2f}"
        f"{loop[small]:12.2f}{loop[large]:12.2f}"
    )
    print(
        f"{'Foreseer (actors + Optuna + MLflow)':38}{job_per_trial:9.3f}{job_per_trial / loop_per_trial:8.1f}"
        f"{job[small][0]:12.2f}{job[large][0]:12.2f}"
    )
    print(f"orchestration overhead per trial: {job_per_trial - loop_per_trial:.3f} s (target <= 0.1 s)")
    print(
        f"fixed cost per job: {fixed:.1f} s, of which submit {job[small][1]:.1f} s; "
        f"Ray start-up, once per process: {ray_start:.1f} s"
    )
    print(f"\nMLflow metrics written per second into SQLite ({written:,} metrics)")
    print(f"{'':34}{'metrics/s':>10}{'ratio':>8}")
    print(f"{'one log_metric per value (baseline)':34}{naive:10.0f}{1.0:8.2f}")
    print(f"{'Foreseer tracker (batched)':34}{batched:10.0f}{batched / naive:8.1f}   (target >= 3,000)")
    print("\nsubmit to first epoch, Ray already up (target: <= 3 s to the first trial)")
    for name, seconds in phases.items():
        print(f"{name:34}{seconds:10.2f} s")
    print(f"{'total':34}{sum(phases.values()):10.2f} s")


if __name__ == "__main__":
    main()
