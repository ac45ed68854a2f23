"""Crash-resume for real: the driver process is SIGKILLed at several points, then `foreseer resume`
finishes the job. Nothing reported is lost, nothing runs or is logged twice."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from foreseer._processes import alive

pytestmark = pytest.mark.ray

TRIALS, EPOCHS = 4, 3


def job_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "resume-me",
                "space": {"name": "mlp", "params": {"depth": 1, "width_0": 32}},
                "dataset": "wine",
                "trials": TRIALS,
                "max_epochs": EPOCHS,
                "stopping": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
                "max_concurrent": 2,
                "sampler": "tpe",
                "tracking_uri": f"sqlite:///{tmp_path}/foreseer.db",
                "workdir": str(tmp_path / "runs"),
            }
        )
    )
    return path


def foreseer(tmp_path, *args, failpoint=None, env=None):
    env = {**os.environ, "FORESEER_FAILPOINT": failpoint or "", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "foreseer", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def uninterrupted_candidates(path):
    """The candidates an uninterrupted run of the job proposes, in order. Its TPE sampler is
    still in its random start-up phase for all of the job's trials (10 > TRIALS), so they do not
    depend on which trial ends first: asking the freshly prepared job's sampler gives them."""
    from foreseer.runner import prepare
    from foreseer.searcher import CandidateSearcher
    from foreseer.spec import SearchJob

    prepared = prepare(SearchJob.from_dict(yaml.safe_load(path.read_text())))
    searcher = CandidateSearcher(
        prepared.study, prepared.space, prepared.data.task, prepared.overrides, prepared.ledger
    )
    return [json.dumps(searcher.ask()[1].to_dict(), sort_keys=True) for _ in range(TRIALS)]


def query(tmp_path, sql):
    with sqlite3.connect(tmp_path / "foreseer.db") as connection:
        return connection.execute(sql).fetchall()


def kill_from_outside_after_epochs(process, tmp_path, epochs):
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None:
        try:
            if query(tmp_path, "select count(*) from foreseer_epochs")[0][0] >= epochs:
                process.send_signal(signal.SIGKILL)
                break
        except sqlite3.OperationalError:
            pass  # the store is not created yet
        time.sleep(0.2)
    process.wait(60)


