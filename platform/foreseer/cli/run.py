"""``foreseer validate``, ``foreseer run`` and ``foreseer ui``."""

from __future__ import annotations

import sys

import click

from foreseer.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    SET_OPTION,
    bad_input,
    follow_to_exit,
    or_exit,
    parse_sets,
    quiet_libraries,
)


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@SET_OPTION
def validate(job_file: str, sets: tuple[str, ...]) -> None:
    """Check a job file without running it: every check `run` makes (the file, its data and space,
    its database URLs, whether a node can hold a trial), and nothing written."""
    from foreseer.runner import check
    from foreseer.spec import load_job

    quiet_libraries()
    job = or_exit(lambda: load_job(job_file, parse_sets(sets)))
    if job.address:  # the cluster's nodes are known once connected
        from foreseer.backends.ray_runtime import ensure_ray

        or_exit(lambda: ensure_ray(job.address))
    or_exit(lambda: check(job))
    click.echo(
        f"{job_file}: valid job {job.name!r} "
        f"({job.trials} trials x {job.max_epochs} epochs on {job.space_name})"
    )


@click.command()
@click.argument("job_file", type=click.Path(dir_okay=False))
@SET_OPTION
@click.option("--detach", is_flag=True, help="Record the job, run it in the background, print its id.")
def run(job_file: str, sets: tuple[str, ...], detach: bool) -> None:
    """Run a job file with a live progress display."""
    from foreseer.spec import load_job

    quiet_libraries()
    job = or_exit(lambda: load_job(job_file, parse_sets(sets)))
    if detach:
        from foreseer.launch import launch

        click.echo(or_exit(lambda: launch(job)).job_id)
        return
    from foreseer.api import submit

    click.echo(
        f"{job.name}: {job.trials} trials x {job.max_epochs} epochs, space {job.space_name}, "
        f"sampler {job.sampler if isinstance(job.sampler, str) else type(job.sampler).__name__}, "
        f"stopping {job.stopping.name}"
    )
    handle = or_exit(lambda: submit(job, on_phase=click.echo))
    click.echo(f"job {handle.job_id} started; its trials are recorded as they run")
    follow_to_exit(handle)


@click.command()
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
@click.option("--experiment", default=None, help="A job's name: print the URL of its runs table.")
def ui(tracking_uri: str, host: str, port: int, experiment: str | None) -> None:
    """Start the MLflow UI on the tracking store (one worker, no job runner); Ctrl-C stops it."""
    from foreseer.dburl import mask_url
    from foreseer.ui import UiError, UiServer, UiSettings, is_loopback

    settings = UiSettings(tracking_uri, host=host, port=port)
    experiment_id = None
    if experiment is not None:
        from foreseer.tracking import experiment_id_of

        experiment_id = experiment_id_of(tracking_uri, experiment)
        if experiment_id is None:
            bad_input(
                f"no experiment {experiment!r} in {mask_url(tracking_uri)} "
                "(an experiment is named after its job; see `foreseer jobs`)"
            )
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
        url = server.url if experiment_id is None else settings.experiment_url(experiment_id)
        click.echo(f"MLflow UI on {mask_url(tracking_uri)}: {url}  (Ctrl-C stops it)")
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
