"""TrialConfig and training hyperparameters: defaults, validation messages, the LR schedules."""

from __future__ import annotations

import dataclasses

import pytest

from foreseer_spaces import HPARAM_NAMES, Candidate
from foreseer_workers import TrainingHParams, TrialConfig
from foreseer_workers.optim import lr_factor


def test_hyperparameter_names_are_the_ones_spaces_sample():
    assert {f.name for f in dataclasses.fields(TrainingHParams)} == set(HPARAM_NAMES)


def test_defaults_fill_missing_hyperparameters():
    assert TrainingHParams.from_mapping({}) == TrainingHParams(
        optimizer="adamw",
        lr=1e-3,
        momentum=0.0,
        weight_decay=1e-2,
        batch_size=64,
        label_smoothing=0.0,
        lr_schedule="cosine",
    )
    sgd = TrainingHParams.from_mapping({"optimizer": "sgd"})
    assert (sgd.lr, sgd.momentum, sgd.weight_decay) == (0.05, 0.9, 5e-4)
    assert TrainingHParams.from_mapping({"optimizer": "sgd", "momentum": 0.5, "lr": 1}).momentum == 0.5


BAD_HPARAMS = {
    "unknown optimizer": ({"optimizer": "adam"}, ValueError, r"optimizer must be one of \['adamw', 'sgd'\]"),
    "unknown schedule": ({"lr_schedule": "linear"}, ValueError, "lr_schedule must be one of .*'linear'"),
    "unknown name": (
        {"learning_rate": 0.1},
        ValueError,
        r"Unknown training hyperparameter\(s\) \['learning_rate'\]",
    ),
    "zero lr": ({"lr": 0.0}, ValueError, r"lr must lie in \(0.0, inf\), but got 0.0"),
    "nan lr": ({"lr": float("nan")}, ValueError, "lr must lie in"),
    "text lr": ({"lr": "0.1"}, TypeError, "lr must be a number, but got str"),
    "momentum 1": ({"optimizer": "sgd", "momentum": 1.0}, ValueError, r"momentum must lie in \[0.0, 1.0\)"),
    "momentum with adamw": ({"momentum": 0.9}, ValueError, "momentum applies only to optimizer 'sgd'"),
    "negative weight decay": ({"weight_decay": -1e-4}, ValueError, "weight_decay must lie in"),
    "zero batch": ({"batch_size": 0}, ValueError, "batch_size must be an integer of at least 1, but got 0"),
    "float batch": ({"batch_size": 32.5}, ValueError, "batch_size must be an integer"),
    "label smoothing 1": ({"label_smoothing": 1.0}, ValueError, "label_smoothing must lie in"),
}


@pytest.mark.parametrize("case", list(BAD_HPARAMS), ids=list(BAD_HPARAMS))
def test_bad_hyperparameters_are_rejected_when_the_config_is_built(case, spaces):
    hparams, error, pattern = BAD_HPARAMS[case]
    with pytest.raises(error, match=pattern):
        TrialConfig(spaces["tiny_mlp"], Candidate("tiny_mlp", {"width": 8, "dropout": 0.0}, hparams), 3)


BAD_CONFIGS = {
    "zero epochs": ({"max_epochs": 0}, ValueError, "max_epochs must be an integer of at least 1, but got 0"),
    "zero threads": ({"num_threads": 0}, ValueError, "num_threads must be"),
    "negative seed": ({"seed": -2}, ValueError, "seed must be a non-negative integer, but got -2"),
    "bad device": ({"device": "gpu"}, ValueError, "device must be a torch device string .*'gpu'"),
    "long warm-up": (
        {"lr_warmup_epochs": 5.0},
        ValueError,
        r"lr_warmup_epochs must lie in \[0, max_epochs=3\]",
    ),
    "other space": ({"candidate": Candidate("mlp", {}, {})}, ValueError, "candidate belongs to space 'mlp'"),
    "not a space": ({"space": "tiny_mlp"}, TypeError, "space must be a foreseer_spaces.SearchSpace"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS), ids=list(BAD_CONFIGS))
def test_bad_config_is_rejected(case, spaces):
    changes, error, pattern = BAD_CONFIGS[case]
    kwargs = {
        "space": spaces["tiny_mlp"],
        "candidate": Candidate("tiny_mlp", {}, {}),
        "max_epochs": 3,
        **changes,
    }
    with pytest.raises(error, match=pattern):
        TrialConfig(**kwargs)


def test_lr_schedules():
    cosine = lr_factor("cosine", total_steps=100)
    assert cosine(0) == 1.0 and cosine(50) == pytest.approx(0.5) and cosine(100) == pytest.approx(0.0)
    step = lr_factor("step", total_steps=100)
    assert [step(s) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    constant = lr_factor("constant", total_steps=100, warmup_steps=4)
    assert [constant(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
