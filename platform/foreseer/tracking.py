"""MLflow tracking: the only module that imports ``mlflow``.

One experiment per job name, a parent run per job, a nested child run per trial. Only the driver
writes, through ``MlflowClient`` with explicit run ids, in batches: metrics are buffered and
written with ``log_batch`` at most every ``flush_interval`` seconds (and whenever a trial ends),
so a job of many short epochs costs a handful of SQL transactions per second, and a single writer
keeps SQLite free of "database is locked".
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foreseer.dburl import mask_secrets, prepare_sqlite, sqlite_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow.entities import Metric

    from foreseer.events import TrialEvent
    from foreseer.ledger import Ledger, TrialRecord

__all__ = ["Tracker", "TrackerObserver", "artifact_location_for"]

logger = logging.getLogger(__name__)

_BATCH_METRICS = 1000  # MLflow's limit per log_batch call
_BATCH_PARAMS = 100
# MLflow 3's UI opens an experiment on its GenAI pages (traces) unless the experiment says it is
# model training; with this tag it opens on the runs table, parent and nested trial runs.
_EXPERIMENT_KIND = "mlflow.experimentKind"
_EXPERIMENT_KIND_TAG = (_EXPERIMENT_KIND, "custom_model_development")
# A trial stopped early ran as planned: FINISHED (its tags say why it ended), not KILLED, which the
# UI shows with a red cross like a crash.
_STATUS = {"completed": "FINISHED", "stopped": "FINISHED", "failed": "FAILED", "running": "RUNNING"}
#: The experiment tag prefix under which MLflow's UI keeps a saved view of the runs table.
_VIEW_TAG = "mlflow.sharedViewState."


def artifact_location_for(tracking_uri: str, experiment: str) -> str | None:
    """Beside a SQLite store, ``mlartifacts/<experiment>``; elsewhere MLflow's own default."""
    path = sqlite_path(tracking_uri)
    return None if path is None else (path.resolve().parent / "mlartifacts" / experiment).as_uri()


