"""Job commands of the ``foreseer`` CLI: submit, jobs, show, logs, cancel, resume, schema, db, _work."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from foreseer.cli._common import (
    EXIT_FAILED,
    SET_OPTION,
    bad_input,
    find_job,
    follow_to_exit,
    make_console,
    open_store,
    or_exit,
    parse_sets,
    quiet_libraries,
    store_option,
)
from foreseer.errors import SpecError


@click.command()
@store_option
@click.option("--limit", default=30, show_default=True, help="Newest jobs to list.")
def jobs(store_url: str, limit: int) -> None:
    """List jobs, newest first."""
    from rich.table import Table

    from foreseer.dburl import mask_url
    from foreseer.launch import reconcile
    from foreseer.store.models import JobRow

    store = open_store(store_url)
    with store.session() as session:
        rows = JobRow.recent(session, limit)
    table = Table(title=f"jobs in {mask_url(store.url)}")
    for column in ("id", "name", "status", "where", "trials", "best", "created", "error"):
        table.add_column(column, no_wrap=column in ("id", "status"))
    for row in rows:
        table.add_row(*_job_cells(store, reconcile(store, row)[0]))
    make_console().print(table)


def _objective(spec: dict[str, Any]) -> tuple[str, str]:
    """The (metric, mode) a stored job spec ranks trials by."""
    objective = spec.get("objective", {})
    primary = objective[0] if isinstance(objective, list) else objective
    return primary.get("metric", "val_accuracy"), primary.get("mode", "max")


def _progress(store: Any, row: Any) -> tuple[int, float | None]:
    """Ended trials and the best value so far, read from the job's trial and epoch rows: what its
    summary says once it has ended, for a job that is running, was cancelled or died."""
    from foreseer.store.models import EpochRow, TrialRow

    metric, mode = _objective(row.spec)
    with store.session() as session:
        trials = TrialRow.of_job(session, row.id)
        epochs = EpochRow.of_job(session, row.id)
    failed = {t.number for t in trials if t.state == "failed"}
    values = [e.metrics[metric] for e in epochs if e.number not in failed and metric in e.metrics]
    values = [v for v in values if v == v]
    best = (max(values) if mode == "max" else min(values)) if values else None
    return sum(t.state in ("completed", "stopped", "failed") for t in trials), best


def _job_cells(store: Any, row: Any) -> list[str]:
    from foreseer.dburl import mask_text

    summary = row.summary or {}
    if summary:
        done, best_value = sum(summary.get("trials", {}).values()), summary.get("best_value")
    else:
        done, best_value = _progress(store, row)
    best = "-" if best_value is None else f"{best_value:.4f}"
    trials = f"{done}/{row.spec.get('trials', '?')}"
    error = (row.error or "").splitlines()[-1][:60] if row.error else ""
    where = row.cluster or "local"
    return [
        row.id,
        row.name,
        row.status,
        where,
        trials,
        best,
        f"{row.created_at:%Y-%m-%d %H:%M}",
        mask_text(error),
    ]


@click.command()
@click.argument("job_id")
@store_option
def show(job_id: str, store_url: str) -> None:
    """Show a job: its spec, status and leaderboard."""
    import yaml
    from rich.table import Table

    from foreseer.dburl import mask_secrets, mask_text
    from foreseer.launch import reconcile, submission_state
    from foreseer.store.models import EpochRow, TrialRow

    store = open_store(store_url)
    row, state = reconcile(store, find_job(store, job_id))
    console = make_console()
    console.print(f"[bold]{row.name}[/] {row.id}: [bold]{row.status}[/]")
    if row.submission_id:
        state = state or submission_state(row.cluster, row.submission_id)[0]
        console.print(f"submitted to {row.cluster} as {row.submission_id} (Ray: {state})")
    if row.schedule_id:
        console.print(f"fired by schedule {row.schedule_id}")
    console.print(
        f"created {row.created_at:%Y-%m-%d %H:%M:%S}, MLflow experiment {row.mlflow_experiment_id}, "
        f"parent run {row.mlflow_parent_run_id}"
    )
    if row.error:
        console.print(f"[red]{mask_text(row.error)}[/]")
    # Jobs recorded before specs were masked in the store may still hold a password: mask on display too.
    console.print(yaml.safe_dump(mask_secrets(row.spec), sort_keys=False).rstrip())
    with store.session() as session:
        trials = TrialRow.of_job(session, row.id)
        epochs: dict[int, list[dict[str, float]]] = {}
        for epoch in EpochRow.of_job(session, row.id):
            epochs.setdefault(epoch.number, []).append(epoch.metrics)
    name, mode = _objective(row.spec)
    table = Table(title=f"trials by {name}")
    for column in ("trial", "candidate", "best epoch", name, "epochs", "status", "reason"):
        table.add_column(column)
    for cells in _ranked(trials, epochs, name, mode):
        table.add_row(*cells)
    console.print(table)


def _ranked(
    trials: list[Any], epochs: dict[int, list[dict[str, float]]], metric: str, mode: str
) -> list[list[str]]:
    """Table rows, best first, failed trials last."""
    from foreseer_spaces import Candidate

    sign = 1 if mode == "max" else -1
    keyed = []
    for trial in trials:
        values = [m[metric] for m in epochs.get(trial.number, []) if metric in m]
        best = max(range(len(values)), key=lambda i: sign * values[i]) if values else None
        value = None if best is None else values[best]
        cells = [
            str(trial.number),
            Candidate.from_dict(trial.candidate).hash[:12],
            "-" if best is None else str(best + 1),
            "-" if value is None else f"{value:.4f}",
            str(len(values)),
            trial.state,
            trial.reason[:60],
        ]
        keyed.append(((trial.state == "failed", float("inf") if value is None else -sign * value), cells))
    return [cells for _, cells in sorted(keyed, key=lambda kc: kc[0])]


@click.command()
@click.argument("job_id")
@store_option
def cancel(job_id: str, store_url: str) -> None:
    """Cancel a job. Its running trials stop and stay resumable (`foreseer resume`)."""
    from foreseer._processes import kill_leftovers, pid_of, terminate
    from foreseer.store.models import JobRow, utcnow

    store = open_store(store_url)
    row = find_job(store, job_id)
    if row.status in ("succeeded", "failed", "cancelled"):
        bad_input(f"job {row.id} already ended ({row.status})")
    if row.submission_id:
        _cancel_on_cluster(store, row)
        return
    pid = pid_of(row.driver)
    if pid is not None:
        terminate(pid)
        click.echo(f"job {row.id}: asked its driver (pid {pid}) to stop; it records the job as cancelled")
        return
    kill_leftovers(row.driver)
    with store.session() as session:
        job = session.get(JobRow, row.id)
        job.status, job.ended_at = "cancelled", utcnow()
    click.echo(f"job {row.id}: cancelled (its driver was not running)")


def _cancel_on_cluster(store: Any, row: Any) -> None:
    from foreseer.launch import reconcile, stop_submission

    try:
        state = stop_submission(row.cluster, row.submission_id)
    except SpecError as e:
        bad_input(str(e))
    row, _ = reconcile(store, row)
    click.echo(f"job {row.id}: its driver on {row.cluster} stopped (Ray: {state}); the job is {row.status}")


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option(
    "--cluster",
    required=True,
    envvar="FORESEER_CLUSTER",
    help="The Ray cluster's dashboard address, e.g. http://HEAD:8265 (or $FORESEER_CLUSTER).",
)
@SET_OPTION
def submit(job_file: str, cluster: str, sets: tuple[str, ...]) -> None:
    """Submit a job file to a Ray cluster; its driver runs there. Prints the job id."""
    from foreseer.errors import JobFailed
    from foreseer.launch import launch, security_warnings
    from foreseer.spec import load_job

    quiet_libraries()
    job = or_exit(lambda: load_job(job_file, parse_sets(sets)))
    for warning in security_warnings(cluster):
        click.echo(f"warning: {warning}", err=True)
    try:
        launched = or_exit(lambda: launch(job, cluster=cluster))
    except JobFailed as e:
        click.echo(str(e), err=True)
        sys.exit(EXIT_FAILED)
    click.echo(launched.job_id)
    click.echo(
        f"submitted to {cluster} as {launched.submission_id}; follow it with "
        f"`foreseer logs {launched.job_id} --follow` or `foreseer show {launched.job_id}`",
        err=True,
    )


@click.command()
@click.argument("job_id")
@store_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job's driver ends.")
def logs(job_id: str, store_url: str, follow: bool) -> None:
    """Print a background or cluster job's driver output."""
    import time

    from foreseer.launch import cluster_logs, log_file

    store = open_store(store_url)
    row = find_job(store, job_id)
    if row.submission_id:
        try:
            cluster_logs(row.cluster, row.submission_id, lambda text: click.echo(text, nl=False), follow)
        except SpecError as e:
            bad_input(str(e))
        return
    path = log_file(store_url, row.id)
    if not path.exists():
        bad_input(
            f"job {row.id} has no log file ({path}): only jobs run with --detach or by a schedule write one; "
            "a job run in the foreground printed to its terminal"
        )
    with open(path, encoding="utf-8", errors="replace") as log:
        while True:
            ended = not follow or _driver_ended(find_job(store, row.id))
            chunk = log.read()
            if chunk:
                click.echo(chunk, nl=False)
            if ended:
                return
            if not chunk:
                time.sleep(0.5)


