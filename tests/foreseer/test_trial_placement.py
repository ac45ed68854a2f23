"""Where a trial runs and where a retried trial resumed, without a Ray runtime: the device a trial
picks, the run tags and warnings the driver writes from a trial's placement, and the epoch a retry
continued from, on real MLflow and job stores. The driver's ticks are fed events by hand; the
backend only records what the driver asked of it."""

import json
import logging

import pytest
from mlflow.tracking import MlflowClient

from foreseer.backends import Backend, Crashed, Reported
from foreseer.backends.ray_actors import _device
from foreseer.backends.replay import ReplaySearcher
from foreseer.driver import LoopPlan, SearchDriver
from foreseer.ledger import Ledger
from foreseer.spec import Objective
from foreseer.stopping import NoStoppingPolicy
from foreseer.store import JobStore
from foreseer.store.journal import JobJournal
from foreseer.tracking import Tracker

PLAN = LoopPlan(trials=1, max_concurrent=1, max_retries=2)


class Calls(Backend):
    """Records the driver's calls; the test plays the trial's side."""

    def __init__(self):
        self.calls = []

    def start(self, trial):
        self.calls.append(("start", trial.trial_id, trial.resume_from))

    def proceed(self, trial_id):
        self.calls.append(("proceed", trial_id))

    def halt(self, trial_id):
        self.calls.append(("halt", trial_id))

    def events(self, timeout):
        return []

    def elapsed(self):
        return 0.0


def make_driver(tracker=None, journal=None, max_epochs=4):
    ledger = Ledger([Objective(metric="val_accuracy", mode="max")], max_epochs)
    driver = SearchDriver(
        ledger, ReplaySearcher([0, 1]), NoStoppingPolicy(), tracker=tracker, journal=journal
    )
    backend = Calls()
    driver.fill(backend, PLAN)
    return driver, backend


def checkpoint(tmp_path, epoch):
    folder = tmp_path / f"ckpt-{epoch}"
    folder.mkdir()
    (folder / "trial.json").write_text(json.dumps({"epoch": epoch}))
    return str(folder)


def epoch(driver, backend, n, value, checkpoint=None, **placement):
    driver.tick(
        backend, [Reported("t0000", {"epoch": n, "val_accuracy": value}, checkpoint, placement or None)], PLAN
    )


@pytest.fixture
def tracker(tracking_uri, tmp_path):
    location = None if tracking_uri.startswith("sqlite") else (tmp_path / "artifacts").as_uri()
    tracker = Tracker(tracking_uri, "placement", artifact_location=location, flush_interval=60.0)
    tracker.start_job("job1", {"name": "placement"}, "placement-job1")
    return tracker


@pytest.fixture
def journal(tmp_path):
    journal = JobJournal(JobStore(f"sqlite:///{tmp_path}/jobs.db"), "job1")
    journal.create_job("placement", {"name": "placement"})
    return journal


def test_a_trial_given_a_gpu_without_cuda_trains_on_cpu_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="foreseer.backends.ray_actors"):
        assert _device([], cuda_available=False) == "cpu"
        assert _device([], cuda_available=True) == "cpu"
        assert not caplog.records
        assert _device(["1"], cuda_available=True) == "cuda"
        assert _device(["1"], cuda_available=False) == "cpu"
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "given GPU 1, but CUDA is not available on its worker: it trains on CPU" in caplog.text


def test_each_attempt_tags_the_trial_run_with_where_it_runs(tracker, caplog):
    driver, backend = make_driver(tracker)
    first = {"node_id": "n1", "hostname": "host-a", "device": "cpu", "gpus": "0", "cuda_visible_devices": "0"}
    with caplog.at_level(logging.WARNING, logger="foreseer.driver"):
        epoch(driver, backend, 1, 0.5, **first)
        epoch(driver, backend, 2, 0.6)  # later epochs carry no placement
    assert "trial 0 was given GPU 0 on host host-a, but CUDA is not available there" in caplog.text
    run_id = driver.ledger.get("t0000").run_id
    tags = MlflowClient(tracker.tracking_uri).get_run(run_id).data.tags
    assert {k: tags.get(f"foreseer.{k}") for k in first} == first

    driver.tick(backend, [Crashed("t0000", "ActorDiedError: The actor died unexpectedly")], PLAN)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="foreseer.driver"):
        epoch(driver, backend, 3, 0.7, node_id="n2", hostname="host-b", device="cpu", gpus="")
    assert "was given GPU" not in caplog.text  # no GPU asked for, none given: nothing to warn about
    tags = MlflowClient(tracker.tracking_uri).get_run(run_id).data.tags
    assert (tags["foreseer.node_id"], tags["foreseer.hostname"], tags["foreseer.gpus"]) == (
        "n2",
        "host-b",
        "",
    )
    tracker.flush()
    history = MlflowClient(tracker.tracking_uri).get_metric_history(run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3]
    assert set(MlflowClient(tracker.tracking_uri).get_run(run_id).data.metrics) == {"val_accuracy"}


def test_a_retry_continues_from_the_checkpoint_of_the_last_recorded_epoch(journal, tmp_path, caplog):
    driver, backend = make_driver(journal=journal)
    for n in (1, 2):
        epoch(driver, backend, n, 0.1 * n, checkpoint(tmp_path, n))
    driver.tick(backend, [Crashed("t0000", "ActorDiedError: The actor died unexpectedly")], PLAN)
    assert backend.calls[-1] == ("start", "t0000", str(tmp_path / "ckpt-2"))
    epoch(driver, backend, 3, 0.3)
    epoch(driver, backend, 4, 0.4)
    (row,) = journal.trials()
    assert (row.attempts, row.resumed_from_epoch) == (2, 2)
    assert row.retry_errors == ["ActorDiedError: The actor died unexpectedly"]
    assert [m["val_accuracy"] for m in journal.epochs()[0]] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert "retry 1 from epoch 2" in caplog.text


def test_a_retry_without_a_checkpoint_starts_over_and_its_repeated_epochs_are_not_recorded(journal):
    driver, backend = make_driver(journal=journal)
    for n in (1, 2):
        epoch(driver, backend, n, 0.1 * n)
    driver.tick(backend, [Crashed("t0000", "RuntimeError: boom")], PLAN)
    assert backend.calls[-1] == ("start", "t0000", None)
    for n in (1, 2, 3):
        epoch(driver, backend, n, 0.5)
    (row,) = journal.trials()
    assert row.resumed_from_epoch == 0
    assert [m["val_accuracy"] for m in journal.epochs()[0]] == pytest.approx([0.1, 0.2, 0.5])
    assert [c[0] for c in backend.calls].count("proceed") == 5, "every report is answered"


def test_a_trial_that_keeps_crashing_fails_after_its_retries(journal):
    driver, backend = make_driver(journal=journal)
    for _ in range(PLAN.max_retries + 1):
        driver.tick(backend, [Crashed("t0000", "RuntimeError: boom")], PLAN)
    (row,) = journal.trials()
    assert (row.state, row.attempts, row.reason) == ("failed", 3, "RuntimeError: boom")
