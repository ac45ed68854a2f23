"""run_trial on real data: learning, reports, checkpoints, divergence, resume, warm starts, evaluate."""

from __future__ import annotations

import logging
import math
import re

import pytest
import torch
from safetensors.torch import load_file

from foreseer_spaces import Candidate
from foreseer_workers import TrialConfig, build_model, evaluate, load_weights, read_trial_info, run_trial
from foreseer_workers.training import TIMING_METRICS

METRIC_KEYS = {
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "epoch_seconds",
    "train_examples_per_s",
    "num_params",
    "latency_ms",
}


def _without_time(history) -> list[dict[str, float]]:
    return [{k: v for k, v in m.items() if k not in TIMING_METRICS} for m in history]


def _tensors_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_mlp_learns_wine(wine_run):
    _, outcome, recorder = wine_run
    assert outcome.status == "completed" and outcome.reason is None and outcome.epochs_completed == 12
    accuracies = [m["val_accuracy"] for m in recorder.metrics]
    assert accuracies[-1] >= 0.85
    assert recorder.metrics[-1]["train_loss"] < 0.5 * recorder.metrics[0]["train_loss"]


def test_metrics_are_reported_every_epoch_with_every_key(wine_run, wine):
    config, outcome, recorder = wine_run
    assert [m["epoch"] for m in recorder.metrics] == list(range(1, 13))
    assert list(outcome.history) == recorder.metrics
    num_params = sum(p.numel() for p in build_model(config, wine.task).parameters())
    for m in recorder.metrics:
        assert set(m) == METRIC_KEYS
        assert isinstance(m["epoch"], int) and m["num_params"] == num_params
        assert all(math.isfinite(v) for v in m.values())
        assert 0.0 <= m["train_accuracy"] <= 1.0 and 0.0 <= m["val_accuracy"] <= 1.0
        assert m["epoch_seconds"] > 0.0
        # the training pass alone, a share of the epoch's time
        assert m["train_examples_per_s"] > len(wine.y_train) / m["epoch_seconds"]
    lrs = [m["lr"] for m in recorder.metrics]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] < 1e-2 and lrs[-1] < 1e-4  # cosine towards 0


def test_checkpoints_hold_the_reported_state(wine_run, wine):
    config, _, recorder = wine_run
    assert len(set(recorder.checkpoints)) == 12  # a new directory every epoch
    for metrics, directory in zip(recorder.metrics, recorder.checkpoints, strict=True):
        assert sorted(p.name for p in directory.iterdir()) == ["model.safetensors", "state.pt", "trial.json"]
        info = read_trial_info(directory)
        assert info["epoch"] == metrics["epoch"] and info["metrics"] == metrics
        assert Candidate.from_dict(info["candidate"]) == config.candidate
        assert info["data_fingerprint"] == wine.fingerprint and info["max_epochs"] == 12
        state = torch.load(directory / "state.pt", weights_only=True)
        assert state["epoch"] == metrics["epoch"] and {"optimizer", "scheduler", "rng"} <= set(state)
        assert state["scheduler"]["last_epoch"] == 4 * metrics["epoch"]  # 4 steps per epoch
    model = build_model(config, wine.task)
    assert set(load_file(recorder.checkpoints[-1] / "model.safetensors")) == set(model.state_dict())


def test_evaluate_reproduces_the_reported_validation_metrics(wine_run, wine):
    config, _, recorder = wine_run
    for index in (0, 5, 11):
        model = build_model(config, wine.task)
        load_weights(model, recorder.checkpoints[index] / "model.safetensors")
        loss, accuracy = evaluate(model, wine.x_val, wine.y_val)
        assert accuracy == recorder.metrics[index]["val_accuracy"]
        assert loss == recorder.metrics[index]["val_loss"]


