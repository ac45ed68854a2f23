"""Preparing and running one job: validate against the real data and space, record, search, publish."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foreseer.errors import Problem, SpecError

if TYPE_CHECKING:
    import optuna
    from foreseer_spaces import SearchSpace
    from foreseer_workers import DataBundle

    from foreseer.ledger import Ledger
    from foreseer.spec import SearchJob
    from foreseer.tracking import Tracker

__all__ = ["PreparedJob", "prepare", "run_prepared"]

logger = logging.getLogger(__name__)


@dataclass
class PreparedJob:
    """A job checked against its real dataset and space, with its records created."""

    job: SearchJob
    job_id: str
    space: SearchSpace
    overrides: dict[str, Any]
    data: DataBundle
    directory: Path
    ledger: Ledger
    study: optuna.Study
    tracker: Tracker | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def best_dir(self) -> Path:
        return self.directory / "best"


def prepare(job: SearchJob) -> PreparedJob:
    """Load the dataset, resolve the space and check they fit together; raise :class:`SpecError`
    listing every problem before anything is written."""
    import optuna
    from foreseer_spaces import SearchSpace, check_override_names, get_space, parse_overrides

    from foreseer.ledger import Ledger
    from foreseer.samplers import make_sampler

    problems: list[Problem] = []
    space = job.space if isinstance(job.space, SearchSpace) else get_space(job.space_name)
    data = _load_data(job, problems)
    overrides = parse_overrides(job.space_overrides())
    if data is not None:
        try:
            space.check_task(data.task)
        except ValueError as e:
            problems.append(Problem("space", str(e)))
        else:
            try:
                check_override_names(space, data.task, overrides)
            except ValueError as e:
                problems.append(Problem("space.params", str(e)))
    if problems:
        raise SpecError(problems)
    study = optuna.create_study(
        study_name=job.name,
        directions=["maximize" if o.mode == "max" else "minimize" for o in job.objectives],
        sampler=make_sampler(job.sampler, seed=job.seed),
    )
    job_id = uuid.uuid4().hex[:12]
    return PreparedJob(
        job=job,
        job_id=job_id,
        space=space,
        overrides=overrides,
        data=data,  # type: ignore[arg-type]
        directory=Path(job.workdir) / job.name / job_id,
        ledger=Ledger(job.objectives, job.max_epochs),
        study=study,
    )


def _load_data(job: SearchJob, problems: list[Problem]) -> DataBundle | None:
    from foreseer_workers import load_dataset

    spec = job.dataset_spec()
    try:
        if spec is None:
            return load_dataset(tuple(job.dataset), seed=job.seed)
        return load_dataset(
            spec.source,
            val_fraction=spec.val_fraction,
            test_fraction=spec.test_fraction,
            seed=spec.seed,
            target=spec.target,
        )
    except (ValueError, TypeError, OSError) as e:
        problems.append(Problem("dataset", str(e)))
        return None


def open_tracking(prepared: PreparedJob) -> None:
    """Create the MLflow experiment and the job's parent run; an unreachable store is bad input."""
    from foreseer.tracking import Tracker

    job = prepared.job
    try:
        prepared.tracker = Tracker(job.tracking_uri, job.name, job.artifact_location)
    except Exception as e:  # MLflow raises many types for a store it cannot open
        raise SpecError([Problem("tracking_uri", f"cannot open the MLflow store: {e}", job.tracking_uri, True)]) from e
    spec = job.to_dict()
    spec["job_id"] = prepared.job_id
    prepared.tracker.start_job(prepared.job_id, spec, run_name=f"{job.name}-{prepared.job_id[:6]}")


def run_prepared(prepared: PreparedJob) -> None:
    """Search, then publish the leaderboard, the best candidate and its weights on the parent run."""
    from foreseer.backends.ray_tune import RayTuneBackend
    from foreseer.driver import SearchDriver
    from foreseer.searcher import CandidateSearcher
    from foreseer.stopping import make_policy

    job = prepared.job
    searcher = CandidateSearcher(prepared.study, prepared.space, prepared.data.task, prepared.overrides, prepared.ledger)
    driver = SearchDriver(prepared.ledger, searcher, make_policy(job.stopping), prepared.tracker, prepared.best_dir)
    prepared.directory.mkdir(parents=True, exist_ok=True)
    backend = RayTuneBackend(driver, prepared.data, prepared.space, job.resources, prepared.directory)
    status = "FAILED"
    try:
        backend.run(
            trials=job.trials,
            max_epochs=job.max_epochs,
            max_concurrent=job.max_concurrent,
            seed=job.seed,
            time_budget_s=job.time_budget_s,
        )
        _publish(prepared)
        status = "FINISHED"
    finally:
        if prepared.tracker is not None:
            prepared.tracker.end_job(status)


def _publish(prepared: PreparedJob) -> None:
    ledger, tracker = prepared.ledger, prepared.tracker
    board = ledger.leaderboard()
    prepared.directory.mkdir(parents=True, exist_ok=True)
    board_path = prepared.directory / "leaderboard.csv"
    board.to_csv(board_path, index=False)
    best = ledger.best()
    counts = ledger.counts()
    prepared.summary = {
        "trials": counts,
        "epochs_used": ledger.epochs_used(),
        "epochs_budget": prepared.job.trials * prepared.job.max_epochs,
    }
    if best is not None:
        record, epoch, value = best
        prepared.summary.update(best_trial=record.number, best_epoch=epoch, best_value=value)
    if tracker is None:
        return
    tracker.log_artifact(board_path)
    best_json = prepared.best_dir / "best.json"
    if best_json.exists():
        tracker.log_artifact(best_json, "best")
        tracker.log_artifact(prepared.best_dir / "model.safetensors", "best")
    tracker.client.log_text(tracker.parent_run_id, json.dumps(prepared.summary, indent=2), "summary.json")
    tags = {f"foreseer.trials_{state}": n for state, n in counts.items()}
    if best is not None:
        tags.update({"foreseer.best_candidate": best[0].candidate.hash, "foreseer.best_value": f"{best[2]:.6g}"})
    tracker.set_job_tags(tags)