class Tracker:
    """Writes one job to MLflow.

    Args:
        tracking_uri: any SQLAlchemy URL MLflow accepts (``sqlite:///foreseer.db``, ``postgresql+psycopg://…``).
        experiment: the experiment name (the job name).
        artifact_location: where artifacts go; next to a SQLite store when ``None``.
        flush_interval: longest time, in seconds, a metric waits in the buffer.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        artifact_location: str | None = None,
        flush_interval: float = 1.0,
    ) -> None:
        from mlflow.tracking import MlflowClient

        prepare_sqlite(tracking_uri)
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.flush_interval = flush_interval
        self.experiment_id = self._experiment(
            experiment, artifact_location or artifact_location_for(tracking_uri, experiment)
        )
        self.parent_run_id: str | None = None
        self._pending: dict[str, list[Metric]] = defaultdict(list)
        self._last_flush = time.monotonic()
        self.metrics_written = 0
        self._screened: set[str] = set()  # trial numbers with a screened run

    def _experiment(self, name: str, artifact_location: str | None) -> str:
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            if _EXPERIMENT_KIND not in existing.tags:
                self.client.set_experiment_tag(existing.experiment_id, *_EXPERIMENT_KIND_TAG)
            return existing.experiment_id
        return self.client.create_experiment(
            name, artifact_location=artifact_location, tags=dict([_EXPERIMENT_KIND_TAG])
        )

    def start_job(self, job_id: str, spec: dict[str, Any], run_name: str) -> str:
        """Create the parent run with the job's spec as params and as a YAML artifact; passwords
        in URLs anywhere in the spec are masked first (MLflow params are readable by anyone who can
        read the experiment)."""
        import yaml

        spec = mask_secrets(spec)
        tags = {"mlflow.runName": run_name, "foreseer.job_id": job_id, "foreseer.kind": "job"}
        run = self.client.create_run(self.experiment_id, tags=tags)
        self.parent_run_id = run.info.run_id
        self._log_params(self.parent_run_id, _flatten(spec))
        self.client.log_text(self.parent_run_id, yaml.safe_dump(spec, sort_keys=False), "job.yaml")
        return self.parent_run_id

    def set_runs_view(self, metric: str, mode: str) -> None:
        """Save the runs table's view on the experiment (``foreseer ui`` prints its URL): sorted
        by ``metric``, best first, with the metric, the trial status and the duration as columns,
        and this job's run expanded to show its trials."""
        import json

        from foreseer.ui import RUNS_VIEW_KEY

        view = {
            "searchFilter": "",
            "orderByKey": f"metrics.`{metric}`",
            "orderByAsc": mode == "min",
            "startTime": "ALL",
            "lifecycleFilter": "Active",
            "datasetsFilter": [],
            "modelVersionFilter": "All Runs",
            "selectedColumns": [f"metrics.`{metric}`", "tags.`foreseer.status`", "attributes.`Duration`"],
            "runsExpanded": {self.parent_run_id: True} if self.parent_run_id else {},
        }
        self.client.set_experiment_tag(self.experiment_id, _VIEW_TAG + RUNS_VIEW_KEY, json.dumps(view))

    def resume_job(self, parent_run_id: str) -> None:
        """Continue writing to an existing parent run (a resumed job)."""
        self.parent_run_id = parent_run_id
        self.client.update_run(parent_run_id, status="RUNNING")
        screened = self._child_runs("tags.`foreseer.status` = 'screened'")
        self._screened = {r.data.tags["foreseer.trial_number"] for r in screened}

    def _child_runs(self, condition: str | None = None) -> list[Any]:
        """The parent run's child runs, those meeting ``condition`` (an MLflow filter) if given."""
        query = f"tags.mlflow.parentRunId = '{self.parent_run_id}'"
        query += f" and {condition}" if condition else ""
        return self.client.search_runs([self.experiment_id], filter_string=query, max_results=50000)

    def trial_runs(self) -> dict[str, str]:
        """The job's trial runs by Foreseer trial id (to find runs a crashed driver created)."""
        return {
            r.data.tags["foreseer.trial_id"]: r.info.run_id
            for r in self._child_runs()
            if "foreseer.trial_id" in r.data.tags
        }

    def reconcile_trial(self, record: TrialRecord) -> int:
        """Log the epochs of ``record`` its run lacks (buffered when the driver died) and close the run
        of a settled trial; returns the number of metrics added. Never logs a step twice."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        keys = sorted({k for m in record.metrics for k in m})
        for key in keys:
            logged = {m.step for m in self.client.get_metric_history(record.run_id, key)}
            for epoch, metrics in enumerate(record.metrics, start=1):
                if key in metrics and epoch not in logged:
                    self._pending[record.run_id].append(Metric(key, float(metrics[key]), now, epoch))
        added = len(self._pending.get(record.run_id, []))
        self.flush()
        if (
            record.state not in ("running", "paused")
            and self.client.get_run(record.run_id).info.status == "RUNNING"
        ):
            self.end_trial(record)
        return added

    def start_trial(self, record: TrialRecord) -> str:
        """Create the nested run of a trial, with its candidate as params."""
        candidate = record.candidate
        tags = {
            "mlflow.parentRunId": self.parent_run_id or "",
            "mlflow.runName": f"trial-{record.number:03d}-{candidate.hash[:8]}",
            "foreseer.kind": "trial",
            "foreseer.trial_id": record.trial_id,
            "foreseer.trial_number": str(record.number),
            "foreseer.candidate_hash": candidate.hash,
            "foreseer.arch_hash": candidate.arch_hash,
            "foreseer.status": "running",
        }
        run = self.client.create_run(self.experiment_id, tags=tags)
        params = {"space": candidate.space}
        params.update({f"arch.{k}": v for k, v in candidate.arch.items()})
        params.update({f"hp.{k}": v for k, v in candidate.hparams.items()})
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def tag_trial(self, run_id: str, tags: dict[str, str]) -> None:
        """Set tags of a trial's run at once (not buffered: where an attempt runs, once per attempt)."""
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        """Buffer one epoch's metrics; written at the next flush."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending[run_id].extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Write every buffered metric, one ``log_batch`` per run and 1,000 metrics."""
        pending, self._pending = self._pending, defaultdict(list)
        for run_id, metrics in pending.items():
            for start in range(0, len(metrics), _BATCH_METRICS):
                self.client.log_batch(run_id, metrics=metrics[start : start + _BATCH_METRICS])
            self.metrics_written += len(metrics)
        self._last_flush = time.monotonic()

    def end_trial(self, record: TrialRecord) -> None:
        """Write the trial's buffered metrics, then close its run with its final status and why
        it ended. Its last metrics and final tags share one ``log_batch``; other runs' metrics
        stay buffered until the next flush (one transaction per trial end, not one per running
        trial: ``benchmarks/tracking.py``)."""
        from mlflow.entities import RunTag

        if record.run_id is None:
            return
        tags = [RunTag("foreseer.status", record.state), RunTag("foreseer.stop_reason", record.reason[:5000])]
        if record.stopped_by:
            tags.append(RunTag("stopped_by", record.stopped_by))
        if record.retry_errors:
            tags.append(RunTag("foreseer.retried_after", " | ".join(record.retry_errors)[:5000]))
        metrics = self._pending.pop(record.run_id, [])
        room = _BATCH_METRICS - len(tags)  # MLflow's limit counts every entity in a batch
        early, last = metrics[: max(len(metrics) - room, 0)], metrics[max(len(metrics) - room, 0) :]
        for start in range(0, len(early), _BATCH_METRICS):
            self.client.log_batch(record.run_id, metrics=early[start : start + _BATCH_METRICS])
        self.client.log_batch(record.run_id, metrics=last, tags=tags)
        self.metrics_written += len(metrics)
        self.client.set_terminated(record.run_id, _STATUS[record.state])

    def log_summary(self, metrics: dict[str, float], step: int) -> None:
        """Job-level metrics on the parent run (e.g. best so far against epochs consumed)."""
        if self.parent_run_id is not None:
            self.log_metrics(self.parent_run_id, metrics, step)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.parent_run_id, str(local_path), artifact_path)

    def log_figure(self, figure: Figure, name: str) -> None:
        """A matplotlib figure as an image artifact of the parent run, ``plots/<name>``
        (``name`` ends in ``.png`` or ``.svg``); the MLflow UI previews it on the run's page."""
        if not name.endswith((".png", ".svg")):
            raise ValueError(f"a figure's name must end in .png or .svg, but got {name=}.")
        self.client.log_figure(self.parent_run_id, figure, f"plots/{name}")

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.parent_run_id, str(local_dir), artifact_path)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.parent_run_id, text, name)

    def set_job_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.parent_run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_screened(self, number: int, candidate: Any, score: float, screener: str) -> None:
        """Record a candidate screened out before training: a closed child run with its score.
        Once per trial number: a resumed job that screens a candidate again records nothing."""
        from mlflow.entities import Metric, RunTag

        if str(number) in self._screened:
            return
        self._screened.add(str(number))
        tags = {
            "mlflow.parentRunId": self.parent_run_id or "",
            "mlflow.runName": f"screened-{number:03d}-{candidate.hash[:8]}",
            "foreseer.kind": "trial",
            "foreseer.trial_number": str(number),
            "foreseer.candidate_hash": candidate.hash,
            "foreseer.status": "screened",
            "foreseer.screened_by": screener,
        }
        run = self.client.create_run(self.experiment_id, tags=tags)
        params = {"space": candidate.space, **{f"arch.{k}": v for k, v in candidate.arch.items()}}
        self._log_params(run.info.run_id, params)
        metric = Metric(f"{screener}_score", float(score), int(time.time() * 1000), 0)
        self.client.log_batch(
            run.info.run_id, metrics=[metric], tags=[RunTag("foreseer.score", f"{score:.6g}")]
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")  # screened out as planned

    def end_job(self, status: str) -> None:
        """Flush and close the parent run (``FINISHED``, ``FAILED`` or ``KILLED``)."""
        self.flush()
        if self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, status)

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), _BATCH_PARAMS):
            self.client.log_batch(run_id, params=items[start : start + _BATCH_PARAMS])


