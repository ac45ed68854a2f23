"""PFN stopping in a real job: Ray Tune runs the trials, the PFN decides, MLflow and Optuna record."""

import optuna
import pytest
from mlflow.tracking import MlflowClient

import foreseer as fs

pytestmark = pytest.mark.ray


def test_pfn_stops_trials_that_reach_optuna_pruned_with_p_improve_in_mlflow(ray_runtime, tmp_path):
    job = fs.SearchJob(
        name="wine-pfn",
        space={"name": "mlp", "params": {"depth": 1, "width_0": 32}},
        dataset="wine",
        trials=6,
        max_epochs=6,
        stopping={"name": "pfn", "delta": 0.2, "min_epoch": 2},
        max_concurrent=1,
        sampler="random",
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        workdir=str(tmp_path / "runs"),
    )
    handle = fs.submit(job).wait(timeout=600)
    assert handle.status().state == "succeeded"
    records = {r.number: r for r in handle._prepared.ledger.records()}
    client = MlflowClient(job.tracking_uri)
    runs = client.search_runs([handle.mlflow_experiment_id], max_results=100)
    by_trial = {r.data.tags.get("foreseer.trial_id"): r for r in runs}
    assert any(r.state == "stopped" for r in records.values()), "delta 0.2 stops some of 6 trials"
    for trial in handle.study.trials:
        record = records[trial.number]
        run = by_trial[record.trial_id]
        history = client.get_metric_history(run.info.run_id, "p_improve")
        decided = min(record.epochs, job.max_epochs - 1)
        assert [m.step for m in history] == list(range(2, decided + 1)), "p_improve each epoch from min_epoch"
        assert all(0 <= m.value <= 1 for m in history)
        if record.state == "stopped":
            assert trial.state == optuna.trial.TrialState.PRUNED
            assert run.data.tags["stopped_by"] == "pfn" and history[-1].value <= 0.2
        else:
            assert trial.state == optuna.trial.TrialState.COMPLETE