def _driver_ended(row: Any) -> bool:
    """Whether a local job's driver is done writing its log: its process has exited (after recording
    the end, or killed while running). A driver on another host is done once it recorded the end."""
    import socket

    from foreseer._processes import alive

    if row.status == "queued":
        return False
    driver = row.driver or {}
    if driver.get("host") == socket.gethostname():
        return not alive(driver.get("process"))
    return row.status != "running"


@click.command()
@click.argument("job_id")
@store_option
@click.option("--detach", is_flag=True, help="Continue in the background and return at once.")
def resume(job_id: str, store_url: str, detach: bool) -> None:
    """Continue a job whose driver died or that was cancelled: nothing lost, nothing run twice."""
    from foreseer.launch import spawn_detached

    if detach:
        row = find_job(open_store(store_url), job_id)
        spawn_detached(row.id, store_url)
        click.echo(row.id)
        return
    import foreseer as fs

    quiet_libraries()
    try:
        handle = fs.resume(job_id, store_url, on_phase=click.echo)
    except SpecError as e:
        bad_input(str(e))
    follow_to_exit(handle)


@click.command()
def schema() -> None:
    """Print the JSON schema of job files (for editors)."""
    from foreseer.spec import SearchJob

    click.echo(json.dumps(SearchJob.model_json_schema(), indent=2))


@click.group()
def db() -> None:
    """The job store's schema."""


@db.command()
@store_option
def upgrade(store_url: str) -> None:
    """Migrate the job store to this Foreseer's schema."""
    from foreseer.dburl import mask_url
    from foreseer.store import JobStore, StoreError

    try:
        store = JobStore(store_url, upgrade=True, create=False)
    except StoreError as e:
        bad_input(str(e))
    click.echo(
        f"job store {mask_url(store.url)} is at schema revision {store.revision()} (newest {store.head()})"
    )


@db.command()
@store_option
def current(store_url: str) -> None:
    """Print the job store's schema revision."""
    store = open_store(store_url)
    click.echo(f"{store.revision()} (newest {store.head()})")


@click.command(name="_work", hidden=True)
@click.argument("job_id")
@click.option("--store", "store_url", required=True, envvar="FORESEER_STORE")
def work(job_id: str, store_url: str) -> None:
    """Run a recorded job in this (detached) process."""
    import logging

    import foreseer as fs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    follow_to_exit(fs.resume(job_id, store_url), live=False)