@pytest.mark.parametrize(
    "failpoint",
    ["job-recorded", "epoch-recorded:3", "trial-ended:2", "publish", "external:4"],
    ids=["before-first-result", "mid-trial", "between-trials", "during-final-write", "external-kill"],
)
def test_a_killed_driver_resumes_with_nothing_lost_or_duplicated(tmp_path, failpoint):
    path = job_file(tmp_path)
    if failpoint.startswith("external"):
        process = foreseer(tmp_path, "run", str(path))
        kill_from_outside_after_epochs(process, tmp_path, int(failpoint.split(":")[1]))
    else:
        process = foreseer(tmp_path, "run", str(path), failpoint=failpoint)
        process.wait(300)
    assert process.returncode == -signal.SIGKILL, process.stdout.read()
    ((job_id, status, driver),) = query(tmp_path, "select id, status, driver from foreseer_jobs")
    assert status in ("queued", "running")
    before = {
        n: e for n, e in query(tmp_path, "select number, max(epoch) from foreseer_epochs group by number")
    }
    ended = query(tmp_path, "select count(*) from foreseer_trials where state in ('completed', 'stopped')")[
        0
    ][0]
    listing = foreseer(tmp_path, "jobs", "--store", f"sqlite:///{tmp_path}/foreseer.db").communicate(
        timeout=60
    )[0]
    if driver is not None:  # the driver recorded its process: `jobs` sees it is gone
        assert "failed" in listing and f"{ended}/{TRIALS}" in listing, listing
        assert query(tmp_path, "select status from foreseer_jobs") == [("failed",)]

    resumed = foreseer(tmp_path, "resume", job_id[:6], "--store", f"sqlite:///{tmp_path}/foreseer.db")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output

    ((status, ended, error, summary),) = query(
        tmp_path, "select status, ended_at, error, summary from foreseer_jobs"
    )
    assert (status, error) == ("succeeded", None) and ended is not None
    trials = query(
        tmp_path, "select number, state, run_id, resumed_from_epoch from foreseer_trials order by number"
    )
    assert [t[0] for t in trials] == list(range(TRIALS)), "exactly the requested trials, none twice"
    candidates = [c for (c,) in query(tmp_path, "select candidate from foreseer_trials order by number")]
    stored = [json.dumps(json.loads(c), sort_keys=True) for c in candidates]
    assert stored == uninterrupted_candidates(path), (
        "the resumed job proposed what a run without a kill would"
    )
    assert all(state in ("completed", "stopped") for _, state, _, _ in trials)
    epochs = query(tmp_path, "select number, epoch from foreseer_epochs order by number, epoch")
    for number, *_ in trials:
        mine = [e for n, e in epochs if n == number]
        assert mine == list(range(1, len(mine) + 1)), f"trial {number}: epochs {mine}"
        assert len(mine) >= before.get(number, 0), "every epoch reported before the kill is still there"

    client = MlflowClient(f"sqlite:///{tmp_path}/foreseer.db")
    experiment = client.get_experiment_by_name("resume-me")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get("foreseer.kind") == "trial"]
    assert sorted(r.data.tags["foreseer.trial_id"] for r in children) == [f"t{n:04d}" for n in range(TRIALS)]
    for run in children:
        number = int(run.data.tags["foreseer.trial_number"])
        stored = [e for n, e in epochs if n == number]
        for key in ("val_accuracy", "train_loss"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == stored, f"trial {number} {key}: MLflow steps {steps}, store {stored}"
        assert run.info.status in ("FINISHED", "KILLED")
    parents = [r for r in runs if r.data.tags.get("foreseer.kind") == "job"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"

    summary = yaml.safe_load(summary)
    optuna_trials = summary["optuna_trials"]
    assert sum(optuna_trials.values()) == TRIALS, optuna_trials
    states = [state for _, state, _, _ in trials]
    assert optuna_trials.get("pruned", 0) == states.count("stopped")
    assert optuna_trials.get("complete", 0) == states.count("completed")

    driver = yaml.safe_load(driver) if isinstance(driver, str) else driver
    if driver:
        assert not any(alive(p) for p in driver["ray"]), "the killed driver's Ray processes are gone"
    if failpoint == "epoch-recorded:3":
        assert any(r is not None and r >= 1 for *_, r in trials), (
            "an in-flight trial continued from its checkpoint"
        )


def test_a_driver_killed_while_a_trial_is_paused_resumes_it_from_its_checkpoint(tmp_path):
    """The pausing policy of foreseer.testing.policies, named in the job file: trial 0 pauses at
    epoch 2, the driver dies right after, and the resumed job thaws it once another trial has
    completed; every epoch of every trial is recorded once, in the store and in MLflow."""
    path = job_file(tmp_path)
    job = yaml.safe_load(path.read_text())
    job.update(
        stopping={
            "name": "custom",
            "policy": "foreseer.testing.policies:PauseThenThaw",
            "settings": {"at_epoch": 2},
        }
    )
    path.write_text(yaml.safe_dump(job))
    process = foreseer(tmp_path, "run", str(path), failpoint="trial-paused")
    process.wait(300)
    assert process.returncode == -signal.SIGKILL, process.stdout.read()
    ((job_id,),) = query(tmp_path, "select id from foreseer_jobs")
    assert query(tmp_path, "select state, checkpoint_epoch from foreseer_trials where number = 0") == [
        ("paused", 2)
    ]

    resumed = foreseer(tmp_path, "resume", job_id, "--store", f"sqlite:///{tmp_path}/foreseer.db")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    trials = query(tmp_path, "select number, state, resumed_from_epoch from foreseer_trials order by number")
    assert [(n, s) for n, s, _ in trials] == [(n, "completed") for n in range(TRIALS)]
    assert trials[0][2] == 2, "thawed from its epoch-2 checkpoint"
    epochs = query(tmp_path, "select number, epoch from foreseer_epochs order by number, epoch")
    assert epochs == [(n, e) for n in range(TRIALS) for e in range(1, EPOCHS + 1)]
    kinds = [k for (k,) in query(tmp_path, "select kind from foreseer_events where number = 0 order by seq")]
    assert kinds.count("paused") == 1 and kinds.count("resumed") == 1 and kinds[-1] == "completed", kinds

    client = MlflowClient(f"sqlite:///{tmp_path}/foreseer.db")
    run = next(r for r in client.search_runs([client.get_experiment_by_name("resume-me").experiment_id])
               if r.data.tags.get("foreseer.trial_number") == "0")  # fmt: skip
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == list(
        range(1, EPOCHS + 1)
    )
    paused = sorted(client.get_metric_history(run.info.run_id, "paused"), key=lambda m: m.timestamp)
    assert [(m.step, m.value) for m in paused] == [(2, 1.0), (2, 0.0)], "MLflow shows the pause and the thaw"
    assert run.info.status == "FINISHED"
