"""The MLflow tracker on real stores, SQLite and PostgreSQL: nested runs, batched writes, final
tags, figures; WAL and artifacts beside the file on SQLite."""

import sqlite3

import pytest
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from foreseer.ledger import TrialRecord
from foreseer.tracking import Tracker
from foreseer_spaces import Candidate


def make_tracker(tracking_uri, tmp_path, flush_interval=60.0):
    # Beside a SQLite file artifacts have a home of their own; elsewhere MLflow's default is the
    # working directory, so the test names one.
    location = None if tracking_uri.startswith("sqlite") else (tmp_path / "artifacts").as_uri()
    tracker = Tracker(tracking_uri, "exp", artifact_location=location, flush_interval=flush_interval)
    tracker.start_job("job1", {"name": "exp", "trials": 2, "stopping": {"name": "asha"}}, "exp-job1")
    return tracker


def trial(tracker, number=0):
    record = TrialRecord(f"t{number}", number, Candidate("mlp", {"depth": 1}, {"lr": 0.1}))
    record.run_id = tracker.start_trial(record)
    return record


def test_sqlite_store_is_in_wal_mode_and_artifacts_sit_beside_it(tmp_path):
    tracker = make_tracker(f"sqlite:///{tmp_path}/store.db", tmp_path)
    with sqlite3.connect(tmp_path / "store.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    location = tracker.client.get_experiment(tracker.experiment_id).artifact_location
    assert location == (tmp_path / "mlartifacts" / "exp").as_uri()


@pytest.mark.parametrize(
    "tracking_uri", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_postgresql_store_is_reached_through_psycopg_3(tracking_uri, tmp_path):
    tracker = make_tracker(tracking_uri, tmp_path)
    engine = tracker.client._tracking_client.store.engine
    assert engine.dialect.driver == "psycopg" and engine.dialect.server_version_info >= (13,)
    again = Tracker(tracking_uri, "exp", flush_interval=60.0)
    assert again.experiment_id == tracker.experiment_id, "an experiment is found again by name"


def test_parent_run_holds_the_flattened_spec(tracking_uri, tmp_path):
    tracker = make_tracker(tracking_uri, tmp_path)
    run = MlflowClient(tracker.tracking_uri).get_run(tracker.parent_run_id)
    assert run.data.params["stopping.name"] == "asha" and run.data.params["trials"] == "2"
    assert run.data.tags["foreseer.job_id"] == "job1"


def test_metrics_wait_in_the_buffer_until_a_flush(tracking_uri, tmp_path):
    tracker = make_tracker(tracking_uri, tmp_path, flush_interval=60.0)
    record = trial(tracker)
    client = MlflowClient(tracker.tracking_uri)
    for epoch in (1, 2, 3):
        tracker.log_metrics(record.run_id, {"val_accuracy": epoch / 10, "val_loss": 1 / epoch}, step=epoch)
    assert client.get_metric_history(record.run_id, "val_accuracy") == []
    tracker.flush()
    history = client.get_metric_history(record.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert tracker.metrics_written == 6


def test_a_flush_past_mlflows_batch_limit_writes_every_metric(tracking_uri, tmp_path):
    tracker = make_tracker(tracking_uri, tmp_path)
    record = trial(tracker)
    for step in range(1, 1301):  # 2,600 metrics: three log_batch calls of at most 1,000
        tracker.log_metrics(record.run_id, {"val_accuracy": step / 1300, "val_loss": 1 / step}, step=step)
    tracker.flush()
    history = MlflowClient(tracker.tracking_uri).get_metric_history(record.run_id, "val_loss")
    assert len(history) == 1300 and tracker.metrics_written == 2600
    assert sorted(m.step for m in history) == list(range(1, 1301))


def test_ending_a_trial_flushes_and_records_why_it_ended(tracking_uri, tmp_path):
    tracker = make_tracker(tracking_uri, tmp_path)
    record = trial(tracker, number=3)
    tracker.log_metrics(record.run_id, {"val_accuracy": 0.5}, step=1)
    record.state, record.reason, record.stopped_by = "stopped", "asha: below cutoff", "asha"
    tracker.end_trial(record)
    run = MlflowClient(tracker.tracking_uri).get_run(record.run_id)
    assert run.info.status == "FINISHED", "stopped early as planned, not killed like a crash"
    assert run.data.tags["foreseer.status"] == "stopped" and run.data.tags["stopped_by"] == "asha"
    assert run.data.tags["foreseer.stop_reason"] == "asha: below cutoff"
    assert run.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
    assert run.data.params["arch.depth"] == "1" and run.data.params["hp.lr"] == "0.1"
    assert run.data.metrics["val_accuracy"] == 0.5


def test_a_screened_candidate_is_recorded_once_even_when_a_resumed_job_screens_it_again(
    tracking_uri, tmp_path
):
    tracker = make_tracker(tracking_uri, tmp_path)
    candidate = Candidate("mlp", {"depth": 1}, {"lr": 0.1})
    tracker.log_screened(4, candidate, 0.25, "ghn")
    tracker.log_screened(4, candidate, 0.25, "ghn")
    resumed = Tracker(tracker.tracking_uri, "exp", flush_interval=60.0)
    resumed.resume_job(tracker.parent_run_id)
    resumed.log_screened(4, candidate, 0.25, "ghn")
    resumed.log_screened(5, candidate, 0.5, "ghn")
    query = f"tags.mlflow.parentRunId = '{tracker.parent_run_id}'"
    runs = MlflowClient(tracker.tracking_uri).search_runs([tracker.experiment_id], filter_string=query)
    numbers = sorted(r.data.tags["foreseer.trial_number"] for r in runs)
    assert numbers == ["4", "5"], "one screened run per trial number"
    assert all(r.info.status == "FINISHED" and r.data.tags["foreseer.status"] == "screened" for r in runs)


def test_a_figure_lands_under_plots_on_the_parent_run(tracking_uri, tmp_path):
    tracker = make_tracker(tracking_uri, tmp_path)
    figure = Figure(figsize=(3, 2))
    figure.add_subplot().plot([1, 2, 3], [0.2, 0.5, 0.6])
    tracker.log_figure(figure, "curve.png")
    client = MlflowClient(tracker.tracking_uri)
    assert [a.path for a in client.list_artifacts(tracker.parent_run_id, "plots")] == ["plots/curve.png"]
    local = client.download_artifacts(tracker.parent_run_id, "plots/curve.png", str(tmp_path))
    with open(local, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="must end in .png or .svg"):
        tracker.log_figure(figure, "curve")


def test_ending_a_trial_writes_its_own_metrics_with_its_tags_and_leaves_others_buffered(
    tracking_uri, tmp_path
):
    tracker = make_tracker(tracking_uri, tmp_path)
    ending, other = trial(tracker, 1), trial(tracker, 2)
    for step in range(1, 1001):  # 1,000 values: more than fit in one batch beside the final tags
        tracker.log_metrics(ending.run_id, {"val_accuracy": step / 1000}, step=step)
    tracker.log_metrics(other.run_id, {"val_accuracy": 0.5}, step=1)
    ending.state, ending.reason = "completed", "trained 1000 epochs"
    tracker.end_trial(ending)
    client = MlflowClient(tracker.tracking_uri)
    history = client.get_metric_history(ending.run_id, "val_accuracy")
    assert sorted(m.step for m in history) == list(range(1, 1001))
    assert client.get_run(ending.run_id).data.tags["foreseer.status"] == "completed"
    assert client.get_metric_history(other.run_id, "val_accuracy") == [], "still buffered"
    assert tracker.metrics_written == 1000
    tracker.end_job("FINISHED")
    assert [m.value for m in client.get_metric_history(other.run_id, "val_accuracy")] == [0.5]


SECRET = "s3cret"
SECRET_URL = f"postgresql+psycopg://user:{SECRET}@db.example:5432/foreseer"


def test_a_password_in_the_job_spec_never_reaches_mlflow(tmp_path):
    """Params, tags and the job.yaml artifact of the parent run, read back from a real SQLite store."""
    tracker = Tracker(f"sqlite:///{tmp_path}/store.db", "exp")
    spec = {
        "name": "exp",
        "tracking_uri": SECRET_URL,
        "store_uri": SECRET_URL,
        "artifact_location": f"https://user:{SECRET}@files.example/a",
        "nested": {"dsn": f"{SECRET_URL}?password={SECRET}"},
    }
    run_id = tracker.start_job("job1", spec, "exp-job1")
    client = MlflowClient(tracker.tracking_uri)
    run = client.get_run(run_id)
    assert run.data.params["tracking_uri"] == "postgresql+psycopg://user:***@db.example:5432/foreseer"
    assert run.data.params["artifact_location"] == "https://user:***@files.example/a"
    texts = [*run.data.params.values(), *run.data.tags.values()]
    artifacts = tmp_path / "downloaded"
    client.download_artifacts(run_id, "", str(artifacts))
    texts += [p.read_text() for p in artifacts.rglob("*") if p.is_file()]
    assert any("user:***@db.example" in t for t in texts[-1:]), "job.yaml keeps the masked URL"
    assert not [t for t in texts if SECRET in t]
    assert spec["tracking_uri"] == SECRET_URL, "the caller's spec is left as it was"


def test_the_job_store_keeps_the_masked_spec_and_resume_gets_the_password_back(tmp_path, monkeypatch):
    from foreseer.dburl import mask_secrets, with_password
    from foreseer.recovery import _with_passwords

    stored = mask_secrets({"tracking_uri": SECRET_URL, "store_uri": None, "trials": 2})
    assert SECRET not in str(stored)
    # The store URL given to `foreseer resume --store` names the same user on the same server.
    monkeypatch.delenv("FORESEER_STORE", raising=False)
    monkeypatch.delenv("FORESEER_TRACKING_URI", raising=False)
    again = _with_passwords(dict(stored), SECRET_URL.replace("/foreseer", "/jobs"))
    assert again["tracking_uri"] == SECRET_URL
    # No URL with it: no password at all, so libpq falls back to PGPASSWORD / ~/.pgpass.
    assert with_password(
        stored["tracking_uri"], ["postgresql+psycopg://other:x@db.example:5432/foreseer"]
    ) == ("postgresql+psycopg://user@db.example:5432/foreseer")
    monkeypatch.setenv("FORESEER_TRACKING_URI", SECRET_URL)
    assert _with_passwords(dict(stored), "sqlite:///jobs.db")["tracking_uri"] == SECRET_URL
    assert with_password("sqlite:///x.db", []) == "sqlite:///x.db"


def test_cli_output_masks_database_passwords(tmp_path):
    from click.testing import CliRunner

    from foreseer.cli import main

    store = f"sqlite:///{tmp_path}/jobs.db"
    runner = CliRunner()
    listed = runner.invoke(main, ["jobs", "--store", store])
    assert listed.exit_code == 2 and "no job store" in listed.output, "a read-only command creates no store"
    job = tmp_path / "job.yaml"
    job.write_text(f"name: x\nspace: mlp\ndataset: digits\ntracking_uri: {SECRET_URL}\n")  # unreachable
    bad = runner.invoke(main, ["validate", str(job)])
    assert bad.exit_code == 2 and "user:***@db.example" in bad.output and SECRET not in bad.output
    missing = runner.invoke(
        main, ["show", "nope", "--store", f"sqlite:///{tmp_path}/jobs.db?password={SECRET}"]
    )
    assert SECRET not in missing.output