class TrackerObserver:
    """Follows a job's trial events into MLflow: each epoch's and each policy score's metrics at
    the epoch's step, pauses and resumes as a ``paused`` metric and a status tag, and each ended
    trial's run closed with its state and the job's best so far."""

    def __init__(self, tracker: Tracker, ledger: Ledger) -> None:
        self.tracker, self.ledger = tracker, ledger

    def observe(self, event: TrialEvent) -> None:
        from foreseer import events as ev

        record = self.ledger.get(ev.trial_key(event.number))
        run_id = record.run_id
        if run_id is None:
            return
        if isinstance(event, ev.Epoch | ev.Scored):
            self.tracker.log_metrics(run_id, dict(event.metrics), step=event.epoch)
        elif isinstance(event, ev.Paused | ev.Resumed):
            paused = isinstance(event, ev.Paused)
            self.tracker.log_metrics(run_id, {"paused": float(paused)}, step=event.epoch)
            self.tracker.tag_trial(run_id, {"foreseer.status": record.state})
            self.tracker.flush()  # a pause may last past the driver: MLflow shows it now
        elif isinstance(event, ev.ENDED):
            self.tracker.end_trial(record)
            best = self.ledger.best()
            if best is not None:
                self.tracker.log_summary({"best_so_far": best[2]}, step=self.ledger.epochs_used())