def test_init_weights_reproduce_a_trained_model(wine_run, wine, make_config, make_recorder):
    config, _, recorder = wine_run
    trained = load_file(recorder.checkpoints[-1] / "model.safetensors")
    trained_accuracy = recorder.metrics[-1]["val_accuracy"]
    warm = build_model(config, wine.task, init_weights=trained)
    assert evaluate(warm, wine.x_val, wine.y_val)[1] == trained_accuracy
    assert evaluate(build_model(config, wine.task), wine.x_val, wine.y_val)[1] < trained_accuracy - 0.2
    # A warm-started trial with a tiny LR starts where the trained model was, a cold one does not.
    warm_run = run_trial(make_config(1, lr=1e-6), wine, make_recorder(), init_weights=trained)
    cold_run = run_trial(make_config(1, lr=1e-6), wine, make_recorder())
    assert warm_run.history[0]["val_accuracy"] >= trained_accuracy - 0.05
    assert cold_run.history[0]["val_accuracy"] < trained_accuracy - 0.2


def test_init_weights_mismatch_is_rejected_by_name(wine, make_config, drop):
    config = make_config()
    good = build_model(config, wine.task).state_dict()
    with pytest.raises(ValueError, match=r"init_weights\['1.weight'\] has shape \(5, 13\).*\(32, 13\)"):
        build_model(config, wine.task, init_weights={**good, "1.weight": torch.zeros(5, 13)})
    with pytest.raises(ValueError, match=r"does not have: 'head\.weight'"):
        run_trial(config, wine, drop, init_weights={**good, "head.weight": torch.zeros(1)})
    with pytest.raises(TypeError, match=r"init_weights\['1.bias'\] must be a tensor"):
        build_model(config, wine.task, init_weights={"1.bias": "zeros"})


def test_missing_init_weights_keep_their_initialisation_and_are_logged(wine, make_config, caplog):
    config = make_config()
    default = build_model(config, wine.task).state_dict()
    with caplog.at_level(logging.INFO, logger="foreseer_workers"):
        model = build_model(config, wine.task, init_weights={"1.weight": torch.ones(32, 13)})
    state = model.state_dict()
    assert torch.equal(state["1.weight"], torch.ones(32, 13))
    assert torch.equal(state["1.bias"], default["1.bias"]) and torch.equal(
        state["5.weight"], default["5.weight"]
    )
    assert "'1.bias'" in caplog.text and "keep their initial values" in caplog.text


def test_diverging_trial_ends_with_a_reason_not_an_exception(wine, make_config, make_recorder):
    recorder = make_recorder()
    outcome = run_trial(make_config(6, optimizer="sgd", lr=1e4), wine, recorder)
    assert outcome.status == "diverged"
    assert re.fullmatch(r"training loss became (nan|inf|-inf) at epoch \d+, step \d+", outcome.reason)
    epoch = int(re.search(r"epoch (\d+)", outcome.reason).group(1))
    assert outcome.epochs_completed == epoch - 1 == len(recorder.metrics) == len(outcome.history)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resume_continues_exactly_like_a_straight_run(wine, make_config, make_recorder, optimizer):
    # Several steps per epoch, momentum / Adam state, dropout, batch norm, label smoothing and a step
    # schedule: everything has to be restored for the curves to match to the last bit.
    hparams = {
        "optimizer": optimizer,
        "lr": 0.05 if optimizer == "sgd" else 5e-3,
        "batch_size": 16,
        "lr_schedule": "step",
        "label_smoothing": 0.1,
    }
    straight, first, second = make_recorder(), make_recorder(stop_after=2), make_recorder()
    assert run_trial(make_config(4, seed=3, **hparams), wine, straight).status == "completed"
    halted = run_trial(make_config(4, seed=3, **hparams), wine, first)
    assert (halted.status, halted.epochs_completed) == ("stopped", 2)
    assert halted.reason == "stopped by the caller after epoch 2"
    resumed = run_trial(
        make_config(4, seed=3, **hparams), wine, second, resume_from=str(first.checkpoints[-1])
    )
    assert (resumed.status, resumed.epochs_completed) == ("completed", 4)
    assert [m["epoch"] for m in second.metrics] == [3, 4]
    assert _without_time(first.metrics + second.metrics) == _without_time(straight.metrics)
    assert _tensors_equal(
        load_file(second.checkpoints[-1] / "model.safetensors"),
        load_file(straight.checkpoints[-1] / "model.safetensors"),
    )
    # The straight run's own epoch-2 checkpoint resumes to the same place too.
    again = run_trial(
        make_config(4, seed=3, **hparams), wine, make_recorder(), resume_from=str(straight.checkpoints[1])
    )
    assert _without_time(again.history) == _without_time(straight.metrics[2:])


