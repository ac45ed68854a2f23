"""The MLflow tracker on a real SQLite store: WAL, nested runs, batched writes, final tags."""

import sqlite3

from foreseer_spaces import Candidate
from mlflow.tracking import MlflowClient

from foreseer.ledger import TrialRecord
from foreseer.tracking import Tracker


def make_tracker(tmp_path, flush_interval=60.0):
    tracker = Tracker(f"sqlite:///{tmp_path}/store.db", "exp", flush_interval=flush_interval)
    tracker.start_job("job1", {"name": "exp", "trials": 2, "stopping": {"name": "asha"}}, "exp-job1")
    return tracker


def test_sqlite_store_is_in_wal_mode_and_artifacts_sit_beside_it(tmp_path):
    tracker = make_tracker(tmp_path)
    with sqlite3.connect(tmp_path / "store.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    location = tracker.client.get_experiment(tracker.experiment_id).artifact_location
    assert location == (tmp_path / "mlartifacts" / "exp").as_uri()


def test_parent_run_holds_the_flattened_spec(tmp_path):
    tracker = make_tracker(tmp_path)
    run = MlflowClient(tracker.tracking_uri).get_run(tracker.parent_run_id)
    assert run.data.params["stopping.name"] == "asha" and run.data.params["trials"] == "2"
    assert run.data.tags["foreseer.job_id"] == "job1"


def test_metrics_wait_in_the_buffer_until_a_flush(tmp_path):
    tracker = make_tracker(tmp_path, flush_interval=60.0)
    record = TrialRecord("t1", 0, Candidate("mlp", {"depth": 1}, {"lr": 0.1}))
    record.run_id = tracker.start_trial(record)
    client = MlflowClient(tracker.tracking_uri)
    for epoch in (1, 2, 3):
        tracker.log_metrics(record.run_id, {"val_accuracy": epoch / 10, "val_loss": 1 / epoch}, step=epoch)
    assert client.get_metric_history(record.run_id, "val_accuracy") == []
    tracker.flush()
    history = client.get_metric_history(record.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert tracker.metrics_written == 6


def test_ending_a_trial_flushes_and_records_why_it_ended(tmp_path):
    tracker = make_tracker(tmp_path)
    record = TrialRecord("t1", 3, Candidate("mlp", {"depth": 1}, {"lr": 0.1}))
    record.run_id = tracker.start_trial(record)
    tracker.log_metrics(record.run_id, {"val_accuracy": 0.5}, step=1)
    record.state, record.reason, record.stopped_by = "stopped", "asha: below cutoff", "asha"
    tracker.end_trial(record)
    run = MlflowClient(tracker.tracking_uri).get_run(record.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["stopped_by"] == "asha"
    assert run.data.tags["foreseer.stop_reason"] == "asha: below cutoff"
    assert run.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
    assert run.data.params["arch.depth"] == "1" and run.data.params["hp.lr"] == "0.1"
    assert run.data.metrics["val_accuracy"] == 0.5
