"""What the ``foreseer`` commands share: exit codes, readable bad input, the job store option,
``--set`` parsing, and following a job in the terminal."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import click
import yaml

from foreseer.errors import SpecError

if TYPE_CHECKING:
    from rich.console import Console

    from foreseer.api import JobHandle

#: Exit codes: 0 success, 1 the job failed, 2 bad input, 130 interrupted.
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
SET_OPTION = click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a job field (dotted keys)."
)

DEFAULT_STORE = "sqlite:///foreseer.db"
store_option = click.option(
    "--store",
    "store_url",
    default=lambda: os.environ.get("FORESEER_STORE", DEFAULT_STORE),
    show_default="$FORESEER_STORE or sqlite:///foreseer.db",
    help="The job store (any SQLAlchemy URL).",
)


def bad_input(message: str) -> None:
    from foreseer.dburl import mask_text

    click.echo(mask_text(message), err=True)
    sys.exit(EXIT_BAD_INPUT)


def or_exit(action: Any) -> Any:
    """``action()``, or bad input (exit 2, the masked message) when it raises :class:`SpecError`."""
    try:
        return action()
    except SpecError as e:
        bad_input(str(e))  # a problem may quote the spec, URLs included


def make_console() -> Any:
    """The console every command prints with: the terminal's width, or in a pipe or a log wide
    enough that ids, paths and commands are not broken across lines."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def open_store(url: str, *, create: bool = False) -> Any:
    """The job store at ``url``, or exit 2 with why not; read-only commands never create one."""
    from foreseer.store import JobStore, StoreError

    try:
        return JobStore(url, create=create)
    except StoreError as e:
        bad_input(str(e))


def find_job(store: Any, job_id: str) -> Any:
    from foreseer.dburl import mask_url
    from foreseer.store.models import AmbiguousJobId, JobRow

    try:
        with store.session() as session:
            row = JobRow.find(session, job_id)
    except AmbiguousJobId as e:
        bad_input(str(e))
    if row is None:
        bad_input(
            f"no job {job_id!r} in {mask_url(store.url)} "
            "(an id or a unique prefix of one; see `foreseer jobs`)"
        )
    return row


def parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        out[key] = yaml.safe_load(raw)
    return out


def quiet_libraries() -> None:
    """The CLI owns the terminal: only warnings from the libraries underneath."""
    import logging

    import optuna

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # mlflow resets its logger's level on import
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def follow_to_exit(handle: JobHandle, *, live: bool = True) -> None:
    """Show progress until the job ends, cancel it on Ctrl-C or SIGTERM, exit with its code."""
    import signal

    console = make_console()

    def on_signal(signum: int, frame: Any) -> None:
        handle.cancel()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    _follow(handle, console, live)
    status = handle.status()
    if status.state == "cancelled":  # a Ctrl-C after the job ended leaves it as it ended
        console.print(
            f"[yellow]cancelled[/]: job {handle.job_id} stopped; "
            f"continue it with `foreseer resume {handle.job_id}`"
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
        f"trials {finished}/{s.trials_total} "
        f"(running {t['running']}, paused {t['paused']}, stopped early {t['stopped']}, failed {t['failed']})"
        f" | best {best} | epochs {s.epochs_used}/{s.epochs_budget} | {s.elapsed_s:.0f}s elapsed, {left}"
    )


def _cell(value: Any, metric: bool) -> str:
    import pandas as pd

    if pd.isna(value):
        return "-"
    return f"{value:.4f}" if metric else str(value)


def _summary(handle: JobHandle, console: Console) -> None:
    from rich.table import Table

    board = handle.leaderboard()
    metric = handle.job.primary.metric
    table = Table(title=f"{handle.job.name}: top trials by {metric}")
    columns = ("rank", "trial_number", "candidate", "best_epoch", metric, "epochs", "status")
    for column in columns:
        table.add_column(column)
    for _, row in board.head(5).iterrows():
        table.add_row(*(_cell(row[c], c == metric) for c in columns))
    console.print(table)
    s = handle.status()
    t = s.trials
    console.print(
        f"trials: {t['completed']} completed, {t['stopped']} stopped early, {t['failed']} failed"
        + (f", {t['paused']} paused" if t["paused"] else "")
    )
    for _, row in board[board["status"] == "failed"].iterrows():
        console.print(f"  [red]failed[/] trial {row['trial_number']}: {row['reason']}")
    console.print(f"epochs used {s.epochs_used} of {s.epochs_budget}; job folder {handle.directory}")
    if s.exhausted:
        console.print(f"[yellow]{s.exhausted}[/]")
    from foreseer.dburl import mask_url

    tracking = mask_url(handle.job.tracking_uri)
    console.print(
        f"MLflow: store [bold]{tracking}[/], experiment {handle.job.name!r} "
        f"(id {handle.mlflow_experiment_id}), parent run {handle.mlflow_run_id}"
    )
    console.print(
        f"See it in the MLflow UI:  foreseer ui --tracking-uri {tracking} --experiment {handle.job.name}"
        "  (then open the URL it prints)"
    )
