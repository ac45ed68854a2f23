"""The Python API: ``submit(job)`` returns a :class:`JobHandle` to watch, wait on and read results from.

Example:
    >>> import foreseer as fs
    >>> handle = fs.submit(fs.SearchJob(name="wine", space="mlp", dataset="wine", trials=4, max_epochs=3))
    >>> handle.wait().leaderboard().head()  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from foreseer.errors import JobFailed

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from foreseer.runner import PreparedJob
    from foreseer.spec import SearchJob
    from foreseer_spaces import Candidate

__all__ = ["BestTrial", "JobHandle", "JobStatus", "resume", "submit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job: its state, trial counts, epochs used against the budget, best so far."""

    state: str
    trials: dict[str, int]
    trials_total: int
    epochs_used: int
    epochs_budget: int
    best_value: float | None
    elapsed_s: float
    error: str | None = None
    #: why the job proposed fewer than ``trials_total`` trials (its space ran out), if it did.
    exhausted: str | None = None


@dataclass(frozen=True)
class BestTrial:
    """The best trial of a job on its primary objective."""

    trial_number: int
    candidate: Candidate
    epoch: int
    value: float
    metric: str
    run_id: str | None


def submit(job: SearchJob, *, on_phase: Callable[[str], Any] | None = None) -> JobHandle:
    """Validate ``job`` against its data and cluster, record it, and start it in the background.

    Args:
        job: the job.
        on_phase: called with a short line as each phase of the start begins (the CLI prints
            them, so the seconds before the first trial are not silent).

    Raises:
        SpecError: the job is invalid; nothing was written.
    """
    from foreseer.runner import check, open_records

    say = on_phase or (lambda line: None)
    say("checking the job: its data, space and databases")
    prepared = check(job)
    started_ray = _ray_for(job, say)
    say(f"recording job {prepared.job_id} in the job store and MLflow")
    open_records(prepared, started_ray=started_ray)
    return JobHandle(prepared, started_ray)._start()


def resume(
    job_id: str,
    store_uri: str = "sqlite:///foreseer.db",
    *,
    space: Any = None,
    dataset: Any = None,
    trainable: Any = None,
    on_phase: Callable[[str], Any] | None = None,
) -> JobHandle:
    """Continue a job whose driver died or that was cancelled, from what its job store recorded.

    Args:
        job_id: the job's id, or a unique prefix of it.
        store_uri: the job store the job was recorded in.
        space: the ``SearchSpace`` object, if the job was given one from Python.
        dataset: the ``(X, y)`` arrays, if the job was given arrays from Python.
        trainable: the training function, if the job was given one that cannot be imported by
            name (defined in a script run as ``__main__`` or inside a function).
        on_phase: as for :func:`submit`.

    Raises:
        SpecError: no such job, it already succeeded, or it is still running.
    """
    from foreseer.recovery import load_for_resume

    say = on_phase or (lambda line: None)
    say(f"reading job {job_id} from the job store")
    prepared = load_for_resume(job_id, store_uri, space=space, dataset=dataset, trainable=trainable)
    return JobHandle(prepared, _ray_for(prepared.job, say))._start()


def _ray_for(job: SearchJob, say: Callable[[str], Any]) -> bool:
    """Connect to the job's Ray (or start a local one) and check a node can hold a trial there;
    returns True when this call started Ray."""
    from foreseer.backends.ray_runtime import connected, ensure_ray, resource_problem
    from foreseer.errors import Problem, SpecError

    address = job.address or os.environ.get("RAY_ADDRESS")
    if not connected():
        say(f"connecting to Ray at {address}" if address else "starting a local Ray (about 5 s)")
    started = ensure_ray(job.address)
    if problem := resource_problem(job.resources, job.address):
        raise SpecError([Problem("resources", problem)])
    return started


