"""Training hyperparameters, searched jointly with the architecture and shared by every space."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from foreseer_spaces._base import TrialLike
    from foreseer_spaces._candidate import JsonScalar

# The trainer in foreseer_workers reads exactly these names.
HPARAM_NAMES: tuple[str, ...] = (
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch_size",
    "label_smoothing",
    "lr_schedule",
)


def sample_hparams(trial: TrialLike) -> dict[str, JsonScalar]:
    """Sample the training hyperparameters through ``trial``.

    ``momentum`` is conditional: it is sampled, and present in the result, only for SGD.

    Args:
        trial: an Optuna trial or anything with its ``suggest_*`` methods.

    Returns:
        A flat mapping whose keys are a subset of :data:`HPARAM_NAMES`.

    Example:
        >>> import optuna
        >>> hparams = sample_hparams(optuna.trial.FixedTrial({
        ...     "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64,
        ...     "label_smoothing": 0.0, "lr_schedule": "cosine"}))
        >>> "momentum" in hparams
        False
    """
    hparams: dict[str, JsonScalar] = {"optimizer": trial.suggest_categorical("optimizer", ["adamw", "sgd"])}
    hparams["lr"] = trial.suggest_float("lr", 1e-4, 0.3, log=True)
    if hparams["optimizer"] == "sgd":
        hparams["momentum"] = trial.suggest_float("momentum", 0.8, 0.99)
    hparams["weight_decay"] = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    hparams["batch_size"] = trial.suggest_categorical("batch_size", [32, 64, 128])
    hparams["label_smoothing"] = trial.suggest_float("label_smoothing", 0.0, 0.2)
    hparams["lr_schedule"] = trial.suggest_categorical("lr_schedule", ["constant", "cosine", "step"])
    return hparams
