"""A search over images read from disk as trials train, on a real local Ray: a generated folder
of PNG files, loader worker processes inside the Ray actors, MLflow and the leaderboard."""

import pytest
from mlflow.tracking import MlflowClient

import foreseer as fs
from foreseer.testing.images import write_image_folder

pytestmark = pytest.mark.ray

SMALL_CELLS = {"stem_width": 8, "cells_per_stage": 1}


def test_a_job_streams_an_image_folder_with_augmentation(ray_runtime, tmp_path):
    folder = write_image_folder(tmp_path / "textures", 300, size=16, seed=3)
    job = fs.SearchJob(
        name="textures",
        space={
            "name": "cells",
            "params": {**SMALL_CELLS, "batch_size": 64, "lr": 3e-3, "optimizer": "adamw"},
        },
        dataset={"images": str(folder), "augment": {"crop_padding": 2, "flip": True}},
        trials=2,
        max_epochs=4,
        max_concurrent=1,
        resources={"cpus": 2},  # one loader worker process beside the training thread
        tracking_uri=f"sqlite:///{tmp_path}/foreseer.db",
        workdir=str(tmp_path / "runs"),
    )
    handle = fs.submit(job).wait(timeout=600)
    assert handle.status().state == "succeeded"
    board = handle.leaderboard()
    assert list(board["status"]) == ["completed", "completed"] and board["val_accuracy"].iloc[0] > 0.4
    client = MlflowClient(job.tracking_uri)
    for record in handle._prepared.ledger.records():
        assert [m.step for m in client.get_metric_history(record.run_id, "val_accuracy")] == [1, 2, 3, 4]
    test = handle.evaluate_best("test")
    assert set(test) == {"test_loss", "test_accuracy"} and test["test_accuracy"] > 0.4
    assert fs.SearchJob(name="x", dataset=str(folder)).dataset.images == str(folder), "a folder by its path"
