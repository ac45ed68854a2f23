"""What a script author gets from a JobHandle: the per-epoch history in reporting order, and a
handle that closes what it started: a script that ends after ``submit(job).wait()`` leaves no
local Ray running."""

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from foreseer._processes import alive

pytestmark = pytest.mark.ray

SCRIPT = """
import json, sys
import foreseer as fs

job = fs.SearchJob(name="handle", space={"name": "mlp", "params": {"depth": 1, "width_0": 32}},
                   dataset="wine", trials=3, max_epochs=2, max_concurrent=1,
                   tracking_uri=sys.argv[1], workdir=sys.argv[2])
handle = fs.submit(job).wait(timeout=300)
history = handle.history()
rows = history[["trial_number", "epoch"]].values.tolist()
print(json.dumps({"columns": list(history.columns), "rows": rows}))
"""


def test_a_script_that_ends_after_wait_leaves_no_ray_running_and_gets_the_history(tmp_path):
    url = f"sqlite:///{tmp_path}/foreseer.db"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, url, str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    history = json.loads(run.stdout.strip().splitlines()[-1])
    assert history["columns"][:3] == ["trial_number", "trial_id", "epoch"]
    assert "val_accuracy" in history["columns"]
    assert history["rows"] == [[n, e] for n in range(3) for e in (1, 2)], "one at a time, in reporting order"
    with sqlite3.connect(tmp_path / "foreseer.db") as db:
        ((driver,),) = db.execute("select driver from foreseer_jobs").fetchall()
    started = json.loads(driver)["ray"]
    assert started, "the script started a local Ray"
    deadline = time.time() + 30
    while any(alive(p) for p in started) and time.time() < deadline:
        time.sleep(0.5)
    assert not [p for p in started if alive(p)], "every Ray process the script started is gone"


def test_a_handle_used_as_a_context_manager_cancels_a_running_job_on_exit(ray_runtime, tmp_path):
    import foreseer as fs

    job = fs.SearchJob(
        name="closing", space="mlp", dataset="wine", trials=8, max_epochs=30, max_concurrent=1,
        tracking_uri=f"sqlite:///{tmp_path}/foreseer.db", workdir=str(tmp_path / "runs"),
    )  # fmt: skip
    with fs.submit(job) as handle:
        while handle.status().epochs_used < 1:
            time.sleep(0.2)
    assert handle.done() and handle.status().state == "cancelled", "closed: cancelled, resumable"
    assert handle.history()["epoch"].tolist()[0] == 1


def test_fs_resume_stays_the_function_after_the_recovery_module_is_imported():
    """A submodule named like a package attribute replaces it once imported: ``fs.resume`` must
    stay callable after a first resume has imported the module that does the work."""
    import foreseer as fs
    import foreseer.recovery  # noqa: F401

    assert callable(fs.resume) and fs.resume.__module__ == "foreseer.api"
