"""Forecasts of every prefix of a fixed set of curves, computed once in large batches.

Replaying a search visits the same partial curves again and again (many orders, many policies).
:class:`PrefixCache` forecasts every prefix ``1..E-1`` of each recorded curve up front, grouped by
length so no batch needs padding, and answers :meth:`forecast` from memory; a partial curve it
does not hold falls through to the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from foreseer.predictors.pfn.predictor import CurveForecaster, Forecast

__all__ = ["PrefixCache"]


def _key(values: Sequence[float] | np.ndarray) -> bytes:
    return np.asarray(values, dtype=np.float32).tobytes()


class PrefixCache(CurveForecaster):
    """A :class:`CurveForecaster` that answers from precomputed forecasts at the final epoch.

    Args:
        forecaster: the forecaster to precompute with (and fall back to).
        curves: ``(n, E)`` curves on the prior's scale, all with budget ``E``.
        min_epoch: shortest prefix to precompute.
        batch_size: curves per forward pass.
    """

    def __init__(
        self, forecaster: CurveForecaster, curves: np.ndarray, min_epoch: int = 1, batch_size: int = 512
    ) -> None:
        super().__init__(forecaster.model, forecaster.meta, forecaster.stretch)
        n, self.max_epochs = curves.shape
        self._index: dict[bytes, int] = {}
        rows: list[torch.Tensor] = []
        row = 0
        for t in range(min_epoch, self.max_epochs):
            for i in range(0, n, batch_size):
                chunk = curves[i : i + batch_size, :t]
                rows.append(super().forecast(list(chunk), self.max_epochs).logits[:, -1].half())
                for c in chunk:  # equal prefixes (e.g. flat starts) share the first row
                    self._index.setdefault(_key(c), row)
                    row += 1
        self._logits = torch.cat(rows) if rows else torch.zeros(0, self.model.config.n_buckets)
        self.misses = 0

    def forecast(
        self,
        curves: Sequence[Sequence[float]],
        max_epochs: int | Sequence[int],
        query_epochs: Sequence[Sequence[float]] | None = None,
    ) -> Forecast:
        budgets = [max_epochs] * len(curves) if isinstance(max_epochs, int) else list(max_epochs)
        rows = [self._index.get(_key(c)) for c in curves]
        if (
            query_epochs is not None
            or any(r is None for r in rows)
            or any(b != self.max_epochs for b in budgets)
        ):
            self.misses += 1
            return super().forecast(curves, max_epochs, query_epochs)
        logits = self._logits[torch.tensor(rows)].float().unsqueeze(1)  # (B, 1, K)
        return Forecast(self.model, logits, np.asarray([[b] for b in budgets], dtype=np.float64))
