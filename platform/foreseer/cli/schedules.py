"""``foreseer schedule …`` (add, list, show, pause, resume, remove) and ``foreseer scheduler`` (the daemon).

Importing this module is cheap: the store, the job spec and the daemon load when a command runs.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from foreseer.cli._common import (
    EXIT_INTERRUPTED,
    SET_OPTION,
    make_console,
    open_store,
    or_exit,
    parse_sets,
    quiet_libraries,
    store_option,
)

__all__ = ["schedule", "scheduler"]


def _when(moment: datetime | None, tz: str) -> str:
    from foreseer.scheduling.schedules import as_utc

    if moment is None:
        return "-"
    from zoneinfo import ZoneInfo

    return f"{as_utc(moment).astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M:%S %Z}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def schedule() -> None:
    """Recurring searches on a cron schedule, fired by `foreseer scheduler`."""


@schedule.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option(
    "--cron", required=True, help='When to run: "0 3 * * *", "*/10 * * * * *" (leading seconds), @daily …'
)
@click.option(
    "--timezone", "tz", default="UTC", show_default=True, help="IANA time zone the cron times are in."
)
@click.option(
    "--cluster",
    default=None,
    help="Ray dashboard address to submit to (http://HEAD:8265); this machine if not given.",
)
@click.option("--name", default=None, help="Schedule name (the job's name by default).")
@click.option(
    "--missed", default="skip", show_default=True, help="Runs missed while no daemon ran: skip | run-once."
)
@click.option(
    "--overlap",
    default="skip",
    show_default=True,
    help="A run due while the previous one still runs: skip | allow.",
)
@SET_OPTION
@store_option
def add(
    job_file: str,
    cron: str,
    tz: str,
    cluster: str | None,
    name: str | None,
    missed: str,
    overlap: str,
    sets: tuple[str, ...],
    store_url: str,
) -> None:
    """Schedule a job file: validated now, fired by the scheduler daemon at every cron occurrence."""
    from pathlib import Path

    from foreseer.scheduling.cron import CronSchedule
    from foreseer.scheduling.schedules import add_schedule
    from foreseer.spec import load_job

    job = or_exit(lambda: load_job(job_file, parse_sets(sets)))
    store = open_store(store_url, create=True)
    source = " ".join([f"job file {str(Path(job_file).resolve())!r}", *(f"--set {s}" for s in sets)])
    row = or_exit(
        lambda: add_schedule(
            store,
            job,
            cron=cron,
            tz=tz,
            name=name,
            cluster=cluster,
            missed=missed,
            overlap=overlap,
            source=source,
        )
    )
    where = f"on the Ray cluster {cluster}" if cluster else "on this machine"
    click.echo(
        f"schedule {row.name!r} ({row.id}): job {job.name!r} {where}, cron {row.cron!r} in {row.timezone}, "
        f"missed: {row.missed}, overlap: {row.overlap}"
    )
    click.echo("next runs:")
    first = row.next_run_at
    for moment in [first, *CronSchedule(row.cron, row.timezone).upcoming(first, 2)]:
        click.echo(f"  {_when(moment, row.timezone)}")
    click.echo("`foreseer scheduler` fires it (it must be running, with the same --store)")


@schedule.command(name="list")
@store_option
def list_(store_url: str) -> None:
    """List schedules: cron, time zone, next run, paused, the last firing and its job's status."""
    from rich.table import Table

    from foreseer.dburl import mask_url
    from foreseer.scheduling.schedules import list_schedules

    store = open_store(store_url)
    table = Table(title=f"schedules in {mask_url(store.url)}")
    for column in (
        "name",
        "cron",
        "tz",
        "next run",
        "paused",
        "missed/overlap",
        "firings",
        "last firing",
        "last job",
    ):
        table.add_column(column, no_wrap=True)
    for view in list_schedules(store):
        row, last, job = view.schedule, view.last, view.last_job
        last_cell = "-" if last is None else f"{_when(last.occurrence, row.timezone)} {last.status}"
        job_cell = "-" if job is None else f"{job.id} {job.status}"
        table.add_row(
            row.name,
            row.cron,
            row.timezone,
            "-" if row.paused else _when(row.next_run_at, row.timezone),
            "yes" if row.paused else "no",
            f"{row.missed}/{row.overlap}",
            str(view.firings),
            last_cell,
            job_cell,
        )
    make_console().print(table)


