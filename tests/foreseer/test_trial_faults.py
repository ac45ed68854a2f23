"""Trial faults injected for real: a trial that raises, whose worker process dies, or that diverges
is recorded with its reason, retried where that makes sense, and the job goes on."""

import os
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from torch import nn

import foreseer as fs
from foreseer_spaces import search_space

pytestmark = pytest.mark.ray


class Fault(nn.Module):
    """Passes its input through, except once (guarded by a marker file shared by all workers): on
    its ``after``-th training call it raises, or kills its own worker process. With one batch an
    epoch, the first trial fails in its second epoch, after its first checkpoint."""

    def __init__(self, kind: str, marker: str, after: int = 2) -> None:
        super().__init__()
        self.kind, self.marker, self.after, self.calls = kind, marker, after, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.after and not os.path.exists(self.marker):
                Path(self.marker).touch()
                if self.kind == "raise":
                    raise RuntimeError("injected fault in forward")
                os._exit(1)  # the worker process dies without a word
        return x


def faulty_space(kind: str, marker: Path):
    @search_space(f"test-fault-{kind}", replace=True)
    def space(trial, task):
        width = trial.suggest_categorical("width", [16, 32])
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(task.num_features, width),
            Fault(kind, str(marker)),
            nn.ReLU(),
            nn.Linear(width, task.num_outputs),
        )

    return space


def run(tmp_path, space, **fields):
    job = fs.SearchJob(
        name=f"faults-{space.name}",
        space={"name": space.name, "params": {"batch_size": 128}},
        dataset="wine",
        trials=2,
        max_epochs=4,
        max_concurrent=1,
        tracking_uri=f"sqlite:///{tmp_path}/foreseer.db",
        workdir=str(tmp_path / "runs"),
        **fields,
    )
    return fs.submit(job).wait(timeout=600)


def assert_epochs_logged_once(handle):
    client = MlflowClient(handle.job.tracking_uri)
    for record in handle._prepared.ledger.records():
        steps = [m.step for m in client.get_metric_history(record.run_id, "val_accuracy")]
        assert steps == list(range(1, record.epochs + 1)), (record.trial_id, steps)


@pytest.mark.parametrize("kind", ["raise", "worker-dies"])
def test_a_failed_trial_is_retried_from_its_checkpoint(ray_runtime, tmp_path, kind):
    handle = run(tmp_path, faulty_space(kind, tmp_path / "fault"), max_retries=1)
    assert (tmp_path / "fault").exists(), "the fault was injected"
    records = handle._prepared.ledger.records()
    assert [r.state for r in records] == ["completed", "completed"]
    assert [r.attempts for r in records] == [2, 1]
    retried = records[0]
    expected = "injected fault in forward" if kind == "raise" else "died"
    assert expected in retried.retry_errors[0].lower(), retried.retry_errors
    tags = MlflowClient(handle.job.tracking_uri).get_run(retried.run_id).data.tags
    assert expected in tags["foreseer.retried_after"].lower()
    assert all(r.epochs == 4 for r in records)
    assert_epochs_logged_once(handle)
    assert [t.state for t in handle.study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_without_retries_the_trial_fails_with_its_reason_and_the_job_goes_on(ray_runtime, tmp_path):
    handle = run(tmp_path, faulty_space("raise", tmp_path / "fault"), max_retries=0)
    first, second = handle._prepared.ledger.records()
    assert first.state == "failed" and "injected fault in forward" in first.reason
    assert second.state == "completed"
    assert handle.status().state == "succeeded"
    run_ = MlflowClient(handle.job.tracking_uri).get_run(first.run_id)
    assert run_.info.status == "FAILED" and "injected fault" in run_.data.tags["foreseer.stop_reason"]
    assert handle.study.trials[0].state == optuna.trial.TrialState.FAIL
