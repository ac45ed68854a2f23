"""The job commands as a user runs them: run --detach, jobs, logs, cancel, resume, show."""

import os
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = pytest.mark.ray


def foreseer(tmp_path, *args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "foreseer", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "FORESEER_FAILPOINT": ""},
    )


def status(tmp_path):
    with sqlite3.connect(tmp_path / "foreseer.db") as connection:
        return connection.execute("select status from foreseer_jobs").fetchone()[0]


def wait_for(condition, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def test_detach_cancel_resume_show(tmp_path):
    job = {
        "name": "detached",
        "space": {"name": "mlp", "params": {"depth": 1}},
        "dataset": "wine",
        "trials": 2,
        "max_epochs": 30,  # 15 s a trial (paced): the cancel comes while the first one trains
        "max_concurrent": 1,
        "stopping": "none",
        "trainable": "foreseer.testing.trainables:paced_classifier",
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    started = foreseer(tmp_path, "run", "job.yaml", "--detach")
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()
    assert len(job_id) == 12

    def some_epochs():
        with sqlite3.connect(tmp_path / "foreseer.db") as connection:
            return connection.execute("select count(*) from foreseer_epochs").fetchone()[0] >= 3

    assert wait_for(some_epochs), (tmp_path / "foreseer-logs" / f"{job_id}.log").read_text()
    listed = foreseer(tmp_path, "jobs")
    assert job_id in listed.stdout and "running" in listed.stdout

    cancelled = foreseer(tmp_path, "cancel", job_id[:5])
    assert cancelled.returncode == 0 and "asked its driver" in cancelled.stdout
    assert wait_for(lambda: status(tmp_path) == "cancelled"), (
        tmp_path / "foreseer-logs" / f"{job_id}.log"
    ).read_text()
    logs = foreseer(tmp_path, "logs", job_id, "--follow", timeout=60)
    assert logs.returncode == 0 and "cancelled" in logs.stdout, "--follow returns once the driver has ended"
    with sqlite3.connect(tmp_path / "foreseer.db") as connection:
        unfinished = connection.execute(
            "select count(*) from foreseer_trials where state = 'running'"
        ).fetchone()[0]
    assert unfinished == 1, "the trial cut short by the cancel stays resumable"

    resumed = foreseer(tmp_path, "resume", job_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert status(tmp_path) == "succeeded"
    shown = foreseer(tmp_path, "show", job_id)
    assert shown.returncode == 0 and "succeeded" in shown.stdout
    assert shown.stdout.count("completed") == 2

    again = foreseer(tmp_path, "resume", job_id)
    assert again.returncode == 2 and "already succeeded" in again.stderr
    no_log = foreseer(tmp_path, "logs", "nosuchjob")
    assert no_log.returncode == 2 and "no job 'nosuchjob'" in no_log.stderr
