"""A real job end to end with MLflow on PostgreSQL (the throw-away server of ``scripts/pg.sh``)."""

import pytest
from mlflow.tracking import MlflowClient

import foreseer as fs

pytestmark = [pytest.mark.ray, pytest.mark.postgres]


def test_a_job_tracked_in_postgresql(ray_runtime, postgres_url, tmp_path):
    job = fs.SearchJob(
        name="wine-pg",
        space={"name": "mlp", "params": {"depth": 1}},
        dataset="wine",
        trials=3,
        max_epochs=2,
        stopping="none",
        sampler="random",
        tracking_uri=postgres_url,
        artifact_location=(tmp_path / "artifacts").as_uri(),
        workdir=str(tmp_path / "runs"),
    )
    handle = fs.submit(job).wait(timeout=600)
    assert handle.status().state == "succeeded"
    client = MlflowClient(postgres_url)
    assert client._tracking_client.store.engine.dialect.name == "postgresql"
    runs = client.search_runs([handle.mlflow_experiment_id])
    parent = [r for r in runs if r.data.tags.get("foreseer.kind") == "job"]
    assert len(parent) == 1 and parent[0].info.run_id == handle.mlflow_run_id
    assert parent[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == handle.mlflow_run_id]
    assert len(children) == 3
    board = handle.leaderboard().set_index("trial_id")
    for run in children:
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [1, 2]
        assert max(m.value for m in history) == pytest.approx(
            board.loc[run.data.tags["foreseer.trial_id"], "val_accuracy"]
        )
        assert run.data.tags["foreseer.status"] == "completed" and run.info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(handle.mlflow_run_id)}
    assert {"leaderboard.csv", "job.yaml", "summary.json"} <= names
    assert (tmp_path / "artifacts").is_dir(), "artifacts went where the job said, not to ./mlruns"
