"""The metrics Foreseer's own training reports every epoch, per kind of task, with the direction
in which each improves: the one list the job spec checks objectives against (no torch import, so
the spec stays quick to load)."""

from __future__ import annotations

__all__ = ["DEFAULT_OBJECTIVE", "TASK_METRICS", "TRIAL_METRICS"]

TASK_METRICS: dict[str, dict[str, str]] = {
    "classification": {
        "val_accuracy": "max",
        "val_loss": "min",
        "train_accuracy": "max",
        "train_loss": "min",
        "num_params": "min",
        "latency_ms": "min",
    },
    # the losses are mean squared errors of the standardised target (what the network fits);
    # mse, rmse and mae are in the target's own units, r2 is the coefficient of determination
    "regression": {
        "val_rmse": "min",
        "val_mae": "min",
        "val_mse": "min",
        "val_r2": "max",
        "val_loss": "min",
        "train_loss": "min",
        "num_params": "min",
        "latency_ms": "min",
    },
}

#: Every metric above with its direction (a metric means the same in every task that reports it).
TRIAL_METRICS: dict[str, str] = {
    name: mode for metrics in TASK_METRICS.values() for name, mode in metrics.items()
}

#: The objective a job optimises unless it names one.
DEFAULT_OBJECTIVE: dict[str, str] = {"classification": "val_accuracy", "regression": "val_rmse"}
