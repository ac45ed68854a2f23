"""The ``foreseer`` command line. It owns the terminal: progress, tables, readable errors.

Exit codes: 0 success, 1 the job failed, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import click
import yaml

from foreseer import commands
from foreseer.commands import _or_exit

if TYPE_CHECKING:
    from rich.console import Console

    from foreseer.api import JobHandle

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130  # bad input exits 2: commands._bad_input


def _parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        out[key] = yaml.safe_load(raw)
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="foreseer")
def main() -> None:
    """Foreseer: joint architecture + hyperparameter search on Ray Tune, Optuna and MLflow."""


@main.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a job field (dotted keys).")
def validate(job_file: str, sets: tuple[str, ...]) -> None:
    """Check a job file without running it."""
    from foreseer.spec import load_job

    job = _or_exit(lambda: load_job(job_file, _parse_sets(sets)))
    click.echo(
        f"{job_file}: valid job {job.name!r} ({job.trials} trials x {job.max_epochs} epochs on {job.space_name})"
    )


@main.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a job field (dotted keys).")
@click.option("--detach", is_flag=True, help="Record the job, run it in the background, print its id.")
def run(job_file: str, sets: tuple[str, ...], detach: bool) -> None:
    """Run a job file with a live progress display."""
    from foreseer.spec import load_job

    _quiet_libraries()
    job = _or_exit(lambda: load_job(job_file, _parse_sets(sets)))
    if detach:
        from foreseer.launch import launch

        click.echo(_or_exit(lambda: launch(job)).job_id)
        return
    from foreseer.api import submit

    click.echo(
        f"{job.name}: {job.trials} trials x {job.max_epochs} epochs, space {job.space_name}, "
        f"sampler {job.sampler if isinstance(job.sampler, str) else type(job.sampler).__name__}, "
        f"stopping {job.stopping.name}"
    )
    follow_to_exit(_or_exit(lambda: submit(job)))


def _quiet_libraries() -> None:
    """The CLI owns the terminal: only warnings from the libraries underneath."""
    import logging

    import optuna

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # mlflow resets its logger's level on import
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def follow_to_exit(handle: JobHandle, *, live: bool = True) -> None:
    """Show progress until the job ends, cancel it on Ctrl-C or SIGTERM, exit with its code."""
    import signal

    from rich.console import Console

    console = Console()
    interrupted: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        handle.cancel()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    _follow(handle, console, live)
    status = handle.status()
    if interrupted or status.state == "cancelled":
        console.print(
            f"[yellow]cancelled[/]: job {handle.job_id} stopped; continue it with `foreseer resume {handle.job_id}`"
        )
        sys.exit(EXIT_INTERRUPTED)
    if status.state != "succeeded":
        from foreseer.dburl import mask_text

        console.print(f"[red]job {handle.job_id} failed:[/] {mask_text(str(status.error))}")
        sys.exit(EXIT_FAILED)
    _summary(handle, console)


def _follow(handle: JobHandle, console: Console, live: bool) -> None:
    from rich.live import Live

    if not live:
        while not handle.done():
            time.sleep(1.0)
        return
    with Live(_progress_line(handle), console=console, refresh_per_second=2, transient=True) as display:
        while not handle.done():
            time.sleep(0.5)
            display.update(_progress_line(handle))


def _progress_line(handle: JobHandle) -> str:
    s = handle.status()
    t = s.trials
    finished = t["completed"] + t["stopped"] + t["failed"]
    best = "-" if s.best_value is None else f"{s.best_value:.4f}"
    rate = finished / s.elapsed_s if finished else 0.0
    left = f"~{(s.trials_total - finished) / rate:.0f}s left" if rate else "estimating"
    return (
        f"trials {finished}/{s.trials_total} (running {t['running']}, stopped early {t['stopped']}, failed {t['failed']})"
        f" | best {best} | epochs {s.epochs_used}/{s.epochs_budget} | {s.elapsed_s:.0f}s elapsed, {left}"
    )


def _summary(handle: JobHandle, console: Console) -> None:
    from rich.table import Table

    board = handle.leaderboard()
    metric = handle.job.primary.metric
    table = Table(title=f"{handle.job.name}: top trials by {metric}")
    columns = ("rank", "trial_number", "candidate", "best_epoch", metric, "epochs", "status")
    for column in columns:
        table.add_column(column)
    for _, row in board.head(5).iterrows():
        table.add_row(*(f"{row[c]:.4f}" if c == metric else str(row[c]) for c in columns))
    console.print(table)
    s = handle.status()
    console.print(f"epochs used {s.epochs_used} of {s.epochs_budget}; job folder {handle.directory}")
    from foreseer.dburl import mask_url

    tracking = mask_url(handle.job.tracking_uri)
    console.print(
        f"MLflow: store [bold]{tracking}[/], experiment {handle.job.name!r} "
        f"(id {handle.mlflow_experiment_id}), parent run {handle.mlflow_run_id}"
    )
    console.print(
        f"See it in the MLflow UI:  foreseer ui --tracking-uri {tracking}  (then open the URL it prints)"
    )


@main.command()
@click.option(
    "--tracking-uri",
    default="sqlite:///foreseer.db",
    show_default=True,
    envvar="FORESEER_TRACKING_URI",
    help="The MLflow tracking store (a SQLAlchemy URL).",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to bind; 0.0.0.0 for every one."
)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
def ui(tracking_uri: str, host: str, port: int) -> None:
    """Start the MLflow UI on the tracking store (one worker, no job runner); Ctrl-C stops it."""
    from foreseer.dburl import mask_url
    from foreseer.ui import UiError, UiServer, UiSettings, is_loopback

    settings = UiSettings(tracking_uri, host=host, port=port)
    if not is_loopback(host):
        click.echo(
            f"warning: the MLflow UI on {host} is open to the network without authentication; "
            "use MLflow's basic-auth app (mlflow server --app-name basic-auth) or a proxy that "
            "authenticates",
            err=True,
        )
    server = UiServer(settings)
    try:
        server.start()
        server.wait_ready()
        click.echo(f"MLflow UI on {mask_url(tracking_uri)}: {server.url}  (Ctrl-C stops it)")
        code = server.wait()
        if code:
            click.echo(f"the MLflow UI exited with code {code}", err=True)
            sys.exit(EXIT_FAILED)
    except UiError as e:
        click.echo(str(e), err=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        click.echo("stopping the MLflow UI")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        server.stop()


main.add_command(__import__("foreseer.predictors.pfn.cli", fromlist=["pfn"]).pfn)
main.add_command(__import__("foreseer.predictors.ghn.cli", fromlist=["ghn"]).ghn)

for _command in (
    commands.submit,
    commands.jobs,
    commands.show,
    commands.logs,
    commands.cancel,
    commands.resume,
    commands.schema,
    commands.db,
    commands.work,
):
    main.add_command(_command)
for _command in __import__("foreseer.scheduling.cli", fromlist=["COMMANDS"]).COMMANDS:
    main.add_command(_command)
