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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foreseer.predictors.pfn.checkpoint import load_checkpoint
from foreseer.predictors.pfn.context import Context, bin_context
from foreseer.predictors.pfn.model import CurvePFN

__all__ = ["SHIPPED_CHECKPOINT", "CurveForecaster", "Forecast"]

#: The model shipped inside the package (see ``checkpoints/MODEL_CARD.md``).
SHIPPED_CHECKPOINT = Path(__file__).parent / "checkpoints" / "lcpfn_3x128.safetensors"


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
        """
        path = Path(path) if path is not None else SHIPPED_CHECKPOINT
        if not path.exists():
            raise FileNotFoundError(f"no PFN checkpoint at {path}; pass an existing .safetensors file.")
        model, meta = load_checkpoint(path)
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
        context, qry_t, queries = self.inputs(curves, max_epochs, query_epochs)
        with torch.inference_mode():
            logits = self.model.predict(context, qry_t)
        return Forecast(self.model, logits, queries)

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
        n = len(curves)
        budgets = [int(max_epochs)] * n if isinstance(max_epochs, int) else [int(e) for e in max_epochs]
        if len(budgets) != n:
            raise ValueError(f"max_epochs must give one budget per curve ({n}), but got {len(budgets)}.")
        queries = np.asarray(
            query_epochs if query_epochs is not None else [[e] for e in budgets], dtype=np.float64
        )
        scale = self._scale(np.asarray(budgets, dtype=np.float64))
        epochs, values = [], []
        for c, e, s in zip(curves, budgets, scale, strict=True):
            t, y = _observed(np.asarray(c, dtype=np.float64), e)
            epochs.append(t * s)
            values.append(y)
        # a model without context bins sees every point, up to one token per epoch of its horizon
        context = bin_context(epochs, values, self.model.config.context_bins or self.horizon)
        return context, torch.from_numpy((queries * scale[:, None]).astype(np.float32)), queries

    def _scale(self, budgets: np.ndarray) -> np.ndarray:
        scale = self.horizon / budgets
        return scale if self.stretch else np.minimum(scale, 1.0)


def _observed(y: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """The finite points of a curve and their epochs (``1..``); a curve with none counts as one 0."""
    if y.size == 0:
        raise ValueError("every curve needs at least one observed epoch, but got an empty one.")
    if y.size > budget:
        raise ValueError(f"a curve has {y.size} epochs, more than its budget max_epochs={budget}.")
    epochs = np.arange(1, y.size + 1, dtype=np.float64)
    keep = np.isfinite(y)
    if not keep.any():
        return np.array([1.0]), np.array([0.0])
    return epochs[keep], y[keep]
