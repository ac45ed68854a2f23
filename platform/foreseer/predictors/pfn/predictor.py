"""The forecaster: partial curves of any lengths in, predictive distributions at the horizon out.

One forward pass serves every running trial. Real curves of ``E`` epochs are mapped onto the
prior's ``H``-epoch horizon by time rescaling, epoch ``e -> e * H / E``; contexts longer than the
model's ``context_bins`` (or, without bins, than ``H``) are summarised into runs of consecutive
epochs (``context.py``). By default the transformer blocks run in int8 (see
``quantize.py``); ``CurveForecaster.load(quantize=False)`` gives the exact float32 model.

Example:
    >>> f = CurveForecaster.load()                      # the checkpoint shipped in the package
    >>> fc = f.forecast([[0.3, 0.5, 0.6], [0.2, 0.25]], max_epochs=[20, 20])
    >>> fc.prob_above([0.7, 0.7]).shape
    (2,)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foreseer.predictors.pfn.checkpoint import load_checkpoint
from foreseer.predictors.pfn.context import Context, bin_context
from foreseer.predictors.pfn.header import SHIPPED
from foreseer.predictors.pfn.model import CurvePFN

__all__ = ["SHIPPED_CHECKPOINT", "CurveForecaster", "Forecast"]

#: What one forward pass costs beyond its tokens, in tokens: on a 2-core EPYC, one thread, a
#: pass over 1,365 tokens took 20 ms and one over 4 curves 2.5 ms, so ~15 us a token and ~170
#: tokens a call (``benchmarks/scale.py``). Only the batching of :meth:`CurveForecaster.forecast`
#: depends on it, never a result.
_CALL_TOKENS = 170

#: The model shipped inside the package (see ``checkpoints/MODEL_CARD.md``).
SHIPPED_CHECKPOINT = SHIPPED["per_curve"]


@dataclass(frozen=True)
class Forecast:
    """Predictive distributions for a batch of curves at their query epochs.

    Attributes:
        logits: bucket logits, ``(B, Q, n_buckets)``.
        epochs: the query epochs in each curve's own epoch units, ``(B, Q)``.
    """

    model: CurvePFN
    logits: torch.Tensor
    epochs: np.ndarray

    def quantiles(self, q: Sequence[float]) -> np.ndarray:
        """Quantiles ``(B, Q, len(q))`` on the prior's scale."""
        with torch.no_grad():
            return self.model.bar.quantile(self.logits, torch.tensor(q, dtype=torch.float32)).numpy()

    def mean(self) -> np.ndarray:
        """Predictive means ``(B, Q)``."""
        with torch.no_grad():
            return self.model.bar.mean(self.logits).numpy()

    def prob_above(self, threshold: Sequence[float] | np.ndarray, query: int = -1) -> np.ndarray:
        """P(y at query ``query`` > ``threshold[b]``) per curve, ``(B,)``; default: the last query."""
        thr = torch.as_tensor(np.asarray(threshold, dtype=np.float32))
        with torch.no_grad():
            return (1 - self.model.bar.cdf(self.logits[:, query], thr)).numpy()


