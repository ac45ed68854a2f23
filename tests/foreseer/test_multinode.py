"""A Ray node lost mid-job, for real: a head and a second node on this machine, a job run by the CLI
across both, and the second node SIGKILLed (raylet, agents, trial workers) while its trials are
part-way. Ray Tune retries those trials from their last checkpoint on the nodes left and on a
replacement node; the job completes with every trial once, every epoch once, nothing lost."""

import json
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from foreseer.backends import ray_nodes

pytestmark = [pytest.mark.ray, pytest.mark.timeout(420)]

TRIALS, EPOCHS = 4, 30
KILL_AFTER = 5  # epochs a trial on the node has recorded when the node is killed
# The head notices a dead node after about a second instead of Ray's default of ~15-30 s.
FAST_NODE_DEATH = {
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}

# One architecture for every trial; with its checkpoint, an epoch takes about 0.2 s here.
SPACE = {
    "name": "mlp",
    "params": {"depth": 3, "width_0": 256, "width_1": 256, "width_2": 256, "batch_size": 32},
}


@pytest.fixture
def cluster():
    """A head with room for one trial; the test adds the nodes."""
    with ray_nodes.RayCluster(["--num-cpus=1"], gcs_env=FAST_NODE_DEATH) as cluster:
        yield cluster


def query(db, sql, *args):
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return connection.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # the driver has not made the tables yet
        return []


def epochs_by_trial_on(db, node_id):
    """{trial number: epochs recorded} of the trials whose latest attempt runs on ``node_id``."""
    on_node = query(
        db,
        "select n.value from tags p join tags n on p.run_uuid = n.run_uuid "
        "where p.key = 'foreseer.node_id' and p.value = ? and n.key = 'foreseer.trial_number'",
        node_id,
    )
    counts = dict(query(db, "select number, count(*) from foreseer_epochs group by number"))
    return {int(number): counts.get(int(number), 0) for (number,) in on_node}


def start_job(cluster, tmp_path):
    job = {
        "name": "multinode",
        "space": SPACE,
        "dataset": "digits",
        "trials": TRIALS,
        "max_epochs": EPOCHS,
        "stopping": "none",
        "resources": {"cpus": 1, "gpus": 0},
        "max_concurrent": 3,
        "max_retries": 2,
        "tracking_uri": f"sqlite:///{tmp_path}/foreseer.db",
        "workdir": str(tmp_path / "runs"),
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    command = [sys.executable, "-m", "foreseer", "run", "job.yaml", "--set", f"address={cluster.address}"]
    with open(tmp_path / "driver.log", "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=tmp_path, env=cluster.env, stdout=log, stderr=subprocess.STDOUT)


def kill_when_a_trial_is_part_way(node, driver, db):
    """SIGKILL ``node`` once a trial running on it has recorded ``KILL_AFTER`` epochs; returns the
    trials it had then with their epochs, and when the kill began and ended."""
    node_id = node.node_id()
    deadline = time.time() + 180
    while time.time() < deadline and driver.poll() is None:
        on_node = epochs_by_trial_on(db, node_id)
        if any(KILL_AFTER <= epochs < EPOCHS for epochs in on_node.values()):
            began = time.time()
            node.kill()
            return on_node, began, time.time()
        time.sleep(0.1)
    raise AssertionError(f"no trial ran on {node.name} in time (driver exit code {driver.poll()})")


def test_a_node_killed_mid_trial_loses_nothing(cluster, tmp_path):
    began = time.time()
    node = cluster.add_node(["--num-cpus=2"], wait=False)  # it joins while the driver starts
    driver = start_job(cluster, tmp_path)
    db = tmp_path / "foreseer.db"
    try:
        node.wait_started()
        assert [n.exposed() for n in cluster.nodes] == [[], []], "the test cluster listens on loopback only"
        killed_node_id = node.node_id()
        victims, kill_began, kill_ended = kill_when_a_trial_is_part_way(node, driver, db)
        replacement = cluster.add_node(["--num-cpus=2"], wait=False)
        returncode = driver.wait(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    elapsed = time.time() - began
    log = (tmp_path / "driver.log").read_text()
    assert returncode == 0, log[-5000:] + cluster.logs()

    assert query(db, "select status from foreseer_jobs") == [("succeeded",)]
    rows = query(db, "select number, state, attempts, resumed_from_epoch, retry_errors from foreseer_trials")
    trials = {n: (state, attempts, resumed, json.loads(errors) if errors else [])
              for n, state, attempts, resumed, errors in rows}  # fmt: skip
    assert sorted(trials) == list(range(TRIALS))
    assert {state for state, *_ in trials.values()} == {"completed"}
    epochs = query(db, "select number, epoch, recorded_at from foreseer_epochs order by number, epoch")
    for number in range(TRIALS):  # every epoch exactly once, no gap
        assert [e for n, e, _ in epochs if n == number] == list(range(1, EPOCHS + 1)), number

    # the trials on the killed node were retried from their last checkpoint: that of their last
    # recorded epoch, or of the one before when the node died between an epoch's result and Tune's
    # registering its checkpoint (a step of its own); the epoch trained again is not recorded twice
    retried = {n for n, (_, attempts, _, _) in trials.items() if attempts > 1}
    assert set(victims) <= retried
    part_way = [n for n, e in victims.items() if e >= KILL_AFTER]
    assert part_way
    for number in retried:  # (a retry placed on the node before Ray knew it was dead fails once more)
        _, attempts, resumed, errors = trials[number]
        # Ray reports a lost node's actor as dead, or (when the socket closes first) as unavailable
        lost = ("died", "unavailable")
        assert len(errors) == attempts - 1 and all(any(w in e.lower() for w in lost) for e in errors), trials[
            number
        ]
        assert resumed is not None and resumed >= victims.get(number, 0) - 1, (number, resumed, victims)
        assert max(at for n, _, at in epochs if n == number) > kill_ended  # the retry finished it
    for number in part_way:
        assert trials[number][2] >= KILL_AFTER - 1  # continued from a checkpoint, not from scratch
    assert "restarted after epoch" not in log
    for number in set(trials) - retried:
        assert trials[number][1:3] == (1, None)

    # MLflow: one child run per trial, every epoch logged once, the retry on record
    client = MlflowClient(f"sqlite:///{db}")
    ((parent,),) = query(db, "select mlflow_parent_run_id from foreseer_jobs")
    runs = client.search_runs(
        [client.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"
    )
    by_number = {int(r.data.tags["foreseer.trial_number"]): r for r in runs}
    assert len(runs) == TRIALS and sorted(by_number) == list(range(TRIALS))
    for number, run in by_number.items():
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert sorted(steps) == list(range(1, EPOCHS + 1)), (number, steps)
        assert ("foreseer.retried_after" in run.data.tags) == (number in retried)
        if number in retried:  # its last attempt ran on a node still alive
            assert run.data.tags["foreseer.node_id"] != killed_node_id

    replacement.wait_started()
    names = {node.node_id(): node.name for node in (cluster.head, replacement)}
    outcomes = [
        f"trial {n}: attempts {trials[n][1]}, resumed from epoch {trials[n][2]}, "
        f"finished on {names.get(by_number[n].data.tags['foreseer.node_id'], '?')}"
        for n in sorted(retried)
    ]
    print(
        f"\nkilled {node.name} {kill_began - began:.1f} s in ({kill_ended - kill_began:.1f} s to kill); "
        "its trials "
        f"(epochs recorded then): {victims}; {'; '.join(outcomes)}; job done in {elapsed:.1f} s"
    )
