"""The MLflow UI in a real browser: ``foreseer ui`` on a finished job, the experiment opened in
headless Chromium, the parent run and its nested trial runs read from the rendered page."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import foreseer as fs
from foreseer.testing.chromium import Chromium, chromium_path
from foreseer.ui import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("FORESEER_TEST_ARTIFACTS", ROOT / ".build" / "artifacts"))
EXPANDER = "button[data-component-id*='runnamecellrenderer']"

pytestmark = [pytest.mark.ray, pytest.mark.browser]


@pytest.fixture(scope="module")
def finished_job(ray_runtime, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ui-job")
    job = fs.SearchJob(
        name="wine-ui",
        space={"name": "mlp", "params": {"depth": 1, "width_0": 32}},
        dataset="wine",
        trials=4,
        max_epochs=3,
        stopping={"name": "asha", "grace_period": 1, "reduction_factor": 2},
        max_concurrent=1,
        sampler="random",
        seed=7,  # candidates of their own: other tests look for their candidates' checkpoint folders
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        workdir=str(tmp_path / "runs"),
    )
    handle = fs.submit(job).wait(timeout=600)
    assert handle.status().state == "succeeded"
    return handle


@pytest.fixture(scope="module")
def foreseer_ui(finished_job, tmp_path_factory):
    """``foreseer ui`` as a user starts it; stopped with Ctrl-C (SIGINT) afterwards."""
    tmp_path = tmp_path_factory.mktemp("ui")
    port = free_port()
    log = open(tmp_path / "ui.log", "w")  # noqa: SIM115
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "foreseer",
            "ui",
            "--tracking-uri",
            finished_job.job.tracking_uri,
            "--port",
            str(port),
            "--experiment",
            finished_job.job.name,
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=tmp_path,
    )
    try:
        line, deadline = "", time.monotonic() + 120
        while "Ctrl-C" not in line and time.monotonic() < deadline and cli.poll() is None:
            line = cli.stdout.readline()
        assert f"http://127.0.0.1:{port}/#/experiments/" in line, (
            line,
            (tmp_path / "ui.log").read_text()[-2000:],
        )
        printed = line.split(": ", 1)[1].split()[0]
        yield SimpleNamespace(root=f"http://127.0.0.1:{port}", printed=printed)
    finally:
        cli.send_signal(signal.SIGINT)
        try:
            assert cli.wait(timeout=30) == 130
        finally:
            if cli.poll() is None:
                cli.kill()
            log.close()


@pytest.fixture
def browser(tmp_path):
    if chromium_path() is None:
        pytest.skip("Chromium is not installed (`make test` installs Debian's chromium where it may)")
    with Chromium(tmp_path / "profile") as instance:  # a fresh profile every time
        yield instance


def test_the_experiment_lists_the_parent_run_and_its_nested_trial_runs(finished_job, foreseer_ui, browser):
    handle = finished_job
    records = handle._prepared.ledger.records()
    parent = f"{handle.job.name}-{handle.job_id[:6]}"
    trials = [f"trial-{r.number:03d}-{r.candidate.hash[:8]}" for r in records]
    page = browser.new_page()
    page.navigate(f"{foreseer_ui.root}/#/experiments/{handle.mlflow_experiment_id}/runs")
    page.wait_for(f"document.body.innerText.includes({parent!r})", timeout=90)
    text = page.text()
    assert "Training runs" in text, "the experiment opens on its runs, not on MLflow's GenAI pages"
    assert f"{len(trials) + 1} matching runs" in text
    assert not any(name in text for name in trials), "trial runs are nested under the job's run"
    page.evaluate(f"document.querySelector({EXPANDER!r}).click()")
    page.wait_for(" && ".join(f"document.body.innerText.includes({name!r})" for name in trials), timeout=30)
    rows = page.evaluate(
        "[...document.querySelectorAll('.ag-center-cols-container .ag-row, "
        ".ag-pinned-left-cols-container .ag-row')]"
        ".map(r => r.innerText).filter(t => t.includes('-'))"
    )
    names = [line for row in rows for line in row.splitlines() if line.startswith(("trial-", parent))]
    assert names[0] == parent and sorted(names[1:]) == sorted(trials), names
    shot = page.screenshot(ARTIFACTS / "ui-experiment-runs.png")
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 20_000


def test_a_trial_run_says_why_it_ended(finished_job, foreseer_ui, browser):
    handle = finished_job
    stopped = [r for r in handle._prepared.ledger.records() if r.state == "stopped"]
    record = stopped[0] if stopped else handle._prepared.ledger.records()[0]
    page = browser.new_page()
    page.navigate(f"{foreseer_ui.root}/#/experiments/{handle.mlflow_experiment_id}/runs/{record.run_id}")
    page.wait_for("document.body.innerText.includes('foreseer.status')", timeout=90)
    text = page.text()
    assert record.state in text and "foreseer.stop_reason" in text
    if stopped:
        assert "stopped_by" in text and "asha" in text
    print(f"screenshot: {page.screenshot(ARTIFACTS / 'ui-trial-run.png')}")


def test_the_url_foreseer_ui_prints_opens_the_jobs_trials_best_first(finished_job, foreseer_ui, browser):
    """As a person would: open the URL `foreseer ui --experiment` printed. The saved view shows the
    runs table, the job's run expanded to its trials, the objective and the trial status as
    columns, sorted best first."""
    handle = finished_job
    records = handle._prepared.ledger.records()
    trials = {f"trial-{r.number:03d}-{r.candidate.hash[:8]}": r for r in records}
    page = browser.new_page()
    page.navigate(foreseer_ui.printed)
    page.wait_for(" && ".join(f"document.body.innerText.includes({n!r})" for n in trials), timeout=90)
    text = page.text()
    assert "Training runs" in text, "the runs table, not MLflow's GenAI pages"
    headers = page.evaluate("[...document.querySelectorAll('[role=columnheader]')].map(h => h.innerText)")
    assert any("val_accuracy" in h for h in headers) and any("foreseer.status" in h for h in headers), headers
    rows = page.evaluate(
        "[...document.querySelectorAll('.ag-pinned-left-cols-container .ag-row, "
        ".ag-center-cols-container .ag-row')].map(r => r.innerText)"
    )
    shown = [line for row in rows for line in row.splitlines() if line in trials]
    best = {n: handle._prepared.ledger.best_epoch(r)[1] for n, r in trials.items()}
    assert shown and shown == sorted(shown, key=lambda n: -best[n]), (shown, best)
    assert "stopped" in text or all(r.state == "completed" for r in records), "the status column is filled"
    print(f"screenshot: {page.screenshot(ARTIFACTS / 'ui-printed-url.png')}")