def test_resume_rejects_a_checkpoint_of_another_candidate_or_dataset(
    wine_run, wine, digits, make_config, drop
):
    config, _, recorder = wine_run
    with pytest.raises(ValueError, match="was written for candidate"):
        run_trial(make_config(lr=3e-3), wine, drop, resume_from=str(recorder.checkpoints[0]))
    with pytest.raises(ValueError, match="not both"):
        run_trial(config, wine, drop, init_weights={}, resume_from=str(recorder.checkpoints[0]))
    with pytest.raises(ValueError, match="not a trial checkpoint directory"):
        run_trial(config, wine, drop, resume_from=str(recorder.checkpoints[0].parent))
    from foreseer_workers import load_dataset

    other_split = load_dataset("wine", seed=1)
    with pytest.raises(ValueError, match="was written for data"):
        run_trial(config, other_split, drop, resume_from=str(recorder.checkpoints[0]))


def test_image_candidate_improves_on_digits(digits, spaces, make_recorder):
    hparams = {"optimizer": "adamw", "lr": 1e-3, "batch_size": 128, "lr_schedule": "constant"}
    config = TrialConfig(
        spaces["tiny_conv"], Candidate("tiny_conv", {"channels": 8}, hparams), 4, num_threads=1
    )
    outcome = run_trial(config, digits, make_recorder())
    accuracies = [m["val_accuracy"] for m in outcome.history]
    assert outcome.status == "completed" and accuracies[-1] > accuracies[0] + 0.05 and accuracies[-1] > 0.8


def test_same_seed_same_curve_other_seed_other_curve(wine, make_config, drop):
    runs = [_without_time(run_trial(make_config(2, seed=s), wine, drop).history) for s in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_run_trial_restores_the_thread_count(wine, make_config, drop):
    torch.set_num_threads(1)
    run_trial(make_config(1), wine, drop)
    assert torch.get_num_threads() == 1


def test_warmup_ramps_the_learning_rate_linearly(wine, make_config, drop):
    config = make_config(4, lr=1e-2, lr_schedule="constant", batch_size=32, warmup=2.0)
    lrs = [m["lr"] for m in run_trial(config, wine, drop).history]  # 4 steps per epoch, 8 warm-up steps
    assert lrs == pytest.approx([1e-2 * 4 / 8, 1e-2, 1e-2, 1e-2])


def test_mlp_fits_diabetes_and_reports_regression_metrics_that_score_reproduces(make_config, make_recorder):
    from foreseer_workers import load_dataset, score
    from foreseer_workers.metrics import TASK_METRICS

    diabetes = load_dataset("diabetes", seed=0)
    config = make_config(15, lr=3e-3)
    recorder = make_recorder()
    outcome = run_trial(config, diabetes, recorder)
    assert outcome.status == "completed"
    first, last = recorder.metrics[0], recorder.metrics[-1]
    assert set(TASK_METRICS["regression"]) <= set(last) and "val_accuracy" not in last
    target_std = diabetes.target_scale[1]
    assert last["val_rmse"] < 0.8 * target_std, "better than predicting the mean"
    assert last["val_r2"] > 0.3 and last["val_rmse"] == pytest.approx(last["val_mse"] ** 0.5)
    assert last["val_loss"] == pytest.approx(last["val_mse"] / target_std**2)
    assert last["train_loss"] < first["train_loss"]
    model = build_model(config, diabetes.task)
    load_weights(model, recorder.checkpoints[-1] / "model.safetensors")
    assert score(model, diabetes) == {k: v for k, v in last.items() if k.startswith("val_")}
