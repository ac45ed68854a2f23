"""A user's own training function as the trial (``SearchJob(trainable=...)``): the protocol on its
own (no Ray), then whole jobs on a real local Ray with MLflow, stopping, retries and resume."""

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

import foreseer as fs
from foreseer.backends import TrialStart
from foreseer.errors import SpecError
from foreseer.testing import trainables
from foreseer_spaces import get_space
from foreseer_workers import UserTrainable, load_dataset

EPOCHS = 4


@pytest.fixture(scope="module")
def wine():
    return load_dataset("wine", seed=0)


def candidate(data, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return get_space("mlp").sample(study.ask(), data.task)


def attempt(fn, data, cand, tmp_path, *, halt_after=None, resume_from=None, objectives=("val_accuracy",)):
    """One attempt of trial 0: the reports it made (metrics, checkpoint folder) and its outcome."""
    reports = []

    def report(metrics, folder):
        reports.append((metrics, folder))
        return halt_after is not None and metrics["epoch"] >= halt_after

    trainable = UserTrainable(fn, get_space("mlp"), data, EPOCHS, objectives, seed=3)
    start = TrialStart("t0", 0, cand.to_dict(), resume_from=resume_from)
    return reports, trainable(start, report, scratch_dir=str(tmp_path / "scratch"))


def test_a_function_reports_every_epoch_and_completes(wine, tmp_path):
    reports, outcome = attempt(trainables.classifier, wine, candidate(wine), tmp_path)
    assert outcome.status == "completed" and outcome.epochs_completed == EPOCHS
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3, 4]
    assert all({"val_accuracy", "val_loss"} <= set(m) for m, _ in reports)
    assert reports[-1][0]["val_accuracy"] > 0.8, "it really trains"
    assert all((Path(folder) / "state.pt").is_file() for _, folder in reports)


def test_a_halted_function_continues_from_its_checkpoint_as_if_never_halted(wine, tmp_path):
    cand = candidate(wine)
    whole, _ = attempt(trainables.classifier, wine, cand, tmp_path / "a")
    first, outcome = attempt(trainables.classifier, wine, cand, tmp_path / "b", halt_after=2)
    assert outcome.status == "stopped" and outcome.epochs_completed == 2
    rest, outcome = attempt(trainables.classifier, wine, cand, tmp_path / "c", resume_from=first[-1][1])
    assert outcome.status == "completed"
    assert [m["epoch"] for m, _ in rest] == [3, 4]
    assert [m for m, _ in first + rest] == [m for m, _ in whole]


@pytest.mark.parametrize(
    ("fn", "says"),
    [
        (trainables.never_reports, "returned without reporting an epoch"),
        (
            trainables.forgets_the_objective,
            "the job's objective needs 'val_accuracy', but epoch 1 reported 'accuracy'",
        ),
    ],
)
def test_a_function_that_breaks_the_protocol_fails_with_the_reason(wine, tmp_path, fn, says):
    reports, outcome = attempt(fn, wine, candidate(wine), tmp_path)
    assert outcome.status == "failed" and says in outcome.reason
    assert reports == []


@pytest.mark.parametrize(
    ("report", "says"),
    [
        ({"epoch": 2, "val_accuracy": 0.5}, "reported epoch 2, but the next epoch is 1"),
        ({"epoch": 1, "val_accuracy": "high"}, "metric 'val_accuracy' must be a number"),
    ],
)
def test_a_bad_report_is_a_clear_failure(wine, tmp_path, report, says):
    def fn(candidate, ctx):
        ctx.report(**report)

    _, outcome = attempt(fn, wine, candidate(wine), tmp_path)
    assert outcome.status == "failed" and says in outcome.reason


def test_a_report_past_max_epochs_is_refused(wine, tmp_path):
    def fn(candidate, ctx):
        for epoch in range(1, EPOCHS + 2):
            ctx.report(epoch, val_accuracy=0.5)

    reports, outcome = attempt(fn, wine, candidate(wine), tmp_path)
    assert outcome.status == "failed" and f"max_epochs is {EPOCHS}" in outcome.reason
    assert len(reports) == EPOCHS


@pytest.mark.parametrize(
    ("trainable", "says"),
    [
        ("no_such_module:train", "module 'no_such_module' does not import"),
        ("foreseer.testing.trainables:nothing", "has no 'nothing'"),
        ("foreseer.testing.trainables", "must be 'package.module:function'"),
        ("json:dumps", "must take (candidate, ctx)"),
        (42, "must be a function train(candidate, ctx)"),
    ],
)
def test_a_trainable_that_cannot_be_used_is_refused_up_front(trainable, says):
    with pytest.raises(SpecError, match="trainable") as e:
        fs.SearchJob(name="bad", trainable=trainable)
    assert says in str(e.value)


