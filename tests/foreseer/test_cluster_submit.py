"""foreseer submit: a job sent to a real Ray head through Ray's job submission API, its driver on
the cluster, its results in MLflow on PostgreSQL; and the refusals that come before anything is sent."""

import os
import subprocess
import sys
import time

import pytest
import yaml

from foreseer.backends import ray_nodes

WINE = {"name": "mlp", "params": {"depth": 1, "width_0": 32}}


def foreseer(cwd, env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "foreseer", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def write_job(tmp_path, name, **fields):
    job = {"name": name, "space": WINE, "dataset": "wine", "trials": 2, "max_epochs": 2, "max_concurrent": 2,
           "workdir": str(tmp_path / "runs"), **fields}  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path.name


@pytest.fixture(scope="module")
def head():
    with ray_nodes.RayCluster(["--num-cpus=2"], dashboard=True) as cluster:
        yield cluster


def job_row(url, job_id):
    from foreseer.store import JobStore
    from foreseer.store.models import JobRow

    store = JobStore(url)
    try:
        with store.session() as session:
            return session.get(JobRow, job_id)
    finally:
        store.dispose()


def wait_for_status(url, job_id, states, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        row = job_row(url, job_id)
        if row.status in states:
            return row
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {row.status} after {timeout} s")


@pytest.mark.ray
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_a_submitted_job_runs_on_the_cluster_and_lands_in_mlflow_on_postgres(head, postgres_url, tmp_path):
    from mlflow import MlflowClient

    env = head.env
    submitted = foreseer(tmp_path, env, "submit",
                         write_job(tmp_path, "on-cluster", tracking_uri=postgres_url),
                         "--cluster", head.dashboard_url)  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.strip()
    assert f"as foreseer-{job_id}" in submitted.stderr

    row = wait_for_status(postgres_url, job_id, ("succeeded", "failed", "cancelled"))
    logs = foreseer(tmp_path, env, "logs", job_id, "--store", postgres_url)
    assert row.status == "succeeded", row.error + logs.stdout[-3000:] + head.logs()
    assert (row.cluster, row.submission_id) == (head.dashboard_url, f"foreseer-{job_id}")
    assert "top trials by val_accuracy" in logs.stdout, "the driver's output comes back from the cluster"

    client = MlflowClient(postgres_url)
    children = client.search_runs(
        [row.mlflow_experiment_id], f"tags.mlflow.parentRunId = '{row.mlflow_parent_run_id}'"
    )
    assert len(children) == 2
    for child in children:
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 2

    listed = foreseer(tmp_path, env, "jobs", "--store", postgres_url)
    assert job_id in listed.stdout and "succeeded" in listed.stdout
    shown = foreseer(tmp_path, env, "show", job_id, "--store", postgres_url)
    assert "(Ray: SUCCEEDED)" in shown.stdout


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_cancel_stops_the_driver_on_the_cluster(head, tmp_path):
    env = head.env
    store = f"sqlite:///{tmp_path}/foreseer.db"
    submitted = foreseer(tmp_path, env, "submit", write_job(tmp_path, "long", trials=1, max_epochs=300),
                         "--cluster", head.dashboard_url)  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.strip()
    wait_for_status(store, job_id, ("running",))

    cancelled = foreseer(tmp_path, env, "cancel", job_id, "--store", store)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert "(Ray: STOPPED)" in cancelled.stdout and "the job is cancelled" in cancelled.stdout
    assert job_row(store, job_id).status == "cancelled"


def test_a_cluster_elsewhere_gets_no_file_or_localhost_store(tmp_path):
    env = {**os.environ, "RAY_AUTH_TOKEN": "t"}
    name = write_job(tmp_path, "far", workdir="runs", dataset={"path": "data.csv", "target": "y"})
    (tmp_path / "data.csv").write_text("a,y\n1,0\n2,1\n")
    refused = foreseer(tmp_path, env, "submit", name, "--cluster", "http://10.1.2.3:8265",
                       "--set", "store_uri=postgresql+psycopg://me@localhost/db")  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    for expected in ("tracking_uri: sqlite:///foreseer.db is a file on this machine",
                     "store_uri: localhost on the cluster is not this machine",
                     "workdir: 'runs' is relative", "dataset.path: 'data.csv' is relative"):  # fmt: skip
        assert expected in refused.stderr
    assert not (tmp_path / "foreseer.db").exists(), "nothing is recorded for a refused job"


def test_an_unreachable_cluster_is_bad_input(tmp_path):
    from foreseer.backends.ray_jobs import cluster_client  # noqa: F401  (the cluster extra is installed)

    port = ray_nodes.free_port()
    refused = foreseer(tmp_path, os.environ, "submit", write_job(tmp_path, "nowhere"),
                       "--cluster", f"http://127.0.0.1:{port}")  # fmt: skip
    assert refused.returncode == 2
    assert f"cannot reach the Ray cluster's job API at http://127.0.0.1:{port}" in refused.stderr
    assert "foreseer.db" not in os.listdir(tmp_path)


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_a_job_recorded_but_never_submitted_is_submitted_once(head, tmp_path, monkeypatch):
    """What a scheduler daemon does for a launch it takes over: the submitter died after recording."""
    from foreseer.launch import ensure_submitted
    from foreseer.spec import SearchJob

    env = {**head.env, "FORESEER_FAILPOINT": "job-recorded"}
    killed = foreseer(tmp_path, env, "submit", write_job(tmp_path, "orphan"), "--cluster", head.dashboard_url)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    store = f"sqlite:///{tmp_path}/foreseer.db"
    (row,) = _rows(store)
    assert (row.status, row.submission_id) == ("queued", f"foreseer-{row.id}")

    monkeypatch.setenv("RAY_AUTH_TOKEN", head.env["RAY_AUTH_TOKEN"])
    job = SearchJob.from_dict(row.spec)  # as recorded: its paths made absolute for a driver elsewhere
    assert ensure_submitted(row.id, job, head.dashboard_url, row.submission_id) is True
    assert ensure_submitted(row.id, job, head.dashboard_url, row.submission_id) is False, "never twice"
    assert wait_for_status(store, row.id, ("succeeded", "failed", "cancelled")).status == "succeeded"


def _rows(url):
    from foreseer.store import JobStore
    from foreseer.store.models import JobRow

    store = JobStore(url)
    try:
        with store.session() as session:
            return JobRow.recent(session)
    finally:
        store.dispose()
