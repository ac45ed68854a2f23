"""Resuming a job whose driver died (killed, crashed, machine lost) or that was cancelled.

The job store is the source of truth: it is written before MLflow, event by event. Resume
rebuilds the ledger and the Optuna history from it, continues unfinished trials from the
checkpoint it recorded with their last epoch, keeps paused trials paused (with their checkpoints)
for the policy to resume, proposes only the trials still missing, and brings MLflow up to the
store (never past it), so that no trial runs twice and no reported epoch is lost or logged twice.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from foreseer.errors import Problem, SpecError
from foreseer.runner import PreparedJob, open_journal, open_tracker, prepare

__all__ = ["load_for_resume"]

logger = logging.getLogger(__name__)


def load_for_resume(
    job_id: str, store_url: str, *, space: Any = None, dataset: Any = None, trainable: Any = None
) -> PreparedJob:
    """Everything needed to continue job ``job_id`` (an id or a unique prefix).

    Args:
        job_id: the job to resume.
        store_url: the job store it was recorded in.
        space: the ``SearchSpace`` object, for a job that was given one from Python.
        dataset: the ``(X, y)`` arrays, for a job that was given arrays from Python.
        trainable: the training function, for a job given one that cannot be imported by name.

    Raises:
        SpecError: no such job, it already succeeded, its driver is still running, or its data changed.
    """
    from foreseer._processes import alive, kill_leftovers
    from foreseer.spec import SearchJob
    from foreseer.store.models import AmbiguousJobId, JobRow

    journal = open_journal(store_url, job_id, create=False)
    try:
        with journal.store.session() as session:
            row = JobRow.find(session, job_id)
    except AmbiguousJobId as e:
        raise SpecError([Problem("job", str(e))]) from None
    if row is None:
        raise SpecError([Problem("job", f"no job {job_id!r} in the store", job_id, True)])
    journal.job_id = row.id
    if row.status == "succeeded":
        raise SpecError([Problem("job", f"job {row.id} already succeeded; nothing to resume")])
    if row.status in ("cancelled", "failed"):
        _wait_for_exit(row.driver, timeout=60.0)  # it has recorded its end and is shutting Ray down
    if row.driver and alive(row.driver.get("process")):
        raise SpecError(
            [
                Problem(
                    "job",
                    f"job {row.id} is still running (driver pid {row.driver['process'][0]}); cancel it first",
                )
            ]
        )
    kill_leftovers(row.driver)
    job = SearchJob.from_dict(
        _with_passwords(
            _spec_for(row.spec, {"space": space, "dataset": dataset, "trainable": trainable}), store_url
        ),
        source=f"job {row.id}",
    )
    prepared = prepare(job, job_id=row.id)
    if row.data_fingerprint and prepared.data.fingerprint != row.data_fingerprint:
        raise SpecError(
            [
                Problem(
                    "dataset",
                    "the data differs from the data the job started with; resume needs the same data",
                )
            ]
        )
    prepared.journal = journal
    prepared.tracker = open_tracker(job)
    prepared.tracker.resume_job(row.mlflow_parent_run_id)
    _rebuild(prepared)
    return prepared


def _wait_for_exit(driver: dict[str, Any] | None, timeout: float) -> None:
    from foreseer._processes import alive

    deadline = time.monotonic() + timeout
    while driver and alive(driver.get("process")) and time.monotonic() < deadline:
        time.sleep(0.2)


#: What a job given Python objects stores in their place, and how resume gets them back.
_GIVEN_AGAIN = {
    "space": (
        "object",
        "the job was given a SearchSpace object; pass it again: fs.resume(job_id, space=...)",
    ),
    "dataset": (
        "arrays",
        "the job was given (X, y) arrays; pass them again: fs.resume(job_id, dataset=(X, y))",
    ),
    "trainable": (
        "object",
        "the job was given a training function that cannot be imported by name (defined in a script "
        "or a function); pass it again: fs.resume(job_id, trainable=...)",
    ),
}


def _spec_for(spec: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The stored spec with the Python objects the job was given put back from ``given``."""
    spec = {k: v for k, v in spec.items() if k != "job_id"}
    for key, (marker, message) in _GIVEN_AGAIN.items():
        if isinstance(spec.get(key), dict) and marker in spec[key]:
            if given.get(key) is None:
                raise SpecError([Problem(key, message)])
            spec[key] = given[key]
    return spec


def _with_passwords(spec: dict[str, Any], store_url: str) -> dict[str, Any]:
    """The stored spec's masked database URLs with their passwords, from the URLs this process knows."""
    import os

    from foreseer.dburl import with_password

    known = [store_url, os.environ.get("FORESEER_STORE"), os.environ.get("FORESEER_TRACKING_URI")]
    for key in ("tracking_uri", "store_uri"):
        if isinstance(spec.get(key), str):
            spec[key] = with_password(spec[key], known)
    return spec


def _rebuild(prepared: PreparedJob) -> None:
    """The ledger from the journal's events alone, and MLflow brought up to it."""
    journal, ledger, tracker = prepared.journal, prepared.ledger, prepared.tracker
    prepared.history = journal.events()
    for event in prepared.history:
        ledger.observe(event)
    runs = tracker.trial_runs()  # a run the driver created but died before journaling
    for record in ledger.records():
        record.run_id = record.run_id or runs.get(record.trial_id)
        if record.run_id is not None:
            tracker.reconcile_trial(record)
    states = [r.state for r in ledger.records()]
    logger.info(
        "resuming job %s: %d trials recorded, %d to continue, %d paused",
        prepared.job_id, len(states), states.count("running"), states.count("paused"),
    )  # fmt: skip
