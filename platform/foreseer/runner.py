"""Preparing and running one job: validate against the real data and space, record, search, publish."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foreseer import _failpoints
from foreseer.driver import BEST_WEIGHTS
from foreseer.errors import Problem, SpecError

if TYPE_CHECKING:
    import optuna

    from foreseer.driver import SearchDriver
    from foreseer.events import TrialEvent
    from foreseer.ledger import Ledger
    from foreseer.spec import SearchJob
    from foreseer.store.journal import JobJournal
    from foreseer.tracking import Tracker
    from foreseer_spaces import SearchSpace, SpaceFeatures
    from foreseer_workers import DataBundle
    from foreseer_workers.streaming import StreamedData

__all__ = ["PreparedJob", "check", "open_records", "prepare", "run_prepared"]

logger = logging.getLogger(__name__)


@dataclass
class PreparedJob:
    """A job checked against its real dataset and space, with its records created."""

    job: SearchJob
    job_id: str
    space: SearchSpace
    overrides: dict[str, Any]
    data: DataBundle | StreamedData
    directory: Path
    ledger: Ledger
    study: optuna.Study
    tracker: Tracker | None = None
    journal: JobJournal | None = None
    driver: SearchDriver | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    history: list[TrialEvent] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def best_dir(self) -> Path:
        return self.directory / "best"


def prepare(job: SearchJob, job_id: str | None = None) -> PreparedJob:
    """Load the dataset, resolve the space and check they fit together; raise :class:`SpecError`
    listing every problem before anything is written."""
    import optuna

    from foreseer.ledger import Ledger
    from foreseer.samplers import make_sampler
    from foreseer_spaces import SearchSpace, check_override_names, get_space, parse_overrides

    problems: list[Problem] = []
    space = job.space if isinstance(job.space, SearchSpace) else get_space(job.space_name)
    data = _load_data(job, problems)
    overrides = parse_overrides(job.space_overrides())
    if data is not None:
        try:
            space.check_task(data.task)
            check_override_names(space, data.task, overrides)
        except ValueError as e:
            problems.append(Problem("space", str(e)))
        problems += _task_problems(job, data.task.kind)
    if problems:
        raise SpecError(problems)
    study = optuna.create_study(
        study_name=job.name,
        directions=["maximize" if o.mode == "max" else "minimize" for o in job.objectives],
        sampler=make_sampler(job.sampler, seed=job.seed),
    )
    job_id = job_id or uuid.uuid4().hex[:12]
    return PreparedJob(
        job=job,
        job_id=job_id,
        space=space,
        overrides=overrides,
        data=data,  # type: ignore[arg-type]
        directory=Path(job.workdir).resolve() / job.name / job_id,
        ledger=Ledger(job.objectives, job.max_epochs),
        study=study,
    )


def job_features(prepared: PreparedJob) -> SpaceFeatures:
    """The features of the job's candidates (``foreseer_spaces.SpaceFeatures``), probed with the
    job's own overrides and seed, so a resumed job gets the same."""
    from foreseer_spaces import SpaceFeatures

    return SpaceFeatures.of(prepared.space, prepared.data.task, prepared.overrides, seed=prepared.job.seed)


def _task_problems(job: SearchJob, kind: str) -> list[Problem]:
    """What the job asks of its trials that their task does not give: an objective metric that
    Foreseer's training does not report for it, or the graph hypernetwork on regression."""
    from foreseer_workers.metrics import TASK_METRICS

    problems = []
    if job.trainable is None:
        reported = TASK_METRICS[kind]
        for objective in job.objectives:
            if objective.metric not in reported:
                problems.append(
                    Problem(
                        "objective",
                        f"the dataset is a {kind} task, whose trials report {', '.join(reported)}; "
                        f"not {objective.metric!r}",
                    )
                )
    spec = job.dataset_spec()
    if (job.screening.enabled or job.warm_start) and (kind == "regression" or (spec and spec.streamed)):
        why = (
            "is meta-trained on classification; it does not screen or warm-start regression trials"
            if kind == "regression"
            else "is meta-trained on data held in memory; it does not screen or warm-start trials "
            "of streamed images"
        )
        problems.append(
            Problem("screening" if job.screening.enabled else "warm_start", f"the graph hypernetwork {why}")
        )
    return problems


def check(job: SearchJob, *, resources: bool = True) -> PreparedJob:
    """Every check a job passes before anything is written: its data and space (:func:`prepare`),
    its database URLs (reachable, a store schema this Foreseer knows) and, with ``resources``, a
    node that can hold one trial. ``foreseer validate``, ``run``, ``submit`` and the Python API
    all call this one function, so they accept and refuse the same jobs.

    Raises:
        SpecError: listing every problem found.
    """
    from foreseer.backends.ray_runtime import resource_problem
    from foreseer.dburl import reachability_problem
    from foreseer.store import schema_problem

    problems: list[Problem] = []
    prepared = None
    try:
        prepared = prepare(job)
    except SpecError as e:
        problems += e.problems
    urls = {"tracking_uri": job.tracking_uri, "store_uri": job.store_url}
    for field_name, url in urls.items():
        problem = reachability_problem(url) or (schema_problem(url) if field_name == "store_uri" else None)
        if problem and all(p.message != problem for p in problems):
            problems.append(Problem(field_name, problem))
    if resources and (problem := resource_problem(job.resources, job.address)):
        problems.append(Problem("resources", problem))
    if problems:
        raise SpecError(problems)
    return prepared  # type: ignore[return-value]