@schedule.command()
@click.argument("name")
@click.option("--limit", default=20, show_default=True, help="Newest firings to list.")
@store_option
def show(name: str, limit: int, store_url: str) -> None:
    """Show a schedule and its latest firings: when, by which daemon, the job and its status."""
    from rich.table import Table

    from foreseer.dburl import mask_text
    from foreseer.scheduling.schedules import as_utc, firings_of

    store = open_store(store_url)
    row, firings = or_exit(lambda: firings_of(store, name, limit))
    console = make_console()
    state = "paused" if row.paused else f"next run {_when(row.next_run_at, row.timezone)}"
    console.print(
        f"[bold]{row.name}[/] {row.id}: cron {row.cron!r} in {row.timezone}, {state}, "
        f"missed: {row.missed}, overlap: {row.overlap}, {row.cluster or 'this machine'}"
    )
    console.print(f"from {mask_text(row.source)}")
    table = Table(title="firings, newest first")
    for column in ("occurrence", "late s", "status", "job", "job status", "daemon"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for firing, job_status in firings:
        late = (as_utc(firing.claimed_at) - as_utc(firing.occurrence)).total_seconds()
        table.add_row(
            _when(firing.occurrence, row.timezone),
            f"{late:.3f}",
            firing.status,
            firing.job_id or "-",
            job_status or "-",
            firing.daemon,
            mask_text(firing.detail),
        )
    console.print(table)


@schedule.command()
@click.argument("name")
@store_option
def pause(name: str, store_url: str) -> None:
    """Pause a schedule: the daemon fires nothing for it until it is resumed."""
    from foreseer.scheduling.schedules import set_paused

    row = or_exit(lambda: set_paused(open_store(store_url), name, True))
    click.echo(f"schedule {row.name!r} paused")


@schedule.command()
@click.argument("name")
@store_option
def resume(name: str, store_url: str) -> None:
    """Resume a paused schedule from its next occurrence (what it had while paused does not run)."""
    from foreseer.scheduling.schedules import set_paused

    row = or_exit(lambda: set_paused(open_store(store_url), name, False))
    click.echo(f"schedule {row.name!r} resumed; next run {_when(row.next_run_at, row.timezone)}")


@schedule.command()
@click.argument("name")
@store_option
def remove(name: str, store_url: str) -> None:
    """Remove a schedule and its firings (the jobs it fired stay)."""
    from foreseer.scheduling.schedules import remove_schedule

    row = or_exit(lambda: remove_schedule(open_store(store_url), name))
    click.echo(f"schedule {row.name!r} removed")


@click.command()
@store_option
@click.option(
    "--poll",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="Seconds between looks at the store (it also wakes at each due time).",
)
@click.option(
    "--grace",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0, None),
    help="Seconds late an occurrence still runs; later, the schedule's missed policy decides.",
)
@click.option(
    "--lease",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1, None),
    help="Seconds before a claim by a daemon on another host that launched nothing is taken over.",
)
@click.option("--verbose", "-v", is_flag=True, help="Also log the occurrences another daemon claimed first.")
def scheduler(store_url: str, poll: float, grace: float, lease: float, verbose: bool) -> None:
    """Run the scheduler daemon: fire due schedules until SIGTERM or Ctrl-C.

    Several daemons may run against one store (PostgreSQL for daemons on several hosts): each
    occurrence fires once."""
    import logging
    import signal
    import threading

    from foreseer.scheduling.daemon import Scheduler

    quiet_libraries()
    logging.getLogger("foreseer").setLevel(logging.INFO)
    logging.getLogger("foreseer.scheduling").setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    store = open_store(store_url, create=True)
    daemon = Scheduler(store, grace=grace, lease=lease)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    daemon.run(stop, poll)
    store.dispose()
    if signal.SIGINT in received:
        sys.exit(EXIT_INTERRUPTED)
