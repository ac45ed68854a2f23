"""The worker with foreseer_spaces' built-in spaces: "mlp" on tabular data, "cells" on images."""

from __future__ import annotations

import optuna
import pytest

from foreseer_spaces import Candidate, get_space
from foreseer_workers import TrialConfig, build_model, evaluate, load_weights, run_trial

CELL = {
    "edge_1_0": "nor_conv_3x3",
    "edge_2_0": "skip_connect",
    "edge_2_1": "nor_conv_1x1",
    "edge_3_0": "avg_pool_3x3",
    "edge_3_1": "none",
    "edge_3_2": "nor_conv_3x3",
    "stem_width": 8,
    "cells_per_stage": 1,
}
MLP = {
    "depth": 2,
    "width_0": 64,
    "width_1": 32,
    "activation": "relu",
    "norm": "batch",
    "dropout": 0.1,
    "residual": True,
}


def test_mlp_space_reaches_85_percent_on_wine_within_15_epochs(wine, make_recorder):
    candidate = Candidate("mlp", MLP, {"optimizer": "adamw", "lr": 3e-3, "batch_size": 32})
    recorder = make_recorder()
    outcome = run_trial(
        TrialConfig(get_space("mlp"), candidate, max_epochs=15, num_threads=1), wine, recorder
    )
    assert outcome.status == "completed"
    assert max(m["val_accuracy"] for m in outcome.history) >= 0.85
    assert outcome.history[-1]["val_accuracy"] >= 0.85
    # The platform's re-check of the best trial: rebuild, reload, evaluate.
    model = build_model(TrialConfig(get_space("mlp"), candidate, max_epochs=15), wine.task)
    load_weights(model, recorder.checkpoints[-1] / "model.safetensors")
    assert evaluate(model, wine.x_val, wine.y_val)[1] == outcome.history[-1]["val_accuracy"]


def test_cells_space_improves_on_digits(digits, drop):
    hparams = {"optimizer": "adamw", "lr": 3e-3, "batch_size": 128, "lr_schedule": "cosine"}
    config = TrialConfig(get_space("cells"), Candidate("cells", CELL, hparams), max_epochs=4, num_threads=1)
    outcome = run_trial(config, digits, drop)
    accuracies = [m["val_accuracy"] for m in outcome.history]
    assert outcome.status == "completed"
    assert accuracies[-1] > accuracies[0] + 0.2 and accuracies[-1] >= 0.6


@pytest.mark.parametrize("seed", range(4))
def test_every_sampled_mlp_candidate_trains(wine, drop, seed):
    """Whatever the sampler draws (hyperparameters included), the worker accepts and trains it."""
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
    candidate = get_space("mlp").sample(trial, wine.task)
    outcome = run_trial(TrialConfig(get_space("mlp"), candidate, max_epochs=2, num_threads=1), wine, drop)
    assert outcome.status in ("completed", "diverged")
    assert len(outcome.history) == outcome.epochs_completed


def test_cells_space_rejects_tabular_data(wine, drop):
    config = TrialConfig(get_space("cells"), Candidate("cells", CELL, {}), max_epochs=1)
    with pytest.raises(ValueError, match="needs image inputs"):
        run_trial(config, wine, drop)