def _load_data(job: SearchJob, problems: list[Problem]) -> DataBundle | StreamedData | None:
    from foreseer_workers import load_dataset

    spec = job.dataset_spec()
    try:
        if spec is None:
            return load_dataset(tuple(job.dataset), seed=job.seed)
        if spec.streamed:
            from foreseer_workers.streaming import Augment, load_streamed

            return load_streamed(
                images=spec.images,
                shards=spec.shards,
                image_size=spec.image_size,
                channels=spec.channels,
                augment=Augment(spec.augment.crop_padding, spec.augment.flip),
                val_fraction=spec.val_fraction,
                test_fraction=spec.test_fraction,
                seed=job.seed if spec.seed is None else spec.seed,
            )
        return load_dataset(
            spec.source,
            val_fraction=spec.val_fraction,
            test_fraction=spec.test_fraction,
            seed=job.seed if spec.seed is None else spec.seed,
            target=spec.target,
            task=spec.task,
        )
    except (ValueError, TypeError, OSError) as e:
        problems.append(Problem("dataset", str(e)))
        return None


def open_journal(url: str, job_id: str, *, create: bool = True) -> JobJournal:
    """The job store's journal for ``job_id``; an unusable store (or, without ``create``, a
    missing one) is bad input."""
    from foreseer.store import JobStore, StoreError
    from foreseer.store.journal import JobJournal

    try:
        return JobJournal(JobStore(url, create=create), job_id)
    except StoreError as e:
        raise SpecError([Problem("store_uri", str(e))]) from e


def open_tracker(job: SearchJob) -> Tracker:
    from foreseer.dburl import mask_url
    from foreseer.tracking import Tracker, artifact_location_for

    location = job.artifact_location
    if location is None and artifact_location_for(job.tracking_uri, job.name) is None:
        # a database server has no folder of its own: keep artifacts with the job's other files
        location = (Path(job.workdir).resolve() / "mlartifacts" / job.name).as_uri()
    try:
        return Tracker(job.tracking_uri, job.name, location)
    except Exception as e:  # MLflow raises many types for a store it cannot open
        raise SpecError(
            [Problem("tracking_uri", f"cannot open the MLflow store {mask_url(job.tracking_uri)}: {e}")]
        ) from e


def open_records(
    prepared: PreparedJob, *, started_ray: bool = False, extra: dict[str, Any] | None = None
) -> None:
    """Create the job's row in the job store, its MLflow experiment and its parent run.

    ``extra`` holds more columns of the job's row: where it was submitted, the schedule that fired it."""
    from foreseer._processes import describe_driver
    from foreseer.dburl import mask_secrets

    job = prepared.job
    journal = open_journal(job.store_url, prepared.job_id)
    tracker = open_tracker(job)
    # The stored spec is masked like the MLflow params; resume gets the password back (dburl.with_password).
    spec = mask_secrets(job.to_dict())
    journal.create_job(
        job.name,
        spec,
        data_fingerprint=prepared.data.fingerprint,
        tune_path=str(prepared.directory),
        driver=describe_driver(started_ray) if started_ray else None,
        **(extra or {}),
    )
    parent = tracker.start_job(
        prepared.job_id, {**spec, "job_id": prepared.job_id}, f"{job.name}-{prepared.job_id[:6]}"
    )
    tracker.set_runs_view(job.primary.metric, job.primary.mode)
    journal.update_job(mlflow_experiment_id=tracker.experiment_id, mlflow_parent_run_id=parent)
    prepared.journal, prepared.tracker = journal, tracker
    _failpoints.hit("job-recorded")