class CurveForecaster:
    """Batched learning-curve forecasts from a :class:`CurvePFN`.

    Args:
        model: the network (put in eval mode), float32 or quantised by :func:`quantize_int8`.
        meta: the checkpoint's training metadata.
        stretch: map a budget of E epochs onto the whole horizon (``e -> e * H / E``); when False,
            epochs are used as they are (only budgets above H are compressed onto it).
    """

    def __init__(
        self,
        model: CurvePFN,
        meta: dict[str, Any] | None = None,
        stretch: bool = True,
    ) -> None:
        self.model = model.eval()
        self.meta = meta or {}
        self.horizon = model.config.horizon
        self.stretch = stretch

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        quantize: bool = True,
    ) -> CurveForecaster:
        """Load a checkpoint; the shipped one by default.

        Args:
            path: a ``.safetensors`` checkpoint; ``None``: the shipped one.
            quantize: run the transformer blocks in int8 (quantised here, from the float32 file).

        Raises:
            FileNotFoundError: when the file does not exist.
            ValueError: when it holds an in-context model (load it with ``JobForecaster.load``).
        """
        path = Path(path) if path is not None else SHIPPED_CHECKPOINT
        if not path.exists():
            raise FileNotFoundError(f"no PFN checkpoint at {path}; pass an existing .safetensors file.")
        model, meta = load_checkpoint(path)
        if model.config.features:
            raise ValueError(
                f"{path} holds an in-context PFN, which forecasts whole jobs: load it with "
                "JobForecaster.load, or pass a per-curve checkpoint."
            )
        if quantize:
            from foreseer.predictors.pfn.quantize import quantize_int8

            quantize_int8(model)
        return cls(model, meta)

    @property
    def quantized(self) -> bool:
        """Whether the model runs in int8."""
        from foreseer.predictors.pfn.quantize import Int8Linear

        return any(isinstance(m, Int8Linear) for m in self.model.modules())

    def describe(self) -> str:
        c = self.model.config
        seen = self.meta.get("curves_seen")
        return (
            f"{c.n_layer}x{c.n_embd}, {self.meta.get('prior', '?')} prior"
            + (f", {seen:,} curves" if seen else "")
            + (", int8" if self.quantized else "")
            + (f", context in {c.context_bins} bins" if c.context_bins else "")
        )

    def forecast(
        self,
        curves: Sequence[Sequence[float]],
        max_epochs: int | Sequence[int],
        query_epochs: Sequence[Sequence[float]] | None = None,
    ) -> Forecast:
        """Forecast each curve at its final epoch (or at ``query_epochs``) in one forward pass.

        Args:
            curves: observed values on the prior's scale (see :class:`CurveNormalizer`), each at
                least one epoch long, epochs ``1..len(curve)``.
            max_epochs: each curve's epoch budget (one int for all, or one per curve).
            query_epochs: epochs to forecast per curve (same count for each); default the last.

        Raises:
            ValueError: for an empty curve or a curve longer than its budget.
        """
        n = len(curves)
        budgets = _budgets(max_epochs, n)
        groups = self._by_tokens(curves, 1 if query_epochs is None else len(query_epochs[0]))
        if len(groups) == 1:
            context, qry_t, queries = self.inputs(curves, budgets, query_epochs)
            with torch.inference_mode():
                return Forecast(self.model, self.model.predict(context, qry_t), queries)
        queries = None
        with torch.inference_mode():
            for rows in groups:
                context, qry_t, part_queries = self.inputs(
                    [curves[i] for i in rows],
                    [budgets[i] for i in rows],
                    None if query_epochs is None else [query_epochs[i] for i in rows],
                )
                logits = self.model.predict(context, qry_t)
                if queries is None:
                    queries = np.empty((n, part_queries.shape[1]), dtype=np.float64)
                    out = logits.new_empty((n, *logits.shape[1:]))
                queries[rows], out[rows] = part_queries, logits
        return Forecast(self.model, out, queries)

    def _by_tokens(self, curves: Sequence[Sequence[float]], queries: int) -> list[list[int]]:
        """Indices of ``curves`` in batches of similar context length, so that a batch is padded
        only to its own longest curve: a job's running trials are mostly short, and a few long
        ones would otherwise pad every row. Batches are contiguous runs of lengths chosen to
        minimise the estimated cost, a fixed cost per forward pass (``_CALL_TOKENS``) plus one per
        padded token. Exact: padding never reaches a valid row, and int8 activations are scaled
        per token."""
        bins = self.model.config.context_bins or self.horizon
        rows: dict[int, list[int]] = {}
        for i, curve in enumerate(curves):
            rows.setdefault(min(len(curve), bins), []).append(i)
        lengths = sorted(rows)
        # cost[j]: the cheapest batching of the j shortest lengths; cut[j]: where its last batch starts
        cost, cut = [0.0] + [math.inf] * len(lengths), [0] * (len(lengths) + 1)
        for j in range(1, len(lengths) + 1):
            count = 0
            for i in range(j - 1, -1, -1):
                count += len(rows[lengths[i]])
                total = cost[i] + _CALL_TOKENS + count * (lengths[j - 1] + queries)
                if total < cost[j]:
                    cost[j], cut[j] = total, i
        batches, j = [], len(lengths)
        while j > 0:
            batches.append([r for length in lengths[cut[j] : j] for r in rows[length]])
            j = cut[j]
        return batches[::-1]

    def inputs(
        self,
        curves: Sequence[Sequence[float]],
        max_epochs: int | Sequence[int],
        query_epochs: Sequence[Sequence[float]] | None = None,
    ) -> tuple[Context, torch.Tensor, np.ndarray]:
        """The network's inputs for :meth:`forecast` (same arguments and errors).

        Returns:
            ``(context, qry_t, queries)``: the context tokens on the horizon's time scale, query
            times ``(B, Q)`` on it, and the query epochs in each curve's own units.
        """
        budgets = _budgets(max_epochs, len(curves))
        queries = np.asarray(
            query_epochs if query_epochs is not None else [[e] for e in budgets], dtype=np.float64
        )
        scale = self._scale(np.asarray(budgets, dtype=np.float64))
        epochs, values = _observed(curves, budgets)
        epochs = [t * s for t, s in zip(epochs, scale.tolist(), strict=True)]
        # a model without context bins sees every point, up to one token per epoch of its horizon
        context = bin_context(epochs, values, self.model.config.context_bins or self.horizon)
        return context, torch.from_numpy((queries * scale[:, None]).astype(np.float32)), queries

    def _scale(self, budgets: np.ndarray) -> np.ndarray:
        scale = self.horizon / budgets
        return scale if self.stretch else np.minimum(scale, 1.0)


def _observed(curves: Sequence[Sequence[float]], budgets: Sequence[int]) -> tuple[list, list]:
    """The finite points of each curve and their epochs (``1..``); a curve with none counts as
    one 0. Vectorised over the batch: one pass over every value."""
    lengths = np.fromiter((len(c) for c in curves), dtype=np.int64, count=len(curves))
    if lengths.size and lengths.min() == 0:
        raise ValueError("every curve needs at least one observed epoch, but got an empty one.")
    over = np.flatnonzero(lengths > np.asarray(budgets, dtype=np.int64))
    if over.size:
        i = int(over[0])
        raise ValueError(f"a curve has {lengths[i]} epochs, more than its budget max_epochs={budgets[i]}.")
    flat = np.fromiter((v for c in curves for v in c), dtype=np.float64, count=int(lengths.sum()))
    ends = np.cumsum(lengths)
    values = np.split(flat, ends[:-1])
    epochs = [np.arange(1, n + 1, dtype=np.float64) for n in lengths.tolist()]
    finite = np.isfinite(flat)
    if finite.all():
        return epochs, values
    for i, mask in enumerate(np.split(finite, ends[:-1])):
        if not mask.any():
            epochs[i], values[i] = np.array([1.0]), np.array([0.0])
        elif not mask.all():
            epochs[i], values[i] = epochs[i][mask], values[i][mask]
    return epochs, values


def _budgets(max_epochs: int | Sequence[int], n: int) -> list[int]:
    budgets = [int(max_epochs)] * n if isinstance(max_epochs, int) else [int(e) for e in max_epochs]
    if len(budgets) != n:
        raise ValueError(f"max_epochs must give one budget per curve ({n}), but got {len(budgets)}.")
    return budgets
