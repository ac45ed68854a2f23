"""A candidate's training hyperparameters: parsed with defaults, made into an optimizer and LR schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from foreseer_spaces import HPARAM_NAMES

if TYPE_CHECKING:
    import torch

OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine", "step")

# Defaults that depend on the optimizer: AdamW's are PyTorch's own, SGD's the usual CNN recipe.
_OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = {
    "adamw": {"lr": 1e-3, "weight_decay": 1e-2},
    "sgd": {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
}


@dataclass(frozen=True)
class TrainingHParams:
    """The training hyperparameters of one candidate, validated.

    Build it with :meth:`from_mapping`, which fills in the defaults for missing names. The names are
    ``foreseer_spaces.HPARAM_NAMES``, what every space samples:

    - ``optimizer``: ``"adamw"`` or ``"sgd"`` (with momentum and Nesterov); default ``"adamw"``.
    - ``lr``: > 0; default 1e-3 for adamw, 0.05 for sgd.
    - ``momentum``: in [0, 1), only with sgd; default 0.9.
    - ``weight_decay``: >= 0; default 1e-2 for adamw (PyTorch's), 5e-4 for sgd.
    - ``batch_size``: an integer >= 1; default 64.
    - ``label_smoothing``: in [0, 1); default 0.
    - ``lr_schedule``: ``"constant"``, ``"cosine"`` or ``"step"``; default ``"cosine"``.

    Example:
        >>> TrainingHParams.from_mapping({"optimizer": "sgd"}).lr
        0.05
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 1e-2
    batch_size: int = 64
    label_smoothing: float = 0.0
    lr_schedule: str = "cosine"

    @classmethod
    def from_mapping(cls, hparams: Mapping[str, Any]) -> TrainingHParams:
        """Validate ``hparams`` (a candidate's ``hparams``) and fill in the defaults.

        Raises:
            ValueError: an unknown name, or a value outside what is accepted (see the class table).
            TypeError: a value of the wrong type.
        """
        unknown = sorted(set(hparams) - set(HPARAM_NAMES))
        if unknown:
            raise ValueError(
                f"Unknown training hyperparameter(s) {unknown}; accepted names are {list(HPARAM_NAMES)}."
            )
        optimizer = _choice(hparams, "optimizer", OPTIMIZERS, "adamw")
        defaults = _OPTIMIZER_DEFAULTS[optimizer]
        if optimizer != "sgd" and "momentum" in hparams:
            raise ValueError(
                f"momentum applies only to optimizer 'sgd', but got momentum={hparams['momentum']!r} "
                f"with optimizer {optimizer!r}; drop it or use 'sgd'."
            )
        batch_size = hparams.get("batch_size", 64)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer of at least 1, but got {batch_size!r}.")
        return cls(
            optimizer=optimizer,
            lr=_number(hparams, "lr", defaults["lr"], low=0.0, low_open=True),
            momentum=_number(hparams, "momentum", defaults.get("momentum", 0.0), low=0.0, high=1.0),
            weight_decay=_number(hparams, "weight_decay", defaults["weight_decay"], low=0.0),
            batch_size=batch_size,
            label_smoothing=_number(hparams, "label_smoothing", 0.0, low=0.0, high=1.0),
            lr_schedule=_choice(hparams, "lr_schedule", LR_SCHEDULES, "cosine"),
        )


def _choice(hparams: Mapping[str, Any], name: str, accepted: tuple[str, ...], default: str) -> str:
    value = hparams.get(name, default)
    if value not in accepted:
        raise ValueError(f"{name} must be one of {list(accepted)}, but got {value!r}.")
    return str(value)


def _number(
    hparams: Mapping[str, Any],
    name: str,
    default: float,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
) -> float:
    value = hparams.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, but got {type(value).__name__} {value!r}.")
    value = float(value)
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value >= high:
        interval = f"{'(' if low_open else '['}{low}, {high})"
        raise ValueError(f"{name} must lie in {interval}, but got {value!r}.")
    return value


def build_optimizer(params: Iterable[torch.nn.Parameter], hp: TrainingHParams) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum and Nesterov (plain SGD when momentum is 0)."""
    import torch

    if hp.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
    return torch.optim.SGD(
        params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay, nesterov=hp.momentum > 0
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    hp: TrainingHParams,
    *,
    steps_per_epoch: int,
    max_epochs: int,
    warmup_epochs: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule over ``max_epochs``, times an optional linear warm-up.

    ``constant`` keeps the LR, ``cosine`` anneals it to 0 at the last step, ``step`` multiplies it
    by 0.1 at 50% and again at 75% of the steps. The warm-up ramps linearly from ``lr / warmup_steps``
    to ``lr`` over the first ``warmup_epochs`` epochs.
    """
    import torch

    factor = lr_factor(
        hp.lr_schedule,
        total_steps=steps_per_epoch * max_epochs,
        warmup_steps=round(warmup_epochs * steps_per_epoch),
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def lr_factor(schedule: str, *, total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """The multiplier of the base LR at each (0-based) optimizer step.

    A closure on purpose: ``LambdaLR`` does not store plain functions in its state, so a trial resumed
    with a different ``max_epochs`` follows the new schedule rather than the saved one.
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, but got {schedule!r}.")

    def factor(step: int) -> float:
        progress = min(step / max(total_steps, 1), 1.0)
        if schedule == "cosine":
            value = 0.5 * (1.0 + math.cos(math.pi * progress))
        elif schedule == "step":
            value = 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
        else:
            value = 1.0
        if step < warmup_steps:
            value *= (step + 1) / warmup_steps
        return value

    return factor