#: The experiment that caches meta-trained predictors, keyed by tags.
CACHE_EXPERIMENT = "foreseer-predictor-cache"


def find_cached_file(tracking_uri: str, key: dict[str, str], artifact: str, dest: str | Path) -> Path | None:
    """The ``artifact`` of the newest finished cache run whose tags equal ``key``, downloaded
    into ``dest``; ``None`` when there is none.

    Example:
        >>> find_cached_file("sqlite:///foreseer.db", {"foreseer.space_fingerprint": "ab12"},
        ...                  "ghn.safetensors", "/tmp")
    """
    from mlflow.tracking import MlflowClient

    prepare_sqlite(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(CACHE_EXPERIMENT)
    if experiment is None:
        return None
    query = " and ".join([f"tags.`{k}` = '{v}'" for k, v in key.items()] + ["attributes.status = 'FINISHED'"])
    runs = client.search_runs(
        [experiment.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1
    )
    if not runs:
        return None
    Path(dest).mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(runs[0].info.run_id, artifact, str(dest)))


def store_cached_file(
    tracking_uri: str, key: dict[str, str], path: str | Path, metrics: dict[str, float], run_name: str
) -> str:
    """Log ``path`` as the artifact of a new cache run tagged with ``key``; returns the run id."""
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    prepare_sqlite(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(CACHE_EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(
            CACHE_EXPERIMENT, artifact_location=artifact_location_for(tracking_uri, CACHE_EXPERIMENT)
        )
    )
    run = client.create_run(experiment_id, tags={"mlflow.runName": run_name, **key})
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        tags=[RunTag("foreseer.kind", "predictor-cache")],
    )
    client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def experiment_id_of(tracking_uri: str, name: str) -> str | None:
    """The id of the experiment ``name`` in the tracking store, or ``None`` when it has none."""
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(name)
    return None if experiment is None else experiment.experiment_id
