"""Shared fixtures: two tiny search spaces defined here (as a user would) and small real datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from foreseer_spaces import Candidate, SearchSpace, Task
from foreseer_workers import DataBundle, TrialConfig, load_dataset, run_trial

NUM_THREADS = 1  # robust when the machine is shared: no OpenMP threads spinning against others


class TinyMLPSpace(SearchSpace):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear: has buffers and uses the RNG while training."""

    name = "tiny_mlp"

    def sample_arch(self, trial, task):
        return {
            "width": trial.suggest_int("width", 8, 64),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }

    def build(self, candidate: Candidate, task: Task) -> nn.Module:
        width, dropout = int(candidate.arch["width"]), float(candidate.arch["dropout"])
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(task.num_features, width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(width, task.num_outputs),
        )


class TinyConvSpace(SearchSpace):
    """Conv -> BatchNorm -> ReLU -> 2x2 max pool -> Linear, for (C, H, W) images."""

    name = "tiny_conv"

    def sample_arch(self, trial, task):
        return {"channels": trial.suggest_int("channels", 4, 16)}

    def build(self, candidate: Candidate, task: Task) -> nn.Module:
        channels = int(candidate.arch["channels"])
        return nn.Sequential(
            nn.Conv2d(task.input_shape[0], channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(channels * (task.input_shape[1] // 2) * (task.input_shape[2] // 2), task.num_outputs),
        )


class Recorder:
    """A report callback that keeps every metrics dict and moves each checkpoint into ``root``."""

    def __init__(self, root: Path, stop_after: int | None = None) -> None:
        self.root, self.stop_after = root, stop_after
        self.metrics: list[dict[str, float]] = []
        self.checkpoints: list[Path] = []

    def __call__(self, metrics: dict[str, float], checkpoint_dir: str) -> bool:
        target = self.root / f"epoch{int(metrics['epoch'])}"
        shutil.move(checkpoint_dir, target)  # the caller owns the directory once report is called
        self.metrics.append(metrics)
        self.checkpoints.append(target)
        return self.stop_after is not None and metrics["epoch"] >= self.stop_after


def mlp_candidate(**hparams) -> Candidate:
    return Candidate("tiny_mlp", {"width": 32, "dropout": 0.1}, hparams)


def mlp_config(max_epochs: int = 4, seed: int = 0, *, warmup: float = 0.0, **hparams) -> TrialConfig:
    defaults = {"optimizer": "adamw", "lr": 1e-2, "batch_size": 32, "lr_schedule": "cosine"}
    candidate = mlp_candidate(**{**defaults, **hparams})
    return TrialConfig(
        TinyMLPSpace(), candidate, max_epochs, seed, num_threads=NUM_THREADS, lr_warmup_epochs=warmup
    )


@pytest.fixture(scope="session")
def wine() -> DataBundle:
    return load_dataset("wine", seed=0)


@pytest.fixture(scope="session")
def digits() -> DataBundle:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def wine_run(wine, tmp_path_factory):
    """One 12-epoch training run on wine, shared by the tests that inspect its reports and checkpoints."""
    config = mlp_config(max_epochs=12)
    recorder = Recorder(tmp_path_factory.mktemp("wine_run"))
    outcome = run_trial(config, wine, recorder)
    return config, outcome, recorder


@pytest.fixture
def make_config():
    """``make_config(max_epochs, seed, **hparams)``: a tiny-MLP TrialConfig (AdamW, lr 1e-2, batch 32)."""
    return mlp_config


@pytest.fixture
def make_recorder(tmp_path):
    """``make_recorder(stop_after=None)``: a Recorder moving checkpoints into a fresh directory."""
    count = iter(range(10**6))

    def make(stop_after: int | None = None) -> Recorder:
        root = tmp_path / f"recorder{next(count)}"
        root.mkdir()
        return Recorder(root, stop_after)

    return make


def discard(metrics: dict[str, float], checkpoint_dir: str) -> None:
    """A report callback that keeps nothing (it owns the checkpoint directory, so it removes it)."""
    shutil.rmtree(checkpoint_dir)


@pytest.fixture
def spaces():
    """The test spaces by name, as a user-defined module would provide them."""
    return {"tiny_mlp": TinyMLPSpace(), "tiny_conv": TinyConvSpace()}


@pytest.fixture
def drop():
    """The report callback that discards every checkpoint."""
    return discard


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
