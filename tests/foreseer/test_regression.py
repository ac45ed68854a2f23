"""Regression end to end on a real local Ray: Foreseer's own training on diabetes (objective
``val_rmse`` by default, PFN stopping), and a user's own regression function with ASHA."""

import pytest
from mlflow.tracking import MlflowClient

import foreseer as fs
from foreseer.testing import trainables

pytestmark = pytest.mark.ray

EPOCHS = 6


def run(tmp_path, **fields):
    job = fs.SearchJob(
        name=fields.pop("name"),
        space={"name": "mlp", "params": {"batch_size": 32, "lr": 3e-3}},
        dataset="diabetes",
        trials=4,
        max_epochs=EPOCHS,
        max_concurrent=2,
        tracking_uri=f"sqlite:///{tmp_path}/foreseer.db",
        workdir=str(tmp_path / "runs"),
        **fields,
    )
    return fs.submit(job).wait(timeout=600)


def assert_ranked_by_lowest_rmse(handle):
    board = handle.leaderboard()
    assert len(board) == 4 and set(board["status"]) <= {"completed", "stopped"}
    assert board["val_rmse"].is_monotonic_increasing, "lowest RMSE first"
    assert 40 < board["val_rmse"].iloc[0] < 70, "diabetes' RMSE is in the target's units (~54)"
    best = handle.best()
    assert best.metric == "val_rmse" and best.value == board["val_rmse"].iloc[0]
    client = MlflowClient(handle.job.tracking_uri)
    record = handle._prepared.ledger.records()[0]
    steps = [m.step for m in client.get_metric_history(record.run_id, "val_rmse")]
    assert steps == list(range(1, record.epochs + 1))


def test_foreseers_own_training_searches_a_regression_set_with_pfn_stopping(ray_runtime, tmp_path):
    handle = run(tmp_path, name="diabetes-mlp", stopping={"name": "pfn", "min_epoch": 2})
    assert handle.job.primary == fs.Objective("val_rmse", mode="min")
    assert_ranked_by_lowest_rmse(handle)
    test = handle.evaluate_best("test")
    assert set(test) == {"test_loss", "test_mse", "test_rmse", "test_mae", "test_r2"}
    assert 40 < test["test_rmse"] < 75 and test["test_r2"] > 0.2


def test_a_users_regression_function_is_searched_with_asha(ray_runtime, tmp_path):
    handle = run(
        tmp_path, name="diabetes-own", trainable=trainables.regressor,
        objective={"metric": "val_rmse", "mode": "min"},
        stopping={"name": "asha", "grace_period": 1, "reduction_factor": 2},
    )  # fmt: skip
    assert_ranked_by_lowest_rmse(handle)
    assert "stopped" in set(handle.leaderboard()["status"]), "ASHA stopped the trials with a higher RMSE"
    record = handle._prepared.ledger.records()[0]
    history = MlflowClient(handle.job.tracking_uri).get_metric_history(record.run_id, "val_mae")
    assert len(history) == record.epochs, "every metric the function reports reaches MLflow"
