"""Using a meta-trained hypernetwork: predict a candidate's weights, score candidates, warm-start.

Example:
    >>> predictor = GHNPredictor(ghn, get_space("cells"), data.task)
    >>> scores = predictor.score(candidates, data.x_val, data.y_val)   # accuracy, no training
    >>> init = predictor.warm_start(candidate, data.x_train)            # for run_trial(init_weights=)
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from foreseer.predictors.ghn.graph import GraphBatch, GraphEncoding, encode
from foreseer.predictors.ghn.model import GraphHyperNetwork, predicted_forward, predictive_mode

if TYPE_CHECKING:
    from foreseer_spaces import Candidate, SearchSpace, Task

__all__ = ["GHNPredictor", "Prediction"]

logger = logging.getLogger(__name__)

SCORE_BATCH = 256  # examples per forward pass when scoring: batch statistics need a sizeable batch


@dataclass(frozen=True)
class Prediction:
    """Predicted parameters of one network.

    Attributes:
        weights: ``state_dict`` name -> tensor (detached, on the CPU).
        skipped: notes on parameters left at their default initialisation (unsupported operations).
    """

    weights: dict[str, torch.Tensor]
    skipped: tuple[str, ...]


class GHNPredictor:
    """A meta-trained hypernetwork bound to a space and a task, with a small cache of built networks.

    Args:
        ghn: the hypernetwork (put in eval mode here).
        space: the space whose candidates it predicts.
        task: the task the networks are built for.
        cache_size: built networks and graph encodings kept, by architecture hash.
    """

    def __init__(
        self, ghn: GraphHyperNetwork, space: SearchSpace, task: Task, *, cache_size: int = 64
    ) -> None:
        self.ghn = ghn.eval()
        self.space = space
        self.task = task
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[nn.Module, GraphEncoding]] = OrderedDict()

    def network(self, candidate: Candidate) -> tuple[nn.Module, GraphEncoding]:
        """The built network of ``candidate`` (default initialisation) and its graph encoding."""
        key = candidate.arch_hash
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        module = self.space.build(candidate, self.task)
        from foreseer_spaces import trace

        entry = (module, encode(trace(module, self.task.input_shape), max_hops=self.ghn.config.max_hops))
        if entry[1].skipped:
            logger.warning(
                "the hypernetwork cannot predict part of candidate %s; it keeps its default init: %s",
                candidate.hash,
                list(entry[1].skipped),
            )
        self._cache[key] = entry
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return entry

    @torch.no_grad()
    def predict(self, candidate: Candidate) -> Prediction:
        """Predicted parameters of ``candidate``'s network."""
        _, enc = self.network(candidate)
        weights = self.ghn(GraphBatch.of([enc]))[0]
        return Prediction({k: v.detach().cpu() for k, v in weights.items()}, enc.skipped)

    @torch.no_grad()
    def predict_many(
        self, candidates: Sequence[Candidate], *, batch: int = 16
    ) -> list[dict[str, torch.Tensor]]:
        """Predicted parameters of several candidates, ``batch`` graphs per hypernetwork pass (the
        sweeps run level by level, so a batch of graphs costs little more than one)."""
        out: list[dict[str, torch.Tensor]] = []
        for start in range(0, len(candidates), batch):
            encodings = [self.network(c)[1] for c in candidates[start : start + batch]]
            out.extend(self.ghn(GraphBatch.of(encodings)) if encodings else [])
        return out

    @torch.no_grad()
    def score(self, candidates: Sequence[Candidate], x: Any, y: Any) -> list[float]:
        """Accuracy on ``(x, y)`` of each candidate with predicted weights and no training.

        Normalisation layers use batch statistics (running statistics are not predicted), in
        batches of :data:`SCORE_BATCH`.
        """
        x, y = _tensor(x, torch.float32), _tensor(y, torch.long)
        device = self.ghn.embed.op.weight.device
        scores = []
        for start in range(0, len(candidates), self.cache_size):
            chunk = candidates[start : start + self.cache_size]  # their networks stay cached meanwhile
            for candidate, weights in zip(chunk, self.predict_many(chunk), strict=True):
                scores.append(_accuracy(self.network(candidate)[0].to(device), weights, x, y))
        return scores

    @torch.no_grad()
    def warm_start(
        self, candidate: Candidate, x: Any, *, noise: float = 0.05, seed: int = 0
    ) -> dict[str, torch.Tensor]:
        """Initial weights for a trial: predicted parameters plus relative Gaussian noise (which
        also breaks the symmetry between tiled copies), and normalisation statistics measured on ``x``.

        Args:
            candidate: the candidate.
            x: training inputs (a few hundred are enough) for the running statistics.
            noise: noise standard deviation relative to each tensor's own standard deviation.
            seed: seeds the noise.

        Returns:
            ``state_dict`` name -> tensor, for ``run_trial(init_weights=...)``.
        """
        if not 0 <= noise < 1:
            raise ValueError(f"noise must lie in [0, 1), but got {noise!r}.")
        generator = torch.Generator().manual_seed(seed)
        weights = {}
        for name, w in self.predict(candidate).weights.items():
            std = w.std() if w.numel() > 1 else w.abs()
            weights[name] = w + noise * std * torch.randn(w.shape, generator=generator)
        module = self.space.build(candidate, self.task)
        module.load_state_dict(weights, strict=False)
        _calibrate_norms(module, _tensor(x[: SCORE_BATCH * 2], torch.float32))
        state = module.state_dict()
        return {k: v.detach().clone() for k, v in state.items() if k in weights or _is_norm_stat(k)}


def _accuracy(module: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    predictive_mode(module)
    device = next(iter(weights.values())).device
    correct = 0
    for idx in _batches(len(y)):
        xb, yb = x[idx].to(device), y[idx].to(device)
        correct += int((predicted_forward(module, weights, xb).argmax(1) == yb).sum())
    module.train()
    return correct / len(y)


def _tensor(value: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(dtype)
    return torch.tensor(value, dtype=dtype)  # a copy: dataset arrays are read-only


def _batches(n: int) -> tuple[torch.Tensor, ...]:
    # Near-equal batches, never one of a single example (batch statistics need two or more).
    return torch.tensor_split(torch.arange(n), max(1, -(-n // SCORE_BATCH)))


def _is_norm_stat(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")


def _calibrate_norms(module: nn.Module, x: torch.Tensor) -> None:
    """Set batch-norm running statistics to their cumulative average over ``x`` (two batches)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    predictive_mode(module)
    for idx in _batches(len(x)):
        module(x[idx])
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    module.train()
