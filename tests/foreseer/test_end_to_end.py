"""A real job end to end: Optuna samples, Ray Tune runs, MLflow (real SQLite) records."""

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from torch import nn

import foreseer as fs
from foreseer_spaces import search_space

pytestmark = pytest.mark.ray


def run_job(tmp_path, **fields):
    fields.setdefault("tracking_uri", f"sqlite:///{tmp_path}/mlflow.db")
    fields.setdefault("workdir", str(tmp_path / "runs"))
    return fs.submit(fs.SearchJob(**fields)).wait(timeout=600)


def child_runs(client, handle):
    runs = client.search_runs([handle.mlflow_experiment_id], max_results=1000)
    return {
        r.data.tags["foreseer.trial_id"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == handle.mlflow_run_id
    }


@pytest.fixture(scope="module")
def digits_job(ray_runtime, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("digits")
    params = {"stem_width": 8, "cells_per_stage": 1}
    handle = run_job(
        tmp_path,
        name="digits-cells",
        space={"name": "cells", "params": params},
        dataset="digits",
        trials=4,
        max_epochs=3,
        stopping="none",
        sampler="random",
    )
    return handle, MlflowClient(handle.job.tracking_uri)


def test_job_finishes_with_every_trial_in_mlflow(digits_job):
    handle, client = digits_job
    assert handle.status().state == "succeeded"
    runs = client.search_runs([handle.mlflow_experiment_id])
    parents = [r for r in runs if r.data.tags.get("foreseer.kind") == "job"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = child_runs(client, handle)
    assert len(children) == 4
    for run in children.values():
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [1, 2, 3]
        assert run.info.status == "FINISHED" and run.data.tags["foreseer.status"] == "completed"
        assert run.data.params["arch.stem_width"] == "8" and "hp.lr" in run.data.params


def test_leaderboard_matches_mlflow(digits_job):
    handle, client = digits_job
    board = handle.leaderboard()
    assert list(board["rank"]) == [1, 2, 3, 4]
    assert board["val_accuracy"].is_monotonic_decreasing
    runs = child_runs(client, handle)
    for _, row in board.iterrows():
        run = runs[row["trial_id"]]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        best = max(history, key=lambda m: (m.value, -m.step))
        assert row["val_accuracy"] == pytest.approx(best.value)
        assert row["best_epoch"] == best.step
        assert row["candidate"] == run.data.tags["foreseer.candidate_hash"]
        assert row["status"] == run.data.tags["foreseer.status"]


def test_load_best_reproduces_the_logged_validation_accuracy(digits_job):
    handle, _ = digits_job
    best = handle.best()
    assert best.value == handle.leaderboard()["val_accuracy"].iloc[0]
    assert handle.evaluate_best("val")["val_accuracy"] == pytest.approx(best.value, abs=1e-9)
    model = handle.load_best()
    assert not model.training


def test_best_weights_and_leaderboard_are_artifacts_of_the_parent_run(digits_job, tmp_path):
    handle, client = digits_job
    names = {a.path for a in client.list_artifacts(handle.mlflow_run_id)}
    assert {"leaderboard.csv", "best", "job.yaml", "summary.json"} <= names
    best = {a.path for a in client.list_artifacts(handle.mlflow_run_id, "best")}
    assert best == {"best/best.json", "best/model.safetensors"}


def test_optuna_study_holds_every_trial_as_complete(digits_job):
    handle, _ = digits_job
    states = [t.state for t in handle.study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 4
    values = sorted(t.value for t in handle.study.trials)
    assert values == pytest.approx(sorted(handle.leaderboard()["val_accuracy"]))


def test_asha_stopped_trials_reach_optuna_as_pruned(ray_runtime, tmp_path):
    handle = run_job(
        tmp_path,
        name="wine-asha",
        space={"name": "mlp", "params": {"depth": 1, "width_0": 32}},
        dataset="wine",
        trials=8,
        max_epochs=4,
        stopping={"name": "asha", "grace_period": 1, "reduction_factor": 2},
        max_concurrent=1,
        sampler="random",
    )
    records = {r.number: r for r in handle._prepared.ledger.records()}
    stopped = [n for n, r in records.items() if r.state == "stopped"]
    assert stopped, "ASHA with reduction factor 2 stops some of 8 sequential trials"
    leftovers = list(Path(handle.directory).glob("tune-*/*/foreseer-*-epoch*"))
    assert not leftovers, "stopped trials leave no scratch checkpoint folders behind"
    assert not (Path(handle.directory) / "scratch").exists(), "the job's scratch folder is cleared at its end"
    client = MlflowClient(handle.job.tracking_uri)
    runs = child_runs(client, handle)
    for trial in handle.study.trials:
        record = records[trial.number]
        expected = (
            optuna.trial.TrialState.PRUNED if record.state == "stopped" else optuna.trial.TrialState.COMPLETE
        )
        assert trial.state == expected
        run = runs[record.trial_id]
        if record.state == "stopped":
            assert run.data.tags["stopped_by"] == "asha" and "rung" in run.data.tags["foreseer.stop_reason"]
            assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) < 4
            assert trial.intermediate_values, "stopped trials carry their curve to Optuna"


class Blowup(nn.Module):
    """Scales logits past float range: the loss turns inf/NaN in the first steps."""

    def forward(self, x):
        return x * 1e38


def test_a_diverging_trial_fails_with_a_reason_and_the_job_goes_on(ray_runtime, tmp_path):
    @search_space("test-blowup", replace=True)
    def blowup(trial, task):
        width = trial.suggest_categorical("width", [8, 16])
        return nn.Sequential(
            nn.Flatten(), nn.Linear(task.num_features, width), nn.Linear(width, task.num_outputs), Blowup()
        )

    handle = run_job(tmp_path, name="diverge", space=blowup, dataset="wine", trials=2, max_epochs=3)
    assert handle.status().state == "succeeded"
    board = handle.leaderboard()
    assert list(board["status"]) == ["failed", "failed"]
    assert all("nan" in r or "inf" in r for r in board["reason"]), list(board["reason"])
    assert all(t.state == optuna.trial.TrialState.FAIL for t in handle.study.trials)
    assert handle.best() is None


def test_multi_objective_search_with_nsgaii(ray_runtime, tmp_path):
    handle = run_job(
        tmp_path,
        name="wine-pareto",
        space={"name": "mlp", "params": {"depth": 1}},
        dataset="wine",
        objective=[{"metric": "val_accuracy", "mode": "max"}, {"metric": "num_params", "mode": "min"}],
        sampler="nsgaii",
        trials=4,
        max_epochs=2,
    )
    study = handle.study
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert all(len(t.values) == 2 for t in study.trials)
    assert study.best_trials, "a Pareto front"
    board = handle.leaderboard()
    assert {"val_accuracy", "num_params"} <= set(board.columns)
    params = {t.number: t.values[1] for t in study.trials}
    assert all(params[r.trial_number] == r.num_params for r in board.itertuples())
    assert_pareto_front_shown(handle)


def assert_pareto_front_shown(handle):
    """The leaderboard marks the study's Pareto front, and the parent run shows it as a plot."""
    board = handle.leaderboard()
    assert board.columns[board.columns.get_loc("status") + 1] == "pareto"
    front = sorted(board.loc[board["pareto"], "trial_number"])
    assert front == sorted(t.number for t in handle.study.best_trials)
    client = MlflowClient(handle.job.tracking_uri)
    assert "plots/pareto_front.png" in {a.path for a in client.list_artifacts(handle.mlflow_run_id, "plots")}


def test_accuracy_against_latency_measured_in_the_trial(ray_runtime, tmp_path):
    handle = run_job(
        tmp_path,
        name="wine-latency",
        space={"name": "mlp", "params": {"depth": {"choices": [1, 4]}}},
        dataset="wine",
        objective=[{"metric": "val_accuracy", "mode": "max"}, {"metric": "latency_ms", "mode": "min"}],
        sampler="nsgaii",
        trials=4,
        max_epochs=2,
    )
    board = handle.leaderboard()
    assert (board["latency_ms"] > 0).all() and (board["latency_ms"] < 100).all()
    latency = {t.number: t.values[1] for t in handle.study.trials}
    assert all(latency[r.trial_number] == r.latency_ms for r in board.itertuples())
    assert_pareto_front_shown(handle)


@pytest.mark.parametrize("stopping", ["freeze_thaw", "pfn"])
def test_an_in_context_checkpoint_reads_every_trials_configuration(ray_runtime, tmp_path, stopping):
    """The plumbing of a live job on the in-context PFN: freeze-thaw on an untrained checkpoint of
    the test's own, LC-PFN stopping on the shipped one (``model: in_context``)."""
    import torch

    from foreseer.predictors.pfn.checkpoint import save_checkpoint
    from foreseer.predictors.pfn.model import CurvePFN, PFNConfig
    from foreseer.runner import job_features

    torch.manual_seed(0)
    config = PFNConfig(
        n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=50, context_bins=4, features=16, job_layers=1
    )
    checkpoint = tmp_path / "in_context.safetensors"
    save_checkpoint(CurvePFN(config, torch.linspace(-0.2, 1.2, 51)), checkpoint)
    handle = run_job(
        tmp_path,
        name=f"wine-{stopping}",
        space={"name": "mlp", "params": {"depth": 1}},
        dataset="wine",
        trials=4,
        max_epochs=4,
        stopping={"name": stopping, "min_epoch": 1}
        | ({"checkpoint": str(checkpoint)} if stopping == "freeze_thaw" else {"model": "in_context"}),
        max_concurrent=2,
        sampler="random",
    )
    assert handle.status().state == "succeeded"
    ledger = handle._prepared.ledger
    featurize = job_features(handle._prepared)
    for record, view in zip(ledger.records(), ledger.curves(), strict=True):
        assert view.features == pytest.approx(featurize(record.candidate)), "each trial's own configuration"
        assert len(view.features) == 16
