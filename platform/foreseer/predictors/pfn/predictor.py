"""The forecaster: partial curves of any lengths in, predictive distributions at the horizon out.

One forward pass serves every running trial. Real curves of ``E`` epochs are mapped onto the
prior's ``H``-epoch horizon by time rescaling, epoch ``e -> e * H / E``; contexts longer than
``H`` points, or than ``max_context`` where one is set, are subsampled evenly, the first and the
last observed epoch always kept. By default the transformer blocks run in int8 (see
``quantize.py``); ``CurveForecaster.load(quantize=False)`` gives the exact float32 model.

Example:
    >>> f = CurveForecaster.load()                      # the checkpoint shipped in the package
    >>> fc = f.forecast([[0.3, 0.5, 0.6], [0.2, 0.25]], max_epochs=[20, 20])
    >>> fc.prob_above([0.7, 0.7]).shape
    (2,)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foreseer.predictors.pfn.checkpoint import load_checkpoint
from foreseer.predictors.pfn.model import CurvePFN

__all__ = ["DEFAULT_MAX_CONTEXT", "SHIPPED_CHECKPOINT", "CurveForecaster", "Forecast", "context_indices"]

logger = logging.getLogger(__name__)

#: The model shipped inside the package (see ``checkpoints/MODEL_CARD.md``).
SHIPPED_CHECKPOINT = Path(__file__).parent / "checkpoints" / "lcpfn_3x128.safetensors"

#: Most context points fed to the model per curve by default; ``None``: all of them (up to the
#: horizon). A cap makes long contexts cheap but costs likelihood: at 20 points, -0.06 at the 40%
#: cutoff and -0.07 at 80% (``benchmarks/pfn_inference.py``), so it is opt-in.
DEFAULT_MAX_CONTEXT: int | None = None


def context_indices(n: int, cap: int) -> np.ndarray:
    """Indices of at most ``cap`` (at least 2) of ``n`` points, evenly spaced, first and last kept.

    Example:
        >>> context_indices(10, 4).tolist()
        [0, 3, 6, 9]
    """
    if cap < 2:
        raise ValueError(f"cap must be at least 2 (the first and the last point), but got {cap=}.")
    if n <= cap:
        return np.arange(n)
    # with cap <= n the rounded positions are distinct, so exactly cap points
    return np.round(np.linspace(0, n - 1, cap)).astype(int)


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
        max_context: at most this many observed points per curve reach the model (evenly spaced,
            first and last kept); ``None``: up to the horizon. At least 2.

    Raises:
        ValueError: for ``max_context`` below 2.
    """

    def __init__(
        self,
        model: CurvePFN,
        meta: dict[str, Any] | None = None,
        stretch: bool = True,
        max_context: int | None = DEFAULT_MAX_CONTEXT,
    ) -> None:
        if max_context is not None and max_context < 2:
            raise ValueError(
                f"max_context must be at least 2 (the first and the last epoch) or None, but got {max_context=}."
            )
        self.model = model.eval()
        self.meta = meta or {}
        self.horizon = model.config.horizon
        self.stretch = stretch
        self.max_context = max_context

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        quantize: bool = True,
        max_context: int | None = DEFAULT_MAX_CONTEXT,
    ) -> CurveForecaster:
        """Load a checkpoint; the shipped one by default.

        Args:
            path: a ``.safetensors`` checkpoint; ``None``: the shipped one.
            quantize: run the transformer blocks in int8 (quantised here, from the float32 file).
            max_context: see the class; ``None`` feeds every observed point (up to the horizon).

        Raises:
            FileNotFoundError: when the file does not exist.
        """
        path = Path(path) if path is not None else SHIPPED_CHECKPOINT
        if not path.exists():
            raise FileNotFoundError(f"no PFN checkpoint at {path}; pass an existing .safetensors file.")
        model, meta = load_checkpoint(path)
        if quantize:
            from foreseer.predictors.pfn.quantize import quantize_int8

            quantize_int8(model)
        return cls(model, meta, max_context=max_context)

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
            + (f", context <= {self.max_context}" if self.max_context else "")
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
        *inputs, queries = self.inputs(curves, max_epochs, query_epochs)
        with torch.inference_mode():
            logits = self.model(*inputs)
        return Forecast(self.model, logits, queries)

    def inputs(
        self,
        curves: Sequence[Sequence[float]],
        max_epochs: int | Sequence[int],
        query_epochs: Sequence[Sequence[float]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
        """The network's inputs for :meth:`forecast` (same arguments and errors).

        Returns:
            ``(ctx_t, ctx_y, qry_t, ctx_len, queries)``: right-padded contexts ``(B, L)`` on the
            horizon's time scale, query times ``(B, Q)``, valid lengths ``(B,)``, and the query
            epochs in each curve's own units.
        """
        n = len(curves)
        budgets = [int(max_epochs)] * n if isinstance(max_epochs, int) else [int(e) for e in max_epochs]
        if len(budgets) != n:
            raise ValueError(f"max_epochs must give one budget per curve ({n}), but got {len(budgets)}.")
        queries = np.asarray(
            query_epochs if query_epochs is not None else [[e] for e in budgets], dtype=np.float64
        )
        ctx = [
            self._context(np.asarray(c, dtype=np.float64), e) for c, e in zip(curves, budgets, strict=True)
        ]
        length = max(len(t) for t, _ in ctx)
        ctx_t = np.zeros((n, length), dtype=np.float32)
        ctx_y = np.zeros((n, length), dtype=np.float32)
        for b, (t, y) in enumerate(ctx):
            ctx_t[b, : len(t)], ctx_y[b, : len(y)] = t, y
        scale = self._scale(np.asarray(budgets, dtype=np.float64))[:, None]
        return (
            torch.from_numpy(ctx_t),
            torch.from_numpy(ctx_y),
            torch.from_numpy((queries * scale).astype(np.float32)),
            torch.tensor([len(t) for t, _ in ctx]),
            queries,
        )

    def _context(self, y: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
        if y.size == 0:
            raise ValueError("every curve needs at least one observed epoch, but got an empty one.")
        if y.size > budget:
            raise ValueError(f"a curve has {y.size} epochs, more than its budget max_epochs={budget}.")
        epochs = np.arange(1, y.size + 1)
        keep = np.isfinite(y)
        epochs, y = epochs[keep], y[keep]
        if y.size == 0:
            epochs, y = np.array([1]), np.array([0.0])
        idx = context_indices(y.size, min(self.horizon, self.max_context or self.horizon))
        return epochs[idx] * self._scale(np.float64(budget)), y[idx]

    def _scale(self, budgets: np.ndarray) -> np.ndarray:
        scale = self.horizon / budgets
        return scale if self.stretch else np.minimum(scale, 1.0)