def run_prepared(prepared: PreparedJob, *, started_ray: bool = False) -> str:
    """Search, then publish the leaderboard, the best candidate and its weights on the parent run.
    Returns how the job ended: ``succeeded``, or ``cancelled`` when a cancel cut the search short
    (a cancel after the last trial ended changes nothing)."""
    from foreseer._processes import describe_driver
    from foreseer.backends.ray_actors import RayBackend
    from foreseer.driver import LoopPlan, SearchDriver
    from foreseer.hypernet import WARM_START_WARMUP_EPOCHS, job_ghn
    from foreseer.searcher import CandidateSearcher
    from foreseer.store.models import utcnow
    from foreseer_workers import SpaceTrainable, Trainable, UserTrainable

    job, journal = prepared.job, prepared.journal
    threads = max(1, int(job.resources.cpus))
    trainable: Trainable
    if job.trainable is None:
        trainable = SpaceTrainable(
            prepared.space,
            prepared.data,
            job.max_epochs,
            job.seed,
            threads,
            WARM_START_WARMUP_EPOCHS,
            job.precision,
        )
    else:
        trainable = UserTrainable(
            job.trainable, prepared.space, prepared.data, job.max_epochs,
            tuple(o.metric for o in job.objectives), job.seed, threads,
        )  # fmt: skip
    backend = RayBackend(trainable, job.resources, prepared.directory, job.max_concurrent)
    searcher = CandidateSearcher(
        prepared.study, prepared.space, prepared.data.task, prepared.overrides, prepared.ledger
    )
    ghn = job_ghn(prepared, backend)  # the graph hypernetwork, when the job screens or warm-starts
    searcher = ghn.screened(searcher, prepared.tracker) if ghn is not None else searcher
    policy = job.stopping.build()
    if policy.reads_features:  # the in-context PFN reads every trial's configuration
        features = job_features(prepared)
        prepared.ledger.featurize = features
        policy.use_features(features.draw)
    driver = SearchDriver(
        prepared.ledger, searcher, policy, prepared.tracker, prepared.best_dir, journal,
        warm_start=ghn.init_weights if ghn is not None and ghn.warm else None,
    )  # fmt: skip
    driver.restore(prepared.history)
    prepared.driver = driver
    prepared.directory.mkdir(parents=True, exist_ok=True)
    if journal is not None:
        journal.update_job(
            status="running",
            started_at=utcnow(),
            ended_at=None,
            error=None,
            driver=describe_driver(started_ray),
        )
    plan = LoopPlan(
        trials=job.trials, max_concurrent=job.max_concurrent, max_retries=job.max_retries,
        time_budget_s=job.time_budget_s,
    )  # fmt: skip
    status, error = "failed", None
    try:
        if driver.run(backend, plan, prepared.cancelled):
            publish(prepared)
            status = "succeeded"
        else:
            status = "cancelled"
        return status
    except BaseException as e:
        error = "".join(traceback.format_exception_only(type(e), e)).strip()
        raise
    finally:
        _close(prepared, status, error)


def _close(prepared: PreparedJob, status: str, error: str | None) -> None:
    from foreseer.store.models import utcnow

    tracker_status = {"succeeded": "FINISHED", "cancelled": "KILLED"}.get(status, "FAILED")
    if prepared.tracker is not None:
        prepared.tracker.end_job(tracker_status)
    if prepared.journal is not None:
        prepared.journal.update_job(
            status=status, ended_at=utcnow(), error=error, summary=prepared.summary or None
        )


def publish(prepared: PreparedJob) -> None:
    """Leaderboard, best candidate and weights, summary and plots: on disk and on the parent run.
    Idempotent, so a job killed while publishing publishes again on resume."""
    from foreseer.plots import summary_figures

    ledger, tracker = prepared.ledger, prepared.tracker
    board = ledger.leaderboard()
    prepared.directory.mkdir(parents=True, exist_ok=True)
    board_path = prepared.directory / "leaderboard.csv"
    board.to_csv(board_path, index=False)
    counts = ledger.counts()
    prepared.summary = {
        "trials": counts,
        "epochs_used": ledger.epochs_used(),
        "epochs_budget": prepared.job.trials * prepared.job.max_epochs,
        "optuna_trials": {s.name.lower(): n for s, n in _optuna_counts(prepared.study).items()},
    }
    if prepared.driver is not None and prepared.driver.exhausted:
        prepared.summary["exhausted"] = prepared.driver.exhausted
    best = ledger.best()
    if best is not None:
        record, epoch, value = best
        prepared.summary.update(best_trial=record.number, best_epoch=epoch, best_value=value)
    if tracker is None:
        return
    tracker.log_artifact(board_path)
    _failpoints.hit("publish")
    best_json = prepared.best_dir / "best.json"
    if best_json.exists():
        best_info = json.loads(best_json.read_text())
        published = prepared.directory / "published"
        published.mkdir(exist_ok=True)
        shutil.copyfile(prepared.best_dir / best_info.pop("weights"), published / BEST_WEIGHTS)
        (published / "best.json").write_text(json.dumps(best_info, indent=2))
        tracker.log_artifacts(published, "best")
    tracker.log_text(json.dumps(prepared.summary, indent=2), "summary.json")
    for name, figure in summary_figures(ledger).items():
        tracker.log_figure(figure, name)
    tags = {f"foreseer.trials_{state}": n for state, n in counts.items()}
    if best is not None:
        tags.update(
            {"foreseer.best_candidate": best[0].candidate.hash, "foreseer.best_value": f"{best[2]:.6g}"}
        )
    tracker.set_job_tags(tags)


def _optuna_counts(study: optuna.Study) -> dict[Any, int]:
    """Optuna's trials by state: the job's trials and its screened-out candidates, not the
    repeated proposals closed unseen (see :mod:`foreseer.searcher`)."""
    from foreseer.searcher import CLOSED_UNSEEN

    counts: dict[Any, int] = {}
    for trial in study.trials:
        if trial.user_attrs.get("status") not in CLOSED_UNSEEN:
            counts[trial.state] = counts.get(trial.state, 0) + 1
    return counts
