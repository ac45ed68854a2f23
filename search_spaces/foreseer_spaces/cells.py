"""A NAS-Bench-201-style cell search space for image classification.

After "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search",
Dong & Yang, ICLR 2020. A cell is a DAG of 4 nodes; each of its 6 edges i -> j (i < j) carries one
of 5 operations, so there are 5**6 = 15,625 cells. Node j is the sum of op_ij(node i) over i < j;
node 3 is the cell's output. The macro skeleton is NAS-Bench-201's: a stem, three stages of cells
of widths C, 2C and 4C separated by residual reduction blocks, then BN-ReLU, global average pooling
and a linear classifier. Unlike NAS-Bench-201 (C = 16, 5 cells per stage), the stem width and the
number of cells per stage are searched too.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from foreseer_spaces._base import SearchSpace, TrialLike
from foreseer_spaces._candidate import Candidate, JsonScalar, Task

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
# (target j, source i) for every edge i -> j, in NAS-Bench-201's order.
EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for j in range(1, NUM_NODES) for i in range(j))
EDGE_KEYS: tuple[str, ...] = tuple(f"edge_{j}_{i}" for j, i in EDGES)
STEM_WIDTHS: tuple[int, ...] = (8, 16, 24)
CELLS_PER_STAGE: tuple[int, ...] = (1, 2, 3)
MIN_SIDE = 4  # two stride-2 reductions still leave at least 1x1


def nb201_arch_string(arch: Mapping[str, JsonScalar]) -> str:
    """The NAS-Bench-201 string of a cell, e.g. ``"|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|"``.

    Args:
        arch: a ``cells`` architecture (macro keys, if any, are ignored).

    Example:
        >>> arch = {key: "skip_connect" for key in EDGE_KEYS}
        >>> nb201_arch_string(arch).split("+")[0]
        '|skip_connect~0|'
    """
    nodes = []
    for j in range(1, NUM_NODES):
        nodes.append("|" + "|".join(f"{arch[f'edge_{j}_{i}']}~{i}" for i in range(j)) + "|")
    return "+".join(nodes)


def parse_nb201_arch_string(text: str) -> dict[str, str]:
    """The cell edges of a NAS-Bench-201 string: the inverse of :func:`nb201_arch_string`.

    Raises:
        ValueError: when ``text`` is not a 3-node NAS-Bench-201 cell over :data:`OPS`.
    """
    arch: dict[str, str] = {}
    nodes = text.split("+")
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(
            f"a NAS-Bench-201 cell string has {NUM_NODES - 1} '+'-separated nodes, but got {text!r}."
        )
    for j, node in enumerate(nodes, start=1):
        for token in filter(None, node.strip("|").split("|")):
            op, _, source = token.partition("~")
            key = f"edge_{j}_{source}"
            if key not in EDGE_KEYS or op not in OPS:
                raise ValueError(
                    f"invalid edge {token!r} in NAS-Bench-201 string {text!r}; ops are {list(OPS)}."
                )
            arch[key] = op
    missing = [key for key in EDGE_KEYS if key not in arch]
    if missing:
        raise ValueError(f"NAS-Bench-201 string {text!r} lacks edges {missing}.")
    return arch


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d (no bias) -> BatchNorm2d, NAS-Bench-201's convolution op."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


def make_op(op: str, channels: int) -> nn.Module:
    """The module of one cell edge (never called for ``"none"``, which has no module)."""
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"cell edge op must be one of {list(OPS[1:])}, but got {op!r}.")


class Cell(nn.Module):
    """One cell: node j = sum of op_ij(node i) over the live edges i -> j; returns node 3."""

    def __init__(self, arch: Mapping[str, JsonScalar], channels: int) -> None:
        super().__init__()
        # "none" edges get no module, so the graph and the parameter count hold only live ops.
        self.edges = nn.ModuleDict(
            {key: make_op(str(arch[key]), channels) for key in EDGE_KEYS if arch[key] != "none"}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]  # each (B, C, H, W)
        for j in range(1, NUM_NODES):
            inputs = [
                self.edges[f"edge_{j}_{i}"](nodes[i]) for i in range(j) if f"edge_{j}_{i}" in self.edges
            ]
            node = torch.zeros_like(x) if not inputs else inputs[0]
            for extra in inputs[1:]:
                node = node + extra
            nodes.append(node)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """NAS-Bench-201's reduction block: a stride-2 basic block with an avg-pool + 1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))  # (B, c_out, H/2, W/2)


class CellNetwork(nn.Module):
    """Stem, three stages of cells with reductions between them, and a classifier."""

    def __init__(self, arch: Mapping[str, JsonScalar], task: Task) -> None:
        super().__init__()
        width, depth = int(arch["stem_width"]), int(arch["cells_per_stage"])
        self.stem = nn.Sequential(
            nn.Conv2d(task.input_shape[0], width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        )
        layers: list[nn.Module] = []
        for stage, channels in enumerate((width, 2 * width, 4 * width)):
            if stage > 0:
                layers.append(ResidualReduction(channels // 2, channels))
            layers.extend(Cell(arch, channels) for _ in range(depth))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(4 * width), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * width, task.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, C, H, W)
        x = self.cells(x)  # (B, 4C, H/4, W/4)
        x = self.pool(self.head(x)).flatten(1)  # (B, 4C)
        return self.classifier(x)  # (B, num_outputs)


class CellSpace(SearchSpace):
    """NAS-Bench-201 cells (15,625 of them) in a searched macro skeleton, for image tasks.

    Architecture parameters: ``edge_1_0`` ... ``edge_3_2`` (the op of edge i -> j, see :data:`OPS`),
    ``stem_width`` (:data:`STEM_WIDTHS`) and ``cells_per_stage`` (:data:`CELLS_PER_STAGE`).

    Example:
        >>> import optuna
        >>> space, task = CellSpace(), Task((3, 32, 32), 10)
        >>> candidate = space.sample(optuna.trial.FixedTrial({
        ...     **{key: "nor_conv_3x3" for key in EDGE_KEYS}, "stem_width": 16, "cells_per_stage": 1,
        ...     "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64,
        ...     "label_smoothing": 0.0, "lr_schedule": "cosine"}), task)
        >>> space.build(candidate, task)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    name = "cells"

    def sample_arch(self, trial: TrialLike, task: Task) -> dict[str, JsonScalar]:
        arch: dict[str, JsonScalar] = {key: trial.suggest_categorical(key, list(OPS)) for key in EDGE_KEYS}
        arch["stem_width"] = trial.suggest_categorical("stem_width", list(STEM_WIDTHS))
        arch["cells_per_stage"] = trial.suggest_categorical("cells_per_stage", list(CELLS_PER_STAGE))
        return arch

    def build(self, candidate: Candidate, task: Task) -> nn.Module:
        self._check_candidate(candidate)
        self.check_task(task)
        missing = [key for key in (*EDGE_KEYS, "stem_width", "cells_per_stage") if key not in candidate.arch]
        if missing:
            raise ValueError(
                f"a {self.name!r} candidate needs architecture parameters {missing}; got {candidate!r}."
            )
        return CellNetwork(candidate.arch, task)

    def check_task(self, task: Task) -> None:
        shape = task.input_shape
        if not task.is_image or min(shape[1:]) < MIN_SIDE:
            raise ValueError(
                f"space {self.name!r} needs image inputs (channels, height, width) with height and width "
                f"at least {MIN_SIDE}; got input shape {shape}. Use the 'mlp' space for tabular data."
            )
