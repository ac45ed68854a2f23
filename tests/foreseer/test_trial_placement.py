"""Where a trial runs and where a retried trial resumed, without a Ray runtime: the device a trial
picks, the run tags and warnings the driver writes from a trial's placement, and the epoch a retry
continued from, on real MLflow and job stores."""

import logging

import pytest
from mlflow.tracking import MlflowClient

from foreseer.backends.ray_tune import _device
from foreseer.backends.replay import ReplaySearcher
from foreseer.driver import PLACEMENT_PREFIX, SearchDriver
from foreseer.ledger import Ledger
from foreseer.spec import Objective
from foreseer.stopping import NoStoppingPolicy
from foreseer.store import JobStore
from foreseer.store.journal import JobJournal
from foreseer.tracking import Tracker


def placed(**placement):
    return {PLACEMENT_PREFIX + k: v for k, v in placement.items()}


def make_driver(tracker=None, journal=None, max_epochs=4):
    ledger = Ledger([Objective(metric="val_accuracy", mode="max")], max_epochs)
    return SearchDriver(ledger, ReplaySearcher([0, 1]), NoStoppingPolicy(), tracker=tracker, journal=journal)


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
    with caplog.at_level(logging.WARNING, logger="foreseer.backends.ray_tune"):
        assert _device([], cuda_available=False) == "cpu"
        assert _device([], cuda_available=True) == "cpu"
        assert not caplog.records
        assert _device(["1"], cuda_available=True) == "cuda"
        assert _device(["1"], cuda_available=False) == "cpu"
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "given GPU 1, but CUDA is not available on its worker: it trains on CPU" in caplog.text


def test_each_attempt_tags_the_trial_run_with_where_it_runs(tracker, caplog):
    driver = make_driver(tracker)
    driver.propose("b0")
    driver.trial_started("b0")
    first = placed(node_id="n1", hostname="host-a", device="cpu", gpus="0", cuda_visible_devices="0")
    with caplog.at_level(logging.WARNING, logger="foreseer.driver"):
        driver.epoch_reported("b0", {"epoch": 1, "val_accuracy": 0.5, **first})
        driver.epoch_reported("b0", {"epoch": 2, "val_accuracy": 0.6})  # later epochs carry no placement
    assert "trial 0 was given GPU 0 on host host-a, but CUDA is not available there" in caplog.text
    run_id = driver.ledger.get("t0000").run_id
    tags = MlflowClient(tracker.tracking_uri).get_run(run_id).data.tags
    expected = {"node_id": "n1", "hostname": "host-a", "device": "cpu", "gpus": "0", "cuda_visible_devices": "0"}
    assert {k: tags.get(f"foreseer.{k}") for k in expected} == expected

    driver.trial_retried("b0", "The actor died unexpectedly before finishing this task.")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="foreseer.driver"):
        second = placed(node_id="n2", hostname="host-b", device="cpu", gpus="")
        driver.epoch_reported("b0", {"epoch": 3, "val_accuracy": 0.7, **second})
    assert "was given GPU" not in caplog.text  # no GPU asked for, none given: nothing to warn about
    tags = MlflowClient(tracker.tracking_uri).get_run(run_id).data.tags
    assert (tags["foreseer.node_id"], tags["foreseer.hostname"], tags["foreseer.gpus"]) == ("n2", "host-b", "")
    tracker.flush()
    history = MlflowClient(tracker.tracking_uri).get_metric_history(run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3]
    assert set(MlflowClient(tracker.tracking_uri).get_run(run_id).data.metrics) == {"val_accuracy"}


def test_a_retry_records_the_epoch_it_resumed_from(journal, caplog):
    driver = make_driver(journal=journal)
    driver.propose("b0")
    for epoch in (1, 2):
        driver.epoch_reported("b0", {"epoch": epoch, "val_accuracy": 0.1 * epoch})
    driver.trial_retried("b0", "The actor died unexpectedly before finishing this task.")
    with caplog.at_level(logging.WARNING, logger="foreseer.driver"):
        driver.epoch_reported("b0", {"epoch": 3, "val_accuracy": 0.3})  # continued from its epoch-2 checkpoint
        driver.epoch_reported("b0", {"epoch": 4, "val_accuracy": 0.4})
    assert "restarted" not in caplog.text
    (row,) = journal.trials()
    assert (row.attempts, row.resumed_from_epoch) == (2, 2)
    assert row.retry_errors == ["The actor died unexpectedly before finishing this task."]
    assert [m["val_accuracy"] for m in journal.epochs()[0]] == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_a_retry_one_epoch_behind_the_record_trains_that_epoch_again_and_records_it_once(journal, caplog):
    driver = make_driver(journal=journal)
    driver.propose("b0")
    for epoch in (1, 2):
        driver.epoch_reported("b0", {"epoch": epoch, "val_accuracy": 0.1 * epoch})
    driver.trial_retried("b0", "The actor died unexpectedly before finishing this task.")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="foreseer.driver"):
        for epoch in (2, 3):  # lost after epoch 2's result, before Tune registered its checkpoint
            driver.epoch_reported("b0", {"epoch": epoch, "val_accuracy": 0.5})
    assert "trial 0 resumed from its checkpoint of epoch 1" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    (row,) = journal.trials()
    assert row.resumed_from_epoch == 1
    assert [m["val_accuracy"] for m in journal.epochs()[0]] == pytest.approx([0.1, 0.2, 0.5])


def test_a_retry_that_starts_over_is_recorded_and_its_repeated_epochs_are_not(journal, caplog):
    driver = make_driver(journal=journal)
    driver.propose("b0")
    for epoch in (1, 2):
        driver.epoch_reported("b0", {"epoch": epoch, "val_accuracy": 0.1 * epoch})
    driver.trial_retried("b0", "lost its checkpoint")
    with caplog.at_level(logging.WARNING, logger="foreseer.driver"):
        for epoch in (1, 2, 3):
            driver.epoch_reported("b0", {"epoch": epoch, "val_accuracy": 0.5})
    assert "trial 0 restarted after epoch 0, though 2 epochs were recorded: it lost its later" in caplog.text
    (row,) = journal.trials()
    assert row.resumed_from_epoch == 0
    assert [m["val_accuracy"] for m in journal.epochs()[0]] == pytest.approx([0.1, 0.2, 0.5])
