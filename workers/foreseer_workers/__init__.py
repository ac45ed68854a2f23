"""What runs inside a trial: datasets, the training loop, checkpoints and metric reports.

The package imports nothing heavy until a name is used: ``import foreseer_workers`` does not import
torch or scikit-learn, so the platform's CLI stays fast.

Example:
    >>> from foreseer_workers import load_dataset
    >>> load_dataset("digits").task
    Task(input_shape=(1, 8, 8), num_classes=10)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from foreseer_workers.checkpoint import load_weights, read_trial_info, save_weights
    from foreseer_workers.config import TrialConfig, TrialOutcome
    from foreseer_workers.data import DataBundle, available_datasets, load_dataset
    from foreseer_workers.evaluation import evaluate, evaluate_regression, measure_latency, score
    from foreseer_workers.optim import TrainingHParams
    from foreseer_workers.trainable import SpaceTrainable, Trainable
    from foreseer_workers.training import build_model, run_trial
    from foreseer_workers.user import TrialContext, TrialHalted, UserTrainable

_EXPORTS = {
    "DataBundle": "foreseer_workers.data",
    "available_datasets": "foreseer_workers.data",
    "load_dataset": "foreseer_workers.data",
    "TrainingHParams": "foreseer_workers.optim",
    "SpaceTrainable": "foreseer_workers.trainable",
    "Trainable": "foreseer_workers.trainable",
    "load_weights": "foreseer_workers.checkpoint",
    "read_trial_info": "foreseer_workers.checkpoint",
    "save_weights": "foreseer_workers.checkpoint",
    "TrialConfig": "foreseer_workers.config",
    "TrialOutcome": "foreseer_workers.config",
    "build_model": "foreseer_workers.training",
    "evaluate": "foreseer_workers.evaluation",
    "evaluate_regression": "foreseer_workers.evaluation",
    "measure_latency": "foreseer_workers.evaluation",
    "score": "foreseer_workers.evaluation",
    "run_trial": "foreseer_workers.training",
    "TrialContext": "foreseer_workers.user",
    "TrialHalted": "foreseer_workers.user",
    "UserTrainable": "foreseer_workers.user",
}

__all__ = [
    "DataBundle",
    "SpaceTrainable",
    "Trainable",
    "TrainingHParams",
    "TrialConfig",
    "TrialContext",
    "TrialHalted",
    "TrialOutcome",
    "UserTrainable",
    "available_datasets",
    "build_model",
    "evaluate",
    "evaluate_regression",
    "load_dataset",
    "load_weights",
    "measure_latency",
    "read_trial_info",
    "run_trial",
    "save_weights",
    "score",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'foreseer_workers' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
