"""GPU placement on a real Ray node that declares two GPUs it does not have (Ray trusts
``--num-gpus``): four trials asking for half a GPU each run at once, two per GPU, each sees
exactly the GPU Ray gave it in ``CUDA_VISIBLE_DEVICES``, and trains on CPU, with a warning,
because this machine has no CUDA. The job is run by the CLI in a subprocess against that node;
this process never connects to it."""

import json
import sqlite3
import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from foreseer.backends import ray_nodes

pytestmark = [pytest.mark.ray, pytest.mark.timeout(360)]

TRIALS = 4
# Long enough that the last trial's worker has started before the first trial ends.
EPOCHS = 30

# One architecture for every trial; with its checkpoint, an epoch takes about 0.2 s here.
SPACE = {
    "name": "mlp",
    "params": {"depth": 3, "width_0": 256, "width_1": 256, "width_2": 256, "batch_size": 32},
}


@pytest.fixture
def gpu_node():
    with ray_nodes.RayCluster(["--num-cpus=4", "--num-gpus=2"]) as cluster:
        yield cluster


def run_job(cluster, tmp_path):
    job = {
        "name": "gpu-placement",
        "space": SPACE,
        "dataset": "digits",
        "trials": TRIALS,
        "max_epochs": EPOCHS,
        "stopping": "none",
        "resources": {"cpus": 1, "gpus": 0.5},
        "max_concurrent": TRIALS,
        "tracking_uri": f"sqlite:///{tmp_path}/foreseer.db",
        "workdir": str(tmp_path / "runs"),
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    command = [sys.executable, "-m", "foreseer", "run", "job.yaml", "--set", f"address={cluster.address}"]
    return subprocess.run(
        command, cwd=tmp_path, env=cluster.env, capture_output=True, text=True, timeout=300, check=False
    )


def test_half_gpu_trials_share_two_declared_gpus_and_fall_back_to_cpu(gpu_node, tmp_path):
    assert gpu_node.head.exposed() == [], "the test cluster listens on loopback only"
    run = run_job(gpu_node, tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-5000:] + gpu_node.logs()

    with sqlite3.connect(tmp_path / "foreseer.db") as db:
        ((status, parent_run_id),) = db.execute(
            "select status, mlflow_parent_run_id from foreseer_jobs"
        ).fetchall()
        trials = db.execute("select number, state, attempts from foreseer_trials order by number").fetchall()
        epochs = db.execute("select number, epoch, recorded_at, metrics from foreseer_epochs").fetchall()
    assert status == "succeeded"
    assert trials == [(n, "completed", 1) for n in range(TRIALS)]

    # (a) all four at once: the latest start comes before the earliest end
    intervals = {}
    for number in range(TRIALS):
        rows = sorted((e, at, json.loads(m)) for n, e, at, m in epochs if n == number)
        assert [e for e, _, _ in rows] == list(range(1, EPOCHS + 1))
        _, first_at, first_metrics = rows[0]
        intervals[number] = (first_at - first_metrics["epoch_seconds"], rows[-1][1])
    latest_start = max(start for start, _ in intervals.values())
    earliest_end = min(end for _, end in intervals.values())
    assert latest_start < earliest_end, intervals

    # (b) one GPU each as Ray sees it and as CUDA would: two trials on GPU 0, two on GPU 1
    client = MlflowClient(f"sqlite:///{tmp_path}/foreseer.db")
    runs = client.search_runs(
        [client.get_run(parent_run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
    tags = {int(r.data.tags["foreseer.trial_number"]): r.data.tags for r in runs}
    assert sorted(tags) == list(range(TRIALS))
    visible = sorted(t["foreseer.cuda_visible_devices"] for t in tags.values())
    assert visible == ["0", "0", "1", "1"], visible
    assert all(t["foreseer.gpus"] == t["foreseer.cuda_visible_devices"] for t in tags.values())
    assert len({t["foreseer.node_id"] for t in tags.values()}) == 1
    assert gpu_node.head.node_id() in {t["foreseer.node_id"] for t in tags.values()}

    # (c) no CUDA here: every trial trained on CPU, and the user was told why
    assert {t["foreseer.device"] for t in tags.values()} == {"cpu"}
    for number, t in tags.items():
        gpu = t["foreseer.gpus"]
        assert f"trial {number} was given GPU {gpu} on host" in output and "it trains on CPU" in output
    assert all(r.info.status == "FINISHED" for r in runs)
