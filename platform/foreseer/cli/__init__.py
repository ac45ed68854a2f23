"""The ``foreseer`` command line. It owns the terminal: progress, tables, readable errors.

One package, imports pointing one way: each command module imports only :mod:`._common` (and
the library), and this module puts the commands together. Exit codes: 0 success, 1 the job
failed, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import click

from foreseer.cli import jobs, run, schedules
from foreseer.predictors.ghn.cli import ghn
from foreseer.predictors.pfn.cli import pfn

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="foreseer")
def main() -> None:
    """Foreseer: joint architecture + hyperparameter search on Ray, Optuna and MLflow."""


for _command in (
    run.validate,
    run.run,
    run.ui,
    jobs.submit,
    jobs.jobs,
    jobs.show,
    jobs.logs,
    jobs.cancel,
    jobs.resume,
    jobs.schema,
    jobs.db,
    jobs.work,
    schedules.schedule,
    schedules.scheduler,
    pfn,
    ghn,
):
    main.add_command(_command)