def test_a_metric_of_its_own_needs_a_trainable_and_a_direction():
    with pytest.raises(SpecError, match="a training function of your own"):
        fs.SearchJob(name="x", objective={"metric": "val_auc", "mode": "max"})
    with pytest.raises(SpecError, match="give its direction too"):
        fs.SearchJob(name="x", trainable=trainables.classifier, objective="val_auc")
    job = fs.SearchJob(
        name="x", trainable=trainables.classifier, objective={"metric": "val_rmse", "mode": "min"}
    )
    assert job.to_dict()["trainable"] == "foreseer.testing.trainables:classifier"


def run_job(tmp_path, trainable, **fields):
    tmp_path.mkdir(exist_ok=True)
    job = fs.SearchJob(
        name="user-fn",
        space={"name": "mlp", "params": {"batch_size": 32}},
        dataset="wine",
        trainable=trainable,
        trials=fields.pop("trials", 3),
        max_epochs=EPOCHS,
        max_concurrent=fields.pop("max_concurrent", 2),
        tracking_uri=f"sqlite:///{tmp_path}/foreseer.db",
        workdir=str(tmp_path / "runs"),
        **fields,
    )
    return fs.submit(job).wait(timeout=600)


@pytest.mark.ray
def test_a_job_of_a_users_function_is_tracked_stopped_and_ranked(ray_runtime, tmp_path):
    handle = run_job(
        tmp_path, "foreseer.testing.trainables:classifier", trials=4,
        stopping={"name": "asha", "grace_period": 1, "reduction_factor": 2},
    )  # fmt: skip
    assert handle.status().state == "succeeded"
    records = handle._prepared.ledger.records()
    assert {r.state for r in records} <= {"completed", "stopped"} and len(records) == 4
    client = MlflowClient(handle.job.tracking_uri)
    for record in records:
        steps = [m.step for m in client.get_metric_history(record.run_id, "val_accuracy")]
        assert steps == list(range(1, record.epochs + 1))
    board = handle.leaderboard()
    assert len(board) == 4 and board["val_accuracy"].iloc[0] > 0.8
    assert (Path(handle._prepared.directory) / "published" / "best.json").is_file()


@pytest.mark.ray
def test_a_function_that_raises_is_retried_then_failed_and_one_that_misreports_fails_at_once(
    ray_runtime, tmp_path
):
    handle = run_job(tmp_path / "raises", trainables.raises_at_epoch_2, trials=1, max_retries=1)
    (record,) = handle._prepared.ledger.records()
    assert record.state == "failed" and "out of memory in the user's loop" in record.reason
    assert record.attempts == 2 and record.epochs == 1, "the retry continued from epoch 1's checkpoint"
    assert handle.status().state == "succeeded", "a failed trial does not fail the job"

    handle = run_job(tmp_path / "misreports", trainables.forgets_the_objective, trials=2, max_retries=1)
    records = handle._prepared.ledger.records()
    assert [r.state for r in records] == ["failed", "failed"]
    assert all(r.attempts == 1 and "objective needs 'val_accuracy'" in r.reason for r in records)
    assert [t.state for t in handle.study.trials] == [optuna.trial.TrialState.FAIL] * 2


@pytest.mark.ray
def test_a_killed_job_of_a_users_function_resumes_from_its_checkpoints(tmp_path):
    """From a job file, through the CLI: SIGKILLed after its third recorded epoch, resumed."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    import yaml

    store = f"sqlite:///{tmp_path}/foreseer.db"
    (tmp_path / "job.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "user-fn-resume",
                "space": {"name": "mlp", "params": {"depth": 1, "width_0": 32}},
                "dataset": "wine",
                "trainable": "foreseer.testing.trainables:classifier",
                "trials": 3,
                "max_epochs": EPOCHS,
                "max_concurrent": 2,
                "tracking_uri": store,
                "workdir": str(tmp_path / "runs"),
            }
        )
    )

    def foreseer(*args, failpoint=""):
        env = {**os.environ, "FORESEER_FAILPOINT": failpoint}
        done = subprocess.run(
            [sys.executable, "-m", "foreseer", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    rc, output = foreseer("run", "job.yaml", failpoint="epoch-recorded:3")
    assert rc == -signal.SIGKILL, output
    with sqlite3.connect(tmp_path / "foreseer.db") as db:
        (job_id,) = db.execute("select id from foreseer_jobs").fetchone()
    rc, output = foreseer("resume", job_id, "--store", store)
    assert rc == 0, output
    with sqlite3.connect(tmp_path / "foreseer.db") as db:
        trials = db.execute("select number, state, resumed_from_epoch from foreseer_trials").fetchall()
        epochs = db.execute("select number, epoch from foreseer_epochs order by number, epoch").fetchall()
        (status,) = db.execute("select status from foreseer_jobs").fetchone()
    assert status == "succeeded" and [state for _, state, _ in trials] == ["completed"] * 3
    assert any(resumed for *_, resumed in trials), "an in-flight trial continued from its checkpoint"
    for number, *_ in trials:
        assert [e for n, e in epochs if n == number] == list(range(1, EPOCHS + 1)), "each epoch once"