class JobHandle:
    """A submitted job. Methods are safe to call from any thread while the job runs."""

    def __init__(self, prepared: PreparedJob, started_ray: bool = False) -> None:
        self._prepared = prepared
        self._started_ray = started_ray
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._state = "queued"
        self._started = time.monotonic()
        self._ended: float | None = None

    @property
    def job(self) -> SearchJob:
        return self._prepared.job

    @property
    def job_id(self) -> str:
        return self._prepared.job_id

    @property
    def directory(self) -> str:
        """Folder holding the job's checkpoints, leaderboard and best weights."""
        return str(self._prepared.directory)

    @property
    def study(self) -> Any:
        """The job's ``optuna.Study``: stopped trials are PRUNED, failed ones FAIL."""
        return self._prepared.study

    @property
    def mlflow_run_id(self) -> str | None:
        """The job's parent run in MLflow."""
        tracker = self._prepared.tracker
        return tracker.parent_run_id if tracker else None

    @property
    def mlflow_experiment_id(self) -> str | None:
        tracker = self._prepared.tracker
        return tracker.experiment_id if tracker else None

    def _start(self) -> JobHandle:
        self._state = "running"
        self._thread = threading.Thread(target=self._run, name=f"foreseer-{self.job_id}", daemon=True)
        self._thread.start()
        if self._started_ray:  # a script that ends without close() leaves no Ray behind
            atexit.register(self.close)
        return self

    def _run(self) -> None:
        from foreseer.runner import run_prepared

        try:
            self._state = run_prepared(self._prepared, started_ray=self._started_ray)
        except BaseException as e:  # kept and re-raised by wait() in the caller's thread
            logger.exception("job %s failed", self.job_id)
            self._error, self._state = e, "failed"
        finally:
            self._ended = time.monotonic()

    def status(self) -> JobStatus:
        ledger, job = self._prepared.ledger, self.job
        best = ledger.best()
        return JobStatus(
            state=self._state,
            trials=ledger.counts(),
            trials_total=job.trials,
            epochs_used=ledger.epochs_used(),
            epochs_budget=job.trials * job.max_epochs,
            best_value=best[2] if best else None,
            elapsed_s=(self._ended or time.monotonic()) - self._started,
            error=None if self._error is None else f"{type(self._error).__name__}: {self._error}",
            exhausted=self._prepared.driver.exhausted if self._prepared.driver is not None else None,
        )

    def wait(self, timeout: float | None = None) -> JobHandle:
        """Block until the job ends; re-raise its failure as :class:`JobFailed`.

        Raises:
            TimeoutError: the job is still running after ``timeout`` seconds.
        """
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"job {self.job_id} is still running after {timeout} s")
        if self._error is not None:
            raise JobFailed(f"job {self.job_id} failed: {self._error}") from self._error
        return self

    def done(self) -> bool:
        return self._state in ("succeeded", "failed", "cancelled")

    def cancel(self) -> None:
        """Stop the job: running trials stop and stay resumable (``foreseer resume``)."""
        self._prepared.cancelled.set()

    def close(self) -> None:
        """Release what this handle started: a job still running is cancelled (it stays resumable)
        and waited for, then the local Ray that :func:`submit` started is shut down. Idempotent;
        also called at interpreter exit and by ``with fs.submit(job) as handle:``."""
        if self._thread is not None and self._thread.is_alive():
            self.cancel()
            self._thread.join()
        if self._started_ray:
            from foreseer.backends.ray_runtime import shutdown_ray

            shutdown_ray()
            self._started_ray = False

    def __enter__(self) -> JobHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def history(self) -> pd.DataFrame:
        """Every recorded epoch in the order the trials reported them: ``trial_number``,
        ``trial_id``, ``epoch`` and the epoch's metrics, one row each."""
        import pandas as pd

        rows = [
            {"trial_number": r.number, "trial_id": r.trial_id, "epoch": epoch, **r.metrics[epoch - 1]}
            for r, epoch in self._prepared.ledger.in_order()
        ]
        return pd.DataFrame(rows, columns=None if rows else ["trial_number", "trial_id", "epoch"])

    def leaderboard(self) -> pd.DataFrame:
        """One row per trial, best first: candidate, hyperparameters, best epoch, metric, epochs, status."""
        return self._prepared.ledger.leaderboard()

    def best(self) -> BestTrial | None:
        best = self._prepared.ledger.best()
        if best is None:
            return None
        record, epoch, value = best
        metric = self._prepared.ledger.primary.metric
        return BestTrial(record.number, record.candidate, epoch, value, metric, record.run_id)

    def load_best(self) -> nn.Module:
        """The best trial's network with the weights of its best epoch, in eval mode."""
        import json

        from foreseer_spaces import Candidate
        from foreseer_workers import load_weights

        best_json = self._prepared.best_dir / "best.json"
        if not best_json.exists():
            raise JobFailed(f"job {self.job_id} has no trained trial yet")
        best = json.loads(best_json.read_text())
        model = self._prepared.space.build(Candidate.from_dict(best["candidate"]), self._prepared.data.task)
        load_weights(model, self._prepared.best_dir / best["weights"])
        return model.eval()

    def evaluate_best(self, split: str = "test") -> dict[str, float]:
        """The trials' validation metrics (loss and accuracy, or the regression metrics) of
        :meth:`load_best` on the job's ``"val"`` or ``"test"`` split."""
        from foreseer_workers import score

        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', but got {split!r}.")
        return score(self.load_best(), self._prepared.data, split)
