"""A multilayer-perceptron search space for tabular data (any input is flattened)."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

import torch
from torch import nn

from foreseer_spaces._base import SearchSpace, TrialLike
from foreseer_spaces._candidate import Candidate, JsonScalar, Task

MAX_DEPTH = 4
WIDTHS: tuple[int, ...] = (32, 64, 128, 256)
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
NORMS: tuple[str, ...] = ("none", "batch", "layer")


def make_norm(norm: str, width: int) -> nn.Module | None:
    """The normalisation layer of a block, or ``None`` for ``"none"``."""
    if norm == "none":
        return None
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    raise ValueError(f"norm must be one of {list(NORMS)}, but got {norm!r}.")


class MLPBlock(nn.Module):
    """Linear -> norm -> activation -> dropout, with an optional residual connection.

    The residual is an identity when the widths match and a bias-free linear projection otherwise.
    Parts that would do nothing (norm "none", dropout 0) get no module.
    """

    def __init__(
        self, d_in: int, d_out: int, *, activation: str, norm: str, dropout: float, residual: bool
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, but got {activation!r}.")
        self.linear = nn.Linear(d_in, d_out)
        self.norm = make_norm(norm, d_out)
        self.act = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.residual = residual
        self.shortcut = nn.Linear(d_in, d_out, bias=False) if residual and d_in != d_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)  # (B, d_out)
        if self.norm is not None:
            h = self.norm(h)
        h = self.act(h)
        if self.dropout is not None:
            h = self.dropout(h)
        if not self.residual:
            return h
        return h + (x if self.shortcut is None else self.shortcut(x))


class MLP(nn.Module):
    """Flatten, ``depth`` blocks, linear classifier."""

    def __init__(self, arch: Mapping[str, JsonScalar], task: Task) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        widths = [task.num_features] + [int(arch[f"width_{i}"]) for i in range(int(arch["depth"]))]
        self.blocks = nn.Sequential(
            *(
                MLPBlock(
                    d_in,
                    d_out,
                    activation=str(arch["activation"]),
                    norm=str(arch["norm"]),
                    dropout=float(arch["dropout"]),
                    residual=bool(arch["residual"]),
                )
                for d_in, d_out in pairwise(widths)
            )
        )
        self.classifier = nn.Linear(widths[-1], task.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)  # (B, num_features)
        x = self.blocks(x)  # (B, width of the last block)
        return self.classifier(x)  # (B, num_outputs)


class MLPSpace(SearchSpace):
    """MLPs of 1 to 4 blocks for tabular data; any input shape is flattened.

    Architecture parameters: ``depth`` (1..4); ``width_0`` ... ``width_{depth-1}`` (:data:`WIDTHS`,
    sampled only for the blocks that exist); ``activation`` (:data:`ACTIVATIONS`); ``norm``
    (:data:`NORMS`); ``dropout`` (0.0 to 0.5 by 0.05); ``residual`` (bool).

    Example:
        >>> import optuna
        >>> space, task = MLPSpace(), Task((13,), 3)
        >>> candidate = space.sample(optuna.create_study().ask(), task)
        >>> space.build(candidate, task)(torch.zeros(4, 13)).shape
        torch.Size([4, 3])
    """

    name = "mlp"

    def sample_arch(self, trial: TrialLike, task: Task) -> dict[str, JsonScalar]:
        depth = trial.suggest_int("depth", 1, MAX_DEPTH)
        arch: dict[str, JsonScalar] = {"depth": depth}
        for i in range(depth):
            arch[f"width_{i}"] = trial.suggest_categorical(f"width_{i}", list(WIDTHS))
        arch["activation"] = trial.suggest_categorical("activation", list(ACTIVATIONS))
        arch["norm"] = trial.suggest_categorical("norm", list(NORMS))
        arch["dropout"] = trial.suggest_float("dropout", 0.0, 0.5, step=0.05)
        arch["residual"] = trial.suggest_categorical("residual", [False, True])
        return arch

    def build(self, candidate: Candidate, task: Task) -> nn.Module:
        self._check_candidate(candidate)
        arch = candidate.arch
        depth = arch.get("depth")
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"a {self.name!r} candidate needs an integer depth >= 1; got {candidate!r}.")
        needed = [f"width_{i}" for i in range(depth)] + ["activation", "norm", "dropout", "residual"]
        missing = [key for key in needed if key not in arch]
        if missing:
            raise ValueError(
                f"a {self.name!r} candidate needs architecture parameters {missing}; got {candidate!r}."
            )
        return MLP(arch, task)
